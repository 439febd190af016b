"""Lab 11's findings: each claim checked against what the run measured. Pure functions of the
measurements, so a unit test can hand each one a counter-example."""

from __future__ import annotations

from bisect import bisect
from itertools import pairwise
from typing import Any

from labkit.evidence import Evidence

DEFAULT_STEPS = [0, 3, 6, 9]  # kombu's Redis transport's priority_steps
CLOCK_S = 0.01  # the client's clock and a pool process's are one host clock, read 10 ms apart at worst
GRANT_CLOCK_S = 1e-3  # the shared bucket stamps grants with Redis's clock, printed to 0.1 ms


def step_of(priority: int, steps: list[int]) -> int:
    """The list a priority lands in: the highest step at or below it (what kombu documents)."""
    return steps[bisect(steps, priority) - 1]


# -- part 1: storage ----------------------------------------------------------------------------
def _landed(rows: list[dict[str, Any]]) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(str(r["list"]), []).append(r["sent_priority"])
    return out


def check_stored(ev: Evidence, coarse: dict[str, Any], fine: dict[str, Any], fine_steps: list[int]) -> None:
    def wrong(rows: list[dict[str, Any]], steps: list[int]) -> list[dict[str, Any]]:
        return [r for r in rows if r["sent_priority"] is not None
                and r["list_step"] != step_of(r["sent_priority"], steps)]
    bad = wrong(coarse["rows"], DEFAULT_STEPS) + wrong(fine["rows"], fine_steps)
    ev.check("a_priority_is_a_redis_list_per_step",
             "on Redis a queue with priorities is one list per priority step (priority_steps, "
             "[0, 3, 6, 9] by default): a message goes to the list of the highest step at or below "
             "its priority, so 1 and 2 share priority 0's list; a priority_steps of 0-9 makes a list "
             "per value",
             {"default_steps": _landed(coarse["rows"]), "fine_steps_lists": len(fine["lists"]),
              "misplaced": bad},
             f"{len(DEFAULT_STEPS)} lists with [0, 3, 6, 9]; {len(fine_steps)} with 0-9; none misplaced",
             not bad and len(coarse["lists"]) == len(DEFAULT_STEPS) and len(fine["lists"]) == len(fine_steps))
    plain = [r for r in coarse["rows"] if r["sent_priority"] is None]
    ev.check("a_task_sent_without_a_priority_lands_with_priority_0",
             "a task sent without a priority is stored with priority 0, in the queue's own list, "
             "the one a worker reads first: on Redis, no priority means the most urgent",
             plain, "list = the queue's own name, stored priority 0",
             bool(plain) and all(r["list_step"] == 0 and r["stored_priority"] == 0 for r in plain))


# -- part 2: execution order --------------------------------------------------------------------
def _inversions(values: list[int]) -> int:
    return sum(1 for i, a in enumerate(values) for b in values[i + 1:] if a > b)


def check_order(ev: Evidence, sent: list[dict[str, Any]], ran: list[dict[str, Any]],
                sent_fine: list[dict[str, Any]], ran_fine: list[dict[str, Any]]) -> None:
    steps = [step_of(r["priority"], DEFAULT_STEPS) for r in ran]
    within = {step: [r["seq"] for r in ran if step_of(r["priority"], DEFAULT_STEPS) == step]
              for step in DEFAULT_STEPS}
    value_inversions = sum(_inversions([r["priority"] for r in ran
                                        if step_of(r["priority"], DEFAULT_STEPS) == step])
                           for step in DEFAULT_STEPS)
    ev.check("on_redis_priority_0_runs_first",
             "one worker taking one message at a time runs a pre-filled queue step by step from "
             "priority 0 to 9: on Redis the lowest number is the most urgent (the opposite of "
             "RabbitMQ, where a higher number wins)",
             {"steps_in_the_order_run": steps, "ran": len(ran), "sent": len(sent)},
             "all ran; steps never go down: 0s first, 9s last",
             len(ran) == len(sent) and all(a <= b for a, b in pairwise(steps)))
    ev.check("within_a_step_tasks_run_in_the_order_sent",
             "within one step's list, tasks run first in, first out, whatever their priority value: "
             "with the default steps a priority-2 task sent first runs before a priority-1 task "
             "sent after it",
             {"seq_in_the_order_run_per_step": within, "priority_value_inversions": value_inversions},
             "seq increasing within every step",
             all(all(a < b for a, b in pairwise(seqs)) for seqs in within.values()))
    values = [r["priority"] for r in ran_fine]
    ev.check("a_list_per_value_orders_every_value",
             "with priority_steps 0-9 (on the client and on the worker) the same queue runs in "
             "priority order, value by value",
             {"priorities_in_the_order_run": values, "inversions": _inversions(values)},
             f"all {len(sent_fine)} ran, 0 inversions",
             len(ran_fine) == len(sent_fine) and _inversions(values) == 0)


def _last(trials: list[dict[str, Any]]) -> dict[str, Any]:
    return trials[-1]


def cap(trial: dict[str, Any], prefetch: int) -> int:
    """What a worker may hold back: its prefetch, and one more if the running task ended before
    the urgent tasks landed (it may fetch a backlog task in that moment)."""
    return prefetch + (0 if trial["covered"] else 1)


def check_backlog(ev: Evidence, trials: dict[str, list[dict[str, Any]]], prefetch: int) -> None:
    every = [t for rows in trials.values() for t in rows]
    ev.check("backlog_still_in_redis_waits_for_urgent_tasks",
             "a backlog task still in Redis when urgent (priority 0) tasks are sent never runs "
             "before them: the worker reads priority 0's list first at every fetch",
             {f"{t['queue']}#{t['trial']}": t["overtook_from_redis"] for t in every},
             "0 in every trial", bool(every) and all(t["overtook_from_redis"] == 0 for t in every))
    t = _last(trials["prefetch"])
    enough = t["held_before"] >= 2
    ev.check("prefetched_tasks_run_before_later_urgent_ones",
             f"a worker with the default prefetch (multiplier {prefetch}) already holds backlog tasks "
             "it fetched before the urgent ones were sent, and runs them first: the urgent tasks "
             "wait behind them, whatever their priority",
             {k: t[k] for k in ("held_before", "held", "urgent_wait_s")},
             (f"held >= 1 and >= held_before{'' if t['covered'] else ' - 1'}, at most {cap(t, prefetch)}"
              if enough else f"at most {cap(t, prefetch)} (the worker held {t['held_before']} then: not "
              "decided whether >= 1)"),
             # while the running task covers the send, nothing it holds can start first: every
             # held delivery runs before the urgent ones; otherwise one may have started meanwhile,
             # and the worker may have fetched one more backlog task before the urgent ones landed
             t["held"] <= cap(t, prefetch) and (not enough or t["held"] >= max(1, t["held_before"]
                                                                             - (0 if t["covered"] else 1))))
    late = _last(trials["late_one"])
    one = _last(trials["prefetch_one"])
    ev.check("acks_late_with_prefetch_one_holds_nothing_back",
             "with task_acks_late and a prefetch multiplier of 1, a worker holds no message beside "
             "the one it runs (that one is not acknowledged until it ends), so urgent tasks sent "
             "meanwhile run next; with a prefetch of 1 alone (early ack) it holds the one it "
             "fetched next, and runs it first",
             {"acks_late_prefetch_1": {k: late[k] for k in ("held", "covered", "urgent_wait_s")},
              "prefetch_1": {k: one[k] for k in ("held_before", "held", "covered", "urgent_wait_s")}},
             "acks_late: 0 held; prefetch 1 alone: what it held before the send, at most 1"
             if late["covered"] else "not decided for acks_late (no trial landed while a backlog task "
             "ran); prefetch 1 alone: what it held before the send, at most 1",
             one["held"] <= cap(one, 1) and (not one["covered"] or one["held"] >= one["held_before"])
             and (late["held"] == 0 or not late["covered"]))


# -- part 3: queue order ------------------------------------------------------------------------
def check_queues(ev: Evidence, turns: dict[str, dict[str, Any]], per_queue: int) -> None:
    rr, po, cross = turns["rr"], turns["po"], turns["cross"]
    ev.check("round_robin_takes_the_queues_in_turn",
             "a worker consuming -Q high,low takes the next message from the queue after the one it "
             "last took (the Redis transport's default queue_order_strategy, round robin): low is "
             "not starved by a full high",
             {k: rr[k] for k in ("queues", "first_low_at", "longest_run_while_both_had_work")},
             "first low task first or second; never two in a row from one queue while both have work",
             rr["first_low_at"] is not None and rr["first_low_at"] <= 1
             and rr["longest_run_while_both_had_work"] == 1
             and sum(rr["total"].values()) == 2 * per_queue)
    ev.check("priority_order_starves_the_later_queue",
             "with queue_order_strategy 'priority' the worker always reads the queues in the order "
             "given: low runs only once high is empty",
             {k: po[k] for k in ("queues", "first_low_at", "last_high_at")},
             f"every one of the {per_queue} high tasks before the first low one",
             po["first_low_at"] is not None and po["last_high_at"] is not None
             and po["first_low_at"] > po["last_high_at"] and sum(po["total"].values()) == 2 * per_queue)
    first = cross["queues"][:per_queue]
    ev.check("a_message_priority_outranks_the_queue_order",
             "the worker asks Redis for priority 0's list of every queue before priority 3's of any "
             "(one BRPOP, steps outermost): with the 'priority' strategy and high listed first, low's "
             "priority-0 tasks still run before high's priority-6 ones",
             {"queues": cross["queues"], "low_tasks_first": sum(q.endswith("low") for q in first)},
             f"the first {per_queue} run all from low",
             len(cross["queues"]) == 2 * per_queue and first and len(set(first)) == 1
             and first[0].endswith("low"))


# -- part 4: rate limits ------------------------------------------------------------------------
def busiest(times: list[float], window: float) -> int:
    """The most starts inside any window of ``window`` seconds."""
    times = sorted(times)
    most, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > window:
            lo += 1
        most = max(most, hi - lo + 1)
    return most


def check_rates(ev: Evidence, one: dict[str, Any], three: dict[str, Any], shared: dict[str, Any],
                rate: float) -> None:
    starts = [r["t"] for r in one["runs"]]
    n = len(starts)
    # the worker grants its first token no sooner than the tasks were sent, and one every 1/rate
    # after: its n-th start comes (n - 1)/rate after the send at the soonest, however busy it is
    soonest = (n - 1) / rate
    took = max(starts) - one["sent_at"] if starts else 0.0
    ev.check("one_worker_never_exceeds_its_rate_limit",
             f"rate_limit='{rate:g}/s' holds one worker to it: its n-th task starts no sooner than "
             "(n - 1)/rate after the tasks were sent",
             {"tasks": n, "last_start_after_send_s": round(took, 3), "soonest_s": round(soonest, 3),
              "measured_per_s": round((n - 1) / took, 2) if took > 0 else None},
             f"{one['count']} ran, the last >= {soonest - CLOCK_S:.3f} s after the send",
             n == one["count"] and took >= soonest - CLOCK_S)
    window = max(0.5, 2 / rate)
    together = busiest([r["t"] for r in three["runs"]], window)
    hosts = sorted({r["hostname"] for r in three["runs"]})
    ev.check("rate_limit_is_per_worker",
             f"the same rate_limit on three workers is three buckets, not one: together they start "
             f"more tasks in {window:g} s than any single limit of {rate:g}/s allows",
             {"most_starts_in_a_window": together, "window_s": window, "hosts": hosts,
              "tasks": len(three["runs"])},
             f"> {int(window * rate) + 1} in {window:g} s, on >= 2 workers",
             together > int(window * rate) + 1 and len(hosts) >= 2 and len(three["runs"]) == three["count"])
    looks = one["looks"]
    unlisted = [lk["held_unacked"] - lk["reserved"] - lk["active"] - lk["scheduled"] for lk in looks]
    ev.check("rate_limited_tasks_wait_in_the_worker_unlisted",
             "a rate-limited task waiting for its token sits in the worker's bucket: fetched, "
             "unacknowledged (in Redis's unacked hash, a prefetch slot taken), and listed by none of "
             "inspect reserved, active or scheduled",
             {"looks": looks, "held_but_unlisted": unlisted},
             "in some look, at least one held delivery that inspect does not list",
             bool(unlisted) and max(unlisted) >= 1)
    grants = [g["t"] for g in shared["grants"]]
    gaps = [b - a for a, b in pairwise(grants)]
    hosts = sorted({g["hostname"] for g in shared["grants"]})
    agg = (len(grants) - 1) / (grants[-1] - grants[0]) if len(grants) > 1 and grants[-1] > grants[0] else None
    ev.check("a_bucket_in_redis_limits_every_worker_together",
             "a token bucket kept in Redis (one Lua script, Redis's clock) holds all the workers "
             "together to the limit: no two grants closer than 1/rate, whichever worker asked",
             {"grants": len(grants), "hosts": hosts, "shortest_gap_s": round(min(gaps), 4) if gaps else None,
              "aggregate_per_s": agg},
             f"{shared['count']} grants on >= 2 workers, gaps >= {1 / rate:.4f} s, aggregate <= {rate:g}/s",
             len(grants) == shared["count"] and len(hosts) >= 2 and bool(gaps)
             and min(gaps) >= 1 / rate - GRANT_CLOCK_S and agg is not None and agg <= rate * (1 + 1e-3))


# -- the interview table ------------------------------------------------------------------------
def approaches(trials: dict[str, list[dict[str, Any]]], turns: dict[str, dict[str, Any]],
               dedicated: dict[str, Any], task_s: float) -> list[dict[str, Any]]:
    """Priority against separate queues against a dedicated worker: what an urgent task waited
    for in this run, and what each approach costs."""
    def wait(name: str) -> float:
        return round(_last(trials[name])["urgent_wait_s"], 3)
    return [
        {"approach": "priority 0/9 on one queue, default prefetch", "urgent_wait_s": wait("prefetch"),
         "held_back_by": f"{_last(trials['prefetch'])['held']} prefetched backlog tasks + the running one",
         "cost": "nothing to set up; the wait grows with prefetch x task length"},
        {"approach": "priority, prefetch multiplier 1", "urgent_wait_s": wait("prefetch_one"),
         "held_back_by": f"{_last(trials['prefetch_one'])['held']} prefetched + the running one",
         "cost": "one round trip to Redis per task"},
        {"approach": "priority, prefetch 1 + acks_late", "urgent_wait_s": wait("late_one"),
         "held_back_by": "the running task only",
         "cost": "tasks must be idempotent (redelivered after a crash)"},
        {"approach": "separate queues, round robin (-Q urgent,bulk)", "urgent_wait_s": None,
         "held_back_by": f"turns: the second queue's first task ran as number "
                         f"{turns['rr']['first_low_at'] + 1}",
         "cost": "urgent gets at best every other slot while bulk has work"},
        {"approach": "separate queues, queue_order_strategy priority", "urgent_wait_s": None,
         "held_back_by": "the running and prefetched tasks; then urgent until empty",
         "cost": "the later queue starves while the first has work"},
        {"approach": "a dedicated worker for urgent", "urgent_wait_s": round(dedicated["urgent_wait_s"], 3),
         "held_back_by": "nothing (idle while there is no urgent work)",
         "cost": f"another process: {dedicated['rss_bytes'] / 2**20:.0f} MiB RSS here"},
    ]
