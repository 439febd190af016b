"""Lab 12's findings: each claim checked against what the run measured. Pure functions of the
measurements, so a unit test can hand each one a counter-example."""

from __future__ import annotations

import math
import statistics
from typing import Any

from labkit.evidence import Evidence
from labs.lab12_memory.growth import segments

MIB = 2**20
GROWTH_SHARE = 0.8  # of what a task keeps, at least this much shows in its process's RSS
REPLACEMENT_RATIO = 2.0  # a process start against a task's own time (0.2 s against 0.01 s here)
RSS_SLACK = MIB // 2  # a process's RSS as the task read it, and as the pool read it just after
FRESH_SLACK = 2 * MIB  # a fresh process's RSS moves with the parent it was forked from
ETA_MORE = 500  # held ETA tasks one worker must hold beyond the other for their memory to tell
ETA_NOISE = MIB  # a worker's RSS moves by about this much on its own
BASE64 = (1.30, 1.40)  # 4/3 for base64, plus the envelope around a big body
PUBLISH_RATIO = 2.0  # a big argument costs the client at least this many times an id's publish


# -- part 1: a leaking task ---------------------------------------------------------------------
def check_growth(ev: Evidence, leaks: dict[str, list[dict[str, Any]]], leak_mib: int, max_tasks: int,
                 max_memory_mib: int) -> None:
    none = segments(leaks["leak_none"])
    n = len(leaks["leak_none"])
    grew = (none[0]["rss"][-1] - none[0]["rss"][0]) / MIB if none else 0.0
    ev.check("a_leaking_child_grows_by_what_it_keeps",
             "with no limit, one pool process runs every task and keeps all it was given: its RSS "
             "grows task after task",
             {"processes": len(none), "tasks": n, "rss_mib": [round(x / MIB, 1) for x in none[0]["rss"]]
              if none else [], "grew_mib": round(grew, 1)},
             f"1 process; grew >= {GROWTH_SHARE * (n - 1) * leak_mib:g} MiB ({n - 1} x {leak_mib} MiB kept)",
             len(none) == 1 and grew >= GROWTH_SHARE * (n - 1) * leak_mib)

    per_task = segments(leaks["leak_tasks"])
    sizes = [len(g["seqs"]) for g in per_task]
    n = len(leaks["leak_tasks"])
    # a process that inherited what its predecessors kept would start higher each time
    first = [g["rss"][0] for g in per_task]
    fresh = all(f <= first[0] + max(FRESH_SLACK, leak_mib * MIB / 2) for f in first)
    ev.check("max_tasks_per_child_replaces_the_child_after_exactly_k_tasks",
             f"worker_max_tasks_per_child={max_tasks}: a pool process is replaced after exactly that "
             "many tasks, and the new one starts without the old one's memory",
             {"tasks_per_process": sizes, "first_rss_mib": [round(g["rss"][0] / MIB, 1) for g in per_task]},
             f"{math.ceil(n / max_tasks)} processes of {max_tasks} tasks (the last <= {max_tasks}); each new "
             "one's first task at the first process's RSS, not above it",
             sizes[:-1] == [max_tasks] * (len(sizes) - 1) and 0 < sizes[-1] <= max_tasks
             and len(sizes) == math.ceil(n / max_tasks) and fresh)

    per_memory = segments(leaks["leak_memory"])
    limit = max_memory_mib * MIB
    # billiard compares the process's peak RSS (ru_maxrss) a moment after the task read it: near
    # the limit the two readings may differ by a little (a result serialised), never by a task's
    # growth
    early = [g["pid"] for g in per_memory if any(r > limit + RSS_SLACK for r in g["peak"][:-1])]
    kept_on = [g["pid"] for g in per_memory[:-1] if g["peak"][-1] <= limit - RSS_SLACK]
    crossed = any(r > limit for g in per_memory for r in g["peak"])
    peak = max((r for g in per_memory for r in g["peak"]), default=0)
    ev.check("max_memory_per_child_replaces_after_the_task_that_crossed",
             f"worker_max_memory_per_child={max_memory_mib} MiB is checked after each task, against "
             "the process's peak RSS: the task that takes a process over the limit finishes, then the "
             "process is replaced (the limit is not a cap: a process exceeds it by up to one task's "
             "growth)",
             {"tasks_per_process": [len(g["seqs"]) for g in per_memory],
              "last_peak_mib": [round(g["peak"][-1] / MIB, 1) for g in per_memory],
              "peak_rss_mib": round(peak / MIB, 1), "limit_mib": max_memory_mib},
             "every process but the last ends on the task that crossed the limit, and none crossed "
             "earlier" if crossed else
             f"not decided: no task took a process over {max_memory_mib} MiB (none replaced)",
             not early and not kept_on and (crossed or len(per_memory) == 1))


def check_spike(ev: Evidence, spike: dict[str, Any], max_memory_mib: int) -> None:
    limit = max_memory_mib * MIB
    hit, after = spike["spike"], spike["next"]
    back_under = hit["rss"] <= limit
    ev.check("a_freed_spike_still_replaces_the_process",
             "the memory limit reads the peak RSS (ru_maxrss on Linux), not the current one: a task "
             "that takes a lot of memory for a moment and frees it still gets its process replaced",
             {"spike_mib": spike["mib"], "rss_after_freeing_mib": round(hit["rss"] / MIB, 1),
              "peak_mib": round(hit["peak"] / MIB, 1), "limit_mib": max_memory_mib,
              "next_task_in_a_new_process": after["pid"] != hit["pid"]},
             "peak over the limit, current RSS back under it, the next task in a new process"
             if back_under else "peak over the limit and the next task in a new process (not decided "
             "whether the current RSS matters: it did not fall back under the limit)",
             hit["peak"] > limit and after["pid"] != hit["pid"])


def check_replacement(ev: Evidence, between: dict[str, dict[str, list[float]]]) -> None:
    within = [g for name in between.values() for g in name["within"]]
    across = [g for name in between.values() for g in name["across"]]
    mid_within = statistics.median(within) if within else None
    mid_across = statistics.median(across) if across else None
    ev.check("replacing_a_process_costs_more_than_a_task",
             "a replaced pool process is a new process to start: the time from the old process's "
             "last task to the new one's first is several times the time between two tasks of one "
             "process, a price worker_max_tasks_per_child=1 would pay on every task",
             {"median_s": {"within_a_process": round(mid_within, 4) if mid_within else None,
                           "across_a_replacement": round(mid_across, 4) if mid_across else None},
              "replacements": len(across), "across_s": [round(g, 3) for g in across]},
             f"across > {REPLACEMENT_RATIO:g} x within",
             mid_within is not None and mid_across is not None
             and mid_across > REPLACEMENT_RATIO * mid_within)


# -- part 2: ETA tasks ----------------------------------------------------------------------------
def check_eta(ev: Evidence, held: dict[str, dict[str, Any]], limit: int) -> None:
    none, lim = held["none"], held["limited"]
    ev.check("a_worker_takes_every_eta_task_it_is_sent",
             "with no worker_eta_task_limit a worker fetches every ETA task sent to it (each raises "
             "its prefetch count by one) and holds them all in memory, unacknowledged, until due",
             {k: none[k] for k in ("sent", "held_unacked", "scheduled", "left_in_redis")},
             f"all {none['sent']} held and scheduled, 0 left in Redis",
             none["held_unacked"] == none["scheduled"] == none["sent"] and none["left_in_redis"] == 0)
    ev.check("eta_task_limit_caps_what_a_worker_holds",
             f"worker_eta_task_limit={limit} stops the prefetch count growing past it: the worker holds "
             "at most that many ETA tasks and the rest wait in Redis",
             {k: lim[k] for k in ("sent", "held_unacked", "scheduled", "left_in_redis")},
             f"1..{limit} held (= scheduled), the rest in Redis",
             0 < lim["held_unacked"] <= limit and lim["scheduled"] == lim["held_unacked"]
             and lim["left_in_redis"] == lim["sent"] - lim["held_unacked"])
    full = lim["held_unacked"] == limit
    ev.check("a_worker_at_its_eta_limit_fetches_nothing_else",
             "a worker holding worker_eta_task_limit ETA tasks has no prefetch slot left: a plain "
             "task on another of its queues waits until an ETA task comes due; without the limit "
             "the same plain task runs at once",
             {"plain_ran": {"limited": lim["plain_task_ran"], "no_limit": none["plain_task_ran"]},
              "waited_s": {"limited": lim.get("plain_wait_s"), "no_limit": none.get("plain_wait_s")},
              "held_at_the_limit": full},
             "limited: did not run; no limit: ran" if full else
             "not decided for the limited worker (it held fewer than its limit); no limit: ran",
             none["plain_task_ran"] and (not full or not lim["plain_task_ran"]))
    grew = {k: v["rss_after"] - v["rss_before"] for k, v in held.items()}
    decided = none["held_unacked"] - lim["held_unacked"] >= ETA_MORE
    per_task = grew["none"] / none["held_unacked"] if none["held_unacked"] else None
    ev.check("held_eta_tasks_cost_the_worker_memory",
             "each ETA task a worker holds costs its main process memory (a request and a timer "
             "entry): the worker holding them all grew more than the one held to its limit",
             {"grew_mib": {k: round(v / MIB, 2) for k, v in grew.items()},
              "bytes_per_held_task": round(per_task) if per_task else None},
             f"no limit grew > limited + {ETA_NOISE / MIB:g} MiB" if decided else
             f"not decided: fewer than {ETA_MORE} more held tasks than the limited worker",
             not decided or grew["none"] > grew["limited"] + ETA_NOISE)


# -- part 3: the result backend ------------------------------------------------------------------
def check_results(ev: Evidence, kept: dict[str, dict[str, Any]], expired: dict[str, Any],
                  exists: dict[str, dict[str, Any]], expires_s: float, default_s: float) -> None:
    d, short, ignored = kept["default"], kept["short"], kept["ignored"]
    ev.check("every_result_is_a_key_kept_for_result_expires",
             f"each task's result is a Redis key with a TTL of result_expires ({default_s:g} s, a day, "
             "by default), whether or not anyone reads it",
             {k: d[k] for k in ("n", "keys", "ttl_min", "ttl_max")}
             | {"bytes_per_key": d.get("bytes_per_key")},
             f"{d['n']} keys, TTL in ({default_s - 60 - d['drain_s']:g}, {default_s:g}]",
             d["keys"] == d["n"] and d["ttl_max"] is not None and d["ttl_max"] <= default_s
             and d["ttl_min"] > default_s - 60 - d["drain_s"])
    ev.check("a_short_result_expires_is_enforced_by_redis",
             f"result_expires={expires_s:g} s on the Redis backend is the keys' TTL: Redis deletes them "
             "itself, with no beat running celery.backend_cleanup",
             {"keys_after_the_drain": short["keys"], "ttl_max": short["ttl_max"],
              "keys_left_after_expiry": expired["keys"], "waited_s": expired["waited_s"]},
             f"TTL <= {expires_s:g} s; 0 keys left once it passed",
             (short["ttl_max"] is None or short["ttl_max"] <= math.ceil(expires_s))
             and expired["gone"] and expired["keys"] == 0)
    ev.check("ignore_result_stores_no_key",
             "task_ignore_result: no result key at all",
             {"n": ignored["n"], "keys": ignored["keys"]}, "0 keys", ignored["keys"] == 0)
    ev.check("exists_tells_a_stored_result_from_none",
             "a PENDING state means 'no result stored': an expired result, a task still waiting in "
             "a queue and an id never sent all read PENDING; AsyncResult.exists() (new in 5.7) "
             "tells a stored result from no result, but not a waiting task from one never sent "
             "(both False)",
             exists,
             "kept: SUCCESS, exists; expired, queued, never sent: PENDING, not exists",
             exists["kept"] == {"state": "SUCCESS", "exists": True}
             and all(exists[k] == {"state": "PENDING", "exists": False}
                     for k in ("expired", "queued", "never_sent")))


# -- part 4: big arguments -------------------------------------------------------------------------
def check_payload(ev: Evidence, at_rest: dict[str, Any], speed: dict[str, Any]) -> None:
    ratio = at_rest["big_message_bytes"] / at_rest["payload_bytes"]
    ev.check("a_big_argument_is_stored_base64_encoded",
             "on the Redis transport a message's body is base64-encoded: an argument of N bytes "
             "costs the broker about 4/3 N per waiting message; an id costs it a kilobyte or so",
             {"payload_bytes": at_rest["payload_bytes"],
              "big_message_bytes": round(at_rest["big_message_bytes"]),
              "ratio": round(ratio, 3), "id_message_bytes": round(at_rest["id_message_bytes"])},
             f"ratio in [{BASE64[0]}, {BASE64[1]}]; id message < 4 KiB",
             BASE64[0] <= ratio <= BASE64[1] and at_rest["id_message_bytes"] < 4096)
    big, small = speed["big"], speed["by_id"]
    # CPU, not wall time: a publish of a few milliseconds is at the mercy of one preemption
    ratio = big["publish_cpu_s"] / small["publish_cpu_s"] if small["publish_cpu_s"] > 0 else 0.0
    ev.check("a_big_argument_costs_the_client_its_size",
             "the client serialises, encodes and sends the whole argument with every task: "
             "publishing tasks with a big argument costs the client many times the CPU of tasks "
             "with an id",
             {"publish_cpu_s": {"big": round(big["publish_cpu_s"], 4),
                                "by_id": round(small["publish_cpu_s"], 4)},
              "ratio": round(ratio, 1),
              "drain_per_s": {"big": round(big["rate"], 1), "by_id": round(small["rate"], 1)}},
             f"big >= {PUBLISH_RATIO:g} x by id", ratio >= PUBLISH_RATIO)
