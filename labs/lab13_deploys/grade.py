"""Exercise 13's grader: a rolling restart of three workers under load, run with the learner's
procedure (``PROCEDURE``), counted by the tasks themselves (part 3 of the lab)."""

from __future__ import annotations

from labkit.errors import SetupError
from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.session import LabSession
from labs.lab13_deploys import checks, rolling

MAX_GRACE_S = 30.0  # a deploy that waits longer is not an answer (and the grading must end)
PARAMS = {
    "workers": Param(3, "workers in the rollout", min=3, max=3),
    "concurrency": Param(2, "pool processes per worker", min=1, max=4),
    "rate": Param(3.0, "tasks per second", min=1, max=6),
    "short_s": Param(0.2, "a short task lasts this to twice this, seconds", min=0.05, max=1),
    "long_s": Param(2.5, "one task in three lasts this long, seconds", min=2, max=6),
    "warmup_s": Param(1.0, "the stream runs this long before and after the rollout", min=0.5, max=5),
    "timeout": Param(30.0, "bound on every wait, seconds", min=10),
}
KEYS = {"remap_sigterm": bool, "settings": dict, "grace_s": (int, float), "idempotent": bool}


def procedure(learner: Learner) -> rolling.Procedure:
    spec = getattr(learner.module, "PROCEDURE", None)
    if not isinstance(spec, dict) or set(spec) != set(KEYS) or \
            not all(isinstance(spec[k], kind) for k, kind in KEYS.items()):
        raise SetupError(f"{learner.path}: PROCEDURE must be a dict with exactly "
                         f"{', '.join(KEYS)} (see the starter)")
    if not 0 < spec["grace_s"] <= MAX_GRACE_S:
        raise SetupError(f"{learner.path}: grace_s={spec['grace_s']} must be above 0 and at most "
                         f"{MAX_GRACE_S:g} s")
    return rolling.Procedure("yours", f"{spec['grace_s']:g} s grace", dict(spec["settings"]),
                             remap=spec["remap_sigterm"], idempotent=spec["idempotent"],
                             grace_s=float(spec["grace_s"]))


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    proc = procedure(learner)
    s.step(f"a rolling restart of {p.workers} workers under {p.rate:g} tasks/s, your procedure: "
           f"{learner.module.PROCEDURE}")
    roll = rolling.roll(s, proc, p, bound=p.long_s / 2)
    s.write_json("rollout.json", roll)
    check_rollout(s, checks.tally(roll))


def check_rollout(s: LabSession, counts: dict[str, int]) -> None:
    s.check("nothing_lost", "every task the stream sent finished, even those running when a worker "
            "was told to stop", {k: counts[k] for k in ("sent", "lost", "killed")}, "lost 0",
            counts["sent"] > 0 and counts["lost"] == 0)
    s.check("nothing_stranded", "no task waits in unacked for the visibility timeout",
            {k: counts[k] for k in ("stranded", "killed")}, "stranded 0", counts["stranded"] == 0)
    s.check("nothing_applied_twice", "no task's side effect was applied more than once",
            {k: counts[k] for k in ("twice", "re_executed")}, "twice 0", counts["twice"] == 0)


EXERCISE = Exercise(
    lab_id="13_deploys",
    task="choose the shutdown, ack mode and grace period so a rolling restart under load loses "
         "nothing and runs nothing twice",
    read_first="labs/lab13_deploys/README.md (the signal matrix, then the checklist)",
    time_box_min=15,
    grade=grade,
    params=PARAMS,
    hints={
        "nothing_lost": "what happens to a task that is running when SIGKILL comes, with early ack? "
                        "and to one a cold shutdown cancels?",
        "nothing_stranded": "what does a SIGKILLed worker give back, and when? how long must the "
                            "grace be for a worker to exit on its own (its task, then its exit)?",
        "nothing_applied_twice": "a task put back in the queue runs again from the start: what "
                                 "of its side effect?",
    },
)
