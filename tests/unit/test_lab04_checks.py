"""Lab 04's check functions fed healthy data and, one property at a time, the data a Celery that
behaved otherwise would produce. No Redis, no worker: the rows are shaped like matrix.py's and
redelivery.py's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from labkit.evidence import Evidence
from labkit.params import Params, resolve
from labkit.results import read_csv
from labs.lab04_acks_late import driver, matrix
from tests.unit.checks import assert_only_fails

Row = dict[str, Any]

T0 = 1_795_300_327.3154  # a wall-clock instant of a real run


def tid(*parts: object) -> str:
    """A deterministic id shaped like the uuid Celery gives."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(map(str, parts))))


def params(**overrides: Any) -> Params:
    return resolve(driver.PARAMS, overrides, quick=False)


# --- the fault matrix -------------------------------------------------------------------------

def task_row(cell: matrix.Cell, trial: int, i: int, victim: bool, p: Params) -> Row:
    """A row of matrix.run_trial for a task that ran once, start to finish."""
    in_flight = 1 if cell.fault == "child_kill" else p.concurrency
    return {"trial": trial, "mode": cell.mode, "fault": cell.fault, "id": tid(cell.name, trial, i),
            "victim": victim, "starts": 1, "finishes": 1, "state": "SUCCESS", "exception": "",
            "redelivered_runs": 0, "retried_runs": 0, "again_after_s": None,
            "kill_fraction": p.kill_fractions[trial % len(p.kill_fractions)],
            "in_flight_at_fault": in_flight, "fault_late_s": 0.09}


def end_as(row: Row, outcome: str, state: str) -> None:
    """Give a hit task the counts and the client state of ``outcome``, as the tasks count them:
    lost = started, never finished; re-executed = started twice, finished once (redelivered,
    or retried by retry_on_worker_lost)."""
    if outcome == "lost":
        row.update(starts=1, finishes=0, state=state,
                   exception="WorkerLostError" if state == "FAILURE" else "")
    elif outcome == "re-executed":
        retried = row["mode"] == "late_retry" and row["fault"] == "child_kill"
        row.update(starts=2, finishes=1, state=state, exception="",
                   redelivered_runs=0 if retried else 1, retried_runs=1 if retried else 0,
                   again_after_s=0.89 if retried else 6.8)
    else:
        row.update(starts=1, finishes=1, state=state, exception="")
    row["outcome"] = matrix.outcome(row)
    assert row["outcome"] == outcome


def cell_rows(cell: matrix.Cell, trial: int, p: Params) -> list[Row]:
    """One cell of one trial on a healthy run: a child kill hits one running task, the other
    faults hit every running one (concurrency); the hit tasks end as driver.expected says, the
    others (prefetched or queued) run once."""
    hit = 1 if cell.fault == "child_kill" else p.concurrency
    rows = [task_row(cell, trial, i, i < hit, p) for i in range(p.tasks)]
    outcome, state = driver.expected(cell.mode, cell.fault)
    for row in rows:
        if row["victim"]:
            end_as(row, outcome, state)
        else:
            if cell.mode == "early" and cell.fault in matrix.FRESH_WORKER_AFTER:
                row.update(redelivered_runs=1, again_after_s=6.7)  # prefetched, restored, run once
            row["outcome"] = matrix.outcome(row)
    return rows


def matrix_rows(p: Params) -> list[Row]:
    cells = matrix.cells(p.modes, p.faults)
    return [row for trial in range(p.trials) for cell in cells for row in cell_rows(cell, trial, p)]


CELLS = matrix.cells(list(matrix.MODES), list(matrix.FAULTS))
CELL_IDS = [f"{c.mode}_{c.fault}" for c in CELLS]


def mine(rows: list[Row], cell: matrix.Cell, trial: int) -> list[Row]:
    return [r for r in rows if r["mode"] == cell.mode and r["fault"] == cell.fault and r["trial"] == trial]


def test_a_healthy_matrix_holds_every_cell(ev: Evidence) -> None:
    p = params()
    driver.check_matrix(ev, matrix.cells(p.modes, p.faults), matrix_rows(p))
    assert [f.id for f in ev.findings] == CELL_IDS
    assert all(f.holds for f in ev.findings)
    table = {(t["mode"], t["fault"]): t for t in ev.measurements["matrix"]}
    assert table[("early", "child_kill")]["hit_states"] == {"FAILURE (WorkerLostError)": 2}
    assert table[("late", "worker_kill")]["hit_outcomes"] == {"re-executed": 4}


# What a Celery acking otherwise would make of a hit task: work meant to be lost comes back,
# work meant to come back is lost, and a warm shutdown that did not wait runs it again.
def otherwise(cell: matrix.Cell) -> tuple[str, str]:
    outcome, _ = driver.expected(cell.mode, cell.fault)
    if outcome == "re-executed":
        lost_state = {"child_kill": "FAILURE", "worker_kill": "PENDING", "cold": "RETRY"}[cell.fault]
        return "lost", lost_state
    return "re-executed", "SUCCESS"


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_a_hit_task_ending_against_its_ack_mode_is_caught(ev: Evidence, cell: matrix.Cell) -> None:
    """One hit task of the second trial ends the other way; every other cell still holds."""
    p = params()
    rows = matrix_rows(p)
    victim = next(r for r in mine(rows, cell, 1) if r["victim"])
    end_as(victim, *otherwise(cell))
    driver.check_matrix(ev, CELLS, rows)
    assert_only_fails(ev, f"{cell.mode}_{cell.fault}")


# The four cells whose hit tasks are lost, each with the state a client would see had the
# worker recorded otherwise: no WorkerLostError stored (PENDING), a started task left STARTED
# (task_track_started), a cold shutdown that did not mark it RETRY.
WRONG_STATE = {("early", "child_kill"): "PENDING", ("early", "worker_kill"): "STARTED",
               ("early", "cold"): "PENDING", ("late", "child_kill"): "PENDING"}


@pytest.mark.parametrize("mode_fault", list(WRONG_STATE), ids=[f"{m}_{f}" for m, f in WRONG_STATE])
def test_a_lost_task_with_another_client_state_is_caught(ev: Evidence, mode_fault: tuple[str, str]) -> None:
    """Lost either way, but the state the client sees is the lesson: e.g. a child kill whose
    WorkerLostError was never stored leaves the client at PENDING."""
    p = params()
    rows = matrix_rows(p)
    cell = matrix.Cell(*mode_fault)
    victim = next(r for r in mine(rows, cell, 0) if r["victim"])
    end_as(victim, "lost", WRONG_STATE[mode_fault])
    driver.check_matrix(ev, CELLS, rows)
    assert_only_fails(ev, f"{cell.mode}_{cell.fault}")


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_a_spared_task_that_completed_twice_is_caught(ev: Evidence, cell: matrix.Cell) -> None:
    """A task the fault did not hit, restored while it was still running and run to the end
    twice."""
    p = params()
    rows = matrix_rows(p)
    spared = next(r for r in mine(rows, cell, 0) if not r["victim"])
    spared.update(starts=2, finishes=2, redelivered_runs=1, again_after_s=7.1)
    spared["outcome"] = matrix.outcome(spared)
    assert spared["outcome"] == "completed twice"
    driver.check_matrix(ev, CELLS, rows)
    assert_only_fails(ev, f"{cell.mode}_{cell.fault}")


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_a_fault_that_hit_no_task_is_not_decided(ev: Evidence, cell: matrix.Cell) -> None:
    """The fault struck when nothing was running (in_flight 0, no victims; beside Lab 10 every
    early-ack cell's fault came 1.3 s late, after its tasks were done) in every trial, the
    driver's extra ones included: every task ran once, which says nothing about what the fault
    does, so the cell is not decided (not failed: Celery did nothing otherwise)."""
    p = params()
    rows = matrix_rows(p)
    for trial in range(p.trials):
        for i, row in enumerate(mine(rows, cell, trial)):
            row.update(task_row(cell, trial, i, False, p), in_flight_at_fault=0)
            row["outcome"] = matrix.outcome(row)
    driver.check_matrix(ev, CELLS, rows)
    finding = ev.finding(f"{cell.mode}_{cell.fault}")
    assert finding.measured["hit"] == 0 and finding.holds and "not decided" in finding.expected


def test_a_fault_that_hit_nothing_still_fails_on_a_task_run_twice(ev: Evidence) -> None:
    cell = CELLS[0]
    p = params()
    rows = matrix_rows(p)
    for trial in range(p.trials):
        for i, row in enumerate(mine(rows, cell, trial)):
            row.update(task_row(cell, trial, i, False, p), in_flight_at_fault=0)
            row["outcome"] = matrix.outcome(row)
    mine(rows, cell, 0)[0]["outcome"] = "re-executed"
    driver.check_matrix(ev, CELLS, rows)
    assert_only_fails(ev, f"{cell.mode}_{cell.fault}")


# --- redelivery after a whole-worker SIGKILL --------------------------------------------------

def part(p: Params, i: int, with_charges: bool, start: float) -> Row:
    """redelivery.after_kill on a healthy run: the tasks start within milliseconds (delivered),
    the worker is killed ~0.2 s later, a fresh worker is ready ~1 s after that, and its first
    sweep after delivery + visibility_timeout restores every message; each runs again, flagged
    redelivered."""
    vt, sweep = p.redelivery_vts[i], p.sweep
    name = f"vt{i}"
    n = 4 if with_charges else 2
    ids = [tid(name, k) for k in range(n)]
    delivered = {task: start + 0.0025 * k for k, task in enumerate(ids)}
    scored = {task: t - 0.009 for task, t in delivered.items()}  # received ~9 ms before the start
    fault = start + 0.22
    fresh_ready = fault + 1.055
    restored = max(max(scored.values()) + vt, fresh_ready) + 0.12  # the first sweep after
    again = [{"id": task, "t": restored + 0.004 + 0.003 * k, "redelivered": True,
              "hostname": f"{name}b@celery-lab"} for k, task in enumerate(ids)]
    charges = []
    if with_charges:
        charges = [{"id": ids[2], "guarded": False, "side_effects": 2, "starts": 2},
                   {"id": ids[3], "guarded": True, "side_effects": 1, "starts": 2}]
    return {"name": name, "visibility_timeout": vt, "sweep": sweep, "fault": fault,
            "fresh_ready": fresh_ready, "delivered": delivered, "scored": scored, "again": again,
            "in_flight": sorted(ids),
            "starts": dict.fromkeys(ids, 2), "finishes": dict.fromkeys(ids, 1), "charges": charges,
            "samples": [{"t": fault - 0.1, "unacked": n, "queued": 0,  # scored ~9 ms before the start
                         "scores": {tid(name, "tag", k): t
                                    for k, t in enumerate(scored.values())}}],
            "queue_left": 0}


def parts(p: Params) -> list[Row]:
    return [part(p, i, with_charges=(i == 0), start=T0 + 5 * i) for i in range(len(p.redelivery_vts))]


def again_of(ps: list[Row], i: int, k: int) -> Row:
    return ps[i]["again"][k]


def test_healthy_redeliveries_hold(ev: Evidence) -> None:
    p = params()
    driver.check_redelivery(ev, parts(p))
    assert ev.finding("redelivery_waits_for_the_visibility_timeout").holds
    written = read_csv(ev.run_dir / "redelivery.csv")
    assert len(written) == 6
    assert all(r["earliest_s"] <= r["after_delivery_s"] <= r["latest_s"] for r in written)


def test_a_restore_right_at_score_plus_timeout_holds_though_the_task_started_later(
        ev: Evidence) -> None:
    """kombu counts the timeout from the unacked_index score (the receive time), a few ms before
    the task's own start: a restore 2 ms after score + vt is on time, not early."""
    p = params()
    ps = parts(p)
    for part_ in ps:
        for k, again in enumerate(part_["again"]):
            again["t"] = part_["scored"][again["id"]] + part_["visibility_timeout"] + 0.002 + 0.001 * k
        part_["fresh_ready"] = part_["fault"] + 0.3
    driver.check_redelivery(ev, ps)
    assert ev.finding("redelivery_waits_for_the_visibility_timeout").holds


def test_a_task_that_finished_before_a_late_kill_is_not_expected_back(ev: Evidence) -> None:
    """The kill came late on a busy machine: one task had already finished (and was acked); only
    the ones the kill caught unfinished must come back."""
    p = params()
    ps = parts(p)
    done = ps[0]["again"].pop(0)["id"]
    ps[0]["in_flight"].remove(done)
    driver.check_redelivery(ev, ps)
    assert ev.finding("redelivery_waits_for_the_visibility_timeout").holds


def test_a_part_where_the_kill_caught_nothing_decides_nothing_and_fails(ev: Evidence) -> None:
    p = params()
    ps = parts(p)
    for part_ in ps:
        part_["in_flight"], part_["again"] = [], []
    driver.check_redelivery(ev, ps)
    assert not ev.finding("redelivery_waits_for_the_visibility_timeout").holds


def test_a_message_the_killed_worker_never_held_unacked_is_caught(ev: Evidence) -> None:
    """Acked before the kill (as an early ack would be): never seen in unacked_index."""
    p = params()
    ps = parts(p)
    ps[0]["scored"][again_of(ps, 0, 0)["id"]] = None
    driver.check_redelivery(ev, ps)
    assert not ev.finding("redelivery_waits_for_the_visibility_timeout").holds


def test_a_redelivery_that_came_back_before_the_visibility_timeout_is_caught(ev: Evidence) -> None:
    """Restored at once (as a warm shutdown's restore would): the fresh worker runs it right
    after it is ready, about 1.3 s after delivery, before the 1.5 s timeout."""
    p = params()
    ps = parts(p)
    again_of(ps, 0, 1)["t"] = ps[0]["fresh_ready"] + 0.02
    driver.check_redelivery(ev, ps)
    assert not ev.finding("redelivery_waits_for_the_visibility_timeout").holds


def test_a_redelivery_long_after_the_next_sweep_is_caught(ev: Evidence) -> None:
    """A killed worker holding kombu's sweep mutex delays the restore by seconds."""
    p = params()
    ps = parts(p)
    again_of(ps, 1, 0)["t"] += 3.0
    driver.check_redelivery(ev, ps)
    assert not ev.finding("redelivery_waits_for_the_visibility_timeout").holds


def test_a_rerun_not_flagged_redelivered_is_caught(ev: Evidence) -> None:
    """Work published again as a new message, not restored: delivery_info.redelivered is False."""
    p = params()
    ps = parts(p)
    again_of(ps, 0, 0)["redelivered"] = False
    driver.check_redelivery(ev, ps)
    assert not ev.finding("redelivery_waits_for_the_visibility_timeout").holds


def test_a_task_that_never_came_back_is_caught(ev: Evidence) -> None:
    p = params()
    ps = parts(p)
    del ps[1]["again"][1]
    driver.check_redelivery(ev, ps)
    assert not ev.finding("redelivery_waits_for_the_visibility_timeout").holds


# --- idempotency ------------------------------------------------------------------------------

IDEMPOTENCY_IDS = ["redelivery_repeats_side_effects", "an_idempotency_key_makes_it_once"]


def charge(ps: list[Row], guarded: bool) -> Row:
    return next(c for c in ps[0]["charges"] if c["guarded"] is guarded)


def test_a_redelivered_charge_with_and_without_a_guard_holds(ev: Evidence) -> None:
    driver.check_idempotency(ev, parts(params())[0])
    assert [f.id for f in ev.findings] == IDEMPOTENCY_IDS
    assert all(f.holds for f in ev.findings)


def test_an_unguarded_charge_that_was_not_redelivered_is_caught(ev: Evidence) -> None:
    """Acked before the kill, the unguarded charge ran and charged once: no repeat to show."""
    ps = parts(params())
    charge(ps, False).update(starts=1, side_effects=1)
    driver.check_idempotency(ev, ps[0])
    assert_only_fails(ev, "redelivery_repeats_side_effects")


def test_an_idempotency_key_on_the_delivery_tag_charges_twice_is_caught(ev: Evidence) -> None:
    """A key that changes with each delivery (the delivery tag, not the task id) guards nothing."""
    ps = parts(params())
    charge(ps, True)["side_effects"] = 2
    driver.check_idempotency(ev, ps[0])
    assert_only_fails(ev, "an_idempotency_key_makes_it_once")


def test_a_guarded_charge_that_ran_only_once_is_caught(ev: Evidence) -> None:
    """One charge proves nothing about the guard if the task was never run a second time."""
    ps = parts(params())
    charge(ps, True)["starts"] = 1
    driver.check_idempotency(ev, ps[0])
    assert_only_fails(ev, "an_idempotency_key_makes_it_once")


def test_a_fault_aimed_too_close_to_the_end_of_a_task_is_refused() -> None:
    """At 0.9 of a 0.2 s task the task could finish before the kill lands (it did, beside a CPU
    hog: a 'victim' that ran once), so the lab refuses the value instead of a wrong verdict."""
    from labkit.errors import SetupError

    with pytest.raises(SetupError, match=r"kill_fractions=0\.9"):
        driver.validate(params(task_s=0.2, kill_fractions=[0.9]))
    driver.validate(params(task_s=0.2, kill_fractions=[0.5]))


def test_a_cold_shutdown_that_came_as_a_task_ended_is_still_a_cancel(ev: Evidence) -> None:
    """Beside other jobs, one of two early-ack tasks hit by a cold shutdown had reached the end
    of its body before its child was terminated: run once, RETRY. Cancelled all the same."""
    p = params()
    rows = matrix_rows(p)
    cell = matrix.Cell("early", "cold")
    victim = next(r for r in mine(rows, cell, 0) if r["victim"])
    victim.update(starts=1, finishes=1, state="RETRY")
    victim["outcome"] = matrix.outcome(victim)
    assert victim["outcome"] == "once"
    driver.check_matrix(ev, CELLS, rows)
    assert all(f.holds for f in ev.findings)


@pytest.mark.parametrize("state", ["SUCCESS", "PENDING"])
def test_a_cold_shutdown_that_let_the_task_finish_is_caught(ev: Evidence, state: str) -> None:
    """Ran once but not cancelled (a cold shutdown that waited, as a warm one does)."""
    p = params()
    rows = matrix_rows(p)
    cell = matrix.Cell("early", "cold")
    victim = next(r for r in mine(rows, cell, 0) if r["victim"])
    victim.update(starts=1, finishes=1, state=state)
    victim["outcome"] = matrix.outcome(victim)
    driver.check_matrix(ev, CELLS, rows)
    assert_only_fails(ev, "early_cold")
