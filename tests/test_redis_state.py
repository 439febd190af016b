"""What the kit reads from Redis is what kombu really keeps there."""

from __future__ import annotations

import signal
import time

from labkit.redis_state import queue_length, queued_messages, snapshot


def test_an_eta_task_sits_in_unacked_while_the_worker_holds_it(session):
    session.start_worker("t1", concurrency=1)
    sent_at = time.time()
    result = session.app.send_task("lab01.add", (1, 2), countdown=3)
    deadline = time.monotonic() + 10
    state = snapshot(session.broker)
    while not state["unacked_index"] and time.monotonic() < deadline:
        time.sleep(0.05)
        state = snapshot(session.broker)
    assert state["queues"]["celery"] == 0  # delivered at once...
    assert state["unacked"] == 1  # ...and held, unacknowledged, by the worker
    (_tag, score), = state["unacked_index"].items()
    assert sent_at <= score < sent_at + 1  # scored at delivery, not at the ETA 3 s ahead
    assert any(key.startswith("_kombu.binding.celery") for key in state["bindings"])
    assert result.get(timeout=10) == 3
    assert snapshot(session.broker)["unacked"] == 0


def test_queued_messages_are_read_oldest_first(session):
    ids = [session.app.send_task("lab01.add", (i, i)).id for i in range(4)]
    assert queue_length(session.broker) == 4
    messages = queued_messages(session.broker)
    assert [m["envelope"]["headers"]["id"] for m in messages] == ids
    assert [m["body_decoded"][0] for m in messages] == [[i, i] for i in range(4)]


def test_cold_shutdown_is_prompt_even_with_a_task_waiting(session):
    worker = session.start_worker("t1", concurrency=1)
    session.app.send_task("lab01.add", (1, 1), countdown=30)
    time.sleep(0.3)
    worker.kill(signal.SIGQUIT)
    assert worker.wait_exit(10) is not None
