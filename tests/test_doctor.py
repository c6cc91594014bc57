"""`drip doctor` against a DNS server of the test's own: each problem found, each with its fix."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support import cli_env, make_settings, run_drip
from support_peers import dns_server

from drip.mail.dkim import DkimSigner


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
        result = run_drip(["doctor", "--nameserver", f"127.0.0.1:{port}", "--format", "json"],
                          cli_env(settings))  # fmt: skip
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
        result = run_drip(["doctor", "--nameserver", f"127.0.0.1:{port}", "--format", "json"],
                          cli_env(settings))  # fmt: skip
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
