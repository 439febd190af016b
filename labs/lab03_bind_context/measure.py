"""Lab 03's measurements: request contexts across call shapes and workers, progress polling,
and every place a secret argument can be read, sent plainly and behind argsrepr/kwargsrepr."""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

from celery import chain, group

from labkit.polling import wait_for
from labkit.redis_state import decode_message
from labkit.session import LabSession
from labkit.workers import Flower, Worker
from labs.lab03_bind_context.tasks import CONTEXTS, PROGRESS, login, progress, retrying, whoami


def contexts(session: LabSession) -> list[dict[str, Any]]:
    return session.records(CONTEXTS)


def call_shapes(session: LabSession, queues: list[str], chain_length: int, group_size: int,
                fail_times: int, countdown: float, timeout: float) -> dict[str, Any]:
    """A plain call, a retried call, a chain hopping between queues, a group; their ids."""
    plain = whoami.apply_async(kwargs={"label": "plain"}, queue=queues[0])
    retried = retrying.apply_async((fail_times, countdown), {"label": "retried"}, queue=queues[1])
    links = [whoami.s(label=f"chain-{i}").set(queue=queues[i % len(queues)])
             for i in range(chain_length)]
    chained = chain(*links).apply_async()
    grouped = group(whoami.s(label=f"group-{i}").set(queue=queues[i % len(queues)])
                    for i in range(group_size)).apply_async()
    plain.get(timeout=timeout)
    retried.get(timeout=timeout + fail_times * countdown)
    chained.get(timeout=timeout)
    grouped.get(timeout=timeout)
    chain_ids = []
    node = chained
    while node is not None:  # a chain's AsyncResult is its last link; parents lead back
        chain_ids.append(node.id)
        node = node.parent
    chain_ids.reverse()
    members = [r.id for r in grouped.results]
    # the queue each id was sent to, as the client knows it (not as the worker reports it)
    sent_to = {plain.id: queues[0], retried.id: queues[1]}
    sent_to.update({i: queues[n % len(queues)] for n, i in enumerate(chain_ids)})
    sent_to.update({i: queues[n % len(queues)] for n, i in enumerate(members)})
    return {"plain": plain.id, "retried": retried.id, "chain": chain_ids,
            "group": grouped.id, "group_members": members, "sent_to": sent_to}


def _poll(result: Any) -> dict[str, Any]:
    """One look at AsyncResult, with when it began and ended (two reads: state, then info)."""
    began = time.time()
    state, info = result.state, result.info
    return {"t": began, "t_end": time.time(), "state": state,
            "done": info.get("done") if isinstance(info, dict) else None}


def progress_polling(session: LabSession, queue: str, steps: int, step_s: float, poll_s: float,
                     timeout: float) -> dict[str, Any]:
    """Poll AsyncResult while a task reports PROGRESS; the task records each update too."""
    result = progress.apply_async((steps, step_s), queue=queue)
    polls = []
    deadline = time.monotonic() + timeout + steps * step_s
    while time.monotonic() < deadline:
        polls.append(_poll(result))
        if polls[-1]["state"] in ("SUCCESS", "FAILURE"):
            break
        time.sleep(poll_s)
    updates = [row for row in session.records(PROGRESS) if row["id"] == result.id]
    return {"id": result.id, "polls": polls, "step_s": step_s,
            "updates": [{"t": u["t"], "done": u["done"]} for u in updates]}


def progress_window(prog: dict[str, Any]) -> tuple[float, float] | None:
    """When the backend surely held a PROGRESS state, by the task's own clock: from the first
    update's record (written after its update_state) until the last record plus one step (the
    task sleeps a whole step after it before it returns and its SUCCESS is stored)."""
    updates = prog["updates"]
    if not updates:
        return None
    return updates[0]["t"], updates[-1]["t"] + prog["step_s"]


def polls_in_window(prog: dict[str, Any]) -> list[dict[str, Any]]:
    """The polls that began and ended inside ``progress_window``: selected by time alone."""
    window = progress_window(prog)
    if window is None:
        return []
    return [poll for poll in prog["polls"] if poll["t"] >= window[0] and poll["t_end"] <= window[1]]


def without_backend(session: LabSession, queue: str, steps: int, step_s: float, poll_s: float,
                    timeout: float) -> dict[str, Any]:
    """A worker with no result backend: its updates and result go nowhere the client can see."""
    result = progress.apply_async((steps, step_s), queue=queue)
    polls = []
    ran = False
    deadline = time.monotonic() + timeout + steps * step_s
    while time.monotonic() < deadline and not ran:
        polls.append(_poll(result))
        ran = session.events.count(result.id, "task-succeeded") > 0
        time.sleep(poll_s)
    polls.append(_poll(result))  # one more, surely after the task-succeeded event
    stamps = {e["type"]: e["timestamp"] for e in session.events.snapshot()
              if e.get("uuid") == result.id and e.get("type") in ("task-started", "task-succeeded")}
    # and a client that has no backend itself cannot even ask
    with session.client_app({"result_backend": None}) as bare:
        try:
            client_error = f"no error; state {bare.AsyncResult(result.id).state}"
        except Exception as exc:
            client_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return {"id": result.id, "polls": polls, "task_succeeded_event": ran,
            "started_at": stamps.get("task-started"), "succeeded_at": stamps.get("task-succeeded"),
            "client_without_backend": client_error}


# --- a secret argument -------------------------------------------------------------------------

HIDE = {"argsrepr": "('alice',)", "kwargsrepr": "{'password': '***'}"}
MODES = ("plain", "argsrepr")
HELD_COUNTDOWN = 3600  # held by the worker (an ETA) for as long as the run lasts, then revoked


def token(secret: str, call: str, mode: str) -> str:
    """Each call's password: the secret, tagged, so every place can be searched whole for it."""
    return f"{secret}.{call}-{mode}"


def _login(password: str, mode: str, **options: Any) -> Any:
    return login.apply_async(("alice",), {"password": password}, **options,
                             **(HIDE if mode == "argsrepr" else {}))


_wait = partial(wait_for, interval=0.05)  # ready()'s first truthy value, or TimeoutError


def _flower_json(flower: Flower, path: str) -> Any:
    status, body = flower.get(path, timeout=5)
    return json.loads(body) if status == 200 else None


def _excerpt(text: str, needle: str, width: int = 50) -> str | None:
    """Where ``needle`` sits in ``text``, with a little context; None if it is not there."""
    at = text.find(needle)
    if at < 0:
        return None
    return text[max(0, at - width):at + len(needle) + 10]


def _place(present: dict[str, bool], texts: dict[str, str], tokens: dict[str, str],
           **extra: Any) -> dict[str, Any]:
    """One place, per mode: did it hold a record of the call at all, and is the secret in it.
    ``texts`` is everything the place holds, searched whole (never pre-selected rows)."""
    out = {mode: {"present": bool(present[mode]), "shown": tokens[mode] in texts[mode],
                  "excerpt": _excerpt(texts[mode], tokens[mode])} for mode in MODES}
    out.update(extra)
    return out


def secrets(session: LabSession, flower: Flower, info_worker: Worker, debug_worker: Worker,
            queue_of: dict[str, str], parking: str, secret: str, timeout: float) -> dict[str, Any]:
    """The same login sent plainly and with argsrepr/kwargsrepr, to a worker logging at INFO with
    result_extended on and to one logging at DEBUG with it off; parked on a queue no worker
    reads; held by a worker as an ETA task. Then every place the password could be read."""
    calls = ("info", "debug", "parked", "held")
    tokens = {call: {mode: token(secret, call, mode) for mode in MODES} for call in calls}

    # Flower keeps only what it sees live: make sure it sees task-received events already
    probe = login.apply_async(("probe",), {"password": "not-a-secret"}, queue=queue_of[info_worker.hostname])
    _wait(lambda: (_flower_json(flower, f"/api/task/info/{probe.id}") or {}).get("received"),
          timeout, "Flower did not report a task-received event")

    sent = {"info": {m: _login(tokens["info"][m], m, queue=queue_of[info_worker.hostname]) for m in MODES},
            "debug": {m: _login(tokens["debug"][m], m, queue=queue_of[debug_worker.hostname])
                      for m in MODES}}
    for pair in sent.values():
        for result in pair.values():
            result.get(timeout=timeout)
    ran = {r.id for pair in sent.values() for r in pair.values()}
    session.events.wait_for_tasks(ran, timeout=timeout)
    sent["held"] = {m: _login(tokens["held"][m], m, queue=queue_of[info_worker.hostname],
                              countdown=HELD_COUNTDOWN) for m in MODES}
    session.events.wait_for_tasks({r.id for r in sent["held"].values()}, "task-received", timeout=timeout)
    sent["parked"] = {m: _login(tokens["parked"][m], m, queue=parking) for m in MODES}
    ids = {call: {m: r.id for m, r in pair.items()} for call, pair in sent.items()}
    places: dict[str, dict[str, Any]] = {}

    # the broker: the parked messages as Redis holds them
    with session.broker.client() as r:
        stored = [raw.decode() for raw in r.lrange(session.broker.key(parking), 0, -1)]
        r.delete(session.broker.key(parking))
    messages = {}
    for raw in stored:
        message = decode_message(raw)
        messages[message["envelope"]["headers"]["id"]] = dict(message, raw=raw)
    parked = {mode: messages.get(ids["parked"][mode]) for mode in MODES}
    places["broker_body"] = _place(
        {m: parked[m] for m in MODES},
        {m: json.dumps(parked[m]["body_decoded"]) if parked[m] else "" for m in MODES},
        tokens["parked"],
        # as Redis stores it, the body is base64: the secret is readable there only in headers
        raw_value_shows_secret={m: bool(parked[m]) and tokens["parked"][m] in parked[m]["raw"]
                                for m in MODES})
    places["broker_headers"] = _place(
        {m: parked[m] for m in MODES},
        {m: json.dumps({k: parked[m]["envelope"][k] for k in ("headers", "properties")})
         if parked[m] else "" for m in MODES},
        tokens["parked"])

    # events: everything the recorder captured, searched whole
    events = json.dumps(session.events.snapshot(), default=str)
    places["events"] = _place(
        {m: session.events.count(ids["info"][m], "task-sent")
         and session.events.count(ids["info"][m], "task-received") for m in MODES},
        {m: events for m in MODES}, tokens["info"],
        shows={m: next((e.get("kwargs") for e in session.events.snapshot()
                        if e.get("uuid") == ids["info"][m] and e["type"] == "task-received"), None)
               for m in MODES})

    # Flower's task API (built from the events it saw)
    for mode in MODES:
        _wait(lambda mode=mode: (_flower_json(flower, f"/api/task/info/{ids['info'][mode]}") or {})
              .get("state") == "SUCCESS", timeout, "Flower did not report the login calls as SUCCESS")
    status, body = flower.get("/api/tasks", timeout=5)
    tasks = json.loads(body) if status == 200 else {}
    places["flower_task_api"] = _place(
        {m: (tasks.get(ids["info"][m]) or {}).get("received") for m in MODES},
        {m: body.decode(errors="replace") for m in MODES}, tokens["info"],
        shows={m: (tasks.get(ids["info"][m]) or {}).get("kwargs") for m in MODES})

    # the result backend: the celery-task-meta-<id> keys, raw
    with session.broker.client() as r:
        def meta(task_id: str) -> tuple[str, dict[str, Any] | None, int]:
            key = session.broker.key(f"celery-task-meta-{task_id}")
            raw = (r.get(key) or b"").decode()
            return raw, json.loads(raw) if raw else None, r.ttl(key)

        metas = {call: {m: meta(ids[call][m]) for m in MODES} for call in ("info", "debug")}
    for place, call in (("backend_extended", "info"), ("backend_not_extended", "debug")):
        places[place] = _place(
            {m: (metas[call][m][1] or {}).get("status") == "SUCCESS" for m in MODES},
            {m: metas[call][m][0] for m in MODES}, tokens[call],
            fields={m: sorted(metas[call][m][1] or {}) for m in MODES},
            ttl_s={m: metas[call][m][2] for m in MODES})

    # the workers' logs, each read whole once it shows the calls
    for place, worker, call, marker in (
            ("log_info", info_worker, "info", "lab03.login[{id}] succeeded"),
            ("log_debug", debug_worker, "debug", "TaskPool: Apply <function fast_trace_task")):
        def logged(worker: Worker = worker, call: str = call, marker: str = marker) -> str | None:
            text = worker.process.log_path.read_text(errors="replace")
            lines = text.splitlines()
            found = all(any(marker.format(id=ids[call][m]) in line and ids[call][m] in line
                            for line in lines) for m in MODES)
            return text if found else None

        text = _wait(logged, timeout, f"{worker.hostname}'s log did not show the login calls")
        places[place] = _place({m: True for m in MODES}, {m: text for m in MODES}, tokens[call],
                               loglevel="INFO" if place == "log_info" else "DEBUG")

    # what the worker holds, through remote control (inspect) and through Flower's worker API
    inspect = session.app.control.inspect(destination=[info_worker.hostname], timeout=timeout)
    scheduled = json.dumps(inspect.scheduled() or {})
    places["inspect"] = _place({m: ids["held"][m] in scheduled for m in MODES},
                               {m: scheduled for m in MODES}, tokens["held"], command="inspect scheduled")
    status, body = flower.get(f"/api/workers?workername={info_worker.hostname}&refresh=1", timeout=timeout)
    listing = json.loads(body) if status == 200 else {}
    held = json.dumps((listing.get(info_worker.hostname) or {}).get("scheduled"))
    places["flower_worker_api"] = _place({m: ids["held"][m] in held for m in MODES},
                                         {m: body.decode(errors="replace") for m in MODES}, tokens["held"],
                                         status=status)
    for result in sent["held"].values():
        result.revoke()
    return {"tokens": tokens, "ids": ids, "places": places}
