"""`drip doctor`'s checks: what a receiving mail server and a reader's browser will check, each
finding with its fix. DNS goes through a resolver the caller points anywhere (dnspython)."""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
import dns.reversename

from drip.config import Settings
from drip.errors import DripError
from drip.mail.dkim import DkimSigner


class Level(enum.StrEnum):
    ok = "ok"
    warn = "warn"
    fail = "fail"


@dataclass(frozen=True)
class Finding:
    """One check's result and, when it is not ok, how to fix it."""

    check: str
    level: Level
    detail: str
    fix: str = ""


Lookup = Callable[[str, str], list[str]]
# GET a URL without following redirects: (status, the start of the body); raises OSError or
# httpx's errors when nothing answers.
Fetch = Callable[[str], tuple[int, str]]


def resolver_lookup(nameserver: str | None = None, timeout: float = 5.0) -> Lookup:
    """A lookup (name, type) -> texts through the system resolver or the one at HOST[:PORT]."""
    if nameserver:
        host, _, port = (
            nameserver.rpartition(":") if nameserver.count(":") == 1 else (nameserver, "", "")
        )
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host or nameserver]
        if port:
            resolver.port = int(port)
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout

    def lookup(name: str, kind: str) -> list[str]:
        try:
            answer = resolver.resolve(name, kind)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, OSError) as exc:
            raise DripError(
                f"cannot ask DNS for {kind} {name}: {exc}; check --nameserver"
            ) from None
        if kind == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        return [r.to_text() for r in answer]

    return lookup


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower()


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed DMARC alignment, approximated: the same domain or one below the other."""
    return (
        domain == from_domain
        or domain.endswith("." + from_domain)
        or from_domain.endswith("." + domain)
    )


def check_spf(lookup: Lookup, domain: str, relay: str) -> Finding:
    records = [t for t in lookup(domain, "TXT") if t.lower().startswith("v=spf1")]
    mechanism = f"a:{relay}" if relay else "include:YOUR-RELAY"
    if not records:
        return Finding(
            "SPF",
            Level.fail,
            f"{domain} (the envelope sender's domain) publishes no SPF record",
            f'publish TXT at {domain}: "v=spf1 {mechanism} -all"',
        )
    if len(records) > 1:
        return Finding(
            "SPF",
            Level.fail,
            f"{domain} publishes {len(records)} SPF records; receivers treat that as an error",
            "merge them into one TXT record starting v=spf1",
        )
    record = records[0]
    if re.search(r"(^|\s)\+?all\b", record):
        return Finding(
            "SPF",
            Level.fail,
            f"{domain}: '{record}' lets anyone send as {domain}",
            f'end it with -all or ~all: "v=spf1 {mechanism} -all"',
        )
    return Finding("SPF", Level.ok, f"{domain}: {record}")


def check_dkim(lookup: Lookup, settings: Settings, from_domain: str) -> Finding:
    if not settings.dkim_key:
        return Finding(
            "DKIM",
            Level.warn,
            "drip does not sign (DRIP_DKIM_KEY is not set)",
            "sign at your relay, or make a key (openssl genrsa -out dkim.pem 2048), set "
            "DRIP_DKIM_KEY and publish what drip doctor prints",
        )
    domain = settings.dkim_domain or from_domain
    signer = DkimSigner.load(Path(settings.dkim_key), settings.dkim_selector, domain)
    name = f"{settings.dkim_selector}._domainkey.{domain}"
    published = [t for t in lookup(name, "TXT") if "p=" in t]
    record = signer.public_record()
    if not published:
        return Finding(
            "DKIM",
            Level.fail,
            f"no DKIM key published at {name}",
            f'publish TXT at {name}: "{record}"',
        )
    wanted = record.partition("p=")[2]
    keys = [re.sub(r"\s+", "", t.partition("p=")[2].partition(";")[0]) for t in published]
    if wanted not in keys:
        return Finding(
            "DKIM",
            Level.fail,
            f"the key published at {name} is not the public half of DRIP_DKIM_KEY; "
            "every signature will fail",
            f'replace the TXT record at {name} with "{record}"',
        )
    if not _aligned(domain, from_domain):
        return Finding(
            "DKIM",
            Level.fail,
            f"DKIM signs as {domain}, which does not align with the From domain {from_domain}",
            f"set DRIP_DKIM_DOMAIN={from_domain}",
        )
    return Finding("DKIM", Level.ok, f"{name} publishes the key drip signs with")


def check_dmarc(lookup: Lookup, from_domain: str, envelope_domain: str) -> list[Finding]:
    name = f"_dmarc.{from_domain}"
    records = [t for t in lookup(name, "TXT") if t.lower().startswith("v=dmarc1")]
    suggested = f'"v=DMARC1; p=quarantine; rua=mailto:dmarc@{from_domain}"'
    findings: list[Finding] = []
    if not records:
        findings.append(Finding("DMARC", Level.fail, f"no DMARC record at {name}",
                                f"publish TXT at {name}: {suggested}"))  # fmt: skip
    else:
        tags = {
            k.strip().lower(): v.strip()
            for k, _, v in (t.partition("=") for t in records[0].split(";"))
            if k.strip()
        }
        policy = tags.get("p", "").lower()
        if policy in ("", "none"):
            findings.append(
                Finding(
                    "DMARC",
                    Level.warn,
                    f"{name} has p=none: receivers only report, nothing stops someone "
                    f"sending as {from_domain}",
                    f"once the reports show your mail passes, publish {suggested}",
                )
            )
        else:
            findings.append(Finding("DMARC", Level.ok, f"{name}: p={policy}"))
    if not _aligned(envelope_domain, from_domain):
        findings.append(
            Finding(
                "alignment",
                Level.fail,
                f"the envelope sender's domain {envelope_domain} does not align with the From "
                f"domain {from_domain}, so SPF cannot pass DMARC",
                f"use a bounce domain under {from_domain}, like bounce.{from_domain}",
            )
        )
    return findings


def check_mx(lookup: Lookup, bounce_domain: str) -> Finding:
    if not bounce_domain:
        return Finding(
            "bounce MX",
            Level.warn,
            "no bounce domain: bounces that arrive later go to the From mailbox, unread",
            "set DRIP_BOUNCE_DOMAIN (like bounce.example.com) and run drip inbound serve or poll",
        )
    hosts = lookup(bounce_domain, "MX")
    if not hosts:
        return Finding(
            "bounce MX",
            Level.fail,
            f"{bounce_domain} has no MX record: bounces to it cannot be delivered",
            f"publish MX at {bounce_domain} pointing to the host running drip inbound serve",
        )
    return Finding("bounce MX", Level.ok, f"{bounce_domain} MX {', '.join(sorted(hosts))}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_reverse_dns(lookup: Lookup, mail_url: str) -> Finding | None:
    """For a self-run relay: its address has a PTR name that points back to it."""
    host = urlsplit(mail_url).hostname or ""
    if not host or mail_url.startswith("outbox:"):
        return None
    addresses = [host] if _is_ip(host) else lookup(host, "A")
    if not addresses:
        return Finding("reverse DNS", Level.fail, f"the relay {host} does not resolve",
                       "fix DRIP_MAIL_URL or publish an A record for it")  # fmt: skip
    address = addresses[0]
    names = lookup(dns.reversename.from_address(address).to_text(), "PTR")
    if not names:
        return Finding(
            "reverse DNS",
            Level.warn,
            f"the relay's address {address} has no PTR name; many receivers refuse such mail",
            f"ask whoever runs {address} to set its PTR to {host if not _is_ip(host) else 'its host name'}",
        )
    name = names[0].rstrip(".")
    if address not in lookup(name, "A"):
        return Finding(
            "reverse DNS",
            Level.warn,
            f"{address} is named {name}, but {name} does not point back to {address}",
            f"publish A {address} at {name}",
        )
    return Finding("reverse DNS", Level.ok, f"{address} is {name} and back")


def check_base_url(lookup: Lookup, base_url: str) -> Finding:
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme != "https":
        return Finding(
            "base URL",
            Level.fail,
            f"DRIP_BASE_URL is {base_url}: links in lessons are not https",
            "put drip behind TLS and set DRIP_BASE_URL=https://learn.example.com",
        )
    addresses = [host] if _is_ip(host) else lookup(host, "A")
    if not addresses:
        return Finding("base URL", Level.fail, f"{host} does not resolve: every link is broken",
                       f"publish an A record for {host}")  # fmt: skip
    private = [a for a in addresses if not ipaddress.ip_address(a).is_global]
    if private:
        return Finding(
            "base URL",
            Level.fail,
            f"{host} resolves to {private[0]}, which readers outside cannot reach",
            f"point {host} at a public address",
        )
    return Finding("base URL", Level.ok, f"{base_url} resolves to {', '.join(addresses)}")


def http_fetch(timeout: float = 5.0) -> Fetch:
    """Fetch with httpx, as a reader's browser would (no redirects followed: a redirect of
    drip's own health check is itself a finding)."""
    import httpx

    def fetch(url: str) -> tuple[int, str]:
        response = httpx.get(url, timeout=timeout, headers={"User-Agent": "drip doctor"})
        return response.status_code, response.text[:200]

    return fetch


def check_web(fetch: Fetch, base_url: str) -> Finding:
    """Whether drip's web app answers at the base URL, where every link in a lesson points."""
    url = f"{base_url.rstrip('/')}/healthz"
    route = f"route every path under {base_url} to drip serve unchanged"
    try:
        status, body = fetch(url)
    except Exception as exc:  # httpx's errors, a refused or timed-out connection, bad TLS
        return Finding(
            "web app",
            Level.fail,
            f"{url} cannot be reached ({type(exc).__name__}: {exc}): every link in a lesson "
            "is broken",
            f"run drip serve (or drip run) behind TLS at {base_url}",
        )
    if status == 200 and body.strip() == "ok":
        return Finding("web app", Level.ok, f"{url} answers ok")
    if status == 503:
        return Finding(
            "web app",
            Level.fail,
            f"{url} answers 503: drip's web app cannot reach its database, so links fail",
            "check DRIP_DATABASE_URL where drip serve runs, and that the database is up",
        )
    if 300 <= status < 400:
        return Finding("web app", Level.fail, f"{url} answers {status}, a redirect: drip's "
                       "links would be redirected instead of answered", route)  # fmt: skip
    return Finding(
        "web app",
        Level.fail,
        f"{url} answers {status}, not drip's health check: something else serves the base URL",
        route,
    )


def run_checks(settings: Settings, lookup: Lookup, fetch: Fetch | None = None) -> list[Finding]:
    """Every check, in the order a receiver meets them (the web app's only with `fetch`)."""
    from_domain = _domain(settings.sender)
    envelope_domain = settings.bounce_domain or from_domain
    relay = urlsplit(settings.mail_url).hostname or ""
    findings = [
        check_spf(lookup, envelope_domain, relay),
        check_dkim(lookup, settings, from_domain),
    ]
    findings += check_dmarc(lookup, from_domain, envelope_domain)
    findings.append(check_mx(lookup, settings.bounce_domain))
    reverse = check_reverse_dns(lookup, settings.mail_url)
    if reverse is not None:
        findings.append(reverse)
    findings.append(check_base_url(lookup, settings.base_url))
    if fetch is not None:
        findings.append(check_web(fetch, settings.base_url))
    return findings
