"""Lab 09, part 3 to 5: one member fails in a chain, a group, a chord header, a chord body,
with the errback placed on the member, on the chain, on the group, on the chord; a chord header
member that retries and one that is revoked; ``result.get()`` inside a task; what the client's
``get()`` raises. All cells run at once; each is read from the tasks' records afterwards."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any

from celery import Celery, chain, chord, group
from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import AsyncResult

from labkit.session import LabSession
from labs.lab09_canvas.flow import runs
from labs.lab09_canvas.tasks import (
    add,
    broken_body,
    collect,
    fail,
    flaky,
    on_error,
    on_error_id,
    waits_inside,
    work,
)

ALLOW = "task_allow_error_cb_on_chord_header"
HEADER_GAP_S = 0.3  # a failing chord's member 1 fails this much later than member 2


@dataclass(frozen=True)
class Cell:
    name: str  # the cell's label, also the tasks' label
    shape: str  # chain, group, chord
    fails: str  # what goes wrong
    errback: str  # where the errback is placed
    style: str = "new"  # new: (request, exc, traceback), inline; old: (task_id), a message
    allow_header_cb: bool = False  # task_allow_error_cb_on_chord_header on the client

    @property
    def row(self) -> str:
        style = "" if self.style == "new" else ", old-style errback"
        allow = f", {ALLOW.removeprefix('task_')}" if self.allow_header_cb else ""
        return f"{self.shape}: {self.fails}; errback {self.errback}{style}{allow}"


CELLS = [
    Cell("chain-on-chain", "chain", "link 2 of 3 raises", "on the chain"),
    Cell("chain-link-error", "chain", "link 2 of 3 raises", "apply_async(link_error=)"),
    Cell("chain-on-member", "chain", "link 2 of 3 raises", "on the failing link"),
    Cell("chain-old-style", "chain", "link 2 of 3 raises", "on the chain", style="old"),
    Cell("group-on-group", "group", "member 1 of 3 raises", "on the group"),
    Cell("chord-header", "chord", "header members 1 and 2 of 4 raise", "on the chord"),
    Cell("chord-header-allow", "chord", "header members 1 and 2 of 4 raise", "on the chord",
         allow_header_cb=True),
    Cell("chord-body", "chord", "the body raises", "on the chord"),
    Cell("chord-retry", "chord", "header member 1 retries, then succeeds", "on the chord"),
    Cell("chord-revoked", "chord", "header member 1 is revoked before it runs", "on the chord"),
]


def _errback(cell: Cell) -> Any:
    return (on_error if cell.style == "new" else on_error_id).s(label=cell.name)


def _chain_ids(result: AsyncResult) -> list[str]:
    ids = []
    while result is not None:
        ids.append(result.id)
        result = result.parent
    return ids[::-1]


def launch(cell: Cell, app: Celery, fail_times: int, countdown: float, session: LabSession,
           timeout: float) -> dict[str, Any]:
    """Send one cell's canvas; returns its result and the ids of its members."""
    label, eb = cell.name, _errback(cell)
    if cell.shape == "chain":
        middle = fail.s(label=label)  # gets link 1's result (2) as its i
        if cell.errback == "on the failing link":
            middle = middle.on_error(eb)
        canvas = chain(add.s(1, 1, label=label), middle, add.s(3, label=label))
        if cell.errback == "on the chain":
            result = canvas.on_error(eb).apply_async()
        elif cell.errback.startswith("apply_async"):
            result = canvas.apply_async(link_error=eb)
        else:
            result = canvas.apply_async()
        return {"result": result, "members": _chain_ids(result), "failing": [1], "body": None}
    if cell.shape == "group":
        result = group(work.s(0, 0, label=label), fail.s(1, label=label),
                       work.s(2, 0, label=label)).on_error(eb).apply_async()
        return {"result": result, "members": [r.id for r in result.results], "failing": [1],
                "body": None}
    body = (broken_body if cell.name == "chord-body" else collect).s(label=label)
    if cell.name.startswith("chord-header"):
        # member 2 fails first in time, member 1 first in header order
        header = [work.s(0, 0, label=label), fail.s(1, HEADER_GAP_S, label=label), fail.s(2, label=label),
                  work.s(3, 0, label=label)]
        failing = [1, 2]
    elif cell.name == "chord-retry":
        header = [work.s(0, 0, label=label), flaky.s(1, fail_times, countdown, label=label)]
        failing = []
    else:
        header = [work.s(0, 0, label=label), work.s(1, 0, label=label)]
        failing = [] if cell.name == "chord-body" else [1]
    canvas = chord(header, body, app=app).on_error(eb)
    members = [r.id for r in canvas.freeze().parent.results]  # ids fixed before anything is sent
    if cell.name == "chord-revoked":
        # revoked while it waits in the queue: every worker knows before the message is sent
        replies = app.control.revoke(members[1], reply=True, timeout=timeout,
                                     limit=len(session.workers))
        if len(replies) < len(session.workers):
            raise TimeoutError(f"only {len(replies)} of {len(session.workers)} workers confirmed the "
                               f"revoke within {timeout:g} s")
    result = canvas.apply_async()
    return {"result": result, "members": members, "failing": failing, "body": result.id}


def outcome(result: Any, timeout: float) -> dict[str, Any]:
    """What the client's ``get()`` returns or raises."""
    try:
        return {"raised": None, "value": result.get(timeout=timeout)}
    except ResultTimeout:
        raise TimeoutError(f"a canvas had no result within {timeout:g} s") from None
    except Exception as exc:  # the point: what the client sees
        return {"raised": type(exc).__name__, "message": str(exc)}


def matrix(session: LabSession, fail_times: int, countdown: float, timeout: float) -> list[dict[str, Any]]:
    with session.client_app({ALLOW: True}) as allowing:
        launched = {cell.name: launch(cell, allowing if cell.allow_header_cb else session.app, fail_times,
                                      countdown, session, timeout) for cell in CELLS}
        client = {name: outcome(sent["result"], timeout) for name, sent in launched.items()}
        session.events.wait_until_settled(timeout)
        rows = [read_cell(session, cell, launched[cell.name], client[cell.name]) for cell in CELLS]
        launched.clear()  # results of the second client go before it closes
        gc.collect()
    return rows


def read_cell(session: LabSession, cell: Cell, sent: dict[str, Any],
              client: dict[str, Any]) -> dict[str, Any]:
    """One cell, from the tasks' records and the result as stored at the end."""
    records = runs(session, cell.name)
    members = sent["members"]
    executions = {i: sum(r["id"] == i and r["role"] in ("member", "add") for r in records) for i in members}
    # what the client would read for the whole canvas: a chain's last link, a chord's body; a
    # group has no single result
    stored = None if cell.shape == "group" else session.app.AsyncResult(sent["body"] or members[-1])
    return {
        "cell": cell.name, "row": cell.row, "shape": cell.shape, "style": cell.style,
        "allow_header_cb": cell.allow_header_cb,
        "members": [{"index": n, "id": i, "executions": executions[i], "fails": n in sent["failing"]}
                    for n, i in enumerate(members)],
        "body_runs": sum(r["role"] == "body" for r in records) if sent["body"] else None,
        "errbacks": [{"failed_id": r["failed_id"], "exc": r["exc"], "own_message": r["own_message"],
                      "failed_is": _which(r["failed_id"], members, sent["body"])}
                     for r in records if r["role"] == "errback"],
        "client": client,
        "stored": {"state": stored.state, "result": _shown(stored)} if stored else None,
    }


def _which(task_id: str | None, members: list[str], body: str | None) -> str:
    if task_id == body:
        return "body"
    return f"member {members.index(task_id)}" if task_id in members else "other"


def _shown(result: AsyncResult) -> str:
    value = result.result
    return f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else repr(value)


def get_inside(session: LabSession, queue: str, inner_timeout: float, timeout: float) -> dict[str, Any]:
    """``result.get()`` inside a task on a worker with one slot: refused by default; allowed,
    it waits for a subtask that cannot start until the waiter gives up. Then the fix: a chain."""
    out = {}
    for label, allow in (("inside-default", False), ("inside-allowed", True)):
        waits_inside.apply_async((queue, inner_timeout, allow), {"label": label}, queue=queue).get(
            timeout=timeout + inner_timeout)
    session.events.wait_until_settled(timeout)
    for label in ("inside-default", "inside-allowed"):
        waiter = runs(session, label)[0]
        inner = runs(session, f"{label}-inner")
        out[label] = {"outcome": waiter["outcome"], "waited_s": waiter["waited_s"],
                      "waiter_began": waiter["began"], "waiter_ended": waiter["began"] + waiter["waited_s"],
                      "inner_ran_at": inner[0]["t"] if inner else None, "inner_runs": len(inner)}
    began = time.time()
    fixed = chain(add.s(1, 1, label="inside-chain").set(queue=queue),
                  add.s(1, label="inside-chain").set(queue=queue)).apply_async()
    out["chain"] = {"value": fixed.get(timeout=timeout), "wall_s": time.time() - began}
    return out


def propagation(session: LabSession, gap_s: float, timeout: float) -> dict[str, Any]:
    """A group with two failing members, the later one in header order failing first: what
    ``get()`` raises, and what ``get(propagate=False)`` lists."""
    label = "propagate"
    result = group(work.s(0, 0, label=label), fail.s(1, gap_s, label=label),
                   fail.s(2, 0, label=label)).apply_async()
    raised = outcome(result, timeout)
    listed = result.get(timeout=timeout, propagate=False)
    session.events.wait_until_settled(timeout)
    ids = [r.id for r in result.results]
    failed_at = {e["uuid"]: e["timestamp"] for e in session.events.snapshot()
                 if e.get("type") == "task-failed" and e.get("uuid") in ids}
    return {"raised": raised, "listed": [f"{type(v).__name__}: {v}" if isinstance(v, BaseException) else v
                                         for v in listed],
            "failed_at": [failed_at.get(i) for i in ids]}
