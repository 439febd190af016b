"""The workshop commands keep a Redis password off the screen and Redis off the network."""

from __future__ import annotations

import subprocess
import sys

from labkit.cli import main


def test_env_refers_to_the_password_instead_of_printing_it(capsys):
    assert main(["env", "04", "--broker", "redis://:hunter2@localhost:6379/0"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert 'export CELERY_BROKER_URL="redis://:${REDIS_PASSWORD}@localhost:6379/0"' in out
    evaluated = subprocess.run(["bash", "-c", f'{out}\necho "$CELERY_BROKER_URL"'],
                               env={"REDIS_PASSWORD": "hunter2", "PATH": "/usr/bin:/bin"},
                               capture_output=True, text=True, check=True).stdout
    assert evaluated.strip() == "redis://:hunter2@localhost:6379/0"


def test_env_without_a_password_prints_the_url_as_it_is(capsys):
    assert main(["env", "--broker", "redis://localhost:6380/3"]) == 0
    assert "export CELERY_BROKER_URL='redis://localhost:6380/3'" in capsys.readouterr().out


def test_redis_refuses_the_network_without_a_password():
    # a subprocess: `redis` installs its own signal handlers, which pytest's process must keep
    refused = subprocess.run([sys.executable, "-m", "labkit", "redis", "--bind", "0.0.0.0"],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--password" in refused.stderr
