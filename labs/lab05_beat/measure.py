"""Lab 05's measurements: what beat published (its task-sent events), when it ran (the task's
own record), and what the queue did in between."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import crontab

from labkit import cpu_share
from labkit.redis_state import queue_length
from labkit.sampler import Sampler
from labkit.session import LabSession
from labs.lab05_beat.tasks import RUNS, tick


def sent(session: LabSession, task: str, start: float = 0.0, end: float = float("inf"),
         hostname: str | None = None) -> list[dict[str, Any]]:
    """task-sent events for ``task`` published between ``start`` and ``end`` (by ``hostname``)."""
    return sorted((e for e in session.events.snapshot()
                   if e.get("type") == "task-sent" and e.get("name") == task
                   and start <= e["timestamp"] <= end
                   and (hostname is None or e.get("hostname") == hostname)),
                  key=lambda e: e["timestamp"])


def runs(session: LabSession) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in session.records(RUNS)}


def ticks(session: LabSession, start: float, end: float, interval: float) -> list[dict[str, Any]]:
    """Each tick: when beat sent it, when it was due (previous send + interval), when it ran."""
    events = sent(session, "lab05.tick", start, end)
    ran = runs(session)
    rows = []
    for k, e in enumerate(events):
        due = events[k - 1]["timestamp"] + interval if k else None
        rows.append({"k": k, "id": e["uuid"], "sent": e["timestamp"], "due": due,
                     "late_s": e["timestamp"] - due if due else None,
                     "drift_s": e["timestamp"] - (events[0]["timestamp"] + k * interval),
                     "ran": ran.get(e["uuid"], {}).get("t"),
                     "beat_header": ran.get(e["uuid"], {}).get("beat")})
    return rows


def schedule_phase(session: LabSession, window: float, interval: float,
                   beat_pid: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The ticks of ``window`` seconds, and the cores the run had at hand meanwhile (beat's
    cadence is its own loop's: on a machine with no core to spare, its ticks come late)."""
    sampler = cpu_share.CpuSampler([beat_pid]) if beat_pid else None
    with sampler or contextlib.nullcontext():
        start = time.time()
        time.sleep(window)
        end = time.time()
    time.sleep(min(1.0, interval * 2))  # let the last ticks run
    return ticks(session, start, end, interval), sampler.window(start, end) if sampler else None


def worker_away(session: LabSession, worker, away: float, timeout: float) -> dict[str, Any]:
    """Stop the worker while beat goes on; the queue grows; a new worker drains it."""
    marks: dict[str, float] = {}
    with Sampler(lambda: queue_length(session.broker), interval=0.05) as sampler:
        time.sleep(0.2)
        marks["worker stopping"] = time.time()
        worker.stop()
        marks["worker stopped"] = time.time()
        queued_then = queue_length(session.broker)
        time.sleep(away)
        queued_now = queue_length(session.broker)
        marks["worker starting"] = time.time()
        session.start_worker("w2", concurrency=2)
        marks["worker ready"] = time.time()
        deadline = time.monotonic() + timeout
        while queue_length(session.broker) and time.monotonic() < deadline:
            time.sleep(0.02)
        marks["drained"] = time.time()
        time.sleep(0.3)
    # nothing consumed between "stopped" and "starting": the growth is what beat published
    grown = sent(session, "lab05.tick", marks["worker stopped"], marks["worker starting"])
    backlog = [e["uuid"] for e in sent(session, "lab05.tick", marks["worker stopping"],
                                       marks["worker starting"])]
    # the worker's own pace right now: as many ticks as the backlog, sent at once (on a busy
    # machine it can run them slower than beat published them, and then no burst can show)
    direct = [tick.apply_async().id for _ in backlog]
    deadline = time.monotonic() + timeout
    while not all(i in runs(session) for i in direct) and time.monotonic() < deadline:
        time.sleep(0.05)
    ran = runs(session)
    return {
        "marks": marks, "samples": [{"t": r["t"], "queue_length": r["value"]} for r in sampler.rows],
        "published_while_away": len(grown), "queue_growth": queued_now - queued_then,
        "away_s": marks["worker starting"] - marks["worker stopped"],
        "backlog": len(backlog), "backlog_ran": [ran[i]["t"] for i in backlog if i in ran],
        "sent_at_once_ran": [ran[i]["t"] for i in direct if i in ran],
    }


def beat_down(session: LabSession, beat_name: str, beat, settings: dict, gap: float,
              interval: float, observe: float) -> tuple[dict[str, Any], Any]:
    """Stop beat for ``gap`` seconds and start it again on the same schedule file.

    Both windows are anchored on evidence, not on when the driver noticed something: "down"
    runs from the moment beat's process had exited, and the restart burst is every tick within
    half an interval of the first tick beat published after it came back (a catch-up would
    send the missed ticks back to back; the next regular tick comes a whole interval later).
    """
    stopped = time.time()
    beat.stop()
    exited = time.time()
    time.sleep(gap)
    restarting = time.time()
    beat = session.start_beat(beat_name, settings=settings)
    ready = time.time()
    time.sleep(observe)
    after = [e["timestamp"] for e in sent(session, "lab05.tick", restarting, time.time())]
    burst = [t for t in after if t < after[0] + interval / 2] if after else []
    return {
        "stopped": stopped, "exited": exited, "restarting": restarting, "ready": ready,
        "gap_s": restarting - exited, "missed": int((restarting - exited) / interval),
        "sent_while_down": len(sent(session, "lab05.tick", exited, restarting)),
        "first_after_restart": after[0] if after else None,
        "sent_first_interval": len(burst),
        "sent_after": [e["timestamp"] for e in sent(session, "lab05.tick", stopped, time.time())],
    }, beat


def two_beats(session: LabSession, first, settings: dict, window: float) -> dict[str, Any]:
    second = session.start_beat("beat-2", settings=settings)
    start = time.time()
    time.sleep(window)
    end = time.time()
    counts = {b.nodename: len(sent(session, "lab05.tick", start, end, b.nodename))
              for b in (first, second)}
    second.stop()
    return {"start": start, "end": end, "per_beat": counts,
            "sent": [{"t": e["timestamp"], "beat": e["hostname"]}
                     for e in sent(session, "lab05.tick", start, end)]}


def broken_entry(session: LabSession, interval: float, wait: float) -> dict[str, Any]:
    """The same bad entry (three args for a two-argument task) in a beat that imports the
    task module and in one that does not (``include: []``)."""
    entry = {"broken": {"task": "lab05.add", "schedule": interval, "args": [1, 2, 3]}}
    informed = session.start_beat("beat-imports", settings={"beat_schedule": entry})
    blind = session.start_beat("beat-no-import", settings={"beat_schedule": entry, "include": []})
    time.sleep(wait)
    informed.stop()
    blind.stop()
    time.sleep(0.3)
    out = {}
    for label, beat in (("imports the task", informed), ("does not import it", blind)):
        published = sent(session, "lab05.add", hostname=beat.nodename)
        ids = {e["uuid"] for e in published}
        failed = [e for e in session.events.snapshot()
                  if e.get("type") == "task-failed" and e.get("uuid") in ids]
        log = beat.log()
        out[label] = {
            "scheduling_errors_logged": log.count("Message Error: Couldn't apply scheduled task broken"),
            "messages_published": len(published),
            "failed_on_worker": len(failed),
            "worker_exception": failed[0].get("exception", "")[:120] if failed else None,
        }
    return out


def crontab_due_times(session: LabSession, expression: dict[str, str], zones: list[str],
                      count: int) -> list[dict[str, Any]]:
    """Next due times of one crontab, computed by Celery's own schedule objects under several
    ``timezone`` / ``enable_utc`` settings, next to an independent zoneinfo computation."""
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for zone in zones:
        for enable_utc in (True, False):
            with session.client_app({"timezone": zone, "enable_utc": enable_utc}) as app:
                cursor = now
                dues = []
                for _ in range(count):
                    frozen = cursor
                    schedule = crontab(**expression, app=app, nowfun=lambda f=frozen: f)
                    cursor = cursor + schedule.remaining_estimate(cursor)
                    dues.append(cursor.astimezone(UTC))
                    cursor = cursor + timedelta(seconds=1)
                rows.append({"timezone": zone, "enable_utc": enable_utc,
                             "celery": [d.isoformat() for d in dues],
                             "zoneinfo": [d.isoformat() for d in
                                          _zoneinfo_dues(expression, zone, now, count)]})
    return rows


def _zoneinfo_dues(expression: dict[str, str], zone: str, now: datetime,
                   count: int) -> list[datetime]:
    """The same due times from the tz database alone (fixed minute and hour only)."""
    tz = ZoneInfo(zone)
    minute, hour = int(expression["minute"]), int(expression["hour"])
    local = now.astimezone(tz)
    day = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    out = []
    while len(out) < count:
        candidate = day.replace(tzinfo=tz)
        if candidate.astimezone(UTC) > now:
            out.append(candidate.astimezone(UTC))
        day = (day + timedelta(days=1)).replace(hour=hour, minute=minute)
    return out

