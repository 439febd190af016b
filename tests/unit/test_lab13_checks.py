"""Lab 13's check functions fed what a real run measured (results/13_deploys/20261206T223306.252944Z,
shaped as sequences.run and rolling.roll return it) and, one property at a time, what a Celery that
shut down otherwise would show. No Redis, no worker, no subprocess. Also: sequences.outcome and
rolling.outcome branch by branch, tally, restored_counts, exit_overheads, the checklist
(compute and rules) and validate's refusals."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.params import resolve
from labs.lab13_deploys import checklist, checks, driver, rolling, sequences
from tests.unit.checks import assert_only_fails

T0 = 1_796_596_396.56
SOFT_LONG, SOFT_SHORT, ROLL_SOFT, LONG_S = 2.5, 0.5, 0.8, 2.5  # the run's params
QUEUED, ETA = 3, 2
SEQS = [s.name for s in sequences.SEQUENCES]
ACKS = list(sequences.ACKS)
WAITS, RESTORED = checks.WAITS, checks.RESTORED

SIGKILL_LOSES = "sigkill_after_a_short_grace_loses_an_early_acked_task"
STRANDS = "sigkill_strands_every_message_the_worker_held"
WARM = "a_warm_shutdown_finishes_the_running_task"
COLD = "a_cold_shutdown_cancels_the_running_task"
CTRL_C = "one_ctrl_c_is_a_warm_shutdown_that_exits_1"
REMAP = "remap_sigterm_makes_sigterm_a_cold_shutdown"
GIVEN_BACK = "a_clean_exit_gives_back_prefetched_and_eta_tasks_at_once"
SOFT_WAIT = "a_soft_shutdown_waits_its_whole_timeout"
RESTORING = "the_restoring_line_counts_what_went_back"
NAIVE = "a_naive_rollout_loses_the_tasks_it_kills"
WARM_ROLL = "a_warm_rollout_loses_nothing_and_runs_nothing_twice"
SOFT_ROLL = "a_soft_rollout_loses_nothing_and_runs_nothing_twice"
GRACE = "grace_longest_task_plus_exit_overhead_is_enough"
SOFT_EXIT = "a_soft_exit_takes_the_timeout_plus_its_overhead"


# --- parts 1 and 2: one worker, one signal sequence ----------------------------------------------

def name(sequence: str, ack: str) -> str:
    return f"{sequence}-{ack}".replace("_", "")


def running_(sequence: str, ack: str) -> tuple[str, str, int]:
    """The running task's message before and after the signal, and its finishes, as measured."""
    early = ack == "early"
    if sequence == "term_kill":
        return ("gone", "gone", 0) if early else ("unacked", "unacked", 0)
    if sequence in checks.WARM:
        return ("gone" if early else "unacked", "gone", 1)
    return ("gone", "gone", 0) if early else ("unacked", "queue", 0)


def cell_rows(sequence: str, ack: str) -> list[dict[str, Any]]:
    """sequences.run's rows for one cell: 1 running, QUEUED prefetched and ETA eta tasks."""
    cell = name(sequence, ack)
    held_after = "unacked" if sequence == "term_kill" else "queue"

    def row(role: str, i: int, before: str, after: str, started: int = 0, finishes: int = 0) -> dict:
        return {"cell": cell, "sequence": sequence, "ack": ack, "role": role, "id": f"{cell}-{role}-{i}",
                "before": before, "after": after, "starts": started, "finishes": finishes,
                "effects": started}

    before, after, finishes = running_(sequence, ack)
    return [row("running", 0, before, after, 1, finishes),
            *(row("prefetched", i, "unacked", held_after) for i in range(QUEUED)),
            *(row("eta", i, "unacked", held_after) for i in range(ETA))]


def rows_(edits: list[tuple[str, str, dict[str, Any]]] = ()) -> list[dict[str, Any]]:
    """Every cell's rows; each edit changes the first row of (cell, role)."""
    rows = [r for s in SEQS for a in ACKS for r in cell_rows(s, a)]
    for cell, role, changes in edits:
        next(r for r in rows if r["cell"] == cell and r["role"] == role).update(changes)
    return rows


# cell: exit_s, running_ended_s, exit code (-9: SIGKILLed after the grace), the Restoring lines' N
EXITS = {
    "termkill-early": (0.817, None, -9, []), "termkill-late": (0.810, None, -9, []),
    "term-early": (4.705, 1.866, 0, [5]), "term-late": (4.805, 1.990, 0, [5]),
    "quit-early": (1.832, None, 0, [5]), "quit-late": (2.334, None, 0, [6]),
    "int-early": (4.595, 2.018, 1, [5]), "int-late": (4.137, 2.005, 1, [5]),
    "remap-early": (1.935, None, 0, [5]), "remap-late": (1.927, None, 0, [6]),
    "softshort-early": (2.377, None, 0, [5]), "softshort-late": (2.280, None, 0, [6]),
    "softlong-early": (4.792, 1.999, 0, [5]), "softlong-late": (4.807, 1.984, 0, [5]),
}


def exits_(changes: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    out = []
    for s in SEQS:
        for a in ACKS:
            cell = name(s, a)
            exit_s, ended, code, restoring = EXITS[cell]
            held = QUEUED + ETA + (a == "late")
            out.append({"cell": cell, "sequence": s, "ack": a, "t_signal": T0, "exit_s": exit_s,
                        "killed": code == -9, "exit_code": code, "running_ended_s": ended,
                        "restoring": restoring, "unacked_before": held,
                        "unacked_after": held if code == -9 else 0} | (changes or {}).get(cell, {}))
    return out


def run_cells(ev: Evidence, rows: list[dict[str, Any]], exits: list[dict[str, Any]]) -> None:
    checks.check_kill(ev, rows, exits)
    checks.check_warm_and_cold(ev, rows, exits)
    checks.check_given_back(ev, rows, exits)
    checks.check_soft_wait(ev, exits, SOFT_LONG)
    checks.check_restoring_line(ev, rows, exits)


def test_the_measured_cells_hold(ev: Evidence):
    rows, exits = rows_(), exits_()
    assert len(rows) == 14 * 6 and len(exits) == 14
    run_cells(ev, rows, exits)
    assert [f.holds for f in ev.findings] == [True] * 9
    assert ev.finding(SIGKILL_LOSES).measured == {"early": "lost", "late": WAITS}
    assert ev.finding(GIVEN_BACK).measured == {"cells": 12, "messages": 60, "not_restored": []}
    assert ev.finding(SOFT_WAIT).measured["softlong-early"] == {"exit_s": 4.79, "task_ended_s": 2.0}
    said = ev.finding(RESTORING).measured
    # acks_late, warm: the running task was acked when it finished, so 5 of the 6 went back
    assert said["term-late"] == {"log": [5], "counted": 5, "killed": False}
    assert said["quit-late"]["counted"] == 6 and said["termkill-early"] == {"log": [], "counted": 0,
                                                                            "killed": True}


@pytest.mark.parametrize(("edits", "exit_changes", "finding"), [
    # early ack, yet the task struck under term_kill finished: the SIGKILL waited for it
    ([("termkill-early", "running", {"finishes": 1})], {}, SIGKILL_LOSES),
    # early ack behaving like acks_late: the struck task's message still in unacked
    ([("termkill-early", "running", {"before": "unacked", "after": "unacked"})],
     {"termkill-early": {"unacked_before": 6, "unacked_after": 6}}, SIGKILL_LOSES),
    # a prefetched message gone after the SIGKILL (acked, never run), or given back by a killed worker
    ([("termkill-early", "prefetched", {"after": "gone"})], {"termkill-early": {"unacked_after": 4}},
     STRANDS),
    ([("termkill-late", "eta", {"after": "queue"})], {"termkill-late": {"unacked_after": 5}}, STRANDS),
    ([], {"termkill-late": {"unacked_after": 0}}, STRANDS),
    # the running task cancelled by a plain SIGTERM (early: lost)
    ([("term-early", "running", {"finishes": 0})], {"term-early": {"running_ended_s": None}}, WARM),
    # one Ctrl-C cancelling the task (acks_late: restored, so the line says 6)
    ([("int-late", "running", {"after": "queue", "finishes": 0})],
     {"int-late": {"running_ended_s": None, "restoring": [6]}}, WARM),
    ([("softlong-early", "running", {"finishes": 2})], {}, WARM),  # ran twice
    # a soft timeout shorter than the task, yet the task finished
    ([("softshort-early", "running", {"finishes": 1})], {}, COLD),
    # acks_late, yet the cancelled task was lost (not put back)
    ([("softshort-late", "running", {"after": "gone"})], {"softshort-late": {"restoring": [5]}}, COLD),
    ([], {"int-early": {"exit_code": 0}}, CTRL_C),
    ([], {"int-late": {"exit_code": 0}}, CTRL_C),
    # a clean exit that left an ETA message in unacked, or acked a prefetched one it never ran
    ([("term-late", "eta", {"after": "unacked"})], {"term-late": {"restoring": [4], "unacked_after": 1}},
     GIVEN_BACK),
    ([("quit-early", "prefetched", {"after": "gone"})], {"quit-early": {"restoring": [4]}}, GIVEN_BACK),
    # soft_long: the worker exited before its timeout; its task ended after it, or never
    ([], {"softlong-early": {"exit_s": 2.3}}, SOFT_WAIT),
    ([], {"softlong-late": {"running_ended_s": 2.6}}, SOFT_WAIT),
    ([], {"softlong-late": {"running_ended_s": None}}, SOFT_WAIT),
    # the line's N off by one, a line from a SIGKILLed worker, two lines, or none at a clean exit
    ([], {"term-early": {"restoring": [4]}}, RESTORING),
    ([], {"quit-late": {"restoring": [5]}}, RESTORING),
    ([], {"termkill-early": {"restoring": [5]}}, RESTORING),
    ([], {"quit-late": {"restoring": [6, 6]}}, RESTORING),
    ([], {"remap-early": {"restoring": []}}, RESTORING),
])
def test_cells_that_behaved_otherwise_fail(ev: Evidence, edits, exit_changes, finding):
    run_cells(ev, rows_(edits), exits_(exit_changes))
    assert_only_fails(ev, finding)


def test_a_remapped_sigterm_that_stays_warm_fails_both_cold_findings(ev: Evidence):
    """REMAP_SIGTERM ignored: the remapped SIGTERM let the task finish. The remap is a cold cell, so
    the cold finding fails with it (the cold finding holding implies the remap one does)."""
    run_cells(ev, rows_([("remap-late", "running", {"after": "gone", "finishes": 1})]),
              exits_({"remap-late": {"restoring": [5], "running_ended_s": 2.0}}))
    assert [f.id for f in ev.findings if not f.holds] == [COLD, REMAP]


@pytest.mark.parametrize(("sequence", "failed"), [("term", [WARM]), ("soft_long", [WARM]),
                                                  ("soft_short", [COLD])])
def test_a_cell_without_its_running_task_fails(ev: Evidence, sequence, failed):
    """A cell whose running task left no row is not taken for one that behaved."""
    rows = [r for r in rows_() if not (r["sequence"] == sequence and r["role"] == "running")]
    run_cells(ev, rows, exits_({f"{name(sequence, 'late')}": {"restoring": [5]}}))
    assert [f.id for f in ev.findings if not f.holds] == failed


def test_no_soft_long_exit_fails(ev: Evidence):
    checks.check_soft_wait(ev, [e for e in exits_() if e["sequence"] != "soft_long"], SOFT_LONG)
    assert not ev.finding(SOFT_WAIT).holds


def test_restored_counts_count_unacked_to_queue():
    got = checks.restored_counts(rows_())
    assert got["termkill-early"] == got["termkill-late"] == 0
    assert got["term-early"] == got["term-late"] == 5  # the running task: gone, not restored
    assert got["quit-early"] == 5 and got["quit-late"] == 6
    assert len(got) == 14


@pytest.mark.parametrize(("after", "finishes", "expected"), [
    ("queue", 0, RESTORED),
    ("queue", 1, "ran, and restored (runs again)"),
    ("unacked", 0, WAITS),
    ("unacked", 1, "ran, and waits for the visibility timeout"),
    ("gone", 0, "lost"),
    ("gone", 1, "finished"),
    ("gone", 2, "ran twice"),
])
def test_sequences_outcome(after, finishes, expected):
    assert sequences.outcome({"after": after, "finishes": finishes}) == expected


# --- part 3: a rolling restart under load --------------------------------------------------------

def task(id: str, s: float = 0.3, starts: int = 1, finishes: int = 1, effects: int = 1,
         where: str = "gone") -> dict[str, Any]:
    return {"id": id, "t_sent": T0, "s": s, "starts": starts, "finishes": finishes, "effects": effects,
            "where": where, "latency_s": s + 0.02 if finishes else None}


def stop(proc: str, i: int, took_s: float, struck: list[str], killed: bool = False) -> dict[str, Any]:
    t = T0 + 10 + 2.1 * i
    return {"worker": f"{proc}-{i}@celery-lab", "t_signal": t, "t_exit": t + took_s, "killed": killed,
            "exit_code": -9 if killed else 0, "struck": struck}


def rolls_() -> dict[str, dict[str, Any]]:
    """rollouts.json trimmed to the struck tasks and a few others; the stops as measured."""
    lost = {"s": LONG_S, "finishes": 0}  # started, its effect applied, never finished
    again = {"s": LONG_S, "starts": 2}  # cancelled by the soft shutdown, run again elsewhere
    return {
        "naive": {"procedure": "naive", "label": "SIGTERM, 0.8 s grace, SIGKILL", "grace_s": 0.8,
                  "stops": [stop("naive", 0, 0.867, ["n-a"], True), stop("naive", 1, 0.835, ["n-b"], True),
                            stop("naive", 2, 0.820, ["n-c", "n-d"], True)],
                  "tasks": [task("n-0", LONG_S), task("n-1", 0.337), *(task(i, **lost) for i in
                                                                       ("n-a", "n-b", "n-c", "n-d")),
                            task("n-e", 0.362, starts=0, finishes=0, effects=0)]},  # lost, not struck
        "warm": {"procedure": "warm", "label": "SIGTERM, 8.2 s grace (> longest task + exit)",
                 "grace_s": 8.177,
                 "stops": [stop("warm", 0, 4.565, ["w-a"]), stop("warm", 1, 4.549, ["w-b"]),
                           stop("warm", 2, 4.439, ["w-c"])],
                 "tasks": [task("w-0", LONG_S), task("w-1", 0.337),
                           *(task(i, LONG_S) for i in ("w-a", "w-b", "w-c"))]},
        "soft": {"procedure": "soft", "grace_s": 5.414,
                 "label": "remapped SIGTERM, soft 0.8 s, acks_late, idempotent, 5.4 s grace",
                 "stops": [stop("soft", 0, 2.238, ["s-a"]), stop("soft", 1, 2.250, ["s-b"]),
                           stop("soft", 2, 2.224, ["s-c", "s-d"])],
                 "tasks": [task("s-0", LONG_S), task("s-1", 0.337),
                           *(task(i, **again) for i in ("s-a", "s-b", "s-c", "s-d", "s-e"))]},
    }


def edit_roll(rolls: dict[str, Any], proc: str, target: str | int, changes: dict[str, Any]) -> None:
    """Change one of a rollout's stops (by index) or tasks (by id)."""
    if isinstance(target, int):
        rolls[proc]["stops"][target].update(changes)
    else:
        next(t for t in rolls[proc]["tasks"] if t["id"] == target).update(changes)


def test_the_measured_rollouts_hold(ev: Evidence):
    checks.check_rollouts(ev, rolls_())
    assert [f.holds for f in ev.findings] == [True] * 3
    assert ev.finding(NAIVE).measured["struck"] == ["lost"] * 4
    assert ev.finding(SOFT_ROLL).measured["struck"] == [{"starts": 2, "effects": 1}] * 4


@pytest.mark.parametrize(("proc", "target", "changes", "finding"), [
    ("naive", "n-b", {"finishes": 1}, NAIVE),  # the struck task finished within the grace
    ("naive", "n-c", {"where": "unacked"}, NAIVE),  # stranded, not lost: acked late
    ("naive", 1, {"killed": False, "exit_code": 0}, NAIVE),  # a stop that needed no SIGKILL
    ("warm", "w-1", {"finishes": 0}, WARM_ROLL),  # lost
    ("warm", "w-0", {"finishes": 0, "where": "unacked"}, WARM_ROLL),  # stranded
    ("warm", "w-a", {"starts": 2, "finishes": 2, "effects": 2}, WARM_ROLL),  # run twice
    ("warm", 2, {"killed": True, "exit_code": -9}, WARM_ROLL),
    ("soft", "s-b", {"starts": 1}, SOFT_ROLL),  # the struck task finished on its first run
    ("soft", "s-c", {"effects": 2}, SOFT_ROLL),  # run again, its effect applied twice
    ("soft", "s-0", {"finishes": 0, "where": "unacked"}, SOFT_ROLL),
    ("soft", 0, {"killed": True, "exit_code": -9}, SOFT_ROLL),
    ("soft", 2, {"struck": []}, None),  # struck tasks gone from one stop: the others still decide
])
def test_rollouts_that_behaved_otherwise_fail(ev: Evidence, proc, target, changes, finding):
    rolls = rolls_()
    edit_roll(rolls, proc, target, changes)
    checks.check_rollouts(ev, rolls)
    if finding is None:
        assert all(f.holds for f in ev.findings)
    else:
        assert_only_fails(ev, finding)


@pytest.mark.parametrize(("proc", "finding"), [("naive", NAIVE), ("soft", SOFT_ROLL)])
def test_a_rollout_that_struck_nothing_fails(ev: Evidence, proc, finding):
    rolls = rolls_()
    for i in range(3):
        edit_roll(rolls, proc, i, {"struck": []})
    checks.check_rollouts(ev, rolls)
    assert_only_fails(ev, finding)


def test_tally():
    rolls = rolls_()
    assert checks.tally(rolls["naive"]) == {"sent": 7, "once": 2, "twice": 0, "stranded": 0, "lost": 5,
                                            "re_executed": 0, "killed": 3}
    assert checks.tally(rolls["soft"]) == {"sent": 7, "once": 7, "twice": 0, "stranded": 0, "lost": 0,
                                           "re_executed": 5, "killed": 0}
    edit_roll(rolls, "warm", "w-0", {"finishes": 0, "where": "unacked"})
    edit_roll(rolls, "warm", "w-1", {"effects": 2})
    assert checks.tally(rolls["warm"]) == {"sent": 5, "once": 3, "twice": 1, "stranded": 1, "lost": 0,
                                           "re_executed": 0, "killed": 0}


@pytest.mark.parametrize(("changes", "expected"), [
    ({"effects": 2}, "twice"),
    ({"effects": 2, "finishes": 0}, "twice"),  # the effect counts before the finish
    ({}, "once"),
    ({"finishes": 0, "where": "unacked"}, "stranded"),
    ({"finishes": 0}, "lost"),
])
def test_rolling_outcome(changes, expected):
    assert rolling.outcome(task("t") | changes) == expected


# --- part 4: the checklist ------------------------------------------------------------------------

CHECKLIST = {"longest_task_s": LONG_S, "warm_overhead_s": 5.677, "grace_s": 8.177,
             "soft_timeout_s": ROLL_SOFT, "soft_overhead_s": 4.614, "soft_grace_s": 5.414}


def plan_() -> dict[str, Any]:
    return checklist.compute(exits_(), LONG_S, ROLL_SOFT, {"soft_short": SOFT_SHORT, "soft_long": SOFT_LONG})


def test_exit_overheads():
    exits = exits_()
    assert checks.exit_overheads(exits, ("term", "int")) == pytest.approx([2.839, 2.815, 2.577, 2.132])
    assert checks.exit_overheads(exits, ("term_kill",)) == []  # a SIGKILLed worker has none
    assert checks.exit_overheads(exits, ("quit",)) == pytest.approx([1.832, 2.334])  # from the signal
    assert checks.exit_overheads(exits, ("soft_short",), soft=SOFT_SHORT) == pytest.approx([1.877, 1.78])
    assert checks.exit_overheads(exits, ("soft_long",), soft=SOFT_LONG) == pytest.approx([2.292, 2.307])


def test_the_checklist_doubles_the_worst_measured_overhead():
    plan = plan_()
    assert {k: plan[k] for k in CHECKLIST} == pytest.approx(CHECKLIST, abs=0.005)
    assert plan["measured_warm_overheads_s"] == [2.839, 2.815, 2.577, 2.132]
    assert plan["measured_soft_overheads_s"] == [1.877, 1.78, 2.292, 2.307]
    assert plan["warm_overhead_s"] == pytest.approx(checklist.BUSY * 2.839)
    assert plan["grace_s"] == pytest.approx(LONG_S + checklist.BUSY * 2.839)
    assert plan["soft_overhead_s"] == pytest.approx(checklist.BUSY * 2.307)
    assert plan["soft_grace_s"] == pytest.approx(ROLL_SOFT + checklist.BUSY * 2.307)


def test_the_checklist_rules():
    rules = checklist.rules(plan_(), 3600)
    assert len(rules) == 6 and len({r["rule"] for r in rules}) == 6
    assert all(set(r) == {"rule", "value"} and r["rule"].strip() and r["value"].strip() for r in rules)
    assert "8.2 s" in rules[0]["value"] and "5.4 s" in rules[1]["value"] and "3600 s" in rules[4]["value"]


def test_the_measured_checklist_holds(ev: Evidence):
    checks.check_checklist(ev, CHECKLIST, rolls_())
    assert [f.holds for f in ev.findings] == [True] * 2
    assert ev.finding(GRACE).measured == {"warm_exits_s": [4.57, 4.55, 4.44], "grace_s": 8.18}
    assert ev.finding(SOFT_EXIT).measured["bound_s"] == 5.41


@pytest.mark.parametrize(("proc", "i", "took_s", "finding"), [
    ("warm", 1, 8.3, GRACE),  # a warm exit the grace would have cut short
    ("soft", 0, 0.5, SOFT_EXIT),  # shorter than the soft timeout: it did not wait
    ("soft", 2, 5.5, SOFT_EXIT),  # over the timeout + doubled overhead
])
def test_exits_that_do_not_fit_the_checklist_fail(ev: Evidence, proc, i, took_s, finding):
    rolls = rolls_()
    edit_roll(rolls, proc, i, {"t_exit": rolls[proc]["stops"][i]["t_signal"] + took_s})
    checks.check_checklist(ev, CHECKLIST, rolls)
    assert_only_fails(ev, finding)


def test_a_grace_without_the_exit_overhead_fails(ev: Evidence):
    """A grace of the longest task alone: the measured warm exits do not fit it."""
    checks.check_checklist(ev, CHECKLIST | {"grace_s": LONG_S}, rolls_())
    assert_only_fails(ev, GRACE)


# --- the parameters, and the inputs ---------------------------------------------------------------

@pytest.mark.parametrize("quick", [False, True])
def test_the_default_and_quick_params_pass(quick):
    driver.validate(resolve(driver.PARAMS, [], quick))


@pytest.mark.parametrize(("overrides", "bad"), [
    (["grace_short=1.6"], "grace_short"),  # 2.0 s left of the task at the signal: ends 0.1 s too late
    (["soft_short=1.6"], "soft_short"),
    (["soft_long=2.4"], "soft_long"),  # shorter than what is left of the task + 0.5 s
    (["grace_long=7"], "grace_long"),  # the soft_long wait (2.5 s) + 5 s exit allowance is 7.5 s
    (["queued=4"], "queued"),  # prefetch 4: acks_late's running task takes one slot
    (["long_s=1.5"], "long_s"),  # must exceed max(grace_short, roll_soft) + 1 s = 1.8 s
    (["rate=5"], "rate"),  # 5/s x 1.03 s mean over 6 slots: 86 % busy
    (["workers=2", "concurrency=1"], "rate"),
])
def test_a_param_the_lab_cannot_measure_with_is_refused(overrides, bad):
    p = resolve(driver.PARAMS, overrides, quick=False)  # within every declared range
    with pytest.raises(SetupError, match=f"bad param {bad}="):
        driver.validate(p)


def test_the_inputs_are_not_changed_by_a_check(ev: Evidence):
    rows, exits, rolls = rows_(), exits_(), rolls_()
    before = copy.deepcopy((rows, exits, rolls))
    run_cells(ev, rows, exits)
    checks.check_rollouts(ev, rolls)
    checks.check_checklist(ev, CHECKLIST, rolls)
    assert (rows, exits, rolls) == before
    assert len(ev.findings) == 14 and all(f.holds for f in ev.findings)
