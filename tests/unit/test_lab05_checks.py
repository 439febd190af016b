"""Lab 05's check functions fed healthy beat data and, one property at a time, the data a beat
that behaved otherwise would produce. No Redis, no beat, no worker: the rows are shaped like
measure.py's (and like a real quick run's ticks.csv, worker_away.json, crontab.json)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from labkit.evidence import Evidence
from labkit.params import Params, resolve
from labs.lab05_beat import driver
from tests.unit.checks import assert_only_fails

Row = dict[str, Any]

T0 = 1_795_300_339.36  # a wall-clock instant of a real run
INTERVAL = 0.3  # the quick run's interval schedule
# period - interval of each tick in a real quick run: beat keeps the interval within a few ms
JITTER = [-0.0062, -0.0001, 0.0002, 0.0001, -0.0002, 0.0, 0.0001, 0.0001, 0.0002]
MEAN_PERIOD = 0.2994  # what check_schedule stores as schedule.mean_period_s for such ticks


@pytest.fixture
def p() -> Params:
    return resolve(driver.PARAMS, {}, quick=True)


@pytest.fixture
def ev_scheduled(ev: Evidence) -> Evidence:
    """Evidence after check_schedule: later checks read schedule.mean_period_s from it."""
    ev.measured(schedule={"ticks": 10, "mean_period_s": MEAN_PERIOD, "worst_deviation_s": 0.0062,
                          "final_drift_s": -0.0058})
    return ev


def tid(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


# --- the interval schedule ---------------------------------------------------------------------

def ticks(periods: list[float], interval: float = INTERVAL, ran_after: float = 0.003,
          header: bool = True) -> list[Row]:
    """measure.ticks for beat sends ``periods`` apart: each ran on the worker ``ran_after`` later,
    with (or without) beat's celery_beat_task header."""
    sent = [T0]
    for period in periods:
        sent.append(sent[-1] + period)
    rows = []
    for k, t in enumerate(sent):
        due = sent[k - 1] + interval if k else None
        rows.append({"k": k, "id": tid(k), "sent": t, "due": due,
                     "late_s": t - due if due else None, "drift_s": t - (sent[0] + k * interval),
                     "ran": t + ran_after, "beat_header": header})
    return rows


def on_time() -> list[float]:
    return [INTERVAL + j for j in JITTER]


SCHEDULE_IDS = ["beat_keeps_the_interval", "beat_only_publishes"]


def test_beat_publishing_on_the_interval_holds_both_schedule_findings(ev: Evidence, p: Params) -> None:
    """The holding example: ten ticks 0.3 s apart, each run on the worker with beat's header."""
    driver.check_schedule(ev, p, ticks(on_time()))
    assert [f.id for f in ev.findings] == SCHEDULE_IDS and all(f.holds for f in ev.findings)
    assert ev.measurements["schedule"]["ticks"] == 10
    assert abs(ev.measurements["schedule"]["mean_period_s"] - MEAN_PERIOD) < 0.0005


def test_a_beat_that_lags_15ms_every_tick_does_not_keep_the_interval(ev: Evidence, p: Params) -> None:
    """Every period 15 ms long (a beat that schedules from the end of its own loop): the mean
    drifts beyond 2 % + 5 ms, though no single tick is far off."""
    driver.check_schedule(ev, p, ticks([INTERVAL + 0.015] * len(JITTER)))
    assert_only_fails(ev, "beat_keeps_the_interval")
    assert ev.finding("beat_keeps_the_interval").measured["worst_deviation_ms"] < 20


def test_one_tick_published_100ms_late_does_not_keep_the_interval(ev: Evidence, p: Params) -> None:
    """One slow publish: that period is 0.4 s and the next (still on schedule) 0.2 s. The mean
    is unchanged; the tick-by-tick bound catches it."""
    periods = on_time()
    periods[4], periods[5] = INTERVAL + 0.1, INTERVAL - 0.1
    driver.check_schedule(ev, p, ticks(periods))
    assert_only_fails(ev, "beat_keeps_the_interval")
    assert abs(ev.finding("beat_keeps_the_interval").measured["mean_period_ms"] - 300) < 1


def test_a_beat_late_on_a_machine_without_a_free_core_is_not_judged_on_its_cadence(
        ev: Evidence, p: Params) -> None:
    """Beside Lab 01's drains (1.1 cores at hand) every tick came 12 ms late: the cadence is the
    machine's then; only "never early" is judged."""
    driver.check_schedule(ev, p, ticks([INTERVAL + 0.012] * len(JITTER)), {"available_cores": 1.1})
    finding = ev.finding("beat_keeps_the_interval")
    assert finding.holds and "not decided" in finding.expected


def test_a_beat_that_runs_ahead_on_a_busy_machine_is_caught(ev: Evidence, p: Params) -> None:
    """Every tick 15 % early: ten sends span 2.3 s, under the 2.4 s that eight whole intervals
    take, and no stamping delay can shorten a span."""
    driver.check_schedule(ev, p, ticks([INTERVAL * 0.85] * len(JITTER)), {"available_cores": 1.1})
    assert_only_fails(ev, "beat_keeps_the_interval")
    assert ev.finding("beat_keeps_the_interval").measured["ahead_of_schedule_ms"] > 0


def test_one_short_period_on_a_busy_machine_is_not_a_beat_ahead(ev: Evidence, p: Params) -> None:
    """CI at 1.07 cores at hand: one send stamped late makes the next period short (5.3 ms under
    the interval there; 50 ms here). Beat decided on time; only its stamp came late."""
    periods = on_time()
    periods[3], periods[4] = INTERVAL + 0.05, INTERVAL - 0.05
    driver.check_schedule(ev, p, ticks(periods), {"available_cores": 1.07})
    assert ev.finding("beat_keeps_the_interval").holds


def test_ahead_of_schedule_reads_the_tightest_span() -> None:
    """Sends at 0, 0.1, 0.15, 0.2 s on a 0.1 s schedule: 0 and 0.2 are three ticks apart, so at
    least 0.2 s, and they are: not ahead. Move the last to 0.16 s and it is 40 ms ahead."""
    rows = [{"sent": t} for t in (0.0, 0.1, 0.15, 0.2)]
    assert driver.ahead_of_schedule(rows, 0.1) <= 0
    rows[-1]["sent"] = 0.16
    assert abs(driver.ahead_of_schedule(rows, 0.1) - 0.04) < 1e-9


def test_a_beat_that_lags_with_the_cores_at_hand_still_fails(ev: Evidence, p: Params) -> None:
    driver.check_schedule(ev, p, ticks([INTERVAL + 0.015] * len(JITTER)), {"available_cores": 1.9})
    assert_only_fails(ev, "beat_keeps_the_interval")


def test_ticks_run_inside_beat_not_by_a_worker_are_not_only_published(ev: Evidence, p: Params) -> None:
    """A beat that ran its ticks itself: the task's record carries no celery_beat_task header."""
    driver.check_schedule(ev, p, ticks(on_time(), header=False))
    assert_only_fails(ev, "beat_only_publishes")


def test_a_tick_that_no_worker_ran_is_not_only_published(ev: Evidence, p: Params) -> None:
    """Beat published it but no worker process ever ran it (no record of it)."""
    rows = ticks(on_time())
    rows[3].update(ran=None, beat_header=None)
    driver.check_schedule(ev, p, rows)
    assert_only_fails(ev, "beat_only_publishes")
    assert ev.finding("beat_only_publishes").measured["ran_on_a_worker"] == 9


# --- the worker away ---------------------------------------------------------------------------

def away(published: int = 7, growth: int = 7, backlog: int = 9, ran: int | None = None,
         spread: float = 0.022, pace: float = 0.025) -> Row:
    """measure.worker_away: beat published ``published`` ticks in the 2 s the worker was away,
    the queue grew by ``growth``; the new worker ran ``ran`` of the ``backlog`` within ``spread``,
    and as many ticks sent at once within ``pace``."""
    start = T0 + 7.0
    ran = backlog if ran is None else ran
    return {
        "marks": {"worker stopping": start, "worker stopped": start + 0.62,
                  "worker starting": start + 2.625, "worker ready": start + 3.66,
                  "drained": start + 3.662},
        "published_while_away": published, "queue_growth": growth, "away_s": 2.005,
        "backlog": backlog,
        "backlog_ran": [start + 3.19 + spread * i / max(1, ran - 1) for i in range(ran)],
        "sent_at_once_ran": [start + 4.0 + pace * i / max(1, backlog - 1) for i in range(backlog)],
    }


AWAY_IDS = ["queue_grows_while_no_worker_runs", "backlog_drains_in_a_burst"]


def test_the_queue_keeping_what_beat_sent_and_a_burst_drain_hold(ev_scheduled: Evidence) -> None:
    """The holding example: 7 ticks while away, the queue grew by 7; 9 ran within 22 ms."""
    driver.check_worker_away(ev_scheduled, away())
    assert [f.id for f in ev_scheduled.findings] == AWAY_IDS
    assert all(f.holds for f in ev_scheduled.findings)


def test_a_beat_that_pauses_while_no_worker_consumes_does_not_grow_the_queue(
        ev_scheduled: Evidence) -> None:
    """A beat that stopped publishing while nobody consumed: nothing queued while away (the
    backlog is only the 2 ticks sent while the worker was shutting down)."""
    driver.check_worker_away(ev_scheduled, away(published=0, growth=0, backlog=2))
    assert_only_fails(ev_scheduled, "queue_grows_while_no_worker_runs")


def test_a_backlog_drained_at_the_schedule_pace_is_not_a_burst(ev_scheduled: Evidence) -> None:
    """The 9 queued ticks run one per period (as if rate-limited to the schedule): 8 periods."""
    driver.check_worker_away(ev_scheduled, away(spread=8 * MEAN_PERIOD))
    assert_only_fails(ev_scheduled, "backlog_drains_in_a_burst")


def test_a_worker_slower_than_the_schedule_leaves_the_burst_undecided(ev_scheduled: Evidence) -> None:
    """Beside other jobs: the backlog took 3.0 s at a 0.1 s period, and so did as many ticks sent
    at once: the worker, not the schedule, set the pace; no burst could show."""
    driver.check_worker_away(ev_scheduled, away(spread=8 * MEAN_PERIOD, pace=8 * MEAN_PERIOD))
    finding = ev_scheduled.finding("backlog_drains_in_a_burst")
    assert finding.holds and "not decided" in finding.expected


def test_a_slow_worker_still_fails_the_claim_when_ticks_were_lost(ev_scheduled: Evidence) -> None:
    driver.check_worker_away(ev_scheduled, away(ran=7, pace=8 * MEAN_PERIOD))
    assert_only_fails(ev_scheduled, "backlog_drains_in_a_burst")


def test_a_backlog_that_loses_ticks_on_the_worker_restart_does_not_drain(
        ev_scheduled: Evidence) -> None:
    """Two ticks the stopping worker had prefetched are lost: 7 of the 9 ever run."""
    driver.check_worker_away(ev_scheduled, away(ran=7))
    assert_only_fails(ev_scheduled, "backlog_drains_in_a_burst")


# --- beat down ---------------------------------------------------------------------------------

def down(sent_while_down: int = 0, burst: int = 1, gap: float = 1.5) -> Row:
    """measure.beat_down: beat's process exited, ``gap`` s later it restarted and published
    ``burst`` ticks within half an interval of its first one, then one per interval."""
    stopped = T0 + 7.5
    exited = stopped + 0.1
    restarting = exited + gap
    first = restarting + 0.42
    after = [first + 0.01 * i for i in range(burst)] + [first + INTERVAL * k for k in (1, 2, 3)]
    return {"stopped": stopped, "exited": exited, "restarting": restarting, "ready": first + 0.04,
            "gap_s": gap, "missed": int(gap / INTERVAL), "sent_while_down": sent_while_down,
            "first_after_restart": first if burst else None, "sent_first_interval": burst,
            "sent_after": after}


MISSED = "missed_ticks_are_not_caught_up"


def test_a_restarted_beat_sending_one_tick_does_not_catch_up(ev: Evidence) -> None:
    """The holding example: 5 ticks missed in 1.5 s, none sent while down, one on restart."""
    driver.check_beat_down(ev, down())
    assert ev.finding(MISSED).holds


def test_a_beat_that_catches_up_its_missed_ticks_fails(ev: Evidence) -> None:
    """A beat that replays the 5 missed ticks back to back when it comes back."""
    driver.check_beat_down(ev, down(burst=5))
    assert not ev.finding(MISSED).holds


def test_ticks_published_while_beat_was_down_fail(ev: Evidence) -> None:
    """The 'stopped' beat still published (say its process survived the stop)."""
    driver.check_beat_down(ev, down(sent_while_down=5))
    assert not ev.finding(MISSED).holds


def test_a_beat_that_does_not_resume_publishing_fails(ev: Evidence) -> None:
    """Restarted, but no tick at all (a beat stuck on its schedule file)."""
    driver.check_beat_down(ev, down(burst=0))
    assert not ev.finding(MISSED).holds


def test_a_gap_shorter_than_two_intervals_proves_nothing(ev: Evidence) -> None:
    """Down for 0.5 s: at most one tick missed, so one tick on restart cannot show no catch-up."""
    driver.check_beat_down(ev, down(gap=0.5))
    assert not ev.finding(MISSED).holds


# --- two beats ---------------------------------------------------------------------------------

def doubled(per_beat: list[int]) -> Row:
    """measure.two_beats over 2 s: ticks per beat process (its gen<pid>@host nodename)."""
    start = T0 + 11.0
    beats = {f"gen{5967 + 57 * i}@vm": n for i, n in enumerate(per_beat)}
    sent = [{"t": start + 0.04 + 0.3 * k + 0.25 * i, "beat": beat}
            for i, (beat, n) in enumerate(beats.items()) for k in range(n)]
    return {"start": start, "end": start + 2.0, "per_beat": beats,
            "sent": sorted(sent, key=lambda s: s["t"])}


TWICE = "two_beats_publish_every_tick_twice"


def test_two_beats_each_publishing_the_schedule_send_every_tick_twice(ev_scheduled: Evidence) -> None:
    """The holding example: 7 and 6 ticks in 2 s, where one beat would send 6.7."""
    driver.check_two_beats(ev_scheduled, doubled([7, 6]))
    assert ev_scheduled.finding(TWICE).holds


def test_two_beats_that_elect_a_leader_do_not_double_the_ticks(ev_scheduled: Evidence) -> None:
    """Beats with a leader lock (one publishes, the other waits): 7 and 0."""
    driver.check_two_beats(ev_scheduled, doubled([7, 0]))
    assert not ev_scheduled.finding(TWICE).holds


def test_two_beats_that_share_the_schedule_split_the_ticks(ev_scheduled: Evidence) -> None:
    """Beats that coordinate through a shared schedule: each sends half, 4 and 3."""
    driver.check_two_beats(ev_scheduled, doubled([4, 3]))
    assert not ev_scheduled.finding(TWICE).holds


# --- the broken entry --------------------------------------------------------------------------

TYPE_ERROR = "TypeError('add() takes 2 positional arguments but 3 were given')"


def refused() -> Row:
    """A beat that imports the task: every send refused and logged, nothing published."""
    return {"scheduling_errors_logged": 4, "messages_published": 0, "failed_on_worker": 0,
            "worker_exception": None}


def sent_blind() -> Row:
    """A beat that does not import the task: 4 published, all failed on the worker."""
    return {"scheduling_errors_logged": 0, "messages_published": 4, "failed_on_worker": 4,
            "worker_exception": TYPE_ERROR}


def broken(informed: Row | None = None, blind: Row | None = None) -> Row:
    return {"imports the task": informed or refused(), "does not import it": blind or sent_blind()}


INFORMED = "beat_that_imports_the_task_refuses_bad_args"
BLIND = "beat_without_the_task_sends_it_and_the_worker_fails"


def test_the_informed_beat_refuses_and_the_blind_one_sends(ev: Evidence) -> None:
    """The holding example, as a real run measured it."""
    driver.check_broken(ev, broken())
    assert [f.id for f in ev.findings] == [INFORMED, BLIND] and all(f.holds for f in ev.findings)


def test_a_beat_that_does_not_check_arguments_publishes_the_bad_entry(ev: Evidence) -> None:
    """Argument checking off (the task's typing disabled): the informed beat publishes too."""
    driver.check_broken(ev, broken(informed=sent_blind()))
    assert_only_fails(ev, INFORMED)


def test_a_beat_that_refuses_task_names_it_does_not_know_publishes_nothing(ev: Evidence) -> None:
    """A beat that validated names against its registry would refuse the blind entry too."""
    driver.check_broken(ev, broken(blind=refused()))
    assert_only_fails(ev, BLIND)


def test_a_worker_that_drops_surplus_arguments_does_not_fail_the_task(ev: Evidence) -> None:
    """The blind beat's messages run without error: no failure, no TypeError."""
    driver.check_broken(ev, broken(blind={**sent_blind(), "failed_on_worker": 0,
                                          "worker_exception": None}))
    assert_only_fails(ev, BLIND)


def test_a_worker_failing_with_another_exception_is_not_the_argument_check(ev: Evidence) -> None:
    """Failed on the worker, but not with TypeError (the task was not even registered there)."""
    driver.check_broken(ev, broken(blind={**sent_blind(),
                                          "worker_exception": "NotRegistered('lab05.add')"}))
    assert_only_fails(ev, BLIND)


# --- crontab under timezone settings -----------------------------------------------------------

NOW = datetime(2026, 11, 21, 22, 33, tzinfo=UTC)  # when a real run computed them
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]


def nine_am(zone: str, now: datetime, count: int = 3) -> list[str]:
    """The next ``count`` 09:00 wall-clock times in ``zone`` after ``now``, in UTC."""
    tz = ZoneInfo(zone)
    day = now.astimezone(tz).replace(hour=9, minute=0, second=0, microsecond=0)
    out = []
    while len(out) < count:
        if day > now:
            out.append(day.astimezone(UTC).isoformat())
        day = (day + timedelta(days=1)).replace(hour=9, minute=0)
    return out


def dues(zones: list[str] = ZONES, now: datetime = NOW, utc_when_enable_utc: bool = False) -> list[Row]:
    """measure.crontab_due_times for '0 9 * * *': Celery's schedule next to the tz database.
    ``utc_when_enable_utc``: a Celery that read the crontab in UTC whenever enable_utc is on."""
    return [{"timezone": zone, "enable_utc": enable_utc,
             "celery": nine_am("UTC" if utc_when_enable_utc and enable_utc else zone, now),
             "zoneinfo": nine_am(zone, now)}
            for zone in zones for enable_utc in (True, False)]


CRONTAB = "crontab_follows_the_timezone_setting"


def test_crontab_due_times_in_the_app_timezone_hold(ev: Evidence) -> None:
    """The holding example: 09:00 in each zone, enable_utc on or off alike."""
    driver.check_crontab(ev, dues())
    finding = ev.finding(CRONTAB)
    assert finding.holds
    assert finding.measured["next_due_utc"]["Asia/Kolkata (enable_utc=True)"] == "2026-11-22T03:30:00+00:00"


def test_a_crontab_read_in_utc_when_enable_utc_is_on_does_not_follow_the_timezone(
        ev: Evidence) -> None:
    """The common belief: with enable_utc the crontab is UTC. Celery would then disagree with the
    tz database for every non-UTC zone with enable_utc=True."""
    driver.check_crontab(ev, dues(utc_when_enable_utc=True))
    finding = ev.finding(CRONTAB)
    assert not finding.holds and finding.measured["mismatches"] == 3


def test_zones_with_one_offset_on_the_run_date_cannot_show_the_timezone_matters(
        ev: Evidence) -> None:
    """UTC and London in November: Celery agrees with the tz database, but one UTC instant for
    both zones shows nothing about the timezone setting."""
    driver.check_crontab(ev, dues(zones=["UTC", "Europe/London"]))
    finding = ev.finding(CRONTAB)
    assert not finding.holds and finding.measured["mismatches"] == 0


# --- crontab fires at the minute (full runs only) ---------------------------------------------

def fired(sent_after: list[float], boundaries: int = 1) -> dict[str, Any]:
    """wait_for_minute's result: the boundaries the run crossed and each send's delay after one."""
    marks = [datetime(2026, 11, 21, 22, 31 + k, tzinfo=UTC).isoformat() for k in range(boundaries)]
    return {"boundaries": marks, "sent_after_boundary_s": sent_after}


def test_a_minute_entry_sent_just_after_the_boundary_holds(ev: Evidence) -> None:
    driver.check_crontab_fired(ev, fired([0.41]))
    assert ev.finding("crontab_fires_at_the_minute").holds


def test_a_minute_entry_sent_two_seconds_late_is_caught(ev: Evidence) -> None:
    """A beat sleeping past its max loop interval sends the due entry seconds late."""
    driver.check_crontab_fired(ev, fired([2.2]))
    assert not ev.finding("crontab_fires_at_the_minute").holds


def test_a_minute_entry_sent_twice_for_one_boundary_is_caught(ev: Evidence) -> None:
    driver.check_crontab_fired(ev, fired([0.4, 0.41]))
    assert not ev.finding("crontab_fires_at_the_minute").holds


def test_a_boundary_with_no_send_is_caught(ev: Evidence) -> None:
    driver.check_crontab_fired(ev, fired([], boundaries=1))
    assert not ev.finding("crontab_fires_at_the_minute").holds


def test_a_minute_entry_sent_before_its_boundary_is_caught(ev: Evidence) -> None:
    """A beat that fired the entry 0.3 s early: the send is nearest the boundary, but before it."""
    driver.check_crontab_fired(ev, fired([-0.3]))
    assert not ev.finding("crontab_fires_at_the_minute").holds


# --- parameters refused up front ----------------------------------------------------------------

@pytest.mark.parametrize("override,needle", [
    ({"window": 1.0, "interval": 0.5}, "window=1: must be >= 3 x interval"),
    ({"away": 0.5, "interval": 0.4}, "away=0.5: must be >= 2.5 x interval"),
    ({"gap": 0.5, "interval": 0.3}, "gap=0.5: must be >= 2.5 x interval"),
    ({"cron_minute": "abc"}, "not a crontab field"),
    ({"cron_hour": "25"}, "not a crontab field"),
    ({"timezones": ["UTC"]}, "at least two timezones with different UTC offsets"),
    ({"timezones": ["UTC", "Etc/UTC"]}, "at least two timezones with different UTC offsets"),
    ({"timezones": ["UTC", "Mars/Olympus"]}, "bad param timezones"),
])
def test_values_that_could_not_decide_a_claim_are_refused(override: dict, needle: str) -> None:
    from labkit.errors import SetupError

    with pytest.raises(SetupError) as refused:
        driver.validate(resolve(driver.PARAMS, override, quick=True))
    assert needle in str(refused.value)


def test_the_defaults_and_the_quick_values_are_accepted() -> None:
    for quick in (False, True):
        driver.validate(resolve(driver.PARAMS, {}, quick=quick))
