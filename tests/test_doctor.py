"""`drip doctor` against a DNS server of the test's own: each problem found, each with its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Route
from support import cli_env, free_port, make_settings, run_drip, serving
from support_peers import dns_server

from drip.db import make_engine
from drip.mail.dkim import DkimSigner
from drip.web import create_app


def write_key(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    return path


def doctor(
    tmp_path: Path, records: dict[tuple[str, str], list[str]]
) -> tuple[int, dict[str, dict[str, str]]]:
    key = write_key(tmp_path / "dkim.pem")
    settings = make_settings(
        tmp_path,
        bounce_domain="bounce.example.com",
        dkim_key=str(key),
        mail_url="smtp://relay.example.com:587",
        base_url="https://learn.example.com",
    )
    with dns_server(records) as port:
        result = run_drip(["doctor", "--nameserver", f"127.0.0.1:{port}", "--offline",
                           "--format", "json"], cli_env(settings))  # fmt: skip
    findings = {f["check"]: f for f in json.loads(result.stdout)}
    return result.returncode, findings


def good_zone(tmp_path: Path) -> dict[tuple[str, str], list[str]]:
    return {
        ("bounce.example.com", "TXT"): ["v=spf1 a:relay.example.com -all"],
        ("bounce.example.com", "MX"): ["10 mx.example.com"],
        ("_dmarc.example.com", "TXT"): ["v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"],
        ("relay.example.com", "A"): ["203.0.113.25"],
        ("25.113.0.203.in-addr.arpa", "PTR"): ["relay.example.com."],
        ("learn.example.com", "A"): ["93.184.215.14"],
    }


def test_a_domain_set_up_right_passes(tmp_path: Path) -> None:
    zone = good_zone(tmp_path)
    key = write_key(tmp_path / "dkim.pem")
    zone[("drip._domainkey.example.com", "TXT")] = [
        DkimSigner.load(key, "drip", "example.com").public_record()
    ]
    settings = make_settings(tmp_path, bounce_domain="bounce.example.com", dkim_key=str(key),
                             mail_url="smtp://relay.example.com:587",
                             base_url="https://learn.example.com")  # fmt: skip
    with dns_server(zone) as port:
        result = run_drip(["doctor", "--nameserver", f"127.0.0.1:{port}", "--offline",
                           "--format", "json"], cli_env(settings))  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert {f["check"]: f["result"] for f in json.loads(result.stdout)} == {
        "SPF": "ok", "DKIM": "ok", "DMARC": "ok", "bounce MX": "ok", "reverse DNS": "ok",
        "base URL": "ok",
    }  # fmt: skip


def test_missing_spf_a_wrong_dkim_key_and_p_none_each_come_with_the_fix(tmp_path: Path) -> None:
    zone = good_zone(tmp_path)
    del zone[("bounce.example.com", "TXT")]
    zone[("_dmarc.example.com", "TXT")] = ["v=DMARC1; p=none; rua=mailto:dmarc@example.com"]
    other = DkimSigner.load(write_key(tmp_path / "old.pem"), "drip", "example.com")
    zone[("drip._domainkey.example.com", "TXT")] = [other.public_record()]
    code, found = doctor(tmp_path, zone)
    assert code == 1
    assert found["SPF"]["result"] == "fail"
    assert found["SPF"]["detail"] == (
        "bounce.example.com (the envelope sender's domain) publishes no SPF record"
    )
    assert found["SPF"]["fix"] == (
        'publish TXT at bounce.example.com: "v=spf1 a:relay.example.com -all"'
    )
    assert found["DKIM"]["result"] == "fail"
    assert "is not the public half of DRIP_DKIM_KEY" in found["DKIM"]["detail"]
    mine = DkimSigner.load(tmp_path / "dkim.pem", "drip", "example.com").public_record()
    assert (
        found["DKIM"]["fix"]
        == f'replace the TXT record at drip._domainkey.example.com with "{mine}"'
    )
    assert found["DMARC"]["result"] == "warn"
    assert "p=none" in found["DMARC"]["detail"]
    assert found["DMARC"]["fix"] == (
        'once the reports show your mail passes, publish "v=DMARC1; p=quarantine; '
        'rua=mailto:dmarc@example.com"'
    )


def test_a_private_base_url_a_missing_mx_and_no_ptr_are_found(tmp_path: Path) -> None:
    zone = good_zone(tmp_path)
    del zone[("bounce.example.com", "MX")]
    del zone[("25.113.0.203.in-addr.arpa", "PTR")]
    zone[("learn.example.com", "A")] = ["10.0.0.5"]
    code, found = doctor(tmp_path, zone)
    assert code == 1
    assert found["bounce MX"]["fix"] == (
        "publish MX at bounce.example.com pointing to the host running drip inbound serve"
    )
    assert found["reverse DNS"]["result"] == "warn"
    assert found["base URL"]["detail"] == (
        "learn.example.com resolves to 10.0.0.5, which readers outside cannot reach"
    )


def web_finding(
    tmp_path: Path, base_url: str, db_url: str = "sqlite:///unused.db"
) -> dict[str, str]:
    """What `drip doctor` finds fetching <base_url>/healthz (the DNS checks fail: no records)."""
    settings = make_settings(tmp_path, db_url, base_url=base_url)
    with dns_server({}) as port:
        result = run_drip(["doctor", "--nameserver", f"127.0.0.1:{port}", "--format", "json"],
                          cli_env(settings))  # fmt: skip
    assert result.returncode == 1  # the DNS checks at least
    return next(f for f in json.loads(result.stdout) if f["check"] == "web app")


def test_the_web_app_answering_at_the_base_url_is_found_ok(
    tmp_path: Path, db_url: str, engine: sa.Engine
) -> None:
    with serving(create_app(engine, make_settings(tmp_path, db_url))) as base:
        found = web_finding(tmp_path, base, db_url)
    assert found == {"check": "web app", "result": "ok", "detail": f"{base}/healthz answers ok",
                     "fix": ""}  # fmt: skip


def test_nothing_at_the_base_url_is_a_failure_with_the_fix(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"  # nobody listens
    found = web_finding(tmp_path, base)
    assert found["result"] == "fail"
    assert found["detail"].startswith(f"{base}/healthz cannot be reached (ConnectError: ")
    assert found["detail"].endswith("): every link in a lesson is broken")
    assert found["fix"] == f"run drip serve (or drip run) behind TLS at {base}"


@pytest.mark.parametrize(
    ("route", "says"),
    [
        (lambda request: RedirectResponse("https://elsewhere.example.com/"),
         "answers 307, a redirect: drip's links would be redirected instead of answered"),
        (None, "answers 404, not drip's health check: something else serves the base URL"),
    ],
)  # fmt: skip
def test_another_server_at_the_base_url_is_told_apart_from_drip(
    tmp_path: Path, route: object, says: str
) -> None:
    routes = [Route("/healthz", route)] if route is not None else []  # type: ignore[arg-type]
    with serving(Starlette(routes=routes)) as base:
        found = web_finding(tmp_path, base)
    assert found["detail"] == f"{base}/healthz {says}"
    assert found["fix"] == f"route every path under {base} to drip serve unchanged"


def test_drip_without_its_database_answers_503_and_doctor_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "drip.db"
    folder.mkdir()  # a database SQLite cannot open
    gone = f"sqlite:///{folder}"
    engine = make_engine(gone)
    with serving(create_app(engine, make_settings(tmp_path, gone))) as base:
        found = web_finding(tmp_path, base)
    engine.dispose()
    assert found["result"] == "fail"
    assert found["detail"] == (
        f"{base}/healthz answers 503: drip's web app cannot reach its database, so links fail"
    )
