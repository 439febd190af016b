"""Lab 10's check functions fed what a real run measured (shaped as restart.py, publish.py and
hung.py return it) and, one property at a time, what a Celery, kombu or Redis that behaved
otherwise would show. No Redis, no worker. Also: validate's refusals, the log parser, the
publish policy's arithmetic and the outcome summary."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.params import resolve
from labs.lab10_broker_outage import checks, driver, hung, lessons, publish, restart
from tests.unit.checks import assert_only_fails

T0 = 1_796_300_000.0
SIZES = {"result": 2, "running": 1, "prefetched": 2, "queued": 4, "eta": 2}


def evidence(tmp_path) -> Evidence:
    return Evidence(tmp_path)


def a_round(name: str, aof: bool) -> dict[str, Any]:
    """A round as a real run measured it: with AOF, queued tasks ran once, reserved ones wait in
    unacked; without, everything the broker held is gone."""
    sent = {k: [f"{name}-{k}-{i}" for i in range(n)] for k, n in SIZES.items()}
    after, counts = {}, {}
    for kind, ids in sent.items():
        for i in ids:
            if kind == "result":  # ran before the restart; its key kept only with AOF
                after[i], counts[i] = ("result" if aof else "absent"), 1
            elif kind == "running":
                after[i], counts[i] = "result", 1
            elif kind == "queued":
                after[i], counts[i] = ("result", 1) if aof else ("absent", 0)
            else:
                after[i], counts[i] = ("unacked", 0) if aof else ("absent", 0)
    persistence = {"appendonly": "yes", "appendfsync": "everysec"} if aof else {"appendonly": "no"}
    return {"round": name, "persistence": persistence, "signal": "SIGKILL" if aof else "SIGTERM",
            "sent": sent, "after": after, "executions": counts,
            "by_kind": restart.summarise(sent, after, counts),
            "holder_released": True, "worker_noticed": True, "down_at": T0, "up_at": T0 + 0.1,
            "binding_after_restart": aof,
            "outage_s": 0.1, "sentinel_ran": 1, "first_start_after_up_s": 1.95,
            "log": {"lost": 1, "cannot_connect": 1, "retry_delays_s": [2.0], "connected_at": T0 + 2.0}}


def rounds() -> list[dict[str, Any]]:
    return [a_round("none-SIGTERM", False), a_round("everysec-SIGKILL", True)]


STRANDED = "prefetched_and_eta_tasks_are_stranded_until_the_visibility_timeout"


def rerun(rnd: dict[str, Any]) -> None:
    rnd["by_kind"] = restart.summarise(rnd["sent"], rnd["after"], rnd["executions"])


# --- part 1: restarts ---------------------------------------------------------------------------

def test_a_real_run_holds(tmp_path):
    ev = evidence(tmp_path)
    checks.check_restarts(ev, rounds())
    checks.check_reconnect(ev, rounds(), 2.0, 2.0)
    assert [f.holds for f in ev.findings] == [True] * 6


@pytest.mark.parametrize("change", ["a_queued_task_survived", "a_result_survived", "an_eta_task_ran",
                                    "the_binding_survived"])
def test_a_plain_redis_that_kept_something_fails(tmp_path, change):
    rs = rounds()
    plain = rs[0]
    if change == "the_binding_survived":
        plain["binding_after_restart"] = True
    elif change == "a_queued_task_survived":
        i = plain["sent"]["queued"][0]
        plain["after"][i], plain["executions"][i] = "result", 1
    elif change == "a_result_survived":
        plain["after"][plain["sent"]["result"][0]] = "result"
    else:
        i = plain["sent"]["eta"][0]
        plain["after"][i], plain["executions"][i] = "result", 1
    rerun(plain)
    ev = evidence(tmp_path)
    checks.check_restarts(ev, rs)
    assert_only_fails(ev, "a_restart_without_persistence_loses_the_queue_and_the_results")


@pytest.mark.parametrize(("change", "finding"), [
    ("aof_lost_a_queued_task", "aof_keeps_the_queue_and_the_results_even_through_a_sigkill"),
    ("aof_lost_a_result", "aof_keeps_the_queue_and_the_results_even_through_a_sigkill"),
    ("reconnect_restored_the_prefetched", STRANDED),
    ("an_eta_task_gone", STRANDED),
    ("the_holder_never_finished", "the_running_task_finishes_across_the_restart"),
    ("the_holders_result_lost", "the_running_task_finishes_across_the_restart"),
])
def test_a_restart_that_behaved_otherwise_fails(tmp_path, change, finding):
    rs = rounds()
    aof = rs[1]
    if change == "aof_lost_a_queued_task":
        i = aof["sent"]["queued"][0]
        aof["after"][i], aof["executions"][i] = "absent", 0
    elif change == "aof_lost_a_result":
        aof["after"][aof["sent"]["result"][0]] = "absent"
    elif change == "reconnect_restored_the_prefetched":
        for i in aof["sent"]["prefetched"]:
            aof["after"][i], aof["executions"][i] = "result", 1
    elif change == "an_eta_task_gone":
        aof["after"][aof["sent"]["eta"][0]] = "absent"
    elif change == "the_holder_never_finished":
        aof["holder_released"] = False
    else:
        aof["after"][aof["sent"]["running"][0]] = "absent"
    rerun(aof)
    ev = evidence(tmp_path)
    checks.check_restarts(ev, rs)
    assert_only_fails(ev, finding)


def test_a_task_run_twice_fails_the_early_ack_claim(tmp_path):
    rs = rounds()
    aof = rs[1]
    i = aof["sent"]["queued"][0]
    aof["executions"][i] = 2
    rerun(aof)
    ev = evidence(tmp_path)
    checks.check_restarts(ev, rs)
    assert not ev.finding("a_restart_runs_nothing_twice_with_early_ack").holds


@pytest.mark.parametrize("change", ["not_noticed", "no_lost_line", "another_first_delay", "too_late",
                                    "sentinel_never_ran", "never_consumed"])
def test_a_reconnect_off_its_schedule_fails(tmp_path, change):
    rs = rounds()
    r = rs[1]
    if change == "not_noticed":
        r["worker_noticed"] = False
    elif change == "no_lost_line":
        r["log"]["lost"] = 0
    elif change == "another_first_delay":
        r["log"]["retry_delays_s"] = [1.0]
    elif change == "too_late":
        r["first_start_after_up_s"] = 2.0 + 2.0 + 0.5
    elif change == "sentinel_never_ran":
        r["sentinel_ran"] = 0
    else:
        r["first_start_after_up_s"] = None
    ev = evidence(tmp_path)
    checks.check_reconnect(ev, rs, 2.0, 2.0)
    assert_only_fails(ev, "the_worker_reconnects_by_itself_on_its_retry_schedule")


def test_summarise_sorts_each_task_into_one_outcome():
    sent = {"queued": ["a", "b", "c", "d"], "result": ["r"]}
    after = {"a": "result", "b": "queued", "c": "absent", "d": "result", "r": "absent"}
    counts = {"a": 1, "d": 2, "r": 1}
    out = restart.summarise(sent, after, counts)
    assert out["queued"] == {"sent": 4, "ran_once": 1, "ran_twice": 1, "stranded": 1, "lost": 1, "kept": 0}
    assert out["result"] == {"sent": 1, "ran_once": 1, "ran_twice": 0, "stranded": 0, "lost": 1, "kept": 0}


def test_the_log_stamp_parses_to_the_millisecond():
    m = restart.STAMP.match("[2026-12-03 14:05:56,123: WARNING/MainProcess] consumer: Connection to "
                            "broker lost")
    assert m and m.group(2) == "123"
    line = "Trying again in 2.00 seconds... (1/100)"
    assert float(restart.RETRY.search(line).group(1)) == 2.0


# --- part 2: the client while the broker is stopped ----------------------------------------------

def stopped() -> dict[str, Any]:
    def send(seconds: float, raised: str, module: str, message: str, task_id: str) -> dict[str, Any]:
        return {"task_id": task_id, "finished": True, "seconds": seconds, "returned_at": T0 + seconds,
                "raised": raised, "raised_module": module, "message": message}
    return {"policy": publish.CELERY_PUBLISH_POLICY, "policy_sleeps_s": 0.6,
            "result_store_policy": publish.RESULT_STORE_POLICY,
            "default": send(0.616, "OperationalError", "kombu.exceptions", "Error 111", "d"),
            "no_retry": send(0.007, "OperationalError", "kombu.exceptions", "Error 111", "n"),
            "keeps_result": send(0.21, "RuntimeError", "builtins",
                                 "Retry limit exceeded while trying to reconnect to the Celery result "
                                 "store backend. The Celery application must be restarted.", "k")}


def test_the_measured_client_holds(tmp_path):
    ev = evidence(tmp_path)
    checks.check_client_stopped(ev, stopped(), {})
    assert all(f.holds for f in ev.findings)


@pytest.mark.parametrize(("change", "finding"), [
    ("no_retries_happened", "a_send_to_a_stopped_broker_raises_after_its_retry_policy"),
    ("returned", "a_send_to_a_stopped_broker_raises_after_its_retry_policy"),
    ("no_retry_as_slow", "a_send_to_a_stopped_broker_raises_after_its_retry_policy"),
    ("it_was_sent_after_all", "a_send_to_a_stopped_broker_raises_after_its_retry_policy"),
    ("broker_error_first", "a_send_that_keeps_its_result_fails_on_the_result_store_first"),
    ("kept_result_sent", "a_send_that_keeps_its_result_fails_on_the_result_store_first"),
])
def test_a_client_that_behaved_otherwise_fails(tmp_path, change, finding):
    client, runs = stopped(), {}
    if change == "no_retries_happened":
        client["default"]["seconds"] = 0.01
    elif change == "returned":
        client["default"].update(raised=None, raised_module=None)
    elif change == "no_retry_as_slow":
        client["no_retry"]["seconds"] = 0.7
    elif change == "it_was_sent_after_all":
        runs = {"d": 1}
    elif change == "broker_error_first":
        client["keeps_result"].update(raised="OperationalError", message="Error 111 connecting")
    else:
        runs = {"k": 1}
    ev = evidence(tmp_path)
    checks.check_client_stopped(ev, client, runs)
    assert_only_fails(ev, finding)


def test_the_policy_sleeps_are_kombus_arithmetic():
    assert publish.publish_policy_sleeps({"max_retries": 3, "interval_start": 0, "interval_step": 0.2,
                                          "interval_max": 1}) == pytest.approx(0.6)
    assert publish.publish_policy_sleeps({"max_retries": 4, "interval_start": 1, "interval_step": 1,
                                          "interval_max": 2}) == pytest.approx(1 + 2 + 2 + 2)
    assert publish.publish_policy_sleeps({"max_retries": 0}) == 0


# --- part 3: a hung broker -----------------------------------------------------------------------

def hung_() -> dict[str, Any]:
    paused, resumed = T0, T0 + 5.0
    return {"pause_s": 5.0, "paused_at": paused, "resumed_at": resumed, "socket_timeout_s": 0.2,
            "running_task": {"id": "x", "runs": 1, "ended_at": paused + 2.5, "ended_while_hung": True},
            "worker_log_while_hung": {"lines": 0, "lost": 0},
            "sends": {"default": {"task_id": "d", "finished": True, "seconds": 5.01,
                                  "returned_at": resumed + 0.01, "raised": None, "runs": 1},
                      "socket_timeout": {"task_id": "t", "finished": True, "seconds": 1.42,
                                         "returned_at": paused + 1.42, "raised": "OperationalError",
                                         "runs": 0},
                      "socket_timeout_warm": {"task_id": "w", "finished": True, "seconds": 1.62,
                                              "returned_at": paused + 1.62, "raised": "OperationalError",
                                              "runs": 1}},
            "warm_up_send": {"task_id": "u", "finished": True, "raised": None, "runs": 1},
            "sentinel_started_after_resume_s": 0.18}


def test_the_measured_hung_broker_holds(tmp_path):
    ev = evidence(tmp_path)
    checks.check_hung(ev, hung_())
    assert all(f.holds for f in ev.findings)


@pytest.mark.parametrize(("change", "finding"), [
    ("worker_noticed", "a_hung_broker_goes_unnoticed_by_the_worker"),
    ("running_task_stalled", "a_hung_broker_goes_unnoticed_by_the_worker"),
    ("default_raised", "a_send_to_a_hung_broker_waits_for_it"),
    ("default_returned_early", "a_send_to_a_hung_broker_waits_for_it"),
    ("default_never_ran", "a_send_to_a_hung_broker_waits_for_it"),
    ("timeout_waited", "a_socket_timeout_makes_the_send_give_up"),
    ("timeout_sent_anyway", "a_socket_timeout_makes_the_send_give_up"),
    ("warm_never_delivered", "a_send_that_timed_out_may_still_be_delivered"),
    ("warm_waited", "a_send_that_timed_out_may_still_be_delivered"),
])
def test_a_hung_broker_that_behaved_otherwise_fails(tmp_path, change, finding):
    h = hung_()
    if change == "worker_noticed":
        h["worker_log_while_hung"]["lost"] = 1
    elif change == "running_task_stalled":
        h["running_task"]["ended_while_hung"] = False
    elif change == "default_raised":
        h["sends"]["default"]["raised"] = "TimeoutError"
    elif change == "default_returned_early":
        h["sends"]["default"]["returned_at"] = h["paused_at"] + 1
    elif change == "default_never_ran":
        h["sends"]["default"]["runs"] = 0
    elif change == "timeout_waited":
        h["sends"]["socket_timeout"].update(raised=None, returned_at=h["resumed_at"] + 0.01)
    elif change == "timeout_sent_anyway":
        h["sends"]["socket_timeout"]["runs"] = 1
    elif change == "warm_never_delivered":
        h["sends"]["socket_timeout_warm"]["runs"] = 0
    else:
        h["sends"]["socket_timeout_warm"].update(raised=None, returned_at=h["resumed_at"] + 0.01)
    ev = evidence(tmp_path)
    checks.check_hung(ev, copy.deepcopy(h))
    assert_only_fails(ev, finding)


# --- parameters ----------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [["rounds=none-SIGHUP"], ["rounds=none-SIGTERM,none-SIGTERM"]])
def test_bad_rounds_are_refused(overrides):
    with pytest.raises(SetupError, match="bad param rounds"):
        driver.validate(resolve(driver.PARAMS, overrides, quick=False))


def test_a_pause_too_short_for_the_socket_timeout_client_is_refused(monkeypatch):
    monkeypatch.setattr(publish, "HUNG_SOCKET_TIMEOUT_S", 1.0)  # 4 attempts x 2 s + 0.6 s
    with pytest.raises(SetupError, match="bad param pause_s"):
        driver.validate(resolve(driver.PARAMS, [], quick=False))


def test_every_legal_pause_leaves_room_for_the_socket_timeout_client():
    driver.validate(resolve(driver.PARAMS, [f"pause_s={driver.PARAMS['pause_s'].min}"], quick=False))
    assert driver.PARAMS["pause_s"].min >= 2 * publish.hung_send_bound_s()


# --- part 1b: a worker with room in its prefetch ------------------------------------------------

def room_() -> dict[str, Any]:
    return {"prefetch_multiplier": 2, "window_s": 5.4, "down_at": T0, "up_at": T0 + 0.07,
            "holder_runs": 1, "sentinel_consumed_within_window": False,
            "unrecoverable": "Unrecoverable error: AttributeError(\"'NoneType' object has no "
                             "attribute 'hostname'\")", "reconnected": False, "process_alive": False}


def test_the_measured_worker_death_holds(tmp_path):
    ev = evidence(tmp_path)
    checks.check_room(ev, room_())
    assert ev.findings[0].holds


@pytest.mark.parametrize("change", ["a_fixed_kombu_reconnects", "no_error_but_stuck"])
def test_a_worker_that_survives_the_loss_fails_the_kombu_bug_claim(tmp_path, change):
    room = room_()
    if change == "a_fixed_kombu_reconnects":
        room.update(unrecoverable=None, sentinel_consumed_within_window=True, reconnected=True)
    else:
        room["unrecoverable"] = None
    ev = evidence(tmp_path)
    checks.check_room(ev, room)
    assert_only_fails(ev, "a_worker_with_room_in_its_prefetch_dies_when_the_broker_goes")


def test_an_error_logged_but_a_worker_that_consumed_fails_too(tmp_path):
    room = room_()
    room["sentinel_consumed_within_window"] = True
    ev = evidence(tmp_path)
    checks.check_room(ev, room)
    assert not ev.findings[0].holds


# -- part 4: acks_late tasks when the connection drops (values from a real run) ------------------
def late_() -> dict[str, Any]:
    def case(executions: int, finished: int, state: str, terminating: int = 0) -> dict[str, Any]:
        return {"executions": executions, "finished": finished, "still_unacked": False,
                "state": state, "stored_error": None, "reran_after_delivery_s": None,
                "first_finished_at": 100.24 if finished else None, "delivered_at": 100.0,
                "log": {"terminating": terminating, "worker_lost": 0}}
    return {"visibility_timeout": 4.0, "sweep_s": 0.25, "settled_at": 108.8,
            "cases": {"keep-after": case(1, 1, "SUCCESS"), "keep-during": case(1, 1, "FAILURE"),
                      "cancel": case(1, 0, "REVOKED", terminating=1)}}


def test_the_measured_acks_late_part_holds(tmp_path):
    ev = evidence(tmp_path)
    checks.check_late(ev, late_())
    assert all(f.holds for f in ev.findings) and len(ev.findings) == 3


@pytest.mark.parametrize(("case", "change", "finding"), [
    ("keep-after", {"executions": 2}, "acks_late_task_outliving_the_outage_runs_once"),
    ("keep-after", {"state": "FAILURE"}, "acks_late_task_outliving_the_outage_runs_once"),
    ("keep-after", {"still_unacked": True}, "acks_late_task_outliving_the_outage_runs_once"),
    ("keep-during", {"state": "SUCCESS"},
     "acks_late_task_ending_during_the_outage_runs_once_and_stores_a_failure"),
    ("keep-during", {"executions": 2, "reran_after_delivery_s": 4.3},
     "acks_late_task_ending_during_the_outage_runs_once_and_stores_a_failure"),
    # were the message redelivered, as Celery's warning says, the task would run again
    ("cancel", {"executions": 2, "reran_after_delivery_s": 4.3},
     "cancel_on_connection_loss_terminates_the_task_and_it_is_not_redelivered"),
    ("cancel", {"still_unacked": True},
     "cancel_on_connection_loss_terminates_the_task_and_it_is_not_redelivered"),
    ("cancel", {"finished": 1, "log": {"terminating": 0, "worker_lost": 0}},
     "cancel_on_connection_loss_terminates_the_task_and_it_is_not_redelivered"),
])
def test_an_acks_late_part_that_behaved_otherwise_fails(tmp_path, case, change, finding):
    late = late_()
    late["cases"][case].update(change)
    ev = evidence(tmp_path)
    checks.check_late(ev, late)
    assert_only_fails(ev, finding)


def test_no_redelivery_is_claimed_without_the_time_to_see_one(tmp_path):
    late = late_()
    late["settled_at"] = 102.0  # 2 s after the delivery, inside a 4 s visibility timeout
    ev = evidence(tmp_path)
    checks.check_late(ev, late)
    assert_only_fails(ev, "cancel_on_connection_loss_terminates_the_task_and_it_is_not_redelivered")


def test_a_task_that_ran_past_its_visibility_timeout_is_not_judged_on_running_once(tmp_path):
    late = late_()
    late["cases"]["keep-after"].update(first_finished_at=104.5, executions=2)  # came back for that
    ev = evidence(tmp_path)
    checks.check_late(ev, late)
    finding = ev.finding("acks_late_task_outliving_the_outage_runs_once")
    assert finding.holds and "not decided" in finding.expected


# --- part 2: what lets a worker notice a hung broker ---------------------------------------------

CRY = Path(__file__).parent / "data" / "lab10_cry_heartbeat.txt"  # a real run's SIGUSR1 output


def detection_() -> dict[str, Any]:
    """The hung part's detection data as a real run measured it (pause 8 s)."""
    h = hung_()
    h["pause_s"] = 8.0
    innermost = "socket.py:_read_from_socket: data = sock.recv(socket_read_size)"
    h["default_worker_stack"] = {"captured": True, "socket_read": True, "depth": 45,
                                 "innermost": innermost, "in_event_publish": True,
                                 "called_from": "celery/worker/heartbeat.py:_send"}
    h["detecting"] = {"settings": hung.DETECTION, "brpop_timeout_s": 1.0,
                      "bounds_s": {"soonest_drop": 1.0, "latest_drop": 3.0, "latest_lost": 4.0},
                      "dropped_after_s": 2.525, "lost_after_s": 3.528, "cannot_connect_lines": 1,
                      "reconnected_after_resume_s": 0.016, "next_task_started_after_resume_s": 0.239}
    return h




def test_the_real_cry_output_reads_as_a_loop_blocked_in_the_heartbeat():
    blocked = hung.where_blocked(hung.parse_cry(CRY.read_text().splitlines()))
    assert blocked["captured"] and blocked["socket_read"] and blocked["in_event_publish"]
    assert blocked["called_from"] == "celery/worker/heartbeat.py:_send"
    assert blocked["innermost"].startswith("socket.py:_read_from_socket")


SITE = "/venv/site-packages/"
RECV = ("socket.py", "_read_from_socket", "data = sock.recv(socket_read_size)")


def test_a_loop_blocked_flushing_task_events_on_its_tick_is_blocked_too():
    """Another real run: the running task's events, flushed on the hub's tick, not a timer."""
    frames = [(SITE + "kombu/asynchronous/hub.py", "create_loop", "cb()"),
              (SITE + "vine/promises.py", "__call__", "retval = fun(*final_args, **final_kwargs)"),
              (SITE + "celery/worker/consumer/consumer.py", "_flush_events", "self.event_dispatcher.flush()"),
              (SITE + "celery/events/dispatcher.py", "_publish", "producer.publish("),
              (SITE + "redis/_parsers/" + RECV[0], *RECV[1:])]
    blocked = hung.where_blocked(frames)
    assert blocked["socket_read"] and blocked["in_event_publish"]
    assert blocked["called_from"] == "celery/worker/consumer/consumer.py:_flush_events"


def test_a_loop_waiting_in_its_poll_is_not_blocked_on_a_socket():
    """The same worker, had its loop been alive: its stack ends in the hub's poll."""
    frames = [(SITE + "kombu/asynchronous/hub.py", "create_loop", "events = poll(poll_timeout)"),
              (SITE + "kombu/utils/eventio.py", "poll", "return self._epoll.poll(timeout)")]
    blocked = hung.where_blocked(frames)
    assert not blocked["socket_read"] and not blocked["in_event_publish"]
    assert not hung.where_blocked([])["captured"]


def test_the_measured_detection_holds(tmp_path):
    ev = evidence(tmp_path)
    checks.check_detection(ev, detection_())
    assert all(f.holds for f in ev.findings) and len(ev.findings) == 2


BLOCKED = "a_hung_broker_blocks_the_default_workers_event_loop"
NOTICED = "health_checks_and_a_socket_timeout_notice_a_hung_broker_without_heartbeats"


@pytest.mark.parametrize(("change", "finding"), [
    ("no_dump", BLOCKED), ("loop_alive", BLOCKED), ("not_publishing", BLOCKED),
    ("dropped_too_soon", NOTICED), ("never_noticed", NOTICED), ("noticed_too_late", NOTICED),
    ("never_consumed_again", NOTICED),
])
def test_a_detection_that_behaved_otherwise_fails(tmp_path, change, finding):
    h = detection_()
    stack, d = h["default_worker_stack"], h["detecting"]
    if change == "no_dump":
        stack.update(captured=False, socket_read=False, in_event_publish=False)
    elif change == "loop_alive":
        stack["socket_read"] = False
    elif change == "not_publishing":  # blocked reading, but in something other than an event
        stack["in_event_publish"] = False
    elif change == "dropped_too_soon":  # a kombu that dropped a live connection, before the hang
        d["dropped_after_s"] = -0.4
    elif change == "never_noticed":  # the checks never ran: the loop blocked as the default's
        d.update(dropped_after_s=None, lost_after_s=None)
    elif change == "noticed_too_late":
        d["lost_after_s"] = 7.5
    else:
        d["next_task_started_after_resume_s"] = -1.0
    ev = evidence(tmp_path)
    checks.check_detection(ev, h)
    assert_only_fails(ev, finding)


def test_a_hang_too_short_to_notice_in_is_not_judged_on_noticing(tmp_path):
    """pause_s 5 with 1.18 s of grace: the loss may come after the resume; only "nothing dropped before
    the hang" and the consumption after the resume are judged."""
    h = detection_()
    h["pause_s"] = 5.0
    h["detecting"].update(dropped_after_s=None, lost_after_s=None)
    ev = evidence(tmp_path)
    checks.check_detection(ev, h)
    finding = ev.finding(NOTICED)
    assert finding.holds and "not decided" in finding.expected


def test_a_loss_seen_in_a_short_hang_is_judged(tmp_path):
    """pause_s 5: not long enough to require the loss, but the loss came at 3.5 s, inside it:
    judged, and it holds; the same loss at 4.9 s with no drop logged does not."""
    h = detection_()
    h["pause_s"] = 5.0
    ev = evidence(tmp_path)
    checks.check_detection(ev, h)
    assert ev.finding(NOTICED).holds and "not decided" not in ev.finding(NOTICED).expected
    h["detecting"]["dropped_after_s"] = None
    ev = evidence(tmp_path)
    checks.check_detection(ev, h)
    assert_only_fails(ev, NOTICED)


def test_the_detection_bounds_follow_kombus_rules():
    soonest, latest_drop, latest_lost = hung.detection_bounds_s()
    h = hung.DETECTION["health_check_interval"]
    assert soonest == h and latest_drop == hung.BRPOP_TIMEOUT_S + 2 * h
    assert latest_lost == latest_drop + hung.DETECTION["socket_timeout"]


# --- part 5: AsyncResult.get() when the result store is the Redis that went away ------------------

def results_() -> dict[str, Any]:
    """publish.ResultsAcrossRestart's report from a real run."""
    msg = ("Retry limit exceeded while trying to reconnect to the Celery result store backend. "
           "The Celery application must be restarted.")
    return {"waiter_policy_sleeps_s": 19.0, "store_policy": publish.GET_STORE_POLICY,
            "store_policy_sleeps_s": 2.0, "get_timeout_s": 0.5, "outage_s": 3.2,
            "waiter_was_waiting": True,
            "get_while_down": {"finished": True, "seconds": 2.0077, "raised": "RuntimeError",
                               "raised_module": "builtins", "message": msg},
            "state_while_down": {"finished": True, "seconds": 0.0029, "raised": "ConnectionError",
                                 "raised_module": "redis.exceptions", "message": "Error 111"},
            "same_app_after_up": {"finished": True, "seconds": 0.0135, "raised": None, "value": 7},
            "waiter": {"finished": True, "seconds": 4.05, "raised": None, "value": "released"}}


def test_the_measured_results_part_holds(tmp_path):
    ev = evidence(tmp_path)
    checks.check_results_across(ev, results_(), 2.1)
    assert all(f.holds for f in ev.findings) and len(ev.findings) == 3


GET = "get_with_the_result_store_down_ignores_its_timeout"
WAITER = "a_get_waiting_across_the_restart_returns_the_result"
AGAIN = "the_client_gets_results_again_once_the_store_is_back"


@pytest.mark.parametrize(("change", "finding"), [
    ("get_honours_its_timeout", GET), ("get_gave_up_before_its_policy", GET),
    ("state_blocks", GET), ("waiter_died_in_a_short_outage", WAITER), ("waiter_hung", WAITER),
    ("waiter_returned_before_the_stop", WAITER),
    ("client_broken_for_good", AGAIN),
])
def test_a_result_store_that_behaved_otherwise_fails(tmp_path, change, finding):
    r = results_()
    if change == "get_honours_its_timeout":  # celery.exceptions.TimeoutError at 0.5 s
        r["get_while_down"].update(seconds=0.5, raised="TimeoutError", message="The operation timed out.")
    elif change == "get_gave_up_before_its_policy":
        r["get_while_down"]["seconds"] = 1.2
    elif change == "state_blocks":
        r["state_while_down"].update(finished=False, seconds=None, raised=None)
    elif change == "waiter_died_in_a_short_outage":
        r["waiter"].update(raised="RuntimeError", value=None)
    elif change == "waiter_hung":
        r["waiter"].update(finished=False, seconds=None, value=None)
    elif change == "waiter_returned_before_the_stop":
        r["waiter_was_waiting"] = False
    else:
        r["same_app_after_up"].update(raised="RuntimeError", value=None)
    ev = evidence(tmp_path)
    checks.check_results_across(ev, r, 2.1)
    assert_only_fails(ev, finding)


def test_an_outage_longer_than_the_waiters_policy_is_not_judged_on_returning(tmp_path):
    r = results_()
    r["outage_s"] = 18.0
    r["waiter"].update(raised="RuntimeError", value=None, seconds=19.6)
    ev = evidence(tmp_path)
    checks.check_results_across(ev, r, 2.1)
    assert ev.finding(WAITER).holds and "not decided" in ev.finding(WAITER).expected


# --- part 6: the teaching table ------------------------------------------------------------------

def taught(**changes: Any) -> dict[tuple[str, str], dict[str, Any]]:
    parts = {"rounds": rounds(), "room": room_(), "stopped": stopped(),
             "runs": {"d": 0, "n": 0, "k": 0}, "results": results_(), "hung": detection_(),
             "late": late_()}
    parts.update(changes)
    table = lessons.lessons(parts["rounds"], parts["room"], parts["stopped"], parts["runs"],
                            parts["results"], parts["hung"], parts["late"])
    return {(r["part"], r["configuration"]): r for r in table}


def test_the_teaching_table_reads_its_counts_from_the_run():
    table = taught()
    plain, aof = table[("restart", "none-SIGTERM")], table[("restart", "everysec-SIGKILL")]
    assert plain["lost"] == SIZES["prefetched"] + SIZES["queued"] + SIZES["eta"]  # never ran
    assert plain["results_lost"] == SIZES["result"] and plain["ran_twice"] == 0
    assert aof["lost"] == 0 and aof["waited"] == f"{SIZES['prefetched'] + SIZES['eta']} stranded in unacked"
    assert table[("acks_late", "cancel on connection loss")]["lost"] == 1
    during = table[("acks_late", "task ending during the outage")]
    assert during["caller_told"] == "FAILURE for work that was done"
    assert "ran 1 time" in table[("hung", "apply_async, socket_timeout, connection open")]["caller_told"]
    assert table[("client", "apply_async, broker stopped")]["lost"] == 1
    assert table[("worker", "prefetch with room (multiplier 2)")]["waited"].startswith("the worker exited")


def test_a_clean_run_makes_a_clean_row():
    """A Celery that stored SUCCESS for the task that ended during the outage, and a kombu whose
    worker survived the loss: their rows say nothing went wrong."""
    late, room = late_(), room_()
    late["cases"]["keep-during"]["state"] = "SUCCESS"
    room.update(unrecoverable=None, process_alive=True)
    table = taught(late=late, room=room)
    assert table[("acks_late", "task ending during the outage")]["caller_told"] == ""
    assert table[("worker", "prefetch with room (multiplier 2)")]["waited"] == ""
