"""A password-protected Redis: the workshop Redis requires it, and no run prints or stores it."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

from labkit.broker import free_port
from tests import board
from tests.conftest import REPO, cli_env


def _start_workshop_redis(port: int, password: str, tmp_path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "labkit", "redis", "--port", str(port),
                             "--password", password], cwd=REPO, env=cli_env(tmp_path / "r"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, password=password, socket_timeout=1).ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("celery-lab redis --password did not come up")


def _stop(proc: subprocess.Popen) -> str:
    for child in psutil.Process(proc.pid).children(recursive=True):
        child.terminate()
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return out


def _protected_run(tmp_path: Path) -> None:
    """The whole check, on the test board (it runs a lab): raises if anything showed it."""
    password = secrets.token_hex(12)
    port = free_port()
    server = _start_workshop_redis(port, password, tmp_path)
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, socket_timeout=1).ping()
        commands = [p.cmdline() for p in psutil.Process(server.pid).children(recursive=True)]
        assert commands and not any(password in " ".join(c) for c in commands)

        url = f"redis://:{password}@127.0.0.1:{port}/0"
        results = tmp_path / "results"
        run = subprocess.run([sys.executable, "-m", "labkit", "run", "03", "--quick",
                              "--broker", url], cwd=REPO, env=cli_env(results),
                             capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stdout + run.stderr
        report = subprocess.run([sys.executable, "-m", "labkit", "report"], cwd=REPO,
                                env=cli_env(results), capture_output=True, text=True, timeout=60)
        assert report.returncode == 0, report.stdout + report.stderr
        doctor = subprocess.run([sys.executable, "-m", "labkit", "doctor", "--broker", url],
                                cwd=REPO, env=cli_env(results), capture_output=True, text=True,
                                timeout=60)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        env = subprocess.run([sys.executable, "-m", "labkit", "env", "04", "--broker", url],
                             cwd=REPO, env=cli_env(results), capture_output=True, text=True,
                             timeout=30)
        assert "${REDIS_PASSWORD}@127.0.0.1" in env.stdout
    finally:
        banner = _stop(server)
    files = [p for p in results.rglob("*") if p.is_file()]
    assert any(p.name == "result.json" for p in files) and any(p.name == "REPORT.md" for p in files)
    leaks = [str(p) for p in files if password.encode() in p.read_bytes()]
    printed = {"run": run.stdout + run.stderr, "report": report.stdout + report.stderr,
               "doctor": doctor.stdout + doctor.stderr,
               "env": env.stdout + env.stderr, "redis": banner}
    leaks += [name for name, text in printed.items() if password in text]
    assert leaks == []
    assert ":***@" in banner


PROTECTED = board.declare("password-protected-run", _protected_run, expected_s=25)


def test_a_password_protected_run_never_shows_the_password(test_board):
    test_board[PROTECTED]  # raises what the check found
