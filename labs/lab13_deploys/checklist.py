"""Part 4: a production checklist computed from the run: the grace period and the settings this
machine's measured exit times and task durations require, each rule with its numbers."""

from __future__ import annotations

from typing import Any

from labs.lab13_deploys.checks import exit_overheads

BUSY = 2.0  # a measured overhead, doubled: the deploy happens on a busier machine than the lab's
UNMEASURED_S = 5.0  # the overhead assumed when part 1 measured none


def compute(exits: list[dict[str, Any]], longest_task_s: float, soft_timeout_s: float,
            soft_cells: dict[str, float]) -> dict[str, Any]:
    """The grace periods part 1's exits call for: warm (the longest task + the exit overhead) and
    soft (the soft timeout + the overhead of a cold exit after it)."""
    warm = exit_overheads(exits, ("term", "int"))
    soft = [x for name, timeout in soft_cells.items()
            for x in exit_overheads(exits, (name,), soft=timeout)]
    # none measured (every such worker misbehaved, which its findings report): the driver's
    # allowance, so that the rollouts can still be measured
    warm_overhead = BUSY * max(warm, default=UNMEASURED_S / BUSY)
    soft_overhead = BUSY * max(soft, default=UNMEASURED_S / BUSY)
    return {"longest_task_s": longest_task_s, "warm_overhead_s": warm_overhead,
            "grace_s": longest_task_s + warm_overhead, "soft_timeout_s": soft_timeout_s,
            "soft_overhead_s": soft_overhead, "soft_grace_s": soft_timeout_s + soft_overhead,
            "measured_warm_overheads_s": [round(x, 3) for x in warm],
            "measured_soft_overheads_s": [round(x, 3) for x in soft]}


def rules(c: dict[str, Any], visibility_timeout_s: float) -> list[dict[str, str]]:
    """The checklist a team can paste into its deploy review, with this run's numbers; each rule
    names the finding of this run that backs it."""
    return [
        {"finding": "grace_longest_task_plus_exit_overhead_is_enough",
         "rule": "Plain SIGTERM (warm): terminationGracePeriodSeconds >= longest task + exit overhead",
         "value": f">= {c['grace_s']:.1f} s ({c['longest_task_s']:g} s task + {c['warm_overhead_s']:.1f} s)"},
        {"finding": "a_soft_exit_fits_in_the_timeout_plus_its_overhead",
         "rule": "Soft shutdown: REMAP_SIGTERM=SIGQUIT + worker_soft_shutdown_timeout, and a grace "
                 "of the timeout + exit overhead",
         "value": f">= {c['soft_grace_s']:.1f} s "
                  f"({c['soft_timeout_s']:g} s + {c['soft_overhead_s']:.1f} s)"},
        {"finding": "a_cold_shutdown_cancels_the_running_task",
         "rule": "A cold or soft shutdown cancels running tasks: only task_acks_late puts them back",
         "value": "task_acks_late = True (early ack: the cancelled task is lost)"},
        {"finding": "a_soft_rollout_loses_nothing_and_runs_nothing_twice",
         "rule": "A requeued task runs again from the start: make its side effects idempotent",
         "value": "a guard keyed on the task id (SET NX, a unique constraint)"},
        {"finding": "sigkill_strands_every_message_the_worker_held",
         "rule": "A SIGKILLed worker gives back nothing: what it held waits for visibility_timeout",
         "value": f"visibility_timeout = {visibility_timeout_s:g} s here: "
                  "choose the grace so that SIGKILL never comes"},
        {"finding": "a_soft_shutdown_waits_its_whole_timeout",
         "rule": "With a task running, a soft shutdown waits its whole timeout, even once the task "
                 "ends (an idle worker skips it unless worker_enable_soft_shutdown_on_idle)",
         "value": "keep it just above your usual task, not your longest"},
    ]
