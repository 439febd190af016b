"""Exercise 06's grader: the learner's queues declared by a real worker, the lab's publisher
sending every level, and where each message landed read from Redis."""

from __future__ import annotations

from labkit.exercise import Exercise, Learner
from labkit.params import Param
from labkit.session import LabSession
from labs.lab06_routing import measure

WANTED = {"info": "transient_logs", "debug": "transient_logs", "error": "error_logs"}
PARAMS = {"per_level": Param(5, "lines published per level", min=1, max=200)}


def grade(s: LabSession, learner: Learner) -> None:
    p = s.params
    queues = learner.module.task_queues()
    landed = measure.log_levels(s, "exercise", queues, list(WANTED), p.per_level)
    check_routes(s, p.per_level, landed["matrix"], landed["client_errors"])


def check_routes(s: LabSession, per_level: int, matrix: dict[str, dict[str, int]],
                 errors: list[str]) -> None:
    copies = {level: sum(row.values()) for level, row in matrix.items()}
    s.check("every_line_lands_exactly_once", "every line the publisher sends lands in exactly "
            "one queue: none dropped, none twice", {"copies_per_level": copies,
                                                    "client_errors": errors[:3]},
            f"{per_level} per level", not errors and all(c == per_level for c in copies.values()))
    for level, queue in WANTED.items():
        got = matrix.get(level, {}).get(queue, 0)
        s.check(f"{level}_lines_go_to_{queue}", f"'{level}' lines go to {queue}",
                {"in_" + queue: got, "elsewhere": copies.get(level, 0) - got},
                f"{per_level} in {queue}, 0 elsewhere", got == per_level == copies.get(level))


EXERCISE = Exercise(
    lab_id="06_routing",
    task="route info and debug logs to one transient queue and errors to another, every line "
         "to exactly one queue",
    read_first="labs/lab06_routing/README.md (two Queue entries with one name, against one "
               "queue with several bindings)",
    time_box_min=10,
    grade=grade,
    params=PARAMS,
    hints={
        "every_line_lands_exactly_once": "what does Celery do with two Queue entries of the same "
                                         "name? Read the bindings Redis holds "
                                         "(_kombu.binding.logs)",
        "info_lines_go_to_transient_logs": "a queue can have several bindings to one exchange",
        "debug_lines_go_to_transient_logs": "a queue can have several bindings to one exchange",
        "error_lines_go_to_error_logs": "a direct exchange delivers a key to every queue bound "
                                        "with exactly that key",
    },
)
