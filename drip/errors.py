"""The one exception tree of drip; the CLI and the web app map it to messages."""

from collections.abc import Sequence


class DripError(Exception):
    """Base class of every error drip reports to a user."""


class ConfigError(DripError):
    """A setting has a value drip cannot use."""


class CurriculumError(DripError):
    """A course or lesson file is invalid."""

    def __init__(self, problems: Sequence[object]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class HeaderError(DripError):
    """A value cannot go into a mail header safely."""


class RenderError(DripError):
    """A template or lesson failed to render."""


class InputError(DripError):
    """Input from a file or the command line is invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class NotFound(DripError):
    """The named cohort, person or lesson does not exist."""


class TokenError(DripError):
    """A link token is forged, altered or for another purpose."""


class SchemaError(DripError):
    """The database schema is missing or newer than this code."""
