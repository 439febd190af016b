"""Lab 13's findings: each claim checked against what the run measured. Pure functions of the
measurements, so a unit test can hand each one a counter-example."""

from __future__ import annotations

from typing import Any

from labkit.evidence import Evidence
from labs.lab13_deploys.rolling import outcome as rollout_outcome
from labs.lab13_deploys.sequences import outcome

Rows = list[dict[str, Any]]
WARM = ("term", "int", "soft_long")  # the running task is let finish
COLD = ("quit", "remap", "soft_short")  # the running task is cancelled
LOST = "lost"
WAITS = "waits for the visibility timeout"
RESTORED = "restored at once"
SOFT_MARGIN_S = 0.3  # the soft timeout must outlast an exit without waiting by this much to tell


def _cells(rows: Rows, sequences: tuple[str, ...], role: str) -> dict[str, list[str]]:
    """cell -> the outcomes of its tasks of ``role``, for the cells of ``sequences``."""
    out: dict[str, list[str]] = {}
    for r in rows:
        if r["sequence"] in sequences and r["role"] == role:
            out.setdefault(r["cell"], []).append(outcome(r))
    return out


def _exits(exits: Rows, sequences: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {e["cell"]: e for e in exits if e["sequence"] in sequences}


# -- part 1: one worker, one signal sequence ----------------------------------------------------
def check_kill(ev: Evidence, rows: Rows, exits: Rows) -> None:
    running = {r["ack"]: outcome(r) for r in rows if r["sequence"] == "term_kill" and r["role"] == "running"}
    # the premise: the SIGKILL came before the running task would have ended (a machine that
    # stalled the lab past that moment measured something else)
    late = {e["ack"]: round(e["kill_s"], 2) for e in exits if e["sequence"] == "term_kill"
            and e["kill_s"] is not None and e["kill_s"] >= e["left_s"]}
    ev.check("sigkill_after_a_short_grace_loses_an_early_acked_task",
             "SIGTERM then SIGKILL before the running task ends: with early ack the task is lost "
             "(acked when it started); with acks_late it is not lost but waits in unacked",
             {**running, "sigkill_after_the_task_would_have_ended": late},
             f"early: {LOST}; late: {WAITS}" if not late else
             "not decided here: the SIGKILL came after the task would have ended (a stalled machine)",
             all(ack in late or running.get(ack) == want for ack, want in (("early", LOST), ("late", WAITS))))
    held = {cell: sorted(set(o)) for cell, o in {**_cells(rows, ("term_kill",), "prefetched"),
                                                 **{f"{c} eta": v for c, v in
                                                    _cells(rows, ("term_kill",), "eta").items()}}.items()}
    killed = _exits(exits, ("term_kill",))
    ev.check("sigkill_strands_every_message_the_worker_held",
             "a worker SIGKILLed in its warm shutdown gives nothing back: its prefetched and ETA "
             "messages stay in unacked until visibility_timeout passes (an hour by default)",
             {"outcomes": held, "killed": {c: e["killed"] for c, e in killed.items()},
              "unacked_before_after": {c: [e["unacked_before"], e["unacked_after"]]
                                       for c, e in killed.items()}},
             f"every one: {WAITS}; unacked the same before and after",
             bool(held) and all(o == [WAITS] for o in held.values()) and len(killed) == 2
             and all(e["killed"] and e["unacked_before"] == e["unacked_after"] for e in killed.values()))


def check_warm_and_cold(ev: Evidence, rows: Rows, exits: Rows) -> None:
    warm = _cells(rows, WARM, "running")
    ev.check("a_warm_shutdown_finishes_the_running_task",
             "SIGTERM, one SIGINT, or a soft shutdown longer than the task: the running task "
             "finishes once, in either ack mode",
             warm, "finished, in every cell", len(warm) == 2 * len(WARM)
             and all(o == ["finished"] for o in warm.values()))
    cold = {cell: o[0] for cell, o in _cells(rows, COLD, "running").items()}
    expected = {cell: (LOST if cell.endswith("early") else RESTORED) for cell in cold}
    ev.check("a_cold_shutdown_cancels_the_running_task",
             "SIGQUIT, a remapped SIGTERM, or a soft shutdown shorter than the task: the running "
             "task is cancelled; with early ack it is lost, with acks_late its message goes back "
             "to the queue at once",
             cold, "early: lost; late: restored at once", len(cold) == 2 * len(COLD) and cold == expected)
    ints = {e["cell"]: {"exit_code": e["exit_code"], "said": e["said"],
                        "running": warm.get(e["cell"], [])} for e in exits if e["sequence"] == "int"}
    ev.check("one_ctrl_c_is_a_warm_shutdown_that_exits_1",
             "one SIGINT (Ctrl-C) is a warm shutdown, like SIGTERM: the running task finishes; but "
             "the worker exits with status 1, not 0",
             ints, "said Warm; finished; exit code 1, in both ack modes",
             len(ints) == 2 and all(v["said"] == ["Warm"] and v["running"] == ["finished"]
                                    and v["exit_code"] == 1 for v in ints.values()))
    said = {e["cell"]: e["said"] for e in exits if e["sequence"] in ("term", "remap", "quit")}
    same = {f"{name}-{ack}": sorted({outcome(r) for r in rows if r["sequence"] == name and r["ack"] == ack
                                     and r["role"] == "running"})
            for ack in ("early", "late") for name in ("remap", "quit")}
    ev.check("remap_sigterm_makes_sigterm_a_cold_shutdown",
             "REMAP_SIGTERM=SIGQUIT in the worker's environment: SIGTERM starts a cold shutdown "
             "(the worker says so) and every task it held ends as under SIGQUIT",
             {"said": said, "running": same},
             "plain SIGTERM: Warm; remapped SIGTERM and SIGQUIT: Cold; the same outcomes",
             len(said) == 6 and all(v == (["Warm"] if c.startswith("term") else ["Cold"])
                                    for c, v in said.items()) and _same_by_id(rows))


def _same_by_id(rows: Rows) -> bool:
    """The remapped SIGTERM's cells and SIGQUIT's, task by task in the order they were sent."""
    def seq(name: str, ack: str) -> list[tuple[str, str]]:
        return [(r["role"], outcome(r)) for r in rows if r["sequence"] == name and r["ack"] == ack]
    return all(seq("remap", ack) == seq("quit", ack) and seq("quit", ack) for ack in ("early", "late"))


def check_given_back(ev: Evidence, rows: Rows, exits: Rows) -> None:
    cells = {r["cell"]: r["sequence"] for r in rows}
    exited = {e["cell"]: e for e in exits}
    # every worker but the two SIGKILLed on purpose must leave on its own within its grace
    clean = {c for c, seq in cells.items() if seq != "term_kill"}
    killed = sorted(c for c in clean if c not in exited or exited[c]["killed"])
    held = [r for r in rows if r["cell"] in clean and r["role"] in ("prefetched", "eta")]
    wrong = sorted({f"{r['cell']} {r['role']}: {outcome(r)}" for r in held if outcome(r) != RESTORED})
    ev.check("a_clean_exit_gives_back_prefetched_and_eta_tasks_at_once",
             "every worker not SIGKILLed on purpose exited on its own (warm, cold or soft) and put its "
             "prefetched and ETA messages back in the queue as it exited: nothing waits for the "
             "visibility timeout",
             {"cells": len(clean), "messages": len(held), "not_restored": wrong,
              "killed_or_missing": killed},
             "all exited on their own, all restored at once", bool(held) and not wrong and not killed)


def check_soft_wait(ev: Evidence, exits: Rows, soft_long: float) -> None:
    """A worker that did not wait would exit at its task's end plus a warm exit's overhead:
    the claim is decided only when the timeout outlasts that (the overhead measured in this run,
    by the plain SIGTERM and SIGINT cells)."""
    warm = exit_overheads(exits, ("term", "int"))
    cells = {c: {"exit_s": e["exit_s"], "task_ended_s": e["running_ended_s"]}
             for c, e in _exits(exits, ("soft_long",)).items()}
    ended = [v["task_ended_s"] for v in cells.values()]
    no_wait = max(ended) + max(warm) if warm and ended and None not in ended else None
    decided = no_wait is not None and soft_long > no_wait + SOFT_MARGIN_S
    ev.check("a_soft_shutdown_waits_its_whole_timeout",
             f"worker_soft_shutdown_timeout={soft_long:g} s: the worker waits the whole timeout "
             "even when its task ended sooner (it sleeps, it does not watch the task)",
             {**{c: {k: round(v, 2) if v is not None else None for k, v in x.items()}
                 for c, x in cells.items()},
              "exit_without_waiting_s": round(no_wait, 2) if no_wait is not None else None,
              "decided": decided},
             f"task ended before {soft_long:g} s; exit after >= {soft_long:g} s" if decided else
             f"not decided here: a worker that did not wait would exit as late as {no_wait or 0:.1f} s "
             f"(its task's end + a warm exit's overhead, measured); give soft_long more than that",
             len(cells) == 2 and None not in ended and all(t < soft_long for t in ended)
             and (not decided or all(v["exit_s"] >= soft_long for v in cells.values())))


# -- part 2: what the log and Redis say at shutdown -----------------------------------------------
def restored_counts(rows: Rows) -> dict[str, int]:
    """cell -> how many of its messages moved from unacked to the queue across the shutdown."""
    out: dict[str, int] = {}
    for r in rows:
        out.setdefault(r["cell"], 0)
        out[r["cell"]] += r["before"] == "unacked" and r["after"] == "queue"
    return out


def check_restoring_line(ev: Evidence, rows: Rows, exits: Rows) -> None:
    moved = restored_counts(rows)
    said = {e["cell"]: e["restoring"] for e in exits}
    cells = {c: {"log": said[c], "counted": moved.get(c, 0), "killed": e["killed"]}
             for c, e in ((e["cell"], e) for e in exits)}
    ok = all(v["log"] == ([] if v["killed"] else [v["counted"]]) for v in cells.values())
    ev.check("the_restoring_line_counts_what_went_back",
             "kombu's \"Restoring N unacknowledged message(s)\" at exit: N is the number of the "
             "worker's messages that went from unacked back to the queue; a SIGKILLed worker "
             "writes no such line and gives nothing back",
             cells, "N = the count, once, in every clean exit; no line when killed",
             bool(cells) and ok and any(not v["killed"] for v in cells.values()))


# -- part 3: a rolling restart under load -----------------------------------------------------------
def tally(roll: dict[str, Any]) -> dict[str, int]:
    counts = {"sent": len(roll["tasks"]), "once": 0, "twice": 0, "stranded": 0, "lost": 0}
    for t in roll["tasks"]:
        counts[rollout_outcome(t)] += 1
    counts["re_executed"] = sum(1 for t in roll["tasks"] if t["starts"] > 1)
    # lost before any worker started it: taken from the queue by a worker that was then
    # SIGKILLed, and recorded nowhere in Redis (a measurement, not a claim: see the README)
    counts["lost_never_started"] = sum(1 for t in roll["tasks"] if rollout_outcome(t) == "lost"
                                       and t["starts"] == 0)
    counts["killed"] = sum(1 for s in roll["stops"] if s["killed"])
    return counts


def _struck(roll: dict[str, Any]) -> list[dict[str, Any]]:
    ids = {i for s in roll["stops"] for i in s["struck"]}
    return [t for t in roll["tasks"] if t["id"] in ids]


def check_rollouts(ev: Evidence, rolls: dict[str, dict[str, Any]]) -> None:
    naive = rolls["naive"]
    struck = [rollout_outcome(t) for t in _struck(naive)]
    ev.check("a_naive_rollout_loses_the_tasks_it_kills",
             f"naive: SIGTERM, {naive['grace_s']:g} s grace, SIGKILL, early ack: every task still "
             "running when the SIGKILL came is lost (its effect applied, its work never finished)",
             {**tally(naive), "struck": struck}, "each struck task lost; every stop needed a SIGKILL",
             bool(struck) and all(o == "lost" for o in struck)
             and all(s["killed"] for s in naive["stops"]))
    for name, extra in (("warm", "; every struck task finished where it ran"),
                        ("soft", "; every struck task ran again, its effect once")):
        roll = rolls[name]
        counts = tally(roll)
        struck = _struck(roll)
        # every stop met a long task: warm must have let each finish, soft must have run it again
        again = bool(struck) and (all(t["starts"] == 1 for t in struck) if name == "warm" else
                                  all(t["starts"] >= 2 and t["effects"] == 1 for t in struck))
        ev.check(f"a_{name}_rollout_loses_nothing_and_runs_nothing_twice",
                 f"{roll['label']}: no task lost, stranded or applied twice; no worker needed a "
                 f"SIGKILL{extra}",
                 {**counts, "struck": [{"starts": t["starts"], "effects": t["effects"]} for t in struck]},
                 "lost 0, stranded 0, twice 0, killed 0, struck tasks started "
                 + (">= 2, effect 1" if name == "soft" else "once"),
                 counts["sent"] > 0 and counts["once"] == counts["sent"] and counts["killed"] == 0 and again)


# -- part 4: the checklist, computed from the run ----------------------------------------------------
def exit_overheads(exits: Rows, sequences: tuple[str, ...], soft: float | None = None) -> list[float]:
    """Seconds a worker took to exit beyond what it waited for: the end of its running task
    (``soft`` None: warm exits; one whose task never ended is skipped) or ``soft`` seconds (a soft
    timeout; 0 for a cold exit, from the signal)."""
    out = []
    for e in exits:
        if e["sequence"] not in sequences or e["killed"]:
            continue
        if soft is None and e["running_ended_s"] is None:
            continue  # its task never ended: no warm exit to measure (a finding says so)
        waited = e["running_ended_s"] if soft is None else soft
        out.append(e["exit_s"] - waited)
    return out


def check_checklist(ev: Evidence, checklist: dict[str, Any], rolls: dict[str, dict[str, Any]]) -> None:
    warm = [s["t_exit"] - s["t_signal"] for s in rolls["warm"]["stops"]]
    ev.check("grace_longest_task_plus_exit_overhead_is_enough",
             "rule: terminationGracePeriodSeconds >= the longest task + the worker's exit overhead "
             f"(here {checklist['longest_task_s']:.2f} + {checklist['warm_overhead_s']:.2f} s, doubled "
             f"for a busy machine: {checklist['grace_s']:.1f} s); every warm exit of the rollout fit in it",
             {"warm_exits_s": [round(x, 2) for x in warm], "grace_s": round(checklist["grace_s"], 2)},
             f"each <= {checklist['grace_s']:.1f} s",
             bool(warm) and all(x <= checklist["grace_s"] for x in warm))
    soft = [s["t_exit"] - s["t_signal"] for s in rolls["soft"]["stops"]]
    bound = checklist["soft_timeout_s"] + checklist["soft_overhead_s"]
    ev.check("a_soft_exit_fits_in_the_timeout_plus_its_overhead",
             "rule: with soft shutdown the grace must cover worker_soft_shutdown_timeout + the exit "
             f"overhead ({checklist['soft_timeout_s']:g} + {checklist['soft_overhead_s']:.2f} s, doubled); "
             "every soft exit of the rollout fit in that, whatever its tasks' length",
             {"soft_exits_s": [round(x, 2) for x in soft], "bound_s": round(bound, 2),
              "longest_task_s": checklist["longest_task_s"]},
             f"each <= {bound:.1f} s", bool(soft) and all(x <= bound for x in soft))
