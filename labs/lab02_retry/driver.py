"""Lab 02: retry, the ETA message and ``unacked_index``, measured.

``python -m labs.lab02_retry.driver`` is ``celery-lab run 02``; the notebook calls ``run()``.
"""

from __future__ import annotations

import math
import sys
from functools import partial
from typing import Any

from labkit import runner
from labkit.cli import run_script
from labkit.errors import SetupError
from labkit.evidence import Evidence
from labkit.lab import Lab
from labkit.params import Param, Params
from labkit.session import LabSession
from labs.lab02_retry import measure, plots

PARAMS = {
    "countdown": Param(1.0, "retry countdown of the flaky task, seconds", quick=0.6, min=0.2, max=30),
    "fail_times": Param(2, "how many times the flaky task fails before it succeeds", min=1, max=3),
    "others": Param(5, "quick tasks sent into the retry window (concurrency 1)", min=1, max=200),
    "max_retries": Param(2, "retries before the exhausted task gives up", min=0, max=10),
    "backoff_tasks": Param(20, "tasks per backoff policy (plain, full jitter)", quick=10, min=2,
                           max=500),
    "backoff_retries": Param(3, "retries per backoff task", quick=2, min=1, max=6),
    "retry_backoff": Param(1, "backoff factor, seconds (Celery takes int(max(1, value)))", min=1,
                           max=10),
    "retry_backoff_max": Param(4, "backoff cap, seconds", min=1, max=600),
    "visibility_timeout": Param(1.0, "visibility_timeout of the trap phases, seconds", quick=0.5,
                                min=0.2, max=30),
    "ratios": Param([0.5, 3.0], "countdown / visibility_timeout ratios to try", min=0.05,
                    max=20),
    "fix_factor": Param(2.0, "the fix: visibility_timeout = fix_factor x the longest countdown "
                        "(at least the countdown + 1 s)", min=1.1, max=100),
    "sweep": Param(0.2, "unacked_restore_interval, seconds (throttle set to 1)", quick=0.1,
                   min=0.05, max=10),
    "trap_tasks": Param(5, "ETA tasks per trap phase", min=1, max=200),
    "timeout": Param(60.0, "bound on every wait, seconds", min=1),
}


def validate(p: Params) -> None:
    band = jitter_band(backoff_caps(p))
    if band >= 0.5:
        raise SetupError(f"bad param backoff_tasks={p.backoff_tasks}: {p.backoff_tasks} x "
                         f"{p.backoff_retries} jittered retries cannot tell full jitter from none "
                         f"(chance band +/-{band:.2f} of the mean: it must stay under 0.5); raise "
                         "backoff_tasks or backoff_retries")
    low, high = race_band(p.visibility_timeout, p.sweep)
    for ratio in p.ratios:
        countdown = ratio * p.visibility_timeout
        if low <= countdown <= high:
            raise SetupError(
                f"bad param ratios={ratio:g}: a countdown of {countdown:.2f} s against "
                f"visibility_timeout {p.visibility_timeout:g} s is a race between the worker and "
                f"kombu's sweep (from {low:.2f} to {high:.2f} s); choose a ratio outside it")


def settings(p: Params) -> dict[str, Any]:
    """The backoff policy reaches the worker's tasks as task_annotations (a per-run setting)."""
    policy = {"retry_backoff": p.retry_backoff, "retry_backoff_max": p.retry_backoff_max,
              "max_retries": p.backoff_retries}
    return {"task_annotations": {
        "lab02.backoff_plain": {**policy, "retry_jitter": False},
        "lab02.backoff_jitter": {**policy, "retry_jitter": True},
    }}


def measure_lab(s: LabSession) -> None:
    p = s.params
    ratios = p.ratios
    s.start_worker("w1", concurrency=1)

    with measure.unacked_sampler(s) as sampler:
        s.step(f"a task that fails {p.fail_times}x and retries in {p.countdown} s; "
               f"{p.others} quick tasks in the window")
        anatomy = measure.retry_anatomy(s, p.fail_times, p.countdown, p.others, p.timeout)
        s.step(f"the contrast: a task that sleeps {p.countdown} s inside the function")
        contrast = measure.wait_inside_anatomy(s, p.countdown, p.others, p.timeout)
    s.step(f"retries exhausted after max_retries={p.max_retries}")
    exhausted = measure.exhausted(s, p.max_retries, min(p.countdown, 0.2), p.timeout)
    s.write_json("retry.json", {"anatomy": anatomy, "contrast": contrast, "exhausted": exhausted})
    s.write_csv("unacked_samples.csv", flatten_samples(sampler.rows))
    check_retry(s.evidence, p, anatomy, contrast, exhausted)
    check_unacked_index(s.evidence, p, anatomy, sampler.rows)

    s.step(f"backoff: {p.backoff_tasks} tasks x {p.backoff_retries} retries, plain and jittered")
    rows = measure.backoff(s, p.backoff_tasks, p.backoff_retries,
                           p.timeout + p.retry_backoff_max * p.backoff_retries)
    s.write_csv("backoff.csv", rows)
    check_backoff(s.evidence, p, rows)
    s.workers[0].stop()

    phases = []
    for i, ratio in enumerate(ratios):
        countdown = ratio * p.visibility_timeout
        s.step(f"trap: countdown {countdown:.2f} s against visibility_timeout "
               f"{p.visibility_timeout} s (ratio {ratio})")
        phases.append(measure.visibility(s, f"ratio{i}", p.visibility_timeout, countdown,
                                         p.trap_tasks, p.sweep, p.timeout))
    longest = max(ratios) * p.visibility_timeout
    fixed = fix_visibility_timeout(p)
    s.step(f"the fix: visibility_timeout {fixed:.2f} s > countdown {longest:.2f} s")
    phases.append(measure.visibility(s, "fix", fixed, longest, p.trap_tasks, p.sweep, p.timeout))
    s.write_csv("visibility.csv", [{k: v for k, v in ph.items() if k != "executions"}
                                   | {"executions": sorted(ph["executions"].values())}
                                   for ph in phases])
    s.write_json("visibility.json", phases)
    check_visibility(s.evidence, phases)


def flatten_samples(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One CSV row per (sample, delivery tag in unacked_index)."""
    out = []
    for row in rows:
        snap = row["value"]
        for tag, score in snap["unacked_index"].items():
            info = snap["unacked_messages"].get(tag, {})
            out.append({"t": snap["t"], "tag": tag, "score": score, "id": info.get("id"),
                        "task": info.get("task"), "retries": info.get("retries"),
                        "eta": measure.epoch(info.get("eta"))})
    return out


def check_retry(ev: Evidence, p: Params, anatomy: dict, contrast: dict, exhausted: list[dict]) -> None:
    runs = [a for a in anatomy["attempts"] if a["phase"] == "attempt"]
    called = [a for a in anatomy["attempts"] if a["phase"] == "retry-called"]
    tags = [a["delivery_tag"] for a in runs]
    ev.check("retry_is_a_new_message_for_the_same_task",
             "each retry is a new broker message (new delivery tag) for the same task id, with "
             "request.retries counting up by one",
             {"attempts": len(runs), "ids": len({a["id"] for a in runs}),
              "distinct_delivery_tags": len(set(tags)), "retries": [a["retries"] for a in runs]},
             f"{p.fail_times + 1} attempts, 1 id, {p.fail_times + 1} tags, retries 0..{p.fail_times}",
             len(runs) == p.fail_times + 1 and len({a["id"] for a in runs}) == 1
             and len(set(tags)) == len(runs) and None not in tags
             and [a["retries"] for a in runs] == list(range(p.fail_times + 1))
             and anatomy["value"] == p.fail_times)
    received = sorted(anatomy["received"], key=lambda e: e["t"])[1:]  # the retries' deliveries
    gaps = [{"received_after_s": round(rcv["t"] - c["t"], 4),
             "ran_after_s": round(run["t"] - c["t"], 4)}
            for rcv, c, run in zip(received, called, runs[1:], strict=False)]
    ev.measured(retry_gaps=gaps)
    ev.check("retry_message_is_received_at_once_and_held",
             "the retry message reaches the worker right away and waits there as an ETA task: "
             "received well before the countdown ends, run after it",
             gaps, f"received < {p.countdown / 2:g} s and ran >= {p.countdown:g} s after retry()",
             len(gaps) == p.fail_times
             and all(g["received_after_s"] < p.countdown / 2 and g["ran_after_s"] >= p.countdown
                     for g in gaps))
    window = (called[0]["t"], runs[1]["t"])
    inside = sum(window[0] <= t <= window[1] for t in anatomy["quick_done"])
    ev.check("retry_does_not_hold_a_pool_slot",
             "with concurrency 1, other tasks run while a retry waits out its countdown",
             {"quick_tasks": p.others, "completed_inside_the_countdown": inside,
              "countdown_s": p.countdown},
             "at least 1 (all of them when they fit in the countdown)", inside >= 1)
    blocked = sum(contrast["start"] <= t <= contrast["end"] for t in contrast["quick_done"])
    ev.check("sleeping_inside_the_task_holds_the_slot",
             "a task that waits by sleeping in a loop keeps the only slot: nothing else runs",
             {"quick_tasks": p.others, "completed_while_it_slept": blocked},
             "0", blocked == 0)
    by_exc = {row["with_exc"]: row for row in exhausted}
    ev.check("exhausted_retries_fail_with_the_tasks_exception",
             "after max_retries the task is FAILURE; the caller gets the exception passed to "
             "retry(exc=...), or MaxRetriesExceededError when none was passed",
             {str(k): {"state": v["state"], "exception": v["exception_seen"], "attempts": v["attempts"]}
              for k, v in by_exc.items()},
             f"FAILURE, TransientError / MaxRetriesExceededError, {p.max_retries + 1} attempts each",
             all(v["state"] == "FAILURE" and v["attempts"] == p.max_retries + 1 for v in exhausted)
             and by_exc[True]["exception_seen"] == "TransientError"
             and by_exc[False]["exception_seen"] == "MaxRetriesExceededError")


def check_unacked_index(ev: Evidence, p: Params, anatomy: dict, samples: list[dict]) -> None:
    """What is the score of a delivery tag in unacked_index? Measured against receive and ETA."""
    received = {e["retries"]: e for e in anatomy["received"]}
    scores: dict[str, dict] = {}
    for row in samples:
        snap = row["value"]
        for tag, score in snap["unacked_index"].items():
            info = snap["unacked_messages"].get(tag, {})
            if info.get("id") == anatomy["id"] and tag not in scores:
                scores[tag] = {"score": score, "retries": info.get("retries"),
                               "eta": measure.epoch(info.get("eta"))}
    rows = []
    for tag, info in scores.items():
        rcv = received.get(info["retries"])
        if rcv is None or info["eta"] is None:
            continue
        rows.append({"tag": tag, "retries": info["retries"],
                     "score_minus_received_s": round(info["score"] - rcv["t"], 4),
                     "eta_minus_score_s": round(info["eta"] - info["score"], 4)})
    ev.measured(unacked_index_scores=rows)
    countdown = p.countdown
    ev.check("unacked_index_score_is_the_delivery_time",
             "the score of a delivery tag in unacked_index is when the worker took the message "
             "(its receive time), not when it will run (its ETA)",
             rows, f"|score - received| < {countdown / 4:g} s and ETA - score > {countdown / 2:g} s",
             bool(rows) and all(abs(r["score_minus_received_s"]) < countdown / 4
                                and r["eta_minus_score_s"] > countdown / 2 for r in rows))


def check_backoff(ev: Evidence, p: Params, rows: list[dict]) -> None:
    factor = int(max(1.0, p.retry_backoff))

    def cap(k: int) -> int:
        return min(p.retry_backoff_max, factor * 2 ** k)

    plain = [r for r in rows if r["policy"] == "plain"]
    off = [r for r in plain if round(r["drawn_s"]) != cap(r["retries"])
           or not r["drawn_s"] <= r["delay_s"] < r["drawn_s"] + 0.5]
    ev.check("backoff_follows_min_max_factor_2_to_the_retries",
             "without jitter, retry k waits min(retry_backoff_max, retry_backoff * 2**k) seconds",
             {"retries": len(plain), "off_formula": len(off),
              "drawn_by_k": {k: sorted({round(r["drawn_s"]) for r in plain if r["retries"] == k})
                             for k in range(p.backoff_retries)}},
             "0 off formula; drawn = " + ", ".join(str(cap(k)) for k in range(p.backoff_retries)),
             bool(plain) and not off)
    jitter = [r for r in rows if r["policy"] == "jitter"]
    outside = [r for r in jitter if not 0 <= round(r["drawn_s"]) <= cap(r["retries"])
               or abs(r["drawn_s"] - round(r["drawn_s"])) > 0.1]
    caps = [cap(r["retries"]) for r in jitter]
    mean = (sum(round(r["drawn_s"]) / c for r, c in zip(jitter, caps, strict=True)) / len(jitter)
            if jitter else float("nan"))
    band = jitter_band(caps)
    distinct = len({round(r["drawn_s"]) for r in jitter})
    # all draws equal by chance: sum over shared values of the product of 1 / (c + 1)
    p_all_equal = (min(caps) + 1) * math.prod(1 / (c + 1) for c in caps) if caps else 1.0
    ev.measured(jitter_normalised_mean=mean, jitter_band=band)
    ev.check("full_jitter_draws_a_whole_number_of_seconds_in_0_to_cap",
             "with retry_jitter, each delay is a uniform whole number of seconds in [0, cap]: "
             "spread out, averaging half the cap",
             {"retries": len(jitter), "outside_0_cap": len(outside),
              "mean_delay_over_cap": round(mean, 3), "distinct_delays": distinct},
             f"0 outside; mean/cap in 0.5 +/- {band:.2f} (4.5 sigma for {len(jitter)} draws)"
             + ("; more than one distinct delay" if p_all_equal < 1e-6 else ""),
             bool(jitter) and not outside and abs(mean - 0.5) <= band
             and (distinct > 1 or p_all_equal >= 1e-6))


def backoff_caps(p: Params) -> list[int]:
    """The cap of every jittered retry the backoff part makes."""
    factor = int(max(1.0, p.retry_backoff))
    return [min(p.retry_backoff_max, factor * 2 ** k)
            for _ in range(p.backoff_tasks) for k in range(p.backoff_retries)]


def jitter_band(caps: list[int]) -> float:
    """How far the mean of drawn/cap may stray from 1/2 by chance: 4.5 sigma (a false alarm
    about once in 150,000 runs). A uniform integer in [0, c] over c has mean 1/2 and variance
    (c + 2) / (12 c). A Celery without jitter draws the cap every time (mean 1): the check can
    tell the two apart only while the band stays under 1/2, which ``validate`` demands."""
    if not caps:
        return float("inf")
    return 4.5 * sum((c + 2) / (12 * c) for c in caps) ** 0.5 / len(caps)


# How close an ETA may come to the visibility timeout before the outcome is a race between
# the worker starting (and early-acking) the task and kombu's sweep restoring its message:
# below it, the task must start within ONCE_MARGIN of its ETA; above it, the sweep (every
# `sweep` s) and the redelivery must happen within RACE_MARGIN.
ONCE_MARGIN = 0.2
RACE_MARGIN = 0.5


def race_band(visibility_timeout: float, sweep: float) -> tuple[float, float]:
    """The countdowns (seconds) whose outcome is a race: no claim, so validate refuses them."""
    return visibility_timeout - ONCE_MARGIN, visibility_timeout + sweep + RACE_MARGIN


def fix_visibility_timeout(p: Params) -> float:
    """The fix: comfortably longer than the longest countdown (never inside the race margin)."""
    longest = max(p.ratios) * p.visibility_timeout
    return max(p.fix_factor * longest, longest + 2 * RACE_MARGIN)


def check_visibility(ev: Evidence, phases: list[dict]) -> None:
    for ph in phases:
        counts = list(ph["executions"].values())
        summary = {"countdown_s": round(ph["countdown"], 3),
                   "visibility_timeout_s": round(ph["visibility_timeout"], 3),
                   "executions_per_task": sorted(counts), "redelivered_runs": ph["redelivered_runs"]}
        low, high = race_band(ph["visibility_timeout"], ph["sweep"])
        if ph["countdown"] < low:
            claim = ("an ETA shorter than visibility_timeout runs once" if ph["name"] != "fix" else
                     "the fix: a visibility_timeout longer than the longest ETA runs every task once")
            ev.check(f"visibility_{ph['name']}_runs_once", claim, summary, "1 execution per task",
                     counts and all(c == 1 for c in counts))
        elif ph["countdown"] > high:
            ev.check(f"visibility_{ph['name']}_runs_again",
                     "an ETA longer than visibility_timeout is restored to the queue while the worker "
                     "holds it, delivered again, and the task runs more than once",
                     summary, "> 1 execution per task", counts and all(c > 1 for c in counts))
        else:  # validate refuses these ratios; a phase here is a bug of the lab, not of Celery
            raise RuntimeError(f"phase {ph['name']}: countdown {ph['countdown']:.2f} s is in the "
                               "race band that validate refuses")
    ev.measured(visibility=[{k: v for k, v in ph.items() if k != "executions"} for ph in phases])


LAB = Lab(
    id="02_retry",
    title="Retry, the ETA message and unacked_index, measured",
    measure=measure_lab,
    figures=plots.FIGURES,
    params=PARAMS,
    settings=settings,
    validate=validate,
    wall_time="default about 30 s, --quick about 22 s",
)


# What the notebook calls: the same measurement as ``celery-lab run 02``.
run = partial(runner.run, LAB)

if __name__ == "__main__":
    sys.exit(run_script(LAB))
