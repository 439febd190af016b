"""Lab 05: beat, the scheduler that only publishes, measured.

``python -m labs.lab05_beat.driver`` is ``celery-lab run 05``; the notebook calls ``run()``.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab

from labkit import runner
from labkit.cli import run_script
from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labs.lab05_beat import measure, plots

PARAMS = {
    "interval": Param(0.5, "the interval schedule, seconds", quick=0.3, min=0.1, max=10),
    "window": Param(6.0, "how long the schedule is measured with a worker up, seconds",
                    quick=3.0, min=1, max=300),
    "away": Param(3.0, "how long the worker is stopped while beat goes on, seconds", quick=2.0,
                  min=0.5, max=120),
    "gap": Param(2.0, "how long beat is stopped, seconds", quick=1.5, min=0.5, max=120),
    "both": Param(3.0, "how long two beats run side by side, seconds", quick=2.0, min=0.5,
                  max=120),
    "broken_interval": Param(0.5, "schedule of the broken entry, seconds", min=0.1, max=10),
    "cron_minute": Param("0", "minute of the crontab whose due times are computed"),
    "cron_hour": Param("9", "hour of that crontab"),
    "timezones": Param(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"],
                       "timezone settings to compute the crontab under"),
    "crontab_fire": Param(True, "run a '* * * * *' entry and wait for it to fire (waits up to "
                          "a minute for a boundary)", quick=False),
    "timeout": Param(30.0, "bound on every wait, seconds", min=1),
}


def schedule(p: Params) -> dict[str, Any]:
    return {"beat_schedule": {"tick": {"task": "lab05.tick", "schedule": p.interval}}}


# The every-minute entry runs in a beat of its own, untouched for the whole run: the main beat
# is stopped, restarted and doubled, which would add catch-up and duplicate sends to it.
CRON = {"beat_schedule": {"every-minute": {"task": "lab05.minute",
                                           "schedule": {"crontab": {"minute": "*"}}}}}


def validate(p: Params) -> None:
    """Refuse values under which a claim could not be decided, before anything starts."""
    for name, needed, why in (
            ("window", 3, "beat_keeps_the_interval needs at least two periods"),
            ("away", 2.5, "the queue must grow by at least two ticks while the worker is away"),
            ("gap", 2.5, "beat must miss at least two ticks while it is down")):
        if p[name] < needed * p.interval:
            raise SetupError(f"bad param {name}={p[name]:g}: must be >= {needed:g} x interval "
                             f"({needed * p.interval:g} s): {why}")
    try:
        crontab(minute=p.cron_minute, hour=p.cron_hour)
    except (ValueError, TypeError) as exc:
        raise SetupError(f"bad param cron_minute={p.cron_minute!r} / cron_hour={p.cron_hour!r}: "
                         f"not a crontab field ({exc})") from None
    now = datetime.now(UTC)
    try:
        offsets = {now.astimezone(ZoneInfo(zone)).utcoffset() for zone in p.timezones}
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SetupError(f"bad param timezones={','.join(p.timezones)}: {exc}") from None
    if len(offsets) < 2:
        raise SetupError(f"bad param timezones={','.join(p.timezones)}: crontab_follows_the_"
                         "timezone_setting needs at least two timezones with different UTC offsets")


def measure_lab(s: LabSession) -> None:
    p = s.params
    settings = schedule(p)
    worker = s.start_worker("w1", concurrency=2)
    beat = s.start_beat("beat", settings=settings)
    cron = s.start_beat("beat-cron", settings=CRON) if p.crontab_fire else None

    s.step(f"beat publishes every {p.interval} s; measuring {p.window} s")
    ticks, cores = measure.schedule_phase(s, p.window, p.interval, beat.process.pid)
    s.write_csv("ticks.csv", ticks)
    check_schedule(s.evidence, p, ticks, cores)

    s.step(f"worker stopped for {p.away} s while beat goes on")
    away = measure.worker_away(s, worker, p.away, p.timeout)
    s.write_csv("queue_length.csv", away.pop("samples"))
    s.write_json("worker_away.json", away)
    check_worker_away(s.evidence, away)

    s.step(f"beat stopped for {p.gap} s")
    down, beat = measure.beat_down(s, "beat", beat, settings, p.gap, p.interval,
                                   observe=max(1.0, 2 * p.interval))
    s.step(f"a second beat for {p.both} s")
    doubled = measure.two_beats(s, beat, settings, p.both)
    s.write_json("beat_down_doubled.json", {"down": down, "doubled": doubled})
    check_beat_down(s.evidence, down)
    check_two_beats(s.evidence, doubled)

    s.step("a schedule entry whose args do not fit the task")
    broken = measure.broken_entry(s, p.broken_interval, wait=3 * p.broken_interval + 0.5)
    s.measured(broken_entry=broken)
    check_broken(s.evidence, broken)

    expression = {"minute": p.cron_minute, "hour": p.cron_hour}
    dues = measure.crontab_due_times(s, expression, p.timezones, count=3)
    s.write_json("crontab.json", {"expression": expression, "due": dues})
    check_crontab(s.evidence, dues)

    if cron is not None:
        fired = wait_for_minute(s, cron, p.timeout)
        s.measured(crontab_fired=fired)
        check_crontab_fired(s.evidence, fired)
        cron.stop()
    beat.stop()


def wait_for_minute(s: LabSession, cron, timeout: float) -> dict[str, Any]:
    """The minute boundaries the cron beat lived through (from a second after it was seen
    ready), waiting for one if there is none yet, and every minute-entry send around them."""
    opened = time.time() + 1.0  # a boundary during its start-up may or may not have its entry

    def boundaries(until: float) -> list[float]:
        return [float(b) for b in range(int(opened) // 60 * 60 + 60, int(until) + 1, 60)
                if b > opened]

    if not boundaries(time.time() - 1.5):
        target = (int(max(time.time(), opened)) // 60 + 1) * 60
        s.step(f"waiting {target - time.time():.0f} s for the next minute boundary")
        time.sleep(max(0.0, target + 1.5 - time.time()))  # and 1.5 s for its send
    marks = boundaries(time.time() - 1.5)
    s.events.wait_for(lambda e: e.get("type") == "task-sent" and e.get("name") == "lab05.minute"
                      and e["timestamp"] >= marks[-1], timeout=min(timeout, 5))
    # every send of the cron beat from half a second before the first boundary to 1.5 s after
    # the last: one per boundary, each just after it
    sends = measure.sent(s, "lab05.minute", marks[0] - 0.5, marks[-1] + 1.5, cron.nodename)
    return {"boundaries": [datetime.fromtimestamp(b, UTC).isoformat() for b in marks],
            "sent_after_boundary_s": [round(e["timestamp"] - min(marks, key=lambda b: abs(
                e["timestamp"] - b)), 3) for e in sends]}


def check_crontab_fired(ev: Evidence, fired: dict[str, Any]) -> None:
    ev.check("crontab_fires_at_the_minute",
             "a '* * * * *' entry is published at each minute boundary the run spans, within "
             "beat's 1 s max loop interval",
             fired, "every boundary crossed fired once, within [0, 1.5) s after it",
             bool(fired["boundaries"]) and bool(fired["sent_after_boundary_s"])
             and len(fired["sent_after_boundary_s"]) == len(fired["boundaries"])
             and all(0 <= d < 1.5 for d in fired["sent_after_boundary_s"]))


# Beat's cadence is its own loop's: with fewer cores at hand than this, its ticks come late by
# the machine's scheduling delay, and it does not make the delay up (beside Lab 01's drains a
# 0.1 s schedule ran at 112 ms). Only "never ahead of its schedule" is judged then.
MIN_CORES_FOR_CADENCE = 1.5


CLOCK_SLACK_S = 0.001  # beat compares datetimes to the microsecond; events carry float seconds


def ahead_of_schedule(ticks: list[dict[str, Any]], interval: float) -> float:
    """How far beat certainly ran ahead of its schedule (<= 0: it did not), whatever the load.

    A task-sent event is stamped after beat decided the tick, by a delay that a busy machine
    can stretch without bound, so one short period proves nothing (a real idle run had one of
    294 ms at 300 ms: the tick before it was stamped late). But beat decides tick k after it
    stamped tick k - 1 (one thread), and only once ``interval`` has passed since it decided the
    tick before. So sends a and b > a are at least (b - a - 1) intervals apart."""
    sent = [t["sent"] for t in ticks]
    return max(((b - a - 1) * interval - (sent[b] - sent[a])
                for a in range(len(sent)) for b in range(a + 1, len(sent))),
               default=float("nan"))


def check_schedule(ev: Evidence, p: Params, ticks: list[dict[str, Any]],
                   cores: dict[str, Any] | None = None) -> None:
    periods = [t["late_s"] + p.interval for t in ticks if t["late_s"] is not None]
    mean = sum(periods) / len(periods) if periods else float("nan")
    worst = max((abs(x - p.interval) for x in periods), default=float("nan"))
    ran = [t for t in ticks if t["ran"]]
    ev.measured(schedule={"ticks": len(ticks), "mean_period_s": mean, "worst_deviation_s": worst,
                          "final_drift_s": ticks[-1]["drift_s"] if ticks else None})
    tolerance = max(0.05, 0.25 * p.interval)
    at_hand = cores.get("available_cores") if cores else None
    decided = at_hand is None or at_hand >= MIN_CORES_FOR_CADENCE
    ahead = ahead_of_schedule(ticks, p.interval)
    ev.check("beat_keeps_the_interval",
             "beat publishes at the interval: the measured period matches it, tick by tick",
             {"ticks": len(ticks), "mean_period_ms": round(mean * 1000, 2),
              "worst_deviation_ms": round(worst * 1000, 2),
              "final_drift_ms": round(ticks[-1]["drift_s"] * 1000, 2) if ticks else None,
              "cores_at_hand": at_hand, "ahead_of_schedule_ms": round(ahead * 1000, 2)},
             f"mean within 2% + 5 ms of {p.interval * 1000:g} ms; every period within "
             f"{tolerance * 1000:g} ms" if decided else
             f"never ahead of the schedule: no k ticks sent within less than (k - 1) x "
             f"{p.interval * 1000:g} ms (the cadence is not decided here: the run had {at_hand} "
             f"cores at hand, under {MIN_CORES_FOR_CADENCE})",
             len(periods) >= 2 and (abs(mean - p.interval) <= 0.02 * p.interval + 0.005
                                    and worst <= tolerance if decided else ahead <= CLOCK_SLACK_S))
    ev.check("beat_only_publishes",
             "the ticks are run by the worker, not by beat: each ran in a worker process, marked "
             "with the celery_beat_task header",
             {"ticks": len(ticks), "ran_on_a_worker": len(ran),
              "with_beat_header": sum(1 for t in ran if t["beat_header"])},
             "every tick ran once on the worker, all with the header",
             len(ran) == len(ticks) and all(t["beat_header"] for t in ran))


MAX_PACE_SHARE = 0.7  # the worker's own pace must be well inside the schedule's to show a burst


def check_worker_away(ev: Evidence, away: dict[str, Any]) -> None:
    ran = away["backlog_ran"]
    spread = max(ran) - min(ran) if ran else None
    period = ev.measurements["schedule"]["mean_period_s"]
    ev.check("queue_grows_while_no_worker_runs",
             "with the worker stopped, beat keeps publishing and every tick waits in the queue: "
             "the queue grows by what beat sent",
             {"away_s": round(away["away_s"], 2), "published": away["published_while_away"],
              "queue_growth": away["queue_growth"],
              "growth_per_s": round(away["queue_growth"] / away["away_s"], 2),
              "schedule_per_s": round(1 / period, 2)},
             "growth == published (+/- 1 for a tick on the edge of the window), >= 2",
             away["queue_growth"] >= 2
             and abs(away["queue_growth"] - away["published_while_away"]) <= 1)
    # a burst can beat the schedule only if the worker runs ticks faster than beat sends them:
    # the same number sent at once, right after, says how fast it runs them now (beside other
    # jobs a worker once took 3.0 s for 15 ticks at a 0.1 s interval)
    at_once = away.get("sent_at_once_ran") or []
    pace = max(at_once) - min(at_once) if len(at_once) >= 2 else None
    window = (len(ran) - 1) * period
    decided = pace is not None and pace < MAX_PACE_SHARE * window
    ev.check("backlog_drains_in_a_burst",
             "when a worker returns, the backlog runs at once, faster than the schedule made it",
             {"backlog": away["backlog"], "ran": len(ran),
              "ran_within_s": round(spread, 3) if spread is not None else None,
              "schedule_period_s": round(period, 3),
              "as_many_sent_at_once_ran_within_s": round(pace, 3) if pace is not None else None},
             f"all {away['backlog']} ran, within less than {away['backlog'] - 1} periods" if decided
             else f"all {away['backlog']} ran (the burst's speed is not decided here: the worker "
             f"ran as many ticks sent at once in {pace} s, not well inside {window:.2f} s)",
             len(ran) == away["backlog"] >= 2 and (spread < window if decided else True))


def check_beat_down(ev: Evidence, down: dict[str, Any]) -> None:
    ev.check("missed_ticks_are_not_caught_up",
             "while beat is down nothing is published, and on restart it sends one tick, not the "
             f"~{down['missed']} it missed",
             {"down_s": round(down["gap_s"], 2), "missed": down["missed"],
              "sent_while_down": down["sent_while_down"],
              "sent_in_first_interval_after_restart": down["sent_first_interval"]},
             "0 while down; exactly 1 within half an interval of the first tick after restart",
             down["sent_while_down"] == 0 and down["sent_first_interval"] == 1
             and down["missed"] >= 2)


def check_two_beats(ev: Evidence, doubled: dict[str, Any]) -> None:
    period = ev.measurements["schedule"]["mean_period_s"]
    window = doubled["end"] - doubled["start"]
    expected = window / period
    counts = list(doubled["per_beat"].values())
    ev.check("two_beats_publish_every_tick_twice",
             "two beat processes each publish the whole schedule: twice the tasks",
             {"window_s": round(window, 2), "per_beat": counts,
              "one_beat_would_send": round(expected, 1)},
             f"each beat sends {expected:.1f} +/- 1.5",
             len(counts) == 2 and all(abs(c - expected) <= 1.5 for c in counts))


def check_broken(ev: Evidence, broken: dict[str, Any]) -> None:
    informed, blind = broken["imports the task"], broken["does not import it"]
    ev.check("beat_that_imports_the_task_refuses_bad_args",
             "a beat process that has the task registered checks the arguments: it logs a "
             "SchedulingError ('Couldn't apply scheduled task') and publishes nothing",
             informed, ">= 1 error logged, 0 published",
             informed["scheduling_errors_logged"] >= 1 and informed["messages_published"] == 0)
    ev.check("beat_without_the_task_sends_it_and_the_worker_fails",
             "a beat process that does not import the task sends it by name; the worker fails it "
             "with TypeError",
             blind, ">= 1 published, all failed with TypeError, 0 errors in beat's log",
             blind["messages_published"] >= 1
             and blind["failed_on_worker"] == blind["messages_published"]
             and "TypeError" in (blind["worker_exception"] or "")
             and blind["scheduling_errors_logged"] == 0)


def check_crontab(ev: Evidence, dues: list[dict[str, Any]]) -> None:
    mismatches = [d for d in dues if d["celery"] != d["zoneinfo"]]
    first = {f"{d['timezone']} (enable_utc={d['enable_utc']})": d["celery"][0] for d in dues}
    ev.check("crontab_follows_the_timezone_setting",
             "a crontab's due times are wall-clock times in the app's timezone (enable_utc does "
             "not change them): Celery's own schedule objects agree with the tz database",
             {"next_due_utc": first, "mismatches": len(mismatches)},
             "0 mismatches; different timezones give different UTC instants",
             not mismatches and len({d["celery"][0] for d in dues}) > 1)


LAB = Lab(
    id="05_beat",
    title="Beat, the scheduler that only publishes, measured",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    settings=schedule,
    validate=validate,
    wall_time="default 28-65 s (it waits for a minute boundary), --quick about 23 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 05``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
