"""Celery events captured in the background: the lab's main measuring instrument.

Every event keeps the ``timestamp`` its sender stamped (``time.time()`` in that process; all
processes share one host clock) and gains ``local_received``, when the recorder got it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from celery import Celery

from labkit.errors import SetupError

Event = dict[str, Any]
PROBE = "lab-probe"
TASK_ENDS = frozenset({"task-succeeded", "task-failed", "task-revoked", "task-rejected"})


class EventRecorder:
    """Subscribes before the run sends anything, so no event is missed."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._receiver = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _on_event(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def _capture(self) -> None:
        try:
            with self.app.connection_for_read() as conn:
                self._receiver = self.app.events.Receiver(conn, handlers={"*": self._on_event})
                self._receiver.capture(limit=None, timeout=None, wakeup=False)
        except BaseException as exc:  # reported by start()/stop(), never lost
            self._error = exc
            with self._cond:
                self._cond.notify_all()

    def start(self, timeout: float = 10.0) -> float:
        """Start capturing; returns once a probe event made the round trip (subscribed)."""
        started = time.monotonic()
        self._thread = threading.Thread(target=self._capture, name="event-recorder", daemon=True)
        self._thread.start()
        marker = uuid.uuid4().hex
        with self.app.events.default_dispatcher() as dispatcher:
            while time.monotonic() - started < timeout:
                if self._error is not None:
                    raise SetupError(f"event capture failed: {self._error}")
                dispatcher.send(PROBE, marker=marker)
                if self.wait_for(lambda e: e.get("marker") == marker, timeout=0.1):
                    return time.monotonic() - started
        raise SetupError(f"event capture not ready within {timeout:.0f} s")

    def stop(self, timeout: float = 5.0) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot(self) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e.get("type") != PROBE]

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float) -> bool:
        """True once any captured event satisfies ``predicate``; False at the deadline."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._cond:
            while True:
                for event in self.events[checked:]:
                    if predicate(event):
                        return True
                checked = len(self.events)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._error is not None:
                    return False
                self._cond.wait(remaining)

    def missing_tasks(self, task_ids: set[str], event_type: str, timeout: float) -> set[str]:
        """Wait until every id has an event of ``event_type``; returns the ids still missing."""
        missing = set(task_ids)

        def seen(event: Event) -> bool:
            if event.get("type") == event_type:
                missing.discard(event.get("uuid"))
            return not missing

        self.wait_for(seen, timeout)
        return missing

    def wait_for_tasks(self, task_ids: set[str], event_type: str = "task-succeeded", *,
                       timeout: float) -> None:
        """Wait until every id has an event of ``event_type``, or raise TimeoutError: a lab
        never goes on to measure tasks that did not get there."""
        missing = self.missing_tasks(task_ids, event_type, timeout)
        if missing:
            shown = ", ".join(sorted(missing)[:3]) + (" ..." if len(missing) > 3 else "")
            raise TimeoutError(f"{len(missing)} of {len(task_ids)} tasks had no {event_type} "
                               f"event within {timeout:g} s: {shown}")

    def unsettled(self) -> set[str]:
        """Tasks with events but no end (succeeded, failed, revoked, rejected): waiting in a
        queue, held for an ETA, running, or between two retries. Not "the latest event": the
        sender's task-sent and the worker's events travel on different connections, so a
        task-sent may be received after the task-succeeded."""
        seen: set[str] = set()
        ended: set[str] = set()
        for event in self.snapshot():
            if event.get("uuid") and str(event.get("type", "")).startswith("task-"):
                seen.add(event["uuid"])
                if event["type"] in TASK_ENDS:
                    ended.add(event["uuid"])
        return seen - ended

    def wait_until_settled(self, timeout: float, hold: float = 0.5) -> None:
        """Wait until every task anyone sent has ended, and nothing new was sent for ``hold``
        seconds (a task may send another, an errback or a chord body, as it ends); raise
        TimeoutError otherwise."""
        def task_events() -> int:
            return sum(str(e.get("type", "")).startswith("task-") for e in self.snapshot())

        deadline = time.monotonic() + timeout
        while True:
            seen = task_events()
            if not self.unsettled():
                time.sleep(hold)
                if task_events() == seen and not self.unsettled():
                    return
            if time.monotonic() > deadline:
                left = sorted(self.unsettled())
                raise TimeoutError(f"{len(left)} tasks had not ended within {timeout:g} s: "
                                   + ", ".join(left[:3]))
            time.sleep(0.05)

    def by_task(self) -> dict[str, dict[str, Event]]:
        """``{task_id: {event_type: first event of that type}}``."""
        out: dict[str, dict[str, Event]] = {}
        for event in self.snapshot():
            task_id = event.get("uuid")
            if task_id:
                out.setdefault(task_id, {}).setdefault(event["type"], event)
        return out

    def count(self, task_id: str, event_type: str) -> int:
        return sum(1 for e in self.snapshot()
                   if e.get("uuid") == task_id and e.get("type") == event_type)
