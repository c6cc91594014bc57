"""The return date in an out-of-office message, in English, German or French. Pure."""

from __future__ import annotations

import re
from datetime import date, timedelta

MONTHS = {
    # English
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12,
    "dec": 12,
    # German
    "januar": 1, "jänner": 1, "februar": 2, "märz": 3, "maerz": 3, "mai": 5, "juni": 6,
    "juli": 7, "oktober": 10, "okt": 10, "dezember": 12, "dez": 12,
    # French
    "janvier": 1, "janv": 1, "février": 2, "fevrier": 2, "févr": 2, "mars": 3, "avril": 4,
    "juin": 6, "juillet": 7, "juil": 7, "août": 8, "aout": 8, "septembre": 9, "octobre": 10,
    "novembre": 11, "décembre": 12, "decembre": 12, "déc": 12,
}  # fmt: skip

MONTH = "(?P<month>" + "|".join(sorted(map(re.escape, MONTHS), key=len, reverse=True)) + r")\.?"
DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th|er|\.)?"
YEAR = r"(?:,?\s*(?P<year>20\d\d))?"
DATE_FORMS = [
    re.compile(r"(?P<year>20\d\d)-(?P<mnum>[01]?\d)-(?P<day>[0-3]?\d)"),
    re.compile(r"(?P<day>[0-3]?\d)[./](?P<mnum>[01]?\d)(?:[./](?P<year>(?:20)?\d\d))?\b"),
    re.compile(DAY + r"\s*(?:de\s+)?" + MONTH + YEAR, re.I),
    re.compile(MONTH + r"\s+" + DAY + YEAR, re.I),
]
# The date named is the first day back...
BACK_ON = re.compile(
    r"\b(?:back (?:in the office |at work |at my desk )?(?:on|from)|return(?:ing)? (?:to the office )?on|"
    r"returning|return date|will be back|wieder (?:am|ab|erreichbar ab|im büro ab|zurück am)|"
    r"zurück am|ab dem|ab|de retour (?:le|au bureau le)?|retour prévu le|à partir du|dès le)\b",
    re.I,
)
# ...or the last day away.
UNTIL = re.compile(
    r"\b(?:until|till|through|thru|bis (?:einschließlich |einschl\. |zum |am )?|"
    r"jusqu['’]au|jusqu['’]à|jusqu['’]a)\b",
    re.I,
)
WINDOW = 60  # characters after a keyword in which its date must start


def _parse(match: re.Match[str], today: date) -> date | None:
    groups = match.groupdict()
    day = int(groups["day"])
    if groups.get("mnum"):
        month = int(groups["mnum"])
    else:
        month = MONTHS[groups["month"].lower()]
    year_text = groups.get("year")
    try:
        if year_text:
            year = int(year_text) + (2000 if len(year_text) == 2 else 0)
            return date(year, month, day)
        found = date(today.year, month, day)
        # Without a year the date is the next one to come: "back on 12 January" in December.
        return found if found >= today else date(today.year + 1, month, day)
    except ValueError:
        return None


def _first_date(text: str, today: date) -> date | None:
    best: tuple[int, date] | None = None
    for form in DATE_FORMS:
        for match in form.finditer(text):
            found = _parse(match, today)
            if found is not None and (best is None or match.start() < best[0]):
                best = (match.start(), found)
                break
    return best[1] if best else None


def return_date(text: str, today: date) -> date | None:
    """The first day the writer is back, if the text says, within half a year of `today`."""
    text = re.sub(r"\s+", " ", text)
    hits: list[tuple[int, date]] = []
    for keyword, offset in ((BACK_ON, 0), (UNTIL, 1)):
        for match in keyword.finditer(text):
            window = text[match.end() : match.end() + WINDOW]
            found = _first_date(window, today)
            if found is not None:
                hits.append((match.start(), found + timedelta(days=offset)))
                break
    for _, found in sorted(hits):
        if today < found <= today + timedelta(days=183):
            return found
    return None
