"""The one e-mail address check of drip, for recipients, managers and DRIP_FROM alike (a leaf:
it imports only the errors, so the settings can use it)."""

from __future__ import annotations

from collections.abc import Collection

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from drip.errors import InputError

SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)  # local, test, invalid, localhost, arpa, onion


def special_use_domain(domain: str) -> str | None:
    """The special-use name (RFC 6761) a domain ends in, like 'local', or None."""
    domain = domain.lower().rstrip(".")
    return next((s for s in SPECIAL_USE if domain == s or domain.endswith("." + s)), None)


def check_address(value: str, special_use: Collection[str] = ()) -> str:
    """A valid address, lower-cased, with an internationalised domain in its ASCII form.

    Special-use domains (`.local` of on-premises directories, `.test`...) are accepted only when
    named in `special_use` (the setting DRIP_SPECIAL_USE_DOMAINS); "*" accepts them all.
    Raises ValueError saying what is wrong and how to fix it."""
    text = value.strip()
    if any(c in text for c in "\r\n\x00") or "=?" in text:
        raise ValueError(f"'{text}' holds a line break or an encoded word; remove it")
    local, _, domain = text.rpartition("@")
    special = special_use_domain(domain) if domain.isascii() else None
    if special and "*" not in special_use and special not in special_use:
        raise ValueError(
            f"'{text}' is on the special-use domain .{special}, which the Internet does not route;"
            f" if your mail server delivers it, set DRIP_SPECIAL_USE_DOMAINS={special}"
        )
    # email-validator refuses every special-use name: check an allowed one's syntax as .example.
    checked = f"{local}@{domain[: len(domain) - len(special)]}example" if special else text
    try:
        result = validate_email(checked, check_deliverability=False, globally_deliverable=False)
    except EmailNotValidError as exc:
        raise ValueError(f"'{text}' is not a valid e-mail address: {exc}") from None
    address = result.ascii_email or ""
    if not address:
        raise ValueError(
            f"'{text}' needs SMTPUTF8 (a non-ASCII name before the @), which drip does not send;"
            " use an ASCII address"
        )
    if special:
        address = f"{address.rpartition('@')[0]}@{domain}"
    return address.lower()


def valid_address(value: str, special_use: Collection[str] = ()) -> str:
    """check_address for command-line input: an InputError instead of a ValueError."""
    try:
        return check_address(value, special_use)
    except ValueError as exc:
        raise InputError([str(exc)]) from None
