"""Fixtures shared by every test folder; the helpers live in support.py."""

from support import (  # noqa: F401 - fixtures are found by name
    _pg_template,
    _sqlite_template,
    db_url,
    engine,
    settings,
    smtp,
)
from support_peers import ralph  # noqa: F401, E402 - a fixture, found by name
