"""Exercise mode's pure parts, no Redis: loading a learner's file, the verdict lines, and
exercise 02's checks fed the waits a correct answer and wrong ones would draw."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.exercise import all_exercises, check_syntax, load, resolve, verdict_lines
from labkit.results import Finding
from labs.lab02_retry import grade as grade02
from labs.lab03_bind_context import grade as grade03
from labs.lab04_acks_late import grade as grade04
from labs.lab05_beat import grade as grade05
from labs.lab06_routing import grade as grade06
from labs.lab07_pools import grade as grade07
from labs.lab08_observability import grade as grade08


def test_every_exercise_has_its_starter_solution_and_hints():
    exercises = all_exercises()
    assert [e.number for e in exercises] == sorted(e.number for e in exercises)
    for ex in exercises:
        assert ex.starter.is_file() and ex.solution.is_file()
        assert ex.time_box_min > 0 and ex.hints and ex.task
        check_syntax(ex.starter)
        check_syntax(ex.solution)


def test_a_lab_without_an_exercise_is_refused(monkeypatch):
    from labkit import exercise

    monkeypatch.setattr(exercise, "all_exercises", lambda: [e for e in all_exercises()
                                                            if e.number != "08"])
    with pytest.raises(SetupError, match="no exercise yet"):
        exercise.resolve("08")


def test_a_syntax_error_names_its_line(tmp_path: Path):
    bad = tmp_path / "mine.py"
    bad.write_text("x = 1\ndef f(:\n    pass\n")
    with pytest.raises(SetupError, match=r"mine\.py:2: syntax error"):
        check_syntax(bad)
    with pytest.raises(SetupError, match="no such file"):
        check_syntax(tmp_path / "missing.py")


def test_an_error_while_importing_names_the_line_in_the_learners_file(tmp_path: Path):
    bad = tmp_path / "mine.py"
    bad.write_text("import os\n\nvalue = undefined_name + 1\n")
    (tmp_path / "run").mkdir()
    with pytest.raises(SetupError, match=r"mine\.py:3: NameError"):
        load(resolve("01"), bad, tmp_path / "run")


def test_a_check_that_is_not_yet_shows_its_hint_and_a_passed_one_does_not():
    ex = resolve("02")
    findings = [Finding("the_backoff_grows", "the waits grow", {}, "", False),
                Finding("every_charge_finishes_once", "finishes once", {}, "", True)]
    lines = verdict_lines(ex, SimpleNamespace(findings=findings, error=None))
    assert lines[0].startswith("not yet") and "hint: a fixed countdown" in lines[0]
    assert lines[1] == "passed   finishes once"


# --- exercise 02's checks ---------------------------------------------------------------------

P = SimpleNamespace(tasks=8, fail_times=4)


def waits(draw) -> dict[str, dict[int, float]]:
    rng = random.Random(7)
    return {f"t{i}": {k: draw(rng, k) for k in range(P.fail_times)} for i in range(P.tasks)}


def judge(ev: Evidence, per_task, states=None, attempts=None) -> dict[str, bool]:
    states = states or [("charged", "SUCCESS")] * P.tasks
    attempts = attempts or {t: P.fail_times + 1 for t in per_task}
    grade02.check_charges(ev, P, states, attempts, per_task)
    return {f.id: f.holds for f in ev.findings}


def full_jitter(rng, k):  # Celery: randrange(min(cap, factor * 2**k) + 1), plus a few ms
    return rng.randrange(int(grade02.bound(k)) + 1) + 0.004


def test_celerys_full_jitter_passes_every_check(ev: Evidence):
    assert all(judge(ev, waits(full_jitter)).values())


@pytest.mark.parametrize("name, draw, failing", [
    ("a fixed countdown", lambda rng, k: 0.5, {"the_backoff_grows", "the_waits_are_jittered"}),
    ("backoff without jitter", lambda rng, k: grade02.bound(k) + 0.004,
     {"the_waits_are_jittered"}),
    ("no cap", lambda rng, k: rng.uniform(0, 2 ** k), {"waits_within_the_capped_exponential"}),
])
def test_wrong_retry_policies_are_not_yet(ev: Evidence, name, draw, failing):
    verdicts = judge(ev, waits(draw))
    assert {k for k, ok in verdicts.items() if not ok} == failing, name


def test_a_charge_that_never_succeeded_is_not_yet(ev: Evidence):
    states = [("charged", "SUCCESS")] * (P.tasks - 1) + [(None, "FAILURE")]
    verdicts = judge(ev, waits(full_jitter), states=states)
    assert not verdicts["every_charge_finishes_once"]


def test_retry_waits_are_read_from_the_next_attempts_eta():
    t = 1_795_300_000.0
    records = [
        {"id": "a", "phase": "attempt", "retries": 0, "t": t, "eta": None},
        {"id": "a", "phase": "retry-called", "retries": 0, "t": t + 0.01},
        {"id": "a", "phase": "attempt", "retries": 1, "t": t + 2.5,
         "eta": "2026-11-21T10:13:21.010000+00:00"},
        {"id": "a", "phase": "retry-called", "retries": 1, "t": t + 2.51},
        {"id": "a", "phase": "attempt", "retries": 2, "t": t + 3.0, "eta": None},
    ]
    eta = grade02.epoch(records[2]["eta"])
    assert grade02.drawn_waits(records, "a") == {0: pytest.approx(eta - (t + 0.01)), 1: 0.0}


# --- exercise 06's checks ---------------------------------------------------------------------

def routes(info: dict[str, int], debug: dict[str, int], error: dict[str, int]) -> dict:
    return {"info": info, "debug": debug, "error": error}


def test_one_queue_with_two_bindings_passes(ev: Evidence):
    grade06.check_routes(ev, 5, routes({"transient_logs": 5, "error_logs": 0},
                                       {"transient_logs": 5, "error_logs": 0},
                                       {"transient_logs": 0, "error_logs": 5}), [])
    assert all(f.holds for f in ev.findings)


def test_two_entries_of_one_name_drop_a_key(ev: Evidence):
    # the walkthrough's mistake as measured: Celery keeps the last entry, 'info' is bound nowhere
    grade06.check_routes(ev, 5, routes({"transient_logs": 0, "error_logs": 0},
                                       {"transient_logs": 5, "error_logs": 0},
                                       {"transient_logs": 0, "error_logs": 5}), [])
    assert {f.id for f in ev.findings if not f.holds} == {"every_line_lands_exactly_once",
                                                           "info_lines_go_to_transient_logs"}


def test_a_key_bound_to_two_queues_lands_twice(ev: Evidence):
    grade06.check_routes(ev, 5, routes({"transient_logs": 5, "error_logs": 0},
                                       {"transient_logs": 5, "error_logs": 0},
                                       {"transient_logs": 5, "error_logs": 5}), [])
    assert {f.id for f in ev.findings if not f.holds} == {"every_line_lands_exactly_once",
                                                           "error_lines_go_to_error_logs"}


# --- exercise 07's configurations -------------------------------------------------------------

@pytest.mark.parametrize("config", [None, {"pool": "fibers", "concurrency": 4},
                                    {"pool": "gevent", "concurrency": 0},
                                    {"pool": "gevent", "concurrency": "64"}])
def test_an_unusable_worker_configuration_is_a_setup_error(config):
    with pytest.raises(SetupError, match="IO_BOUND must be"):
        grade07.options(config, "IO_BOUND")


def test_a_configuration_becomes_worker_options_without_events():
    options = grade07.options({"pool": "gevent", "concurrency": 64}, "IO_BOUND")
    assert options["pool"] == "gevent" and options["concurrency"] == 64
    assert options["events"] is False


# --- exercise 04's checks ---------------------------------------------------------------------

def payments(charges: dict[str, int], unfinished: set[str] = frozenset(),
             struck: tuple[str, ...] = ("child_kill", "worker_kill")):
    orders = {f: [f"{f}-order-{i}" for i in range(3)] for f in ("child_kill", "worker_kill")}
    sent = {f: [SimpleNamespace(id=o) for o in os] for f, os in orders.items()}
    finishes = {o: 1 for os in orders.values() for o in os if o not in unfinished}
    base = {o: 1 for os in orders.values() for o in os}
    return orders, sent, finishes, {**base, **charges}, {f: 1.0 for f in struck}


def failing(ev: Evidence, *args) -> set[str]:
    grade04.check_payments(ev, *args)
    return {f.id for f in ev.findings if not f.holds}


def test_payments_each_finished_and_charged_once_pass(ev: Evidence):
    assert failing(ev, *payments({})) == set()


def test_a_redelivered_payment_without_a_guard_charges_twice(ev: Evidence):
    assert failing(ev, *payments({"worker_kill-order-0": 2})) == {
        "no_double_charge_when_worker_is_killed"}


def test_an_early_acked_payment_killed_with_its_child_is_lost(ev: Evidence):
    assert failing(ev, *payments({}, unfinished={"child_kill-order-1"})) == {
        "nothing_lost_when_child_is_killed"}


def test_a_fault_that_never_struck_passes_nothing(ev: Evidence):
    assert "nothing_lost_when_worker_is_killed" in failing(ev, *payments({},
                                                                         struck=("child_kill",)))


# --- exercise 05's checks ---------------------------------------------------------------------

P5 = SimpleNamespace(interval=0.5, away=3.0, after=2.5)
T0 = 1_795_300_000.0


def beat_run(expires: float | None, gap: float = 0.5) -> tuple[list, dict, float, float]:
    """Ticks every ``gap`` s for 5.5 s; no worker until 3 s; a tick runs 5 ms after it can."""
    back, end = T0 + 3.0, T0 + 5.5
    published, ran = [], {}
    t, k = T0, 0
    while t <= end:
        published.append({"uuid": f"t{k}", "timestamp": t})
        at = max(t, back) + 0.005
        if expires is None or at <= t + expires:
            ran[f"t{k}"] = {"t": at}
        t, k = t + gap, k + 1
    return published, ran, back, end


def verdicts(ev: Evidence, *run) -> dict[str, bool]:
    grade05.check_ticks(ev, P5, *run)
    return {f.id: f.holds for f in ev.findings}


def test_ticks_that_expire_after_an_interval_pass(ev: Evidence):
    assert all(verdicts(ev, *beat_run(expires=0.5)).values())


def test_ticks_without_expiry_run_in_a_stale_burst(ev: Evidence):
    v = verdicts(ev, *beat_run(expires=None))
    assert not v["no_stale_tick_runs"] and v["fresh_ticks_still_run"]


def test_ticks_that_expire_at_once_never_run(ev: Evidence):
    assert not verdicts(ev, *beat_run(expires=0.001))["fresh_ticks_still_run"]


def test_a_schedule_at_the_wrong_interval_is_caught(ev: Evidence):
    assert not verdicts(ev, *beat_run(expires=1.0, gap=1.0))["beat_publishes_at_the_interval"]


# --- exercise 08's checks ---------------------------------------------------------------------

P8 = SimpleNamespace(threshold=5, within=3.0)


def polls(firing_from: float | None, firing_to: float | None, error: str | None = None) -> list:
    """Polls every 0.25 s for 10 s; burst at 1 s, queue over 5 from 1.1 s, drained at 4 s."""
    rows = []
    for i in range(40):
        t = T0 + i * 0.25
        queue = 15 if T0 + 1.1 <= t < T0 + 4.0 else 0
        firing = firing_from is not None and T0 + firing_from <= t < T0 + (firing_to or 99)
        rows.append({"t": t, "firing": None if error else firing, "error": error,
                     "queue": queue})
    return rows


def alert_verdicts(ev: Evidence, rows) -> dict[str, bool]:
    grade08.check_alert(ev, P8, rows, T0 + 1.0, T0 + 4.0)
    return {f.id: f.holds for f in ev.findings}


def test_an_alert_that_follows_the_broker_queue_passes(ev: Evidence):
    assert all(alert_verdicts(ev, polls(1.25, 4.25)).values())


def test_an_alert_blind_to_queued_messages_never_fires(ev: Evidence):
    v = alert_verdicts(ev, polls(None, None))
    assert not v["fires_when_the_queue_backs_up"] and v["quiet_without_a_backlog"]


def test_an_alert_that_never_clears_is_caught(ev: Evidence):
    assert not alert_verdicts(ev, polls(1.25, None))["clears_once_it_drains"]


def test_an_alert_that_errors_is_not_quiet(ev: Evidence):
    assert not alert_verdicts(ev, polls(None, None, error="HTTPError 401"))[
        "quiet_without_a_backlog"]


# --- exercise 03's checks ---------------------------------------------------------------------

def progress_polls(done_values: list[int | None], last: str = "SUCCESS") -> list[dict]:
    polls = [{"state": "PENDING", "done": None}]
    polls += [{"state": "PROGRESS", "done": d} for d in done_values]
    return [*polls, {"state": last, "done": None}]


def test_progress_seen_climbing_passes(ev: Evidence):
    grade03.check_progress(ev, None, progress_polls([1, 1, 2, 3, 3, 4, 5]))
    assert ev.finding("progress_climbs").holds


@pytest.mark.parametrize("values, last", [([], "SUCCESS"),  # a print: the client sees nothing
                                          ([1, 2], "SUCCESS"),  # too few steps seen
                                          ([3, 1, 2, 4], "SUCCESS"),  # not a climb
                                          ([1, 2, 3], "FAILURE")])
def test_progress_a_client_cannot_follow_is_not_yet(ev: Evidence, values, last):
    grade03.check_progress(ev, None, progress_polls(values, last))
    assert not ev.finding("progress_climbs").holds


PASSWORD = "pw-0123456789abcdef"


def test_a_password_passed_by_reference_is_nowhere(ev: Evidence):
    grade03.check_login(ev, PASSWORD, True, "SUCCESS", '{"headers": {"argsrepr": "(...)"}}',
                        {"events": "[]", "worker_log_debug": "ok", "result_backend": "{}"})
    assert all(f.holds for f in ev.findings)


def test_a_password_behind_kwargsrepr_is_still_in_the_body_and_the_result(ev: Evidence):
    grade03.check_login(ev, PASSWORD, True, "SUCCESS",
                        f'{{"headers": {{"kwargsrepr": "***"}}}} [["alice"], '
                        f'{{"password": "{PASSWORD}"}}]',
                        {"events": "[]", "worker_log_debug": "ok",
                         "result_backend": f'{{"kwargs": {{"password": "{PASSWORD}"}}}}'})
    failing = {f.id for f in ev.findings if not f.holds}
    assert failing == {"the_password_is_not_in_the_message", "the_password_is_nowhere_else"}
    assert ev.finding("the_password_is_nowhere_else").measured["found_in"] == ["result_backend"]
