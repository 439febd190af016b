"""Lab 03: bound tasks and the request context, measured.

``python -m labs.lab03_bind_context.driver`` is ``celery-lab run 03``; the notebook calls ``run()``.
"""

from __future__ import annotations

import sys
from functools import partial

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

PARAMS = {
    "chain_length": Param(4, "links in the chain (alternating between the two workers' queues)",
                          min=2, max=50),
    "group_size": Param(4, "members of the group", min=2, max=100),
    "fail_times": Param(2, "retries of the retried call", min=1, max=5),
    "countdown": Param(0.2, "retry countdown, seconds", min=0.05, max=10),
    "steps": Param(10, "progress updates of the long task", quick=6, min=2, max=200),
    "step_s": Param(0.2, "seconds per progress step", quick=0.15, min=0.02, max=5),
    "poll_s": Param(0.25, "client's AsyncResult poll interval, seconds", min=0.02, max=5),
    "secret": Param("hunter2-lab03", "the password argument that must not leak into events"),
    "timeout": Param(30.0, "bound on every wait, seconds", min=1),
}


def measure_lab(s: LabSession) -> None:
    p = s.params
    w1, w2, _ = s.start_workers({
        "w1": {"concurrency": 2, "queues": [QUEUES[0]]},
        "w2": {"concurrency": 2, "queues": [QUEUES[1]]},
        "nobackend": {"concurrency": 1, "queues": [NO_BACKEND_QUEUE],
                      "settings": {"result_backend": None}},
    })
    queue_of = {w1.hostname: QUEUES[0], w2.hostname: QUEUES[1]}

    s.step("plain call, retried call, chain across both workers, group")
    ids = measure.call_shapes(s, QUEUES, p.chain_length, p.group_size, p.fail_times, p.countdown,
                              p.timeout)
    s.events.wait_for_tasks(set(ids["chain"]) | set(ids["group_members"]) | {ids["plain"]},
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
    prog = measure.progress_polling(s, QUEUES[0], p.steps, p.step_s, p.poll_s, p.timeout)
    s.step("the same task on a worker without a result backend")
    bare = measure.without_backend(s, NO_BACKEND_QUEUE, p.steps, p.step_s, p.poll_s, p.timeout)
    s.write_json("progress.json", {"with_backend": prog, "without_backend": bare})
    check_progress(s.evidence, p, prog, bare)

    s.step("a secret argument, plainly and behind argsrepr/kwargsrepr")
    secret = measure.secrets(s, QUEUES[0], PARKING_QUEUE, p.secret, p.timeout)
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
    attempts = by_id[ids["retried"]]
    ev.check("retries_count_up_with_the_same_id",
             "a retried call runs again under the same id with request.retries one higher each time",
             {"ids": sorted({r["id"] for r in attempts}), "retries": [r["retries"] for r in attempts]},
             f"1 id, retries 0..{p.fail_times}",
             len({r["id"] for r in attempts}) == 1
             and [r["retries"] for r in attempts] == list(range(p.fail_times + 1)))
    routed = [r for r in rows if r["hostname"] in queue_of]
    wrong_host = [r["id"] for r in routed if r["hostname"] != r["event_hostname"]]
    wrong_key = [r["id"] for r in routed if r["routing_key"] != queue_of[r["hostname"]]]
    ev.check("hostname_is_the_worker_that_ran_it",
             "request.hostname names the worker that really ran the task (the one its "
             "task-succeeded event came from), across two workers",
             {"tasks": len(routed), "mismatches": len(wrong_host),
              "workers": sorted({r["hostname"] for r in routed})},
             "0 mismatches over both workers", routed and not wrong_host
             and len({r["hostname"] for r in routed}) == 2)
    ev.check("routing_key_matches_the_queue",
             "delivery_info.routing_key is the queue the task was sent to (default direct routing)",
             {"tasks": len(routed), "mismatches": len(wrong_key),
              "keys": sorted({r["routing_key"] for r in routed})},
             "0 mismatches", routed and not wrong_key)
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
    ev.measured(progress={"polls": len(prog["polls"]), "updates": len(prog["updates"]),
                          "progress_values_seen": seen})
    ev.check("progress_is_visible_through_the_backend",
             "update_state(state='PROGRESS', meta=...) is what a polling client sees between "
             "start and SUCCESS; it sees only the updates its polls happen to land on",
             {"updates": len(prog["updates"]), "distinct_seen": len(set(seen)),
              "final_state": states[-1]},
             f"1 <= distinct progress values seen <= {p.steps - 1}, non-decreasing, final SUCCESS",
             1 <= len(set(seen)) <= len(prog["updates"]) and seen == sorted(seen)
             and states[-1] == "SUCCESS")
    bare_states = sorted({poll["state"] for poll in bare["polls"]})
    ev.check("without_a_backend_the_client_sees_pending",
             "when the worker has no result backend, its progress and result go nowhere: the "
             "client sees PENDING before, during and after the task ran",
             {"states_seen": bare_states, "task_succeeded_event": bare["task_succeeded_event"],
              "client_without_backend": bare["client_without_backend"]},
             "only PENDING, although the task succeeded",
             bare_states == ["PENDING"] and bare["task_succeeded_event"])


def check_secret(ev: Evidence, secret: dict) -> None:
    ev.check("argsrepr_keeps_the_secret_out_of_events",
             "with argsrepr/kwargsrepr the secret appears in no captured event; without them it "
             "does",
             {"events_with_secret_plain": secret["plain_events_with_secret"],
              "events_with_secret_hidden": secret["hidden_events_with_secret"],
              "what_events_show": secret["hidden_received_args"]},
             "plain > 0, hidden 0",
             secret["plain_events_with_secret"] > 0 and secret["hidden_events_with_secret"] == 0)
    ev.check("argsrepr_is_not_encryption",
             "the message on the broker still carries the secret in its body; argsrepr only "
             "changes what events, logs and monitors display",
             {"body_has_secret": secret["message_body_has_secret"],
              "headers_have_secret": secret["message_headers_have_secret"]},
             "body yes, headers no",
             secret["message_body_has_secret"] and not secret["message_headers_have_secret"])


LAB = Lab(
    id="03_bind_context",
    title="Bound tasks and the request context, measured",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    wall_time="default about 9 s, --quick about 7 s",
)

# What the notebook calls: the same measurement as ``celery-lab run 03``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
