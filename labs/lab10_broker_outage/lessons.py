"""Lab 10, part 6: the teaching table, one row per configuration the run tried, every count read
from the run (what was lost, what ran twice, what waited and how long, what the caller was told
that was not so) beside what a production deployment does about it. Nothing here is assumed:
a row whose counts come out clean says so, whatever the advice column reads."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


def row(part: str, configuration: str, *, lost: int = 0, ran_twice: int = 0,
        waited: str = "", caller_told: str = "", production: str) -> Row:
    return {"part": part, "configuration": configuration, "lost": lost, "ran_twice": ran_twice,
            "waited": waited, "caller_told": caller_told, "production": production}


def restart_rows(rounds: list[dict[str, Any]]) -> list[Row]:
    out = []
    for r in rounds:
        kinds = r["by_kind"]
        stranded = sum(k["stranded"] for k in kinds.values())
        lost = sum(k["lost"] for k in kinds.values())
        aof = r["persistence"].get("appendonly") == "yes"
        advice = ("appendonly yes: without it a restart is an empty Redis" if not aof else
                  "AOF is enough for a process restart; appendfsync always only for power loss")
        if stranded:
            advice += ("; prefetched and ETA tasks wait for the visibility_timeout, so size it "
                       "to what you can wait (Lab 04)")
        out.append(row("restart", f"{r['round']}", lost=lost,
                       ran_twice=sum(k["ran_twice"] for k in kinds.values()),
                       waited=f"{stranded} stranded in unacked" if stranded else "",
                       production=advice))
    return out


def room_row(room: dict[str, Any]) -> Row:
    died = room["unrecoverable"] is not None and not room["process_alive"]
    return row("worker", f"prefetch with room (multiplier {room['prefetch_multiplier']})",
               waited="the worker exited: nothing consumed until restarted" if died else "",
               production="a supervisor that restarts the worker, and a liveness check "
                          "(celery inspect ping)")


def client_rows(stopped: dict[str, Any], runs: dict[str, int], results: dict[str, Any]) -> list[Row]:
    default, keeps = stopped["default"], stopped["keeps_result"]
    got, waiter = results["get_while_down"], results.get("waiter") or {}
    return [
        row("client", "apply_async, broker stopped", lost=int(runs.get(default["task_id"], 0) == 0),
            waited=f"{default['seconds']:.2f} s, then {default['raised']}",
            production="catch OperationalError and keep the task (an outbox), or retry longer"),
        row("client", "apply_async keeping its result, broker stopped",
            lost=int(runs.get(keeps["task_id"], 0) == 0),
            waited=f"{keeps['seconds']:.2f} s, then {keeps['raised']} (the result store's)",
            production="the same: the failure comes from the result store first"),
        row("client", f"get(timeout={results['get_timeout_s']:g}), result store down",
            waited=f"{got['seconds']:.2f} s, then {got['raised']}",
            caller_told="'the application must be restarted' (the next get works)",
            production="bound get() with your own deadline; the store's retry_policy sets the wait"),
        row("client", "get() waiting across a restart",
            waited=f"{waiter.get('seconds') or 0:.2f} s, then "
                   + ("the value" if waiter.get("raised") is None else str(waiter.get("raised"))),
            production="nothing, if the outage is shorter than the result store's retry policy"),
    ]


def hung_rows(hung: dict[str, Any]) -> list[Row]:
    sends, d = hung["sends"], hung["detecting"]
    warm = sends["socket_timeout_warm"]
    return [
        row("hung", "apply_async, default settings",
            waited=f"{sends['default']['seconds']:.2f} s (the whole hang)" if sends["default"]["finished"]
            else "did not return", production="broker_transport_options socket_timeout"),
        row("hung", "apply_async, socket_timeout, connection open", ran_twice=0,
            waited=f"{warm['seconds']:.2f} s, then {warm['raised']}",
            caller_told=(f"{warm['raised']}, yet the task ran {warm['runs']} time(s)"
                         if warm["raised"] and warm["runs"] else ""),
            production="idempotent tasks: a retry on that error runs the task twice"),
        row("hung", "worker, default settings",
            waited=f"noticed nothing in {hung['pause_s']:g} s (loop blocked in "
                   f"{hung['default_worker_stack'].get('called_from')})",
            production="it resumes by itself; to notice: the next row"),
        row("hung", f"worker, {d['settings']}, --without-heartbeat",
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
