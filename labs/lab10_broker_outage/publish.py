"""Lab 10, the client's side: what ``apply_async`` does while the broker is stopped, and while it
is hung (SIGSTOP: the socket accepts, nothing answers).

Every call is made from a fresh client app (no connection or result subscription left over from
earlier), in a thread bounded by the lab's timeout (``labkit.bounded``), so a call that would
block for ever is measured as blocking, not waited out.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from typing import Any

from celery import Celery
from celery.app.defaults import DEFAULTS
from celery.backends.base import Backend as BaseBackend

from labkit import bounded
from labkit.broker import CONNECT_TIMEOUT
from labkit.polling import wait_for
from labkit.session import LabSession

CELERY_PUBLISH_POLICY = dict(DEFAULTS["task_publish_retry_policy"])  # Celery's own default
# The result store's reconnect policy is 20 retries a second apart by default (about 19 s);
# the lab compresses it, and says so in the finding.
RESULT_STORE_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
HUNG_SOCKET_TIMEOUT_S = 0.2  # the client that gives up on a hung broker: broker_transport_options


def publish_policy_sleeps(policy: dict[str, Any]) -> float:
    """What the publish retry policy sleeps in all before it gives up (kombu's retry_over_time:
    interval_start, then + interval_step each time, capped at interval_max)."""
    total, interval = 0.0, float(policy.get("interval_start", 2))
    for _ in range(int(policy.get("max_retries") or 0)):
        total += min(interval, float(policy.get("interval_max", 30)))
        interval += float(policy.get("interval_step", 2))
    return total


CLIENT_QUEUE = "lab10_client"  # what the clients send to: the hung-broker worker consumes it


def _describe(call: bounded.Call, task_id: str) -> dict[str, Any]:
    return {"task_id": task_id, **_outcome(call)}


def send(app: Celery, timeout: float, *, keep_result: bool = False, **options: Any) -> dict[str, Any]:
    """One ``send_task`` from ``app``, bounded by ``timeout``; the id is chosen here, so whether
    the task ever ran can be counted even when the call raised."""
    task_id = uuid.uuid4().hex
    call = bounded.call(lambda: app.send_task("lab10.job", (0, "client"), queue=CLIENT_QUEUE,
                                              task_id=task_id, ignore_result=not keep_result,
                                              **options), timeout)
    return _describe(call, task_id)


# What AsyncResult.get() does when the result store is the Redis that went away: its own reconnect
# policy, compressed like RESULT_STORE_POLICY but long enough to dwarf get()'s timeout.
GET_STORE_POLICY = {"max_retries": 4, "interval_start": 0.5, "interval_step": 0, "interval_max": 0.5}
GET_TIMEOUT_S = 0.5
# where a get() waits for a result on the Redis backend: its result consumer's drain loop
WAITING_FRAME = "celery/backends/redis.py:drain_events"
CELERY_STORE_POLICY = dict(BaseBackend.retry_policy)  # the result store's own, as installed


class ResultsAcrossRestart:
    """The result side of the client in the first round's outage, in three places: a client
    blocked in ``get()`` on the running task from before the stop (Celery's own result store
    policy) until the worker is back; while Redis is down, ``get(timeout=0.5)`` and ``.state``
    from a client with ``GET_STORE_POLICY``; once Redis is back, the same client's next
    ``get()``, after the error that told it "the Celery application must be restarted"."""

    def __init__(self, s: LabSession, timeout: float) -> None:
        self.s, self.timeout = s, timeout
        self.stack = ExitStack()
        self.waiter_app = self.stack.enter_context(s.client_app({}))
        self.app = self.stack.enter_context(s.client_app(
            {"result_backend_transport_options": {"retry_policy": GET_STORE_POLICY}}))
        self.out: dict[str, Any] = {"waiter_policy": CELERY_STORE_POLICY,
                                    "waiter_policy_sleeps_s": publish_policy_sleeps(CELERY_STORE_POLICY),
                                    "store_policy": GET_STORE_POLICY,
                                    "store_policy_sleeps_s": publish_policy_sleeps(GET_STORE_POLICY),
                                    "get_timeout_s": GET_TIMEOUT_S}
        self.waiter: bounded.Background | None = None

    def before_stop(self, running_id: str) -> None:
        """Start the waiter and return once it waits on its subscription: a get() still reading
        the task's state when the connection drops raises redis's ConnectionError at once (as
        .state does), which is another case than the one this part measures."""
        self.out["waited_on"] = running_id
        self.waiter = waiter = bounded.start(
            lambda: self.waiter_app.AsyncResult(running_id).get(timeout=self.timeout * 4),
            "result-waiter")
        wait_for(lambda: any(f.endswith(WAITING_FRAME) for f in waiter.frames())
                 or waiter.out.finished, self.timeout, "the get() did not come to wait on its result")
        self.out["waiter_was_waiting"] = not waiter.out.finished

    def while_down(self) -> None:
        never_stored = uuid.uuid4().hex
        got = bounded.call(lambda: self.app.AsyncResult(never_stored).get(timeout=GET_TIMEOUT_S),
                           self.timeout)
        self.out["get_while_down"] = _outcome(got)
        state = bounded.call(lambda: self.app.AsyncResult(never_stored).state, self.timeout)
        self.out["state_while_down"] = _outcome(state)

    def after_up(self, queue: str) -> None:
        task_id = uuid.uuid4().hex
        got = bounded.call(lambda: self.app.send_task("lab10.job", (7, "client-after"), queue=queue,
                                                      task_id=task_id).get(timeout=self.timeout),
                           self.timeout + 1)
        self.out["same_app_after_up"] = {**_outcome(got), "value": got.value if got.finished else None}
        if self.waiter is not None:
            waited = self.waiter.join(self.timeout)
            self.out["waiter"] = {**_outcome(waited), "value": waited.value if waited.finished else None}

    def close(self) -> dict[str, Any]:
        self.stack.close()
        return self.out


def _outcome(call: bounded.Call) -> dict[str, Any]:
    err = call.error
    return {"finished": call.finished, "seconds": call.seconds if call.finished else None,
            "returned_at": call.ended_at if call.finished else None,
            "raised": type(err).__name__ if err else None,
            "raised_module": type(err).__module__ if err else None,
            "message": " ".join(str(err).split())[:300] if err else None}


def while_stopped(s: LabSession, timeout: float) -> dict[str, Any]:
    """Three sends to a stopped broker: Celery's default retry policy, no retries, and a task
    that keeps its result (the client subscribes to the result store first)."""
    default = {"task_publish_retry_policy": CELERY_PUBLISH_POLICY}
    out: dict[str, Any] = {"policy": CELERY_PUBLISH_POLICY,
                           "policy_sleeps_s": publish_policy_sleeps(CELERY_PUBLISH_POLICY),
                           "result_store_policy": RESULT_STORE_POLICY}
    with s.client_app(default) as app:
        out["default"] = send(app, timeout)
    with s.client_app(default) as app:
        out["no_retry"] = send(app, timeout, retry_policy={"max_retries": 0})
    with s.client_app({**default, "result_backend_transport_options": {
            "retry_policy": RESULT_STORE_POLICY}}) as app:
        out["keeps_result"] = send(app, timeout, keep_result=True)
    return out


WARM = "socket_timeout_warm"  # the socket_timeout client again, its connection already open


def _timed(connect_timeout: float) -> dict[str, Any]:
    return {"task_publish_retry_policy": CELERY_PUBLISH_POLICY,
            "broker_transport_options": {"socket_timeout": HUNG_SOCKET_TIMEOUT_S,
                                         "socket_connect_timeout": connect_timeout}}


# kombu keeps one connection pool per set of connection settings, shared by every app in the
# process: the warm client gets a pool of its own through a connect timeout that plays no part
# here (a hung Redis still accepts the TCP connection at once), or the fresh client could be
# handed the warm connection.
HUNG_CLIENTS = {"default": {"task_publish_retry_policy": CELERY_PUBLISH_POLICY},
                "socket_timeout": _timed(CONNECT_TIMEOUT), WARM: _timed(CONNECT_TIMEOUT + 1)}


def hung_send_bound_s() -> float:
    """How long the socket_timeout client can take to give up: each attempt waits the timeout
    (connect, then the handshake's read), then the policy's sleeps."""
    attempts = int(CELERY_PUBLISH_POLICY.get("max_retries") or 0) + 1
    return attempts * 2 * HUNG_SOCKET_TIMEOUT_S + publish_policy_sleeps(CELERY_PUBLISH_POLICY)
