"""drip init, drip run (the APScheduler loop) and signals, through the real command."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from support import SmtpHandler, cli_env, free_port, make_settings, run_drip


def test_init_writes_a_secret_and_creates_the_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIP_")}
    first = run_drip(["init"], env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    config = (tmp_path / "drip.toml").read_text()
    assert "secret_key = " in config and oct((tmp_path / "drip.toml").stat().st_mode)[-3:] == "600"
    assert "created at migration" in first.stdout
    second = run_drip(["init"], env, cwd=tmp_path)
    assert second.returncode == 0 and "already at" in second.stdout
    assert (tmp_path / "drip.toml").read_text() == config  # the key is kept
    shown = run_drip(["config", "--format", "csv"], env, cwd=tmp_path)
    key = config.split('"')[1]
    assert key not in shown.stdout and "DRIP_SECRET_KEY,****,file" in shown.stdout


def test_run_sends_due_lessons_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "drip.db"
    settings = make_settings(tmp_path, f"sqlite:///{db}", tick_seconds="0.5")
    env = cli_env(settings)
    assert run_drip(["init"], env, cwd=tmp_path).returncode == 0
    today = datetime.now(UTC).date().isoformat()
    # A cohort that sends every day around the clock, so a lesson is due now whatever the time.
    created = run_drip(
        [
            "cohort",
            "create",
            "now",
            "--course",
            "sample",
            "--start",
            today,
            "--days",
            "mon-sun",
            "--send-time",
            "00:00",
            "--window-end",
            "23:59",
        ],
        env,
    )
    assert created.returncode == 0, created.stderr
    csv = tmp_path / "p.csv"
    csv.write_text("email,name\nada@example.com,Ada\n")
    assert run_drip(["enroll", "now", str(csv)], env).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "drip.cli", "run", "--no-web"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    outbox = tmp_path / "outbox"
    while time.monotonic() < deadline and not list(outbox.glob("*.eml")):
        time.sleep(0.2)
    time.sleep(1.2)  # a few more ticks: nothing more is due today
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert len(list(outbox.glob("*.eml"))) == 1
    assert "tick" in err and "sent 1" in err and "stopped" in err
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("select lessons_sent from enrollment")).scalar_one() == 1


def test_run_serves_the_web_endpoint_and_stops_on_sigint(tmp_path: Path) -> None:
    import httpx
    from support import free_port

    port = free_port()
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'drip.db'}", web_port=str(port))
    env = cli_env(settings)
    assert run_drip(["init"], env, cwd=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "drip.cli", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "drip run did not serve"
                time.sleep(0.2)
        assert reply.status_code == 200 and reply.text == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/o/1.forged.gif", timeout=2).status_code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err


def test_run_warns_about_a_plain_http_base_url(tmp_path: Path) -> None:
    db = tmp_path / "drip.db"
    settings = make_settings(tmp_path, f"sqlite:///{db}", base_url="http://learn.example.com")
    env = cli_env(settings)
    assert run_drip(["init"], env, cwd=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "drip.cli", "run", "--no-web"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert "drip running" in proc.stdout.readline()  # printed after the warnings
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert "warning: DRIP_BASE_URL has value 'http://learn.example.com': plain http" in err
    assert "use https://" in err


def _everyday_cohort(env: dict[str, str], tmp_path: Path, people: int) -> None:
    today = datetime.now(UTC).date().isoformat()
    created = run_drip(["cohort", "create", "now", "--course", "sample", "--start", today,
                        "--days", "mon-sun", "--send-time", "00:00", "--window-end", "23:59"],
                       env)  # fmt: skip
    assert created.returncode == 0, created.stderr
    csv = tmp_path / "p.csv"
    csv.write_text("email,name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(people)))
    assert run_drip(["enroll", "now", str(csv)], env).returncode == 0


def test_sigterm_with_the_web_endpoint_exits_0_and_hands_the_claims_back(
    tmp_path: Path, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    handler.on_data = lambda _rcpt: time.sleep(0.15)  # a slow relay: the pass is mid-batch
    db = tmp_path / "drip.db"
    beat = tmp_path / "heartbeat"
    settings = make_settings(tmp_path, f"sqlite:///{db}", tick_seconds="1",
                             mail_url=f"smtp://127.0.0.1:{port}", heartbeat_file=str(beat))  # fmt: skip
    env = cli_env(settings)
    assert run_drip(["init"], env, cwd=tmp_path).returncode == 0
    _everyday_cohort(env, tmp_path, 40)
    web = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "drip.cli", "run", "--port", str(web)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(handler.messages) < 3:
        time.sleep(0.05)
    assert run_drip(["healthcheck"], env).returncode == 0  # the heartbeat of this pass
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "received SIGTERM" in err or "Shutting down" in err
    assert "stopped" in err and "Traceback" not in err
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        sent = conn.execute(sa.text("select sum(lessons_sent) from enrollment")).scalar_one()
        claimed = conn.execute(
            sa.text("select count(*) from enrollment where claimed_by is not null")
        ).scalar_one()
    engine.dispose()
    assert 3 <= len(handler.messages) < 40  # it stopped mid-pass
    assert sent == len(handler.messages)  # everything sent is recorded
    assert claimed == 0  # the rest is due again at once, for this or another worker
    stale = run_drip(["healthcheck", "--max-age", "1"], env)
    time.sleep(1.1)
    stale = run_drip(["healthcheck", "--max-age", "1"], env)
    assert stale.returncode == 1 and "it is stuck or stopped" in stale.stderr


def test_healthcheck_without_a_heartbeat_fails(tmp_path: Path) -> None:
    env = cli_env(make_settings(tmp_path, heartbeat_file=str(tmp_path / "none")))
    result = run_drip(["healthcheck"], env)
    assert result.returncode == 1 and "has not made a pass yet" in result.stderr
