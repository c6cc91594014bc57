"""Timezones as HR files and managers write them: IANA names, Windows names through the mapping
that tzlocal keeps (CLDR's windowsZones), and legacy zones such as EST, which have a warning."""

from __future__ import annotations

from drip.schedule import parse_timezone

# Legacy POSIX-style zones still in tzdata, with the place a person using one most likely means.
LEGACY = {
    "EST": "America/New_York (EST is UTC-5 all year, with no daylight saving time)",
    "MST": "America/Denver or America/Phoenix (MST is UTC-7 all year)",
    "HST": "Pacific/Honolulu",
    "EST5EDT": "America/New_York",
    "CST6CDT": "America/Chicago",
    "MST7MDT": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
    "CET": "Europe/Paris or Europe/Berlin",
    "MET": "Europe/Paris or Europe/Berlin",
    "EET": "Europe/Athens or Europe/Helsinki",
    "WET": "Europe/Lisbon",
}
UTC_NAMES = {"utc", "gmt", "etc/utc", "etc/gmt", "z", "zulu", "universal", "etc/universal"}


def windows_zone(name: str) -> str | None:
    """The IANA zone of a Windows zone name like 'Eastern Standard Time', or None."""
    from tzlocal.windows_tz import win_tz

    wanted = name.strip().casefold()
    return next((iana for win, iana in win_tz.items() if win.casefold() == wanted), None)


def legacy_note(zone: str) -> str | None:
    """Why a valid but legacy zone (EST, PST8PDT, Etc/GMT+5) is probably not what was meant."""
    upper = zone.upper()
    if upper in LEGACY:
        return f"'{zone}' is a legacy zone; use the place's name, like {LEGACY[upper]}"
    if upper.startswith("ETC/GMT") and zone.casefold() not in UTC_NAMES:
        return f"'{zone}' is a fixed offset with no daylight saving time; use the place's name, like Europe/Paris"
    return None


def read_zone(value: str) -> tuple[str, str | None]:
    """A zone as a file gives it: (the IANA name, a warning or None); InputError if unknown."""
    text = value.strip()
    if text.casefold() in UTC_NAMES:
        return "UTC", None
    iana = windows_zone(text)
    if iana:
        return iana, None
    zone = parse_timezone(text)
    return zone, legacy_note(zone)
