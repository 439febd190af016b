"""Lab 10's findings: each claim checked against what the run measured. Pure functions of the
measurements, so a unit test can hand each one a counter-example."""

from __future__ import annotations

from typing import Any

from labkit.evidence import Evidence


# -- part 1: a restart ----------------------------------------------------------------------------
def check_restarts(ev: Evidence, rounds: list[dict[str, Any]]) -> None:
    plain = [r for r in rounds if r["persistence"].get("appendonly") != "yes"]
    aof = [r for r in rounds if r["persistence"].get("appendonly") == "yes"]
    if plain:
        lost = {r["round"]: {k: r["by_kind"][k] for k in ("result", "prefetched", "queued", "eta")}
                for r in plain}
        bound = {r["round"]: r["binding_after_restart"] for r in plain}
        ev.check("a_restart_without_persistence_loses_the_queue_and_the_results",
                 "a Redis with no persistence (appendonly no, no save points) comes back empty: the "
                 "queued tasks, the ones the worker had prefetched, its ETA tasks, the stored "
                 "results and the queue's exchange binding are gone, and the worker does not send "
                 "back what it had reserved",
                 {"rounds": lost, "binding_after_restart": bound},
                 "every stored result, prefetched, queued and ETA task lost, none of the tasks ran; "
                 "no binding until the worker declared its queue again",
                 all(row["lost"] == row["sent"] and (kind == "result" or row["ran_once"] == 0)
                     and row["ran_twice"] == 0 for per in lost.values() for kind, row in per.items())
                 and not any(bound.values()))
    if aof:
        kept = {r["round"]: {"queued": r["by_kind"]["queued"], "result": r["by_kind"]["result"]}
                for r in aof}
        ev.check("aof_keeps_the_queue_and_the_results_even_through_a_sigkill",
                 "with appendonly yes the queue and the results survive the restart, with either "
                 "appendfsync and after a SIGKILL too: once Redis has written its AOF buffer (it "
                 "does before it replies, unless a slow fsync makes everysec postpone the write "
                 "by up to 2 s; the round waits for aof_buffer_length 0 before the kill), a "
                 "killed process loses nothing the kernel holds (a power cut could lose the last "
                 "second with everysec)",
                 {"rounds": kept, "signals": {r["round"]: r["signal"] for r in aof}},
                 "every queued task ran exactly once after the restart; every result kept",
                 all(per["queued"]["ran_once"] == per["queued"]["sent"] and per["result"]["kept"] ==
                     per["result"]["sent"] for per in kept.values()))
        stranded = {r["round"]: {"prefetched": r["by_kind"]["prefetched"], "eta": r["by_kind"]["eta"]}
                    for r in aof}
        ev.check("prefetched_and_eta_tasks_are_stranded_until_the_visibility_timeout",
                 "what the worker had reserved (prefetched and ETA tasks) it forgets when the "
                 "connection drops, and it cannot put it back while Redis is down; with AOF the "
                 "messages are still in kombu's unacked hash after the restart, where they wait for "
                 "the visibility timeout (an hour by default; Lab 04 measures the redelivery), not "
                 "for the worker's reconnect",
                 stranded, "every prefetched and ETA task still unacked and never run in the run",
                 all(row["stranded"] == row["sent"] and row["ran_once"] == row["ran_twice"] == 0
                     for per in stranded.values() for row in per.values()))
    held = {r["round"]: {"running": r["by_kind"]["running"], "released": r["holder_released"]}
            for r in rounds}
    ev.check("the_running_task_finishes_across_the_restart",
             "a task already running (early ack: acknowledged when it started) is not touched by the "
             "broker going away: it runs to its end once, and its result is stored once Redis is back",
             held, "the holder ran once, was released, its result stored",
             bool(rounds) and all(v["running"]["ran_once"] == 1 and v["running"]["kept"] == 0
                                  and v["running"]["ran_twice"] == 0 and v["released"]
                                  for v in held.values())
             and all(r["after"][r["sent"]["running"][0]] == "result" for r in rounds))
    twice = {r["round"]: sum(row["ran_twice"] for row in r["by_kind"].values()) for r in rounds}
    ev.check("a_restart_runs_nothing_twice_with_early_ack",
             "with the default early ack, a restart runs no task twice: what ran was acknowledged; "
             "what was reserved either waits in unacked or is gone",
             twice, "0 tasks ran twice in every round", bool(rounds) and not any(twice.values()))


def check_reconnect(ev: Evidence, rounds: list[dict[str, Any]], first_delay_s: float,
                    grace_s: float) -> None:
    rows = {r["round"]: {"noticed": r["worker_noticed"], "lost_lines": r["log"]["lost"],
                         "retry_delays_s": r["log"]["retry_delays_s"],
                         "first_start_after_up_s": r["first_start_after_up_s"],
                         "sentinel_ran": r["sentinel_ran"]} for r in rounds}

    def ok(row: dict[str, Any]) -> bool:
        delays = row["retry_delays_s"]
        after = row["first_start_after_up_s"]
        return (row["noticed"] and row["lost_lines"] >= 1 and bool(delays) and delays[0] == first_delay_s
                and row["sentinel_ran"] == 1 and after is not None and 0 <= after <= max(delays) + grace_s)
    ev.check("the_worker_reconnects_by_itself_on_its_retry_schedule",
             "the worker logs the lost connection, retries on kombu's schedule (the first retry "
             f"{first_delay_s:g} s after the loss, then 2 s longer each time, up to 30 s; Lab 10 reads "
             "the delays from the log), and consumes again by itself once Redis is back: no restart "
             "of the worker needed",
             rows, f"'{'Connection to broker lost'}' logged; first retry delay {first_delay_s:g} s; a task "
             f"started within the last announced delay + {grace_s:.1f} s of Redis returning",
             bool(rounds) and all(ok(row) for row in rows.values()))


def check_room(ev: Evidence, room: dict[str, Any]) -> None:
    ev.check("a_worker_with_room_in_its_prefetch_dies_when_the_broker_goes",
             "kombu 5.7: a worker whose prefetch has room (its BRPOP in flight) and that holds a "
             "reserved message does not come back when the broker goes away: closing the channel "
             "fails half-way and the consumer gives up with 'Unrecoverable error: AttributeError', "
             "while the workers with a full prefetch (the rounds above) reconnect by themselves; "
             "something outside has to restart it",
             room, "'Unrecoverable error' logged; nothing consumed within "
                   f"{room['window_s']:.1f} s of Redis returning",
             room["unrecoverable"] is not None and not room["sentinel_consumed_within_window"])


# -- part 2: the client while the broker is stopped -----------------------------------------------
def check_client_stopped(ev: Evidence, client: dict[str, Any], runs: dict[str, int]) -> None:
    default, no_retry, keeps = client["default"], client["no_retry"], client["keeps_result"]
    ran = {name: runs.get(client[name]["task_id"], 0) for name in ("default", "no_retry", "keeps_result")}
    ev.check("a_send_to_a_stopped_broker_raises_after_its_retry_policy",
             "apply_async to a stopped broker retries per task_publish_retry_policy (Celery's default: "
             f"{client['policy']}), then raises kombu's OperationalError; with max_retries=0 it "
             "raises at the first refusal; the task is never sent",
             {"default": {k: default[k] for k in ("seconds", "raised", "raised_module")},
              "no_retry": {k: no_retry[k] for k in ("seconds", "raised")},
              "policy_sleeps_s": client["policy_sleeps_s"], "ran": ran},
             f"OperationalError after >= {client['policy_sleeps_s']:g} s of retries; with no retries "
             "sooner; neither ever ran",
             default["finished"] and no_retry["finished"]
             and default["raised"] == no_retry["raised"] == "OperationalError"
             and default["raised_module"].startswith("kombu")
             and default["seconds"] >= client["policy_sleeps_s"] and no_retry["seconds"] < default["seconds"]
             and ran["default"] == ran["no_retry"] == 0)
    ev.check("a_send_that_keeps_its_result_fails_on_the_result_store_first",
             "a task whose result is kept makes the client subscribe to the result store before it "
             "publishes: with the result store on the stopped Redis, apply_async raises the result "
             "store's RuntimeError after that store's own retries (20 a second apart by default, "
             f"compressed here to {client['result_store_policy']}), not the broker's OperationalError",
             {k: keeps[k] for k in ("seconds", "raised", "message")} | {"ran": ran["keeps_result"]},
             "RuntimeError naming the result store; never ran",
             keeps["finished"] and keeps["raised"] == "RuntimeError"
             and "result store" in (keeps["message"] or "") and ran["keeps_result"] == 0)


def check_results_across(ev: Evidence, r: dict[str, Any], grace_s: float) -> None:
    got, state = r["get_while_down"], r["state_while_down"]
    sleeps = r["store_policy_sleeps_s"]
    ev.check("get_with_the_result_store_down_ignores_its_timeout",
             f"AsyncResult.get(timeout={r['get_timeout_s']:g}) with the result store down does "
             "not raise at its timeout: it runs the result store's reconnect policy (Celery's "
             "default: 20 retries a second apart, about 19 s; compressed here to "
             f"{r['store_policy']}) and then raises RuntimeError ('Retry limit exceeded ... The "
             "Celery application must be restarted'); .state raises redis's ConnectionError, with no "
             "reconnect policy",
             {"get": {k: got[k] for k in ("seconds", "raised", "message")},
              "state": {k: state[k] for k in ("seconds", "raised", "raised_module")},
              "policy_sleeps_s": sleeps},
             f"get: RuntimeError naming the result store after >= {sleeps:g} s; state: a redis "
             "ConnectionError",
             got["finished"] and got["raised"] == "RuntimeError"
             and "result store" in (got["message"] or "") and got["seconds"] >= sleeps - 0.01
             and state["finished"] and state["raised"] == "ConnectionError"
             and (state["raised_module"] or "").startswith("redis"))
    waiter, budget = r.get("waiter") or {}, r["waiter_policy_sleeps_s"]
    decided = r["outage_s"] + grace_s < budget
    returned = waiter.get("finished") and waiter.get("raised") is None and waiter.get("value") == "released"
    ev.check("a_get_waiting_across_the_restart_returns_the_result",
             "a client already blocked in get() on a running task (waiting on its subscription) "
             "when Redis restarts reconnects "
             "its result subscription (Celery's default result store policy) and returns the value "
             "the task stores once Redis is back, if the outage is shorter than that policy "
             f"({budget:g} s of sleeps); a longer one ends in its RuntimeError",
             {k: waiter.get(k) for k in ("finished", "seconds", "raised", "value")}
             | {"outage_s": round(r["outage_s"], 2), "waiting_before_the_stop": r.get("waiter_was_waiting")},
             "returned 'released', raised nothing" if decided else
             f"not decided which (a {r['outage_s']:.1f} s outage + {grace_s:.2f} s of grace is not "
             f"inside {budget:g} s): 'released' or the RuntimeError",
             bool(r.get("waiter_was_waiting")) and (bool(returned) if decided else bool(returned or (
                 waiter.get("finished") and waiter.get("raised") == "RuntimeError"))))
    after = r["same_app_after_up"]
    ev.check("the_client_gets_results_again_once_the_store_is_back",
             "the RuntimeError says the application must be restarted, but it need not be: the "
             "same client, once Redis is back, sends a task and gets its result",
             {k: after[k] for k in ("finished", "seconds", "raised", "value")},
             "the task's value (7), nothing raised",
             after["finished"] and after["raised"] is None and after["value"] == 7)


# -- part 3: a hung broker ------------------------------------------------------------------------
def check_hung(ev: Evidence, hung: dict[str, Any]) -> None:
    running, log = hung["running_task"], hung["worker_log_while_hung"]
    ev.check("a_hung_broker_goes_unnoticed_by_the_worker",
             "while Redis is frozen (SIGSTOP) the worker logs nothing about it and needs no restart: "
             "the task already running in the pool runs to its end, and the worker consumes again "
             "once Redis resumes (kombu disables redis-py's socket timeouts; no setting here asks "
             "for one)",
             {"lost_lines_while_hung": log["lost"], "running_task_runs": running["runs"],
              "running_task_ended_while_hung": running["ended_while_hung"],
              "next_task_started_after_resume_s": hung["sentinel_started_after_resume_s"]},
             "no 'Connection to broker lost'; the running task ended during the pause; a task sent "
             "after the resume ran",
             log["lost"] == 0 and running["runs"] == 1 and running["ended_while_hung"]
             and hung["sentinel_started_after_resume_s"] >= 0)
    default = hung["sends"]["default"]
    ev.check("a_send_to_a_hung_broker_waits_for_it",
             "with the default settings apply_async to a hung broker blocks, with no timeout, until "
             "the broker resumes; then it returns and the task runs",
             {k: default[k] for k in ("finished", "raised", "runs")}
             | {"returned_after_resume_s": default["returned_at"] - hung["resumed_at"]
                if default["returned_at"] else None, "pause_s": hung["pause_s"]},
             "no exception; returned only after the resume; ran once",
             default["finished"] and default["raised"] is None and default["returned_at"] is not None
             and default["returned_at"] >= hung["resumed_at"] and default["runs"] == 1)
    timed = hung["sends"]["socket_timeout"]
    ev.check("a_socket_timeout_makes_the_send_give_up",
             f"with broker_transport_options socket_timeout={hung['socket_timeout_s']:g} s a client "
             "that is opening its connection gives up while the broker is still hung (the handshake "
             "times out): an exception the caller can handle, and the task never sent",
             {k: timed[k] for k in ("finished", "seconds", "raised", "runs")}
             | {"pause_s": hung["pause_s"]},
             "raised before the resume; never ran",
             timed["finished"] and timed["raised"] is not None and timed["returned_at"] is not None
             and timed["returned_at"] < hung["resumed_at"] and timed["runs"] == 0)
    warm = hung["sends"]["socket_timeout_warm"]
    ev.check("a_send_that_timed_out_may_still_be_delivered",
             "the same client with its connection already open gives up too, but its command was "
             "already written to the socket: the broker runs it when it resumes, so a task the "
             "caller was told had failed runs anyway, and retrying on that exception would run it "
             "twice",
             {k: warm[k] for k in ("finished", "seconds", "raised", "runs")}
             | {"warm_up_send_ran": hung["warm_up_send"]["runs"]},
             "raised before the resume; ran once after it",
             warm["finished"] and warm["raised"] is not None and warm["returned_at"] is not None
             and warm["returned_at"] < hung["resumed_at"] and warm["runs"] == 1)


# -- part 2: what lets a worker notice a hung broker ---------------------------------------------
# How much later than kombu's rules the detecting worker may log the loss: a second, plus how
# long the default worker took to start a task right after the resume (the loops' own pace at
# that moment, measured in the same part; the workers' start-up says little about it).
DETECT_GRACE_S = 1.0


def check_detection(ev: Evidence, hung: dict[str, Any]) -> None:
    stack, d = hung["default_worker_stack"], hung["detecting"]
    ev.check("a_hung_broker_blocks_the_default_workers_event_loop",
             "while Redis is hung, the lab's default worker (task events on, as in every lab) has "
             "its main thread, its event loop, in a synchronous read from the broker's socket, "
             "inside the publish of an event: the heartbeat it sends every 2 s, or task events it "
             "flushes on its loop's tick. While the loop is blocked no health check runs, so "
             "health_check_interval alone notices nothing",
             {k: stack.get(k) for k in ("captured", "innermost", "in_event_publish", "called_from")},
             "the stack (SIGUSR1) ends in a socket recv inside celery/events/dispatcher.py",
             stack["captured"] and stack["socket_read"] and stack["in_event_publish"])
    _, _, latest = d["bounds_s"].values()
    grace = DETECT_GRACE_S + max(0.0, hung["sentinel_started_after_resume_s"])
    dropped, lost = d["dropped_after_s"], d["lost_after_s"]
    # a loss seen while hung is judged; none seen only if the hang left the time for one
    decided = (lost is not None and lost < hung["pause_s"]) or hung["pause_s"] >= latest + grace
    # not before the hang: a BRPOP's reply is overdue only once Redis stops answering (a bound
    # tighter than that would lean on how promptly Redis answered the BRPOP before it)
    never_early = dropped is None or dropped > 0
    ev.check("health_checks_and_a_socket_timeout_notice_a_hung_broker_without_heartbeats",
             f"a worker with broker_transport_options {d['settings']} and nothing published from "
             "its loop (--without-heartbeat, no task events) drops its stale connection once the "
             "BRPOP's reply is overdue, logs 'Connection to broker lost' while Redis is still "
             "hung, and consumes again after the resume",
             {k: d[k] for k in ("dropped_after_s", "lost_after_s", "cannot_connect_lines",
                                "reconnected_after_resume_s", "next_task_started_after_resume_s")}
             | {"pause_s": hung["pause_s"], "grace_s": round(grace, 2)},
             f"dropped only after the hang began, the loss logged by {latest:g} s + "
             f"{grace:.2f} s of grace, a task sent after the resume ran" if decided else
             f"not decided whether it notices while hung (it did not, and a {hung['pause_s']:g} s "
             f"hang is shorter than {latest:g} s + {grace:.2f} s of grace): nothing dropped before "
             "the hang, a task sent after the resume ran",
             never_early and d["next_task_started_after_resume_s"] >= 0
             and (not decided or (dropped is not None and lost is not None
                                  and lost <= latest + grace)))


# -- part 4: a task running under acks_late when the connection drops ----------------------------
def check_late(ev: Evidence, late: dict[str, Any]) -> None:
    cases, vt = late["cases"], late["visibility_timeout"]
    after, during, cancel = cases["keep-after"], cases["keep-during"], cases["cancel"]
    # a task that outlived its visibility timeout would come back for that reason alone (Lab 02)
    in_time = (after["first_finished_at"] is not None
               and after["first_finished_at"] - after["delivered_at"] < vt)
    ev.check("acks_late_task_outliving_the_outage_runs_once",
             "with worker_cancel_long_running_tasks_on_connection_loss False (Celery 5's default), "
             "an acks_late task still running when Redis comes back finishes, is acknowledged on "
             "the new connection and stores its result: it runs once",
             {k: after[k] for k in ("executions", "finished", "still_unacked", "state",
                                    "reran_after_delivery_s")} | {"visibility_timeout": vt},
             "ran once, finished, SUCCESS, not left unacked" if in_time else
             "not decided here: the task ran past its visibility timeout",
             (after["executions"] == 1 and after["finished"] == 1 and after["state"] == "SUCCESS"
              and not after["still_unacked"]) if in_time else True)
    ev.check("acks_late_task_ending_during_the_outage_runs_once_and_stores_a_failure",
             "the same task ending while Redis is down ran to its end once, but its result could "
             "not be stored (the result store is the Redis that went away): once the worker is "
             "back it records the task as FAILURE with the connection error and acknowledges the "
             "message, so nothing runs it again and the caller sees a failure for work that was "
             "done",
             {k: during[k] for k in ("executions", "finished", "still_unacked", "state",
                                     "stored_error", "reran_after_delivery_s")},
             "ran once to its end; state FAILURE; not redelivered",
             during["executions"] == 1 and during["finished"] == 1 and during["state"] == "FAILURE"
             and not during["still_unacked"] and during["reran_after_delivery_s"] is None)
    ev.check("cancel_on_connection_loss_terminates_the_task_and_it_is_not_redelivered",
             "with worker_cancel_long_running_tasks_on_connection_loss True the worker terminates "
             "the running acks_late task when the connection drops (its log: 'Terminating it "
             "instead'); Celery's own warning says such tasks 'are automatically redelivered', "
             "but on Redis the message is acknowledged once the worker is back and the task is "
             "REVOKED: it never finishes and never runs again",
             {k: cancel[k] for k in ("executions", "finished", "still_unacked", "state",
                                     "reran_after_delivery_s", "log")}
             | {"waited_for_a_redelivery_s": round(late["settled_at"] - cancel["delivered_at"], 2)},
             "terminated (never finished), not redelivered within the visibility timeout",
             cancel["executions"] == 1 and cancel["finished"] == 0
             and cancel["log"]["terminating"] >= 1 and cancel["reran_after_delivery_s"] is None
             and not cancel["still_unacked"]
             and late["settled_at"] - cancel["delivered_at"] >= vt)  # a redelivery had its time
