"""Real worker and beat processes: ready by ping, per-run settings, kills, reaping."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from labkit.errors import SetupError
from labkit.lab import Lab
from labkit.runner import run as run_lab


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_worker_is_ready_by_ping_and_runs_a_task(session):
    worker = session.start_worker("t1", concurrency=2)
    assert session.app.control.ping(destination=[worker.hostname], timeout=1)
    assert len(worker.pool_pids()) == 2
    assert session.app.send_task("lab01.add", (20, 22)).get(timeout=10) == 42


def test_per_run_settings_reach_the_worker_process(session):
    worker = session.start_worker(
        "t1", concurrency=1,
        settings={"broker_transport_options": {"visibility_timeout": 1234},
                  "task_default_priority": 3})
    conf = session.app.control.inspect([worker.hostname], timeout=2).conf(with_defaults=False)
    worker_conf = conf[worker.hostname]
    assert worker_conf["broker_transport_options"]["visibility_timeout"] == 1234
    assert worker_conf["task_default_priority"] == 3
    # and the kit's own settings travel with them
    assert worker_conf["accept_content"] == ["json"]


def test_killing_a_pool_child_is_survived_by_the_worker(session):
    worker = session.start_worker("t1", concurrency=2)
    before = worker.pool_pids()
    killed = worker.kill_pool_child(0)
    assert killed in before
    deadline = time.monotonic() + 10
    while (killed in worker.pool_pids() or len(worker.pool_pids()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert killed not in worker.pool_pids()
    assert len(worker.pool_pids()) == 2  # prefork replaced the child
    assert session.app.send_task("lab01.add", (1, 1)).get(timeout=10) == 2


def test_sigkill_of_the_main_process_leaves_nothing_after_reap(session):
    worker = session.start_worker("t1", concurrency=2)
    family = [worker.pid, *worker.pool_pids()]
    worker.kill(signal.SIGKILL)
    assert worker.wait_exit(10) == -signal.SIGKILL
    session.registry.reap_all()
    assert all(_gone(pid) for pid in family), family


def test_warm_shutdown_stops_the_whole_tree(session):
    worker = session.start_worker("t1", concurrency=2)
    family = [worker.pid, *worker.pool_pids()]
    worker.stop()
    assert worker.process.popen.returncode == 0  # SIGTERM is a clean warm shutdown
    assert all(_gone(pid) for pid in family)


def test_a_worker_that_cannot_start_is_a_setup_error_not_a_hang(session):
    with pytest.raises(SetupError, match="exited"):
        session.start_worker("t1", pool="no-such-pool", ready_timeout=20)


def test_beat_publishes_the_schedule_it_was_given(session):
    settings = {"beat_schedule": {"tick": {"task": "lab01.add", "schedule": 0.3, "args": [1, 2]}}}
    session.start_worker("t1", concurrency=1)
    beat = session.start_beat(settings=settings)
    assert session.events.wait_for(
        lambda e: sum(1 for x in session.events.snapshot()
                      if x.get("type") == "task-succeeded" and x.get("result") == "3") >= 3,
        timeout=15)
    assert beat.schedule_file.parent.is_relative_to(session.tmp)  # state file never in the repo
    beat_pid = beat.process.pid
    beat.stop()
    assert _gone(beat_pid)


def test_an_exception_in_a_lab_reaps_every_process_and_exits_1(tmp_path):
    pids: list[int] = []

    def crashing(s):
        w = s.start_worker("t1", concurrency=2)
        pids.extend([s.broker.process.pid, w.pid, *w.pool_pids()])
        raise RuntimeError("boom")

    outcome = run_lab(Lab(id="00_crash", title="crash", measure=crashing),
                      results=tmp_path, progress=False)
    assert outcome.exit_code == 1
    assert outcome.result["status"] == "error" and "boom" in outcome.result["error"]
    assert (outcome.run_dir / "traceback.txt").exists()
    assert len(pids) == 4 and all(_gone(pid) for pid in pids), pids


def test_a_finding_that_does_not_hold_makes_the_run_exit_1(tmp_path):
    def wrong_claim(s):
        from labkit.redis_state import lpush_calls

        s.start_worker("t1", concurrency=1)
        before = lpush_calls(s.broker)
        s.app.send_task("lab01.add", (1, 1)).get(timeout=10)
        sent = lpush_calls(s.broker) - before
        s.check("wrong", "a task sends no message", sent, "0", sent == 0)

    outcome = run_lab(Lab(id="00_wrong", title="wrong", measure=wrong_claim),
                      results=tmp_path, progress=False)
    assert outcome.findings[0].measured == 1
    assert not outcome.findings[0].holds
    assert outcome.exit_code == 1


def test_a_broker_url_in_the_drivers_environment_cannot_divert_the_run(tmp_path, monkeypatch):
    """Celery prefers CELERY_BROKER_URL from os.environ to its config: the run pins it."""
    from labkit.params import Params
    from labkit.session import LabSession

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1:1/0")
    with LabSession("00_probe", Params(), tmp_path / "run", progress=False) as s:
        s.start_worker("t1", concurrency=1)
        assert s.app.conf.broker_url == s.broker.url
        assert s.app.send_task("lab01.add", (2, 3)).get(timeout=10) == 5
    import os

    assert os.environ["CELERY_BROKER_URL"] == "redis://127.0.0.1:1/0"  # restored afterwards
