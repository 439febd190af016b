"""Lab 09, part 1: what a chain, a group and a chord pass along, where their members run and
when, read from the tasks' own records."""

from __future__ import annotations

from typing import Any

from celery import chain, chord, group

from labkit.session import LabSession
from labs.lab09_canvas.tasks import RUNS, add, collect, work


def runs(session: LabSession, label: str) -> list[dict[str, Any]]:
    """Every recorded execution under ``label``, in the order they were written."""
    return [r for r in session.records(RUNS) if r.get("label") == label]


def chain_links(session: LabSession, timeout: float) -> dict[str, Any]:
    """``add(1, 1) | add(10) | add.si(5, 5) | add(100)``: which arguments each link got."""
    label = "flow-chain"
    links = [add.s(1, 1, label=label), add.s(10, label=label), add.si(5, 5, label=label),
             add.s(100, label=label)]
    kinds = ["s", "s", "si", "s"]
    result = chain(*links).apply_async()
    value = result.get(timeout=timeout)
    ids = []
    node = result
    while node is not None:
        ids.append(node.id)
        node = node.parent
    ids.reverse()
    by_id = {r["id"]: r for r in runs(session, label)}
    return {"value": value, "links": [
        {"kind": kind, "declared": list(sig.args), "args_seen": by_id.get(i, {}).get("args_seen"),
         "id": i, "parent_id": by_id.get(i, {}).get("parent_id"),
         "hostname": by_id.get(i, {}).get("hostname")}
        for kind, sig, i in zip(kinds, links, ids, strict=True)]}


def group_timeline(session: LabSession, size: int, member_s: float, timeout: float) -> dict[str, Any]:
    """A group of ``size`` sleeping members: when and where each ran."""
    label = "flow-group"
    result = group(work.s(i, member_s, label=label) for i in range(size)).apply_async()
    values = result.get(timeout=timeout + size * member_s)  # bounded by the work, even run one by one
    return {"id": result.id, "values": values, "member_ids": [r.id for r in result.results],
            "runs": _spans(runs(session, label))}


def chord_order(session: LabSession, size: int, member_s: float, timeout: float) -> dict[str, Any]:
    """A chord whose header members finish out of header order (member i sleeps
    ``member_s * (size - i) / size``, the first the longest): the list the body gets, and when
    the body ran against the header."""
    label = "flow-chord"
    sleeps = [member_s * (size - i) / size for i in range(size)]
    header = [work.s(i, sleep, label=label) for i, sleep in enumerate(sleeps)]
    result = chord(header, collect.s(label=label)).apply_async()
    value = result.get(timeout=timeout + sum(sleeps))
    rows = runs(session, label)
    return {"id": result.id, "value": value, "header_ids": [r.id for r in result.parent.results],
            "runs": _spans([r for r in rows if r["role"] == "member"]),
            "body": [{"id": r["id"], "results": r["results"], "t": r["t"], "hostname": r["hostname"],
                      "pid": r["pid"], "parent_id": r["parent_id"]} for r in rows if r["role"] == "body"]}


def _spans(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A member's record is written as it ends; it carries when it started."""
    return [{"id": r["id"], "i": r["i"], "start": r["started"], "end": r["t"], "hostname": r["hostname"],
             "pid": r["pid"], "parent_id": r["parent_id"], "root_id": r["root_id"]} for r in rows]


def most_at_once(spans: list[dict[str, Any]]) -> int:
    """The largest number of spans running at one instant."""
    edges = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans],
                   key=lambda e: (e[0], e[1]))
    now = best = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best
