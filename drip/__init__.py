"""drip: self-hosted email microlearning, one short lesson a day."""

__version__ = "0.1.0"
