"""labkit.bounded: a call in a thread, bounded; when it returned is read as it returned."""

from __future__ import annotations

import threading
import time

from labkit import bounded


def test_the_end_is_read_when_the_call_returned_even_if_its_thread_started_late():
    # the caller's clock before the thread ran, plus the call's own duration, would be early
    # by the thread's start-up: a hung-broker send once read as returning before the resume
    returned = []
    hold = threading.Lock()
    hold.acquire()
    threading.Timer(0.2, hold.release).start()  # the call cannot begin its work before this

    def late() -> str:
        with hold:
            pass
        returned.append(time.time())
        return "done"

    call = bounded.call(late, timeout=5)
    assert call.finished and call.value == "done"
    assert call.ended_at >= returned[0]


def test_a_call_still_running_at_the_timeout_has_no_end():
    call = bounded.call(lambda: time.sleep(1), timeout=0.05)
    assert not call.finished and call.ended_at is None


def test_frames_show_where_a_background_call_waits_and_nothing_once_it_ended():
    gate = threading.Event()

    def parked() -> str:
        gate.wait(5)
        return "done"

    bg = bounded.start(parked, "parked")
    deadline = time.monotonic() + 5
    while not any(f.endswith(":parked") for f in bg.frames()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(f.endswith(":parked") for f in bg.frames())
    gate.set()
    assert bg.join(5).value == "done" and bg.frames() == []
