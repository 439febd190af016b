"""Lab 10, part 6: the teaching table, one row per configuration the run tried, every count read
from the run (what was lost, what ran twice, what waited and how long, what the caller was told
that was not so) beside what a production deployment does about it. Nothing here is assumed:
a row whose counts come out clean says so, whatever the advice column reads."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


def row(part: str, configuration: str, *, lost: int | None = 0, results_lost: int = 0,
        ran_twice: int = 0, waited: str = "", caller_told: str = "", production: str) -> Row:
    """``lost``: tasks that never ran, or never ran to their end (None: not counted there);
    ``results_lost``: stored results of tasks that did run."""
    return {"part": part, "configuration": configuration, "lost": lost,
            "results_lost": results_lost, "ran_twice": ran_twice, "waited": waited,
            "caller_told": caller_told, "production": production}


def _ended(call: dict[str, Any], value: str = "the value") -> str:
    """How a bounded call ended: its time and what it raised or returned."""
    if not call.get("finished"):
        return "did not return"
    return f"{call['seconds']:.2f} s, then " + (call["raised"] or value)


def restart_rows(rounds: list[dict[str, Any]]) -> list[Row]:
    out = []
    for r in rounds:
        kinds = r["by_kind"]
        stranded = sum(k["stranded"] for k in kinds.values())
        lost = sum(k["lost"] for name, k in kinds.items() if name != "result")
        aof = r["persistence"].get("appendonly") == "yes"
        advice = ("appendonly yes: without it a restart is an empty Redis" if not aof else
                  "AOF is enough for a process restart; appendfsync always only for power loss")
        if stranded:
            advice += ("; prefetched and ETA tasks wait for the visibility_timeout, so size it "
                       "to what you can wait (Lab 04)")
        out.append(row("restart", f"{r['round']}", lost=lost, results_lost=kinds["result"]["lost"],
                       ran_twice=sum(k["ran_twice"] for k in kinds.values()),
                       waited=f"{stranded} stranded in unacked" if stranded else "",
                       production=advice))
    return out


def room_row(room: dict[str, Any]) -> Row:
    died = room["unrecoverable"] is not None and not room["process_alive"]
    return row("worker", f"prefetch with room (multiplier {room['prefetch_multiplier']})", lost=None,
               waited="the worker exited: nothing consumed until restarted" if died else "",
               production="a supervisor that restarts the worker, and a liveness check "
                          "(celery inspect ping)")


def client_rows(stopped: dict[str, Any], runs: dict[str, int], results: dict[str, Any]) -> list[Row]:
    default, keeps = stopped["default"], stopped["keeps_result"]
    got, again = results["get_while_down"], results["same_app_after_up"]
    waiter = results.get("waiter") or {}
    return [
        row("client", "apply_async, broker stopped", lost=int(runs.get(default["task_id"], 0) == 0),
            waited=_ended(default, "sent"),
            production="catch OperationalError and keep the task (an outbox), or retry longer"),
        row("client", "apply_async keeping its result, broker stopped",
            lost=int(runs.get(keeps["task_id"], 0) == 0),
            waited=_ended(keeps, "sent") + " (the result store's)",
            production="the same: the failure comes from the result store first"),
        row("client", f"get(timeout={results['get_timeout_s']:g}), result store down", lost=None,
            waited=_ended(got),
            caller_told=("'the application must be restarted', yet its next get() returned"
                         if got.get("raised") == "RuntimeError" and again.get("finished")
                         and again.get("raised") is None else ""),
            production="bound get() with your own deadline; the store's retry_policy sets the wait"),
        row("client", "get() waiting across a restart", lost=None, waited=_ended(waiter),
            production="nothing, if the outage is shorter than the result store's retry policy"),
    ]


def hung_rows(hung: dict[str, Any]) -> list[Row]:
    sends, d, pause = hung["sends"], hung["detecting"], hung["pause_s"]
    warm, default = sends["socket_timeout_warm"], sends["default"]
    whole = default.get("finished") and default["seconds"] >= pause
    lines = hung["worker_log_while_hung"]
    return [
        row("hung", "apply_async, default settings", lost=int(default.get("runs", 0) == 0),
            waited=_ended(default, "sent") + (" (the whole hang)" if whole else ""),
            production="broker_transport_options socket_timeout"),
        row("hung", "apply_async, socket_timeout, connection open", lost=int(warm.get("runs", 0) == 0),
            waited=_ended(warm, "sent"),
            caller_told=(f"{warm['raised']}, yet the task ran {warm['runs']} time(s)"
                         if warm["raised"] and warm["runs"] else ""),
            production="idempotent tasks: a retry on that error runs the task twice"),
        row("hung", "worker, default settings", lost=None,
            waited=(f"logged {lines['lost']} loss(es) in {pause:g} s" if lines["lost"] else
                    f"noticed nothing in {pause:g} s")
            + f" (loop blocked in {hung['default_worker_stack'].get('called_from')})",
            production="it resumes by itself; to notice: the next row"),
        row("hung", f"worker, {d['settings']}, --without-heartbeat", lost=None,
            waited=(f"loss logged {d['lost_after_s']:.1f} s into the hang" if d["lost_after_s"] is not None
                    else "noticed nothing"),
            production="health_check_interval + socket_timeout, nothing sent from the loop"),
    ]


def late_rows(late: dict[str, Any]) -> list[Row]:
    cases = late["cases"]

    def done(case: dict[str, Any]) -> int:
        return int(case["finished"] == 0)

    def twice(case: dict[str, Any]) -> int:
        return int(case["executions"] > 1)

    during, cancel = cases["keep-during"], cases["cancel"]
    return [
        row("acks_late", "task outliving the outage", lost=done(cases["keep-after"]),
            ran_twice=twice(cases["keep-after"]),
            production="nothing: it is acknowledged on the new connection"),
        row("acks_late", "task ending during the outage", lost=done(during), ran_twice=twice(during),
            caller_told=f"{during['state']} for work that was done" if during["finished"]
            and during["state"] != "SUCCESS" else "",
            production="an idempotent task whoever sees the failure can re-send"),
        row("acks_late", "cancel on connection loss", lost=done(cancel), ran_twice=twice(cancel),
            caller_told=f"{cancel['state']}, never redelivered" if not cancel["finished"] else "",
            production="leave worker_cancel_long_running_tasks_on_connection_loss False on Redis"),
    ]


def lessons(rounds: list[dict[str, Any]], room: dict[str, Any], stopped: dict[str, Any],
            runs: dict[str, int], results: dict[str, Any], hung: dict[str, Any],
            late: dict[str, Any]) -> list[Row]:
    return [*restart_rows(rounds), room_row(room), *client_rows(stopped, runs, results),
            *hung_rows(hung), *late_rows(late)]
