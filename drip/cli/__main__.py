"""`python -m drip.cli`."""

from drip.cli import main

main()
