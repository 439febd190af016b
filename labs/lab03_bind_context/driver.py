"""Lab 03: bound tasks and the request context, measured.

``python -m labs.lab03_bind_context.driver`` is ``celery-lab run 03``; the notebook calls ``run()``.
"""

from __future__ import annotations

import string
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from itertools import pairwise

from labkit import runner
from labkit.cli import run_script
from labkit.evidence import Evidence
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labs.lab03_bind_context import measure, plots

QUEUES = ["lab03_a", "lab03_b"]
NO_BACKEND_QUEUE = "lab03_nobackend"
PARKING_QUEUE = "lab03_parking"
POLLS_PER_WINDOW = 3  # poll_s may be at most this fraction of the PROGRESS state's lifetime
PROGRESS_ATTEMPTS = 3  # measured again when a stalled client's polls all missed the window
SECRET_CHARS = set(string.ascii_letters + string.digits + "._-")

PARAMS = {
    "chain_length": Param(4, "links in the chain (alternating between the two workers' queues)",
                          min=2, max=50),
    "group_size": Param(4, "members of the group", min=2, max=100),
    "fail_times": Param(2, "retries of the retried call", min=1, max=5),
    "countdown": Param(0.2, "retry countdown, seconds", min=0.05, max=10),
    "steps": Param(10, "progress updates of the long task", quick=7, min=2, max=200),
    "step_s": Param(0.2, "seconds per progress step", quick=0.15, min=0.02, max=5),
    "poll_s": Param(0.25, "client's AsyncResult poll interval, seconds; at most a third of "
                          "(steps - 1) x step_s, the time the PROGRESS state lasts", min=0.02, max=5),
    "secret": Param("hunter2-lab03", "the password argument searched for everywhere it can be read "
                                     "(4-64 of A-Z a-z 0-9 . _ -)"),
    "timeout": Param(30.0, "bound on every wait, seconds", min=10),
}


def validate(p: Params) -> None:
    from labkit.errors import SetupError

    window = (p.steps - 1) * p.step_s
    if p.poll_s * POLLS_PER_WINDOW > window + 1e-9:
        raise SetupError(f"bad param poll_s={p.poll_s}: the PROGRESS state lasts (steps - 1) x step_s "
                         f"= {window:g} s, so polls every {p.poll_s:g} s could all miss it; use poll_s "
                         f"<= {window / POLLS_PER_WINDOW:g} or more steps / a longer step_s")
    if not 4 <= len(p.secret) <= 64 or not set(p.secret) <= SECRET_CHARS:
        raise SetupError(f"bad param secret={p.secret!r}: use 4 to 64 of A-Z a-z 0-9 . _ - (it is "
                         "searched for as written in JSON, repr and logs, which escape anything else)")


def measure_lab(s: LabSession) -> None:
    p = s.params
    with ThreadPoolExecutor(1) as background:
        flower = background.submit(s.start_flower)  # starts while the workers do; used last
        measure_parts(s, p, flower)


def measure_parts(s: LabSession, p: Params, flower: Future) -> None:
    w1, w2, _ = s.start_workers({
        # w1 logs at INFO and stores extended results; w2 logs at DEBUG and does not: the
        # secrets part reads both (the other parts do not depend on either setting)
        "w1": {"concurrency": 2, "queues": [QUEUES[0]], "settings": {"result_extended": True}},
        "w2": {"concurrency": 2, "queues": [QUEUES[1]], "loglevel": "DEBUG",
               "settings": {"result_extended": False}},
        "nobackend": {"concurrency": 1, "queues": [NO_BACKEND_QUEUE],
                      "settings": {"result_backend": None}},
    })
    queue_of = {w1.hostname: QUEUES[0], w2.hostname: QUEUES[1]}

    s.step("plain call, retried call, chain across both workers, group")
    ids = measure.call_shapes(s, QUEUES, p.chain_length, p.group_size, p.fail_times, p.countdown,
                              p.timeout)
    s.events.wait_for_tasks(set(ids["chain"]) | set(ids["group_members"]) | {ids["plain"], ids["retried"]},
                            timeout=p.timeout)
    rows = measure.contexts(s)
    succeeded_on = {e["uuid"]: e["hostname"] for e in s.events.snapshot()
                    if e.get("type") == "task-succeeded"}
    for row in rows:
        row["shape"] = ("chain" if row["id"] in ids["chain"] else
                        "group" if row["id"] in ids["group_members"] else row["label"])
        row["event_hostname"] = succeeded_on.get(row["id"])
    s.write_csv("contexts.csv", [{k: v for k, v in r.items() if k not in ("args", "kwargs")}
                                 for r in rows])
    s.write_json("contexts.json", {"ids": ids, "contexts": rows})
    check_contexts(s.evidence, p, ids, rows, queue_of)

    s.step(f"progress: {p.steps} updates every {p.step_s} s, polled every {p.poll_s} s")
    for attempt in range(1, PROGRESS_ATTEMPTS + 1):
        prog = measure.progress_polling(s, QUEUES[0], p.steps, p.step_s, p.poll_s, p.timeout)
        prog["attempt"] = attempt
        if measure.polls_in_window(prog) or attempt == PROGRESS_ATTEMPTS:
            break
        gap = max((b["t"] - a["t_end"] for a, b in pairwise(prog["polls"])), default=0.0)
        s.step(f"no poll landed inside the PROGRESS window (the client stalled up to {gap:.2f} s "
               "between polls): measuring again")
    s.step("the same task on a worker without a result backend")
    bare = measure.without_backend(s, NO_BACKEND_QUEUE, p.steps, p.step_s, p.poll_s, p.timeout)
    s.write_json("progress.json", {"with_backend": prog, "without_backend": bare})
    check_progress(s.evidence, p, prog, bare)

    s.step("a secret argument, plainly and behind argsrepr/kwargsrepr: every place it can be read")
    secret = measure.secrets(s, flower.result(), w1, w2, queue_of, PARKING_QUEUE, p.secret, p.timeout)
    s.write_json("secrets.json", secret)
    check_secret(s.evidence, secret)


def check_contexts(ev: Evidence, p: Params, ids: dict, rows: list[dict], queue_of: dict[str, str]) -> None:
    by_id = {}
    for row in rows:
        by_id.setdefault(row["id"], []).append(row)
    chain_rows = [by_id[i][0] for i in ids["chain"]]
    root = ids["chain"][0]
    ev.check("chain_members_share_the_root_id",
             "every member of a chain carries the id of the first task as root_id",
             {"members": len(chain_rows), "root_ids": sorted({r["root_id"] for r in chain_rows})},
             f"{p.chain_length} members, one root_id = {root}",
             len(chain_rows) == p.chain_length and all(r["root_id"] == root for r in chain_rows))
    parents = [r["parent_id"] for r in chain_rows]
    ev.check("parent_ids_link_the_chain",
             "each chain member's parent_id is the id of the member before it; the first has none",
             {"parent_ids": parents, "ids": ids["chain"]},
             "[None, id0, id1, ...]", parents == [None, *ids["chain"][:-1]])
    members = [by_id[i][0] for i in ids["group_members"]]
    ev.check("group_members_share_the_group_id",
             "every member of a group has request.group = the GroupResult's id",
             {"members": len(members), "groups": sorted({str(r["group"]) for r in members})},
             f"{p.group_size} members, group = {ids['group']}",
             len(members) == p.group_size and all(r["group"] == ids["group"] for r in members))
    # every execution of the retrying task, whatever id it ran under
    attempts = [r for r in rows if r["task"] == "lab03.retrying"]
    ev.check("retries_count_up_with_the_same_id",
             "a retried call runs again under the id the client was given, with request.retries one "
             "higher each time",
             {"executions": len(attempts), "ids": sorted({r["id"] for r in attempts}),
              "retries": [r["retries"] for r in attempts]},
             f"{p.fail_times + 1} executions, all under {ids['retried']}, retries 0..{p.fail_times}",
             {r["id"] for r in attempts} == {ids["retried"]}
             and [r["retries"] for r in attempts] == list(range(p.fail_times + 1)))
    wrong_host = [r["id"] for r in rows if r["hostname"] != r["event_hostname"]]
    hosts = sorted({str(r["hostname"]) for r in rows})
    ev.check("hostname_is_the_worker_that_ran_it",
             "request.hostname names the worker that really ran the task (the one its "
             "task-succeeded event came from), and both workers of the run show up",
             {"tasks": len(rows), "mismatches": len(wrong_host), "workers": hosts},
             f"0 mismatches, workers = {sorted(queue_of)}",
             bool(rows) and not wrong_host and hosts == sorted(queue_of))
    sent_to = ids["sent_to"]
    wrong_key = [r["id"] for r in rows if r["routing_key"] != sent_to.get(r["id"])]
    ev.check("routing_key_matches_the_queue",
             "delivery_info.routing_key is the queue the client sent the task to (default direct "
             "routing), retries included",
             {"tasks": len(rows), "mismatches": len(wrong_key),
              "keys": sorted({str(r["routing_key"]) for r in rows})},
             "0 mismatches", bool(rows) and not wrong_key)
    publishers = {r["id"]: f"gen{r['pid']}@{r['host']}" for r in chain_rows}
    links = [{"member": i, "origin": r["origin"], "parent_ran_in": publishers[ids["chain"][i - 1]]}
             for i, r in enumerate(chain_rows) if i > 0]
    ev.check("chain_links_are_sent_by_the_parents_pool_process",
             "after the first, each chain member was published by the pool process that ran its "
             "parent: request.origin names that process, not the client",
             links, "origin == gen<parent's pid>@<host> for every link",
             bool(links) and all(link["origin"] == link["parent_ran_in"] for link in links))


def check_progress(ev: Evidence, p: Params, prog: dict, bare: dict) -> None:
    seen = [poll["done"] for poll in prog["polls"] if poll["state"] == "PROGRESS"]
    states = [poll["state"] for poll in prog["polls"]]
    window = measure.progress_window(prog)
    inside = measure.polls_in_window(prog)
    # a poll that began after update k's record must see done >= k (it was stored before)
    floor = {id(poll): sum(u["t"] <= poll["t"] for u in prog["updates"]) for poll in inside}
    wrong = [{"t": poll["t"], "state": poll["state"], "done": poll["done"], "at_least": floor[id(poll)]}
             for poll in inside if poll["state"] != "PROGRESS" or poll["done"] is None
             or not floor[id(poll)] <= poll["done"] <= p.steps - 1]
    ev.measured(progress={"polls": len(prog["polls"]), "updates": len(prog["updates"]),
                          "polls_in_window": len(inside), "attempt": prog.get("attempt", 1),
                          "window_s": round(window[1] - window[0], 3) if window else None,
                          "progress_values_seen": seen})
    ev.check("progress_is_visible_through_the_backend",
             "update_state(state='PROGRESS', meta=...) is what a polling client sees while the task "
             "runs: every poll that lands while the state is stored reads PROGRESS with the latest "
             "update or a later one; it sees only the updates its polls happen to land on",
             {"updates": len(prog["updates"]), "polls_in_window": len(inside), "wrong_in_window": wrong,
              "distinct_seen": len(set(seen)), "final_state": states[-1] if states else None},
             ">= 1 poll inside the PROGRESS window, each PROGRESS with done >= the updates recorded "
             "before it; values non-decreasing; final SUCCESS",
             bool(inside) and not wrong and seen == sorted(seen) and bool(states)
             and states[-1] == "SUCCESS")
    bare_states = sorted({poll["state"] for poll in bare["polls"]})
    done_at = bare["succeeded_at"]
    after = sum(poll["t"] > done_at for poll in bare["polls"]) if done_at else 0
    during = sum(bare["started_at"] <= poll["t"] and poll["t_end"] <= done_at for poll in bare["polls"]) \
        if done_at and bare["started_at"] else 0
    ev.check("without_a_backend_the_client_sees_pending",
             "when the worker has no result backend, its progress and result go nowhere: every poll "
             "reads PENDING, even after the task-succeeded event",
             {"states_seen": bare_states, "task_succeeded_event": bare["task_succeeded_event"],
              "polls_while_it_ran": during, "polls_after_it_succeeded": after,
              "client_without_backend": bare["client_without_backend"]},
             "only PENDING, with >= 1 poll after the task-succeeded event",
             bare_states == ["PENDING"] and bare["task_succeeded_event"] and after >= 1)


# place -> (finding id, claim, shown when sent plainly, shown behind argsrepr/kwargsrepr)
SECRET_PLACES = {
    "broker_body": (
        "argsrepr_is_not_encryption",
        "the message on the broker carries the real arguments in its body, with or without "
        "argsrepr/kwargsrepr (base64 is an encoding): whoever reads the broker reads the secret",
        True, True),
    "broker_headers": (
        "broker_headers_carry_kwargsrepr",
        "the message's headers carry argsrepr/kwargsrepr: the secret when sent plainly (the default "
        "repr of the arguments), '***' when hidden",
        True, False),
    "events": (
        "argsrepr_keeps_the_secret_out_of_events",
        "task-sent and task-received events show argsrepr/kwargsrepr: the secret when sent plainly, "
        "not when hidden",
        True, False),
    "flower_task_api": (
        "flower_task_api_shows_what_events_carry",
        "Flower's task API (/api/tasks, /api/task/info) is built from events: the secret when sent "
        "plainly, not when hidden",
        True, False),
    "backend_extended": (
        "result_extended_stores_the_real_kwargs",
        "with result_extended on, the worker stores the real args and kwargs in celery-task-meta-<id> "
        "(for result_expires): the secret either way, argsrepr or not",
        True, True),
    "backend_not_extended": (
        "without_result_extended_the_backend_stores_no_arguments",
        "with result_extended off (Celery's default), the result meta holds status, result and "
        "date_done but no arguments",
        False, False),
    "log_info": (
        "info_log_shows_no_arguments",
        "a worker logging at INFO writes 'received' and 'succeeded' lines without the arguments",
        False, False),
    "log_debug": (
        "debug_log_shows_kwargsrepr",
        "a worker logging at DEBUG writes each request it hands to its pool, headers first: the "
        "secret when sent plainly (kwargsrepr), not when hidden (the real kwargs come after "
        "Celery's 1024-character cut)",
        True, False),
    "inspect": (
        "inspect_shows_the_real_kwargs",
        "inspect scheduled (remote control) returns the real args and kwargs of a task a worker "
        "holds: the secret either way, argsrepr or not",
        True, True),
    "flower_worker_api": (
        "flower_worker_api_shows_the_real_kwargs",
        "Flower's worker API (/api/workers?workername=...&refresh=1) relays inspect: the real kwargs "
        "of a held task, argsrepr or not",
        True, True),
}


PLACE_LABELS = {
    "broker_body": "broker: the message body (base64 JSON)",
    "broker_headers": "broker: the message headers",
    "events": "events (task-sent, task-received)",
    "flower_task_api": "Flower's task API (/api/tasks)",
    "backend_extended": "result backend, result_extended on",
    "backend_not_extended": "result backend, result_extended off",
    "log_info": "worker log at INFO",
    "log_debug": "worker log at DEBUG",
    "inspect": "inspect scheduled (a task the worker holds)",
    "flower_worker_api": "Flower's worker API (refresh)",
}


def yes_no(shown: bool) -> str:
    return "yes" if shown else "no"


def check_secret(ev: Evidence, secret: dict) -> None:
    places = secret["places"]
    ev.measured(secret_places={place: {mode: places[place][mode]["shown"] for mode in measure.MODES}
                               for place in SECRET_PLACES})
    for place, (finding, claim, plain, hidden) in SECRET_PLACES.items():
        got = places[place]
        measured = {mode: {"present": got[mode]["present"], "shows_secret": got[mode]["shown"]}
                    for mode in measure.MODES}
        holds = (all(got[mode]["present"] for mode in measure.MODES)
                 and got["plain"]["shown"] == plain and got["argsrepr"]["shown"] == hidden)
        expected = f"the call present in both; secret: plain {yes_no(plain)}, argsrepr {yes_no(hidden)}"
        if place == "backend_extended":
            ttls = got["ttl_s"]
            measured["ttl_s"] = ttls
            expected += ", kept > 0 s"
            holds = holds and all(ttl > 0 for ttl in ttls.values())
        ev.check(finding, claim, measured, expected, holds)


LAB = Lab(
    id="03_bind_context",
    title="Bound tasks and the request context, measured",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    validate=validate,
    wall_time="default about 9 s, --quick about 7 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 03``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
