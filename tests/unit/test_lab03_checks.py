"""Lab 03's check functions fed healthy data and, one property at a time, the data a Celery that
behaved otherwise would produce. No Redis, no worker: the data is shaped like measure.py's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.params import Params, resolve
from labs.lab03_bind_context import driver
from tests.unit.checks import assert_only_fails

Row = dict[str, Any]

W1, W2 = "w1@celery-lab", "w2@celery-lab"
QUEUE_OF = {W1: driver.QUEUES[0], W2: driver.QUEUES[1]}
POOL = {W1: (5493, 5495), W2: (5492, 5494)}  # the pids of each worker's two pool processes
CLIENT = "gen4156@vm"  # the driver's process: request.origin of what the client sends
T0 = 1_795_300_302.0125


def tid(n: int) -> str:
    """A deterministic id shaped like the uuid4 Celery gives."""
    return str(uuid.UUID(int=n, version=4))


def params(**overrides: Any) -> Params:
    return resolve(driver.PARAMS, overrides, quick=False)


# --- request contexts -------------------------------------------------------------------------

def context(task_id: str, label: str, shape: str, worker: str, pid: int, t: float, *,
            task: str = "lab03.whoami", retries: int = 0, root_id: str | None = None,
            parent_id: str | None = None, group: str | None = None, origin: str = CLIENT,
            args: tuple = ()) -> Row:
    """A row of contexts.json: record_attempt's request context, the label, plus the shape and
    the hostname of the task-succeeded event the driver adds."""
    tag = str(uuid.uuid5(uuid.NAMESPACE_OID, f"{task_id}/{retries}"))  # one per delivery
    return {"id": task_id, "task": task, "retries": retries, "delivery_tag": tag,
            "redelivered": False, "exchange": "", "routing_key": QUEUE_OF[worker], "priority": 0,
            "eta": None, "hostname": worker, "args": list(args), "kwargs": {"label": label},
            "argsrepr": repr(args), "kwargsrepr": repr({"label": label}),
            "root_id": root_id or task_id, "parent_id": parent_id, "group": group, "origin": origin,
            "pid": pid, "host": "vm", "t": t, "label": label, "shape": shape, "event_hostname": worker}


def call_shapes(p: Params) -> tuple[Row, list[Row]]:
    """measure.call_shapes then measure.contexts on a healthy run: a plain call on w1, a retried
    call on w2 (same id, retries counting up), a chain alternating w1/w2 in which each link is
    published by the pool process that ran its parent, and a group alternating w1/w2."""
    ids: Row = {"plain": tid(1), "retried": tid(2), "chain": [tid(10 + i) for i in range(p.chain_length)],
                "group": tid(3), "group_members": [tid(30 + i) for i in range(p.group_size)]}
    workers = (W1, W2)
    rows = [context(ids["plain"], "plain", "plain", W1, POOL[W1][1], T0)]
    rows += [context(ids["retried"], "retried", "retried", W2, POOL[W2][1],
                     T0 + 0.01 + k * (p.countdown + 0.003), task="lab03.retrying", retries=k,
                     parent_id=ids["retried"] if k else None, args=(p.fail_times, p.countdown))
             for k in range(p.fail_times + 1)]
    origin = CLIENT
    for i, link in enumerate(ids["chain"]):
        worker = workers[i % 2]
        pid = POOL[worker][i // 2 % 2]
        rows.append(context(link, f"chain-{i}", "chain", worker, pid, T0 + 0.015 + 0.014 * i,
                            root_id=ids["chain"][0], parent_id=ids["chain"][i - 1] if i else None,
                            origin=origin, args=(f"chain-{i - 1}",) if i else ()))
        origin = f"gen{pid}@vm"
    for i, member in enumerate(ids["group_members"]):
        worker = workers[i % 2]
        rows.append(context(member, f"group-{i}", "group", worker, POOL[worker][i // 2 % 2],
                            T0 + 0.022 + 0.003 * i, group=ids["group"]))
    # the queue the client sent each id to
    ids["sent_to"] = {ids["plain"]: QUEUE_OF[W1], ids["retried"]: QUEUE_OF[W2]}
    ids["sent_to"].update({i: QUEUE_OF[workers[n % 2]] for n, i in enumerate(ids["chain"])})
    ids["sent_to"].update({i: QUEUE_OF[workers[n % 2]] for n, i in enumerate(ids["group_members"])})
    return ids, rows


def rows_of(rows: list[Row], task_id: str) -> list[Row]:
    return [r for r in rows if r["id"] == task_id]


CONTEXT_IDS = ["chain_members_share_the_root_id", "parent_ids_link_the_chain",
               "group_members_share_the_group_id", "retries_count_up_with_the_same_id",
               "hostname_is_the_worker_that_ran_it", "routing_key_matches_the_queue",
               "chain_links_are_sent_by_the_parents_pool_process"]


def test_healthy_request_contexts_hold_every_finding(ev: Evidence) -> None:
    p = params()
    ids, rows = call_shapes(p)
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert [f.id for f in ev.findings] == CONTEXT_IDS
    assert all(f.holds for f in ev.findings)
    assert ev.finding("hostname_is_the_worker_that_ran_it").measured["tasks"] == 1 + 3 + 4 + 4


def test_a_chain_member_rooted_at_its_parent_is_caught(ev: Evidence) -> None:
    """root_id must be the first task's id, not the previous link's."""
    p = params()
    ids, rows = call_shapes(p)
    rows_of(rows, ids["chain"][2])[0]["root_id"] = ids["chain"][1]
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "chain_members_share_the_root_id")


def test_chain_parents_all_pointing_at_the_first_task_are_caught(ev: Evidence) -> None:
    """parent_id set to the root for every link: the chain's order is lost."""
    p = params()
    ids, rows = call_shapes(p)
    for link in ids["chain"][2:]:
        rows_of(rows, link)[0]["parent_id"] = ids["chain"][0]
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "parent_ids_link_the_chain")


def test_a_first_chain_member_with_a_parent_is_caught(ev: Evidence) -> None:
    """The first link was sent by the client; nothing came before it."""
    p = params()
    ids, rows = call_shapes(p)
    rows_of(rows, ids["chain"][0])[0]["parent_id"] = ids["plain"]
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "parent_ids_link_the_chain")


def test_a_group_member_without_the_group_id_is_caught(ev: Evidence) -> None:
    p = params()
    ids, rows = call_shapes(p)
    rows_of(rows, ids["group_members"][2])[0]["group"] = None
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "group_members_share_the_group_id")


def test_a_retry_message_delivered_twice_is_caught(ev: Evidence) -> None:
    """The retries=1 message redelivered (same tag, flagged redelivered) runs a second time:
    retries read 0, 1, 1, 2, not 0, 1, 2."""
    p = params()
    ids, rows = call_shapes(p)
    second = rows_of(rows, ids["retried"])[1]
    again = dict(second, redelivered=True, t=second["t"] + 0.001)
    rows.insert(rows.index(second) + 1, again)
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "retries_count_up_with_the_same_id")


def test_a_retry_that_did_not_count_up_is_caught(ev: Evidence) -> None:
    """A retry sent without incrementing request.retries."""
    p = params()
    ids, rows = call_shapes(p)
    rows_of(rows, ids["retried"])[1]["retries"] = 0
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "retries_count_up_with_the_same_id")


def test_retries_that_run_under_new_ids_are_caught(ev: Evidence) -> None:
    """A retry sent as a new task (a fresh id per attempt, retries still counting up): the rows
    are found by task name, not by the id under test. The client never sent those ids, so the
    routing check cannot vouch for them either."""
    p = params()
    ids, rows = call_shapes(p)
    for k, row in enumerate(rows_of(rows, ids["retried"])[1:], start=1):
        row["id"] = tid(200 + k)
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert [f.id for f in ev.findings if not f.holds] == ["retries_count_up_with_the_same_id",
                                                          "routing_key_matches_the_queue"]


def test_a_success_event_from_another_worker_than_request_hostname_is_caught(ev: Evidence) -> None:
    """request.hostname says w1 while the task-succeeded event came from w2."""
    p = params()
    ids, rows = call_shapes(p)
    rows_of(rows, ids["plain"])[0]["event_hostname"] = W2
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "hostname_is_the_worker_that_ran_it")


def test_tasks_all_run_by_one_worker_are_caught(ev: Evidence) -> None:
    """Both queues served by w1 (routing keys are still the queues the tasks were sent to):
    nothing shows the hostname tells two workers apart."""
    p = params()
    ids, rows = call_shapes(p)
    for row in rows:
        row.update(hostname=W1, event_hostname=W1)
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "hostname_is_the_worker_that_ran_it")


def test_a_request_hostname_naming_no_worker_of_the_run_is_caught(ev: Evidence) -> None:
    """A Celery reporting the default node name instead of the worker's -n name for one task,
    while its task-succeeded event came from w1."""
    p = params()
    ids, rows = call_shapes(p)
    rows_of(rows, ids["plain"])[0]["hostname"] = "celery@vm"
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "hostname_is_the_worker_that_ran_it")
    assert ev.finding("hostname_is_the_worker_that_ran_it").measured["mismatches"] == 1


def test_a_retry_routed_to_another_queue_is_caught(ev: Evidence) -> None:
    """A retry re-sent to the default queue instead of the one the call was sent to (the row
    still names w2, which would have to consume both)."""
    p = params()
    ids, rows = call_shapes(p)
    rows_of(rows, ids["retried"])[1]["routing_key"] = "celery"
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "routing_key_matches_the_queue")


def test_a_routing_key_other_than_the_queue_is_caught(ev: Evidence) -> None:
    """A queue bound under another routing key: delivery_info carries the key, not the queue."""
    p = params()
    ids, rows = call_shapes(p)
    rows_of(rows, ids["group_members"][1])[0]["routing_key"] = "lab03.b.key"
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "routing_key_matches_the_queue")


def test_chain_links_published_by_the_client_are_caught(ev: Evidence) -> None:
    """A chain sent whole by the client up front: every link's origin is the driver's process."""
    p = params()
    ids, rows = call_shapes(p)
    for link in ids["chain"]:
        rows_of(rows, link)[0]["origin"] = CLIENT
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "chain_links_are_sent_by_the_parents_pool_process")


def test_a_chain_link_published_by_another_pool_process_is_caught(ev: Evidence) -> None:
    p = params()
    ids, rows = call_shapes(p)
    parent = rows_of(rows, ids["chain"][1])[0]
    sibling = next(pid for pid in POOL[parent["hostname"]] if pid != parent["pid"])
    rows_of(rows, ids["chain"][2])[0]["origin"] = f"gen{sibling}@vm"
    driver.check_contexts(ev, p, ids, rows, QUEUE_OF)
    assert_only_fails(ev, "chain_links_are_sent_by_the_parents_pool_process")


# --- progress, with and without a result backend ----------------------------------------------

READ_S = 0.004  # one poll: AsyncResult.state then .info, two Redis reads


def progress(p: Params, start: float = T0 + 0.45) -> Row:
    """measure.progress_polling: the task records update k (after storing it) at start + k * step_s
    and stores SUCCESS a step after the last; polled every poll_s, the client sees PENDING, then
    the PROGRESS updates its polls land on, then SUCCESS."""
    done_at = start + p.steps * p.step_s
    updates = [{"t": start + k * p.step_s, "done": k} for k in range(1, p.steps)]
    polls, t = [], start - 0.01
    while True:
        seen = [u["done"] for u in updates if u["t"] <= t]
        if t >= done_at:
            polls.append({"t": t, "t_end": t + READ_S, "state": "SUCCESS", "done": p.steps})
            break
        polls.append({"t": t, "t_end": t + READ_S, "state": "PROGRESS" if seen else "PENDING",
                      "done": seen[-1] if seen else None})
        t += p.poll_s + READ_S
    return {"id": tid(50), "polls": polls, "step_s": p.step_s, "updates": updates, "attempt": 1}


def bare(p: Params, start: float = T0 + 3) -> Row:
    """measure.without_backend: the worker stores nothing, so every poll reads PENDING, before,
    while and after the task ran (task-started and task-succeeded events); a client without a
    backend cannot even ask."""
    started, succeeded = start + 0.02, start + 0.02 + p.steps * p.step_s + 0.003
    polls = [{"t": start + j * p.poll_s, "t_end": start + j * p.poll_s + READ_S, "state": "PENDING"}
             for j in range(int((succeeded - start) / p.poll_s) + 2)]
    polls.append({"t": polls[-1]["t"] + 0.001, "t_end": polls[-1]["t"] + 0.005, "state": "PENDING"})
    return {"id": tid(51), "polls": polls, "task_succeeded_event": True,
            "started_at": started, "succeeded_at": succeeded,
            "client_without_backend": "AttributeError: 'DisabledBackend' object has no attribute "
                                      "'_get_task_meta_for'"}


PROGRESS_IDS = ["progress_is_visible_through_the_backend", "without_a_backend_the_client_sees_pending"]


def progress_polls(prog: Row) -> list[Row]:
    return [poll for poll in prog["polls"] if poll["state"] == "PROGRESS"]


def test_healthy_progress_polling_holds_every_finding(ev: Evidence) -> None:
    p = params()
    driver.check_progress(ev, p, progress(p), bare(p))
    assert [f.id for f in ev.findings] == PROGRESS_IDS
    assert all(f.holds for f in ev.findings)
    seen = ev.measurements["progress"]["progress_values_seen"]
    assert 1 <= len(set(seen)) < p.steps - 1  # the polls miss some updates
    assert ev.finding(PROGRESS_IDS[0]).measured["polls_in_window"] >= 3


def test_the_quickest_legal_polling_still_lands_in_the_window(ev: Evidence) -> None:
    """poll_s at the limit validate allows: (steps - 1) x step_s = 3 x poll_s."""
    p = params(steps=4, step_s=0.1, poll_s=0.1)
    driver.validate(p)
    driver.check_progress(ev, p, progress(p), bare(p))
    assert all(f.holds for f in ev.findings)


def test_progress_that_never_reached_the_backend_is_caught(ev: Evidence) -> None:
    """update_state stored nowhere: the client sees PENDING until SUCCESS."""
    p = params()
    prog = progress(p)
    for poll in progress_polls(prog):
        poll.update(state="PENDING", done=None)
    driver.check_progress(ev, p, prog, bare(p))
    assert_only_fails(ev, "progress_is_visible_through_the_backend")


def test_progress_that_went_backwards_is_caught(ev: Evidence) -> None:
    """A task redelivered mid-way starts counting again from 1."""
    p = params()
    prog = progress(p)
    polls = progress_polls(prog)
    polls[-1]["done"] = 1
    driver.check_progress(ev, p, prog, bare(p))
    assert_only_fails(ev, "progress_is_visible_through_the_backend")


def test_a_client_that_keeps_reading_a_stale_progress_is_caught(ev: Evidence) -> None:
    """A client caching the first PROGRESS meta it read (as AsyncResult caches ready states):
    never backwards, but behind updates the task had already stored."""
    p = params()
    prog = progress(p)
    polls = progress_polls(prog)
    for poll in polls:
        poll["done"] = polls[0]["done"]
    driver.check_progress(ev, p, prog, bare(p))
    assert_only_fails(ev, "progress_is_visible_through_the_backend")
    assert ev.finding("progress_is_visible_through_the_backend").measured["wrong_in_window"]


def test_a_progress_task_that_ended_in_failure_is_caught(ev: Evidence) -> None:
    p = params()
    prog = progress(p)
    prog["polls"][-1].update(state="FAILURE", done=None)
    driver.check_progress(ev, p, prog, bare(p))
    assert_only_fails(ev, "progress_is_visible_through_the_backend")


def test_polls_that_all_missed_the_window_prove_nothing(ev: Evidence) -> None:
    """A client descheduled for the whole PROGRESS window: it saw PENDING, then SUCCESS. That
    shows nothing about update_state, so it does not hold (the driver measures again first)."""
    p = params()
    prog = progress(p)
    prog["polls"] = [prog["polls"][0], prog["polls"][-1]]
    driver.check_progress(ev, p, prog, bare(p))
    assert_only_fails(ev, "progress_is_visible_through_the_backend")


def test_a_worker_that_still_had_a_result_backend_is_caught(ev: Evidence) -> None:
    """A 'no backend' worker that inherited the run's backend from the environment: the client
    sees its progress and its result."""
    p = params()
    b = bare(p)
    for poll in b["polls"][1:-2]:
        poll["state"] = "PROGRESS"
    for poll in b["polls"][-2:]:
        poll["state"] = "SUCCESS"
    driver.check_progress(ev, p, progress(p), b)
    assert_only_fails(ev, "without_a_backend_the_client_sees_pending")


def test_a_task_that_never_ran_is_not_taken_for_pending(ev: Evidence) -> None:
    """PENDING proves nothing if the task never ran (no task-succeeded event)."""
    p = params()
    b = bare(p)
    b.update(task_succeeded_event=False, started_at=None, succeeded_at=None)
    driver.check_progress(ev, p, progress(p), b)
    assert_only_fails(ev, "without_a_backend_the_client_sees_pending")


def test_polls_that_stopped_before_the_task_finished_are_caught(ev: Evidence) -> None:
    """A client that gave up polling while the task still ran: its PENDING says nothing about
    where the result went."""
    p = params()
    b = bare(p)
    b["polls"] = [poll for poll in b["polls"] if poll["t_end"] < b["succeeded_at"] - 0.5]
    driver.check_progress(ev, p, progress(p), b)
    assert_only_fails(ev, "without_a_backend_the_client_sees_pending")


# --- poll_s against the PROGRESS state's lifetime (validate) ----------------------------------

@pytest.mark.parametrize("overrides", [
    {"poll_s": 5},                                 # the largest poll_s with the default task
    {"steps": 2, "step_s": 0.02},                  # a PROGRESS state of 0.02 s
    {"poll_s": 1, "steps": 3, "step_s": 1.4},      # 2.8 s of PROGRESS, polled every 1 s
    {"secret": "p@ss word"},                       # escaped differently by JSON, repr and logs
    {"secret": "abc"},
])
def test_combinations_that_cannot_be_measured_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(SetupError, match=f"bad param {next(iter(overrides))}" if "secret" in overrides
                       else "bad param poll_s"):
        driver.validate(params(**overrides))


@pytest.mark.parametrize("overrides", [
    {}, {"poll_s": 0.02, "steps": 2, "step_s": 0.06}, {"poll_s": 5, "steps": 16, "step_s": 1},
    {"poll_s": 0.6, "steps": 10, "step_s": 0.2}, {"secret": "A-z_0.9" * 9},
])
def test_combinations_that_can_be_measured_are_accepted(overrides: dict[str, Any]) -> None:
    driver.validate(params(**overrides))


def test_the_quick_defaults_are_accepted() -> None:
    driver.validate(resolve(driver.PARAMS, {}, quick=True))


# --- a secret argument: every place it can be read ---------------------------------------------

SECRET = "hunter2-lab03"
# What measure.secrets read in a healthy run (celery 5.7, flower 2.2): does each place hold the
# secret when it is sent plainly, and when it is hidden behind argsrepr/kwargsrepr?
HEALTHY = {
    "broker_body": (True, True),
    "broker_headers": (True, False),
    "events": (True, False),
    "flower_task_api": (True, False),
    "backend_extended": (True, True),
    "backend_not_extended": (False, False),
    "log_info": (False, False),
    "log_debug": (True, False),
    "inspect": (True, True),
    "flower_worker_api": (True, True),
}
SECRET_IDS = ["argsrepr_is_not_encryption", "broker_headers_carry_kwargsrepr",
              "argsrepr_keeps_the_secret_out_of_events", "flower_task_api_shows_what_events_carry",
              "result_extended_stores_the_real_kwargs",
              "without_result_extended_the_backend_stores_no_arguments", "info_log_shows_no_arguments",
              "debug_log_shows_kwargsrepr", "inspect_shows_the_real_kwargs",
              "flower_worker_api_shows_the_real_kwargs"]


def secrets() -> Row:
    """measure.secrets on a healthy run: per place and mode, whether the place held the call at
    all (present) and whether the tagged password was found anywhere in it (shown)."""
    places: Row = {}
    for place, (plain, hidden) in HEALTHY.items():
        places[place] = {mode: {"present": True, "shown": shown,
                                "excerpt": f"{{'password': '{SECRET}.x-{mode}'}}" if shown else None}
                         for mode, shown in (("plain", plain), ("argsrepr", hidden))}
    places["backend_extended"]["ttl_s"] = {"plain": 86400, "argsrepr": 86400}
    places["backend_not_extended"]["ttl_s"] = {"plain": 86400, "argsrepr": 86400}
    return {"tokens": {}, "ids": {}, "places": places}


def test_every_place_a_secret_can_be_read_holds_every_finding(ev: Evidence) -> None:
    driver.check_secret(ev, secrets())
    assert [f.id for f in ev.findings] == SECRET_IDS
    assert all(f.holds for f in ev.findings)
    table = ev.measurements["secret_places"]
    assert {place: (row["plain"], row["argsrepr"]) for place, row in table.items()} == HEALTHY


# (place, mode, what changes, the finding that must fail): the data a Celery, Flower or
# configuration that behaved otherwise would produce
COUNTER_EXAMPLES = [
    pytest.param("broker_body", "plain", {"shown": False}, id="an encrypting serializer (plain)"),
    pytest.param("broker_body", "argsrepr", {"shown": False},
                 id="an encrypting serializer (argsrepr)"),
    pytest.param("broker_headers", "argsrepr", {"shown": True}, id="kwargsrepr ignored in headers"),
    pytest.param("broker_headers", "plain", {"shown": False},
                 id="a protocol-1 message: no argsrepr headers"),
    pytest.param("events", "argsrepr", {"shown": True}, id="kwargsrepr ignored in task-received"),
    pytest.param("events", "plain", {"shown": False}, id="events that never carry arguments"),
    pytest.param("events", "argsrepr", {"present": False}, id="no events for the hidden call"),
    pytest.param("flower_task_api", "argsrepr", {"shown": True}, id="Flower decoding the body"),
    pytest.param("flower_task_api", "plain", {"present": False}, id="Flower never saw the call"),
    pytest.param("backend_extended", "argsrepr", {"shown": False},
                 id="a backend storing kwargsrepr instead"),
    pytest.param("backend_extended", "plain", {"present": False}, id="no result stored at all"),
    pytest.param("backend_not_extended", "plain", {"shown": True},
                 id="the worker stored extended results anyway"),
    pytest.param("log_info", "plain", {"shown": True}, id="an INFO received line with arguments"),
    pytest.param("log_info", "argsrepr", {"present": False}, id="the call never logged"),
    pytest.param("log_debug", "argsrepr", {"shown": True}, id="the real kwargs inside the DEBUG cut"),
    pytest.param("log_debug", "plain", {"shown": False}, id="a worker not logging at DEBUG"),
    pytest.param("inspect", "argsrepr", {"shown": False}, id="inspect answering with argsrepr"),
    pytest.param("inspect", "plain", {"present": False}, id="the held task not in the reply"),
    pytest.param("flower_worker_api", "argsrepr", {"shown": False},
                 id="Flower asking inspect for safe output"),
]


@pytest.mark.parametrize(("place", "mode", "change"), COUNTER_EXAMPLES)
def test_a_place_that_behaved_otherwise_is_caught(ev: Evidence, place: str, mode: str,
                                                  change: Row) -> None:
    s = secrets()
    s["places"][place][mode].update(change)
    driver.check_secret(ev, s)
    assert_only_fails(ev, driver.SECRET_PLACES[place][0])


def test_result_keys_that_never_expire_are_caught(ev: Evidence) -> None:
    """result_expires=None: the password stays in Redis for good (TTL -1)."""
    s = secrets()
    s["places"]["backend_extended"]["ttl_s"] = {"plain": -1, "argsrepr": -1}
    driver.check_secret(ev, s)
    assert_only_fails(ev, "result_extended_stores_the_real_kwargs")


def test_every_place_has_a_counter_example() -> None:
    assert {c.values[0] for c in COUNTER_EXAMPLES} == set(driver.SECRET_PLACES) == set(HEALTHY)
