"""Lab 01's plots, drawn from a run directory's CSV files (a notebook can redraw any run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from labkit.plotting import integer_ticks, legend_outside, new_figure
from labkit.results import read_csv


def latency_histogram(run_dir: Path) -> Figure:
    seq = read_csv(run_dir / "sequential.csv")
    raw = read_csv(run_dir / "raw_redis.csv")
    celery_ms = np.array([(r["seen"] - r["submit"]) * 1000 for r in seq])
    raw_ms = np.array([r["rtt"] * 1000 for r in raw])
    fig, (ax1, ax2) = new_figure(11, 4, ncols=2)
    for ax, data, title in ((ax1, celery_ms, "Celery round trip: delay() -> result.get()"),
                            (ax2, raw_ms, "raw Redis round trip: LPUSH -> BRPOP")):
        ax.hist(data, bins=40, color="tab:blue" if ax is ax1 else "tab:gray")
        for q, style in ((50, "-"), (99, "--")):
            v = np.percentile(data, q)
            ax.axvline(v, color="tab:red", linestyle=style, label=f"p{q} = {v:.3f} ms")
        ax.set_title(title)
        ax.set_xlabel("milliseconds")
        ax.set_ylabel("tasks" if ax is ax1 else "round trips")
        integer_ticks(ax)
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.2), ncols=2, fontsize=8)
    ratio = np.median(celery_ms) / np.median(raw_ms)
    fig.suptitle(f"{len(celery_ms)} sequential tasks: p50 is {ratio:.0f}x a raw Redis round trip")
    return fig


PHASES = [
    ("submit -> received", "submit", "received"),
    ("received -> started", "received", "started"),
    ("started -> succeeded", "started", "succeeded"),
    ("succeeded -> seen", "succeeded", "seen"),
    ("stored -> seen", "stored", "seen"),
]


def phase_breakdown(run_dir: Path) -> Figure:
    seq = read_csv(run_dir / "sequential.csv")
    data = [[(r[b] - r[a]) * 1000 for r in seq if r[a] is not None and r[b] is not None]
            for _, a, b in PHASES]
    fig, (ax,) = new_figure(9, 4.5)
    ax.boxplot(data, vert=False, tick_labels=[name for name, *_ in PHASES], showfliers=True)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds (one clock: time.time() on this host)")
    ax.set_title("Where a round trip goes (events stamped by the worker's main process; "
                 "'stored' is the result's date_done)", fontsize=9)
    return fig


def batch_timeline(run_dir: Path) -> Figure:
    """Cumulative counts, one line per stage: lines a few ms apart stay visible where
    thousands of dots would hide each other."""
    rows = read_csv(run_dir / "batch.csv")
    t0 = min(r["submit"] for r in rows)
    fig, (ax,) = new_figure(9, 4.5)
    for key, colour, style in (("submit", "tab:gray", "-"), ("received", "tab:blue", "-"),
                               ("started", "tab:orange", "--"), ("succeeded", "tab:green", ":")):
        times = sorted(r[key] - t0 for r in rows if r[key] is not None)
        ax.step(times, range(1, len(times) + 1), where="post", color=colour, linestyle=style,
                linewidth=2 if key == "succeeded" else 1.2,
                label="published" if key == "submit" else key)
    published = max(r["submit"] for r in rows) - t0
    first = min(r["started"] for r in rows) - t0
    end = max(r["succeeded"] for r in rows) - t0
    ax.axvspan(first, end, color="tab:green", alpha=0.08)
    ax.set_xlabel("seconds since the first publish")
    ax.set_ylabel("tasks (cumulative)")
    integer_ticks(ax)
    ax.set_title(f"{len(rows)} tasks: published in {published:.2f} s "
                 f"({len(rows) / published:.0f}/s), then drained in {end - first:.2f} s "
                 f"({len(rows) / (end - first):.0f}/s, with events on)", fontsize=10)
    legend_outside(ax)
    return fig


def cost_ladder(run_dir: Path) -> Figure:
    rows = read_csv(run_dir / "cost_ladder.csv")
    fig, (ax,) = new_figure(10, 4.5)
    rates = [r["drain_tasks_per_s"] for r in rows]
    colours = ["tab:gray" if r["rung"].startswith("bench") else "tab:olive"
               if "result_extended" in r["rung"] else "tab:blue" for r in rows]
    ax.barh(range(len(rows)), rates, color=colours)
    for i, rate in enumerate(rates):
        ax.annotate(f"{rate:.0f}", (rate, i), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    publish = next(r for r in rows if r["rung"].startswith("+ events"))["publish_tasks_per_s"]
    ax.axvline(publish, color="tab:red", linestyle="--",
               label=f"one client publishes {publish:.0f} tasks/s")
    ax.set_yticks(range(len(rows)), [r["rung"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("no-op tasks drained per second from a pre-filled queue (tasks/s)")
    ax.set_title("What a hello-world task costs a worker: from Celery's benchmark shape to the "
                 "lab's worker, one step at a time", fontsize=10)
    legend_outside(ax)
    return fig


def queue_timeline(run_dir: Path) -> Figure:
    samples = read_csv(run_dir / "queue_length.csv")
    marks = read_csv(run_dir / "queue_marks.csv")
    messages = json.loads((run_dir / "queued_messages.json").read_text())
    t0 = samples[0]["t"]
    fig, (ax,) = new_figure(9, 4)
    ax.step([s["t"] - t0 for s in samples], [s["queue_length"] for s in samples], where="post")
    top = max(s["queue_length"] for s in samples) or 1
    for n, mark in enumerate(marks):
        ax.axvline(mark["t"] - t0, color="tab:gray", linestyle=":")
        ax.annotate(mark["event"], (mark["t"] - t0, top * (0.9 - 0.15 * n)), fontsize=8,
                    xytext=(3, 0), textcoords="offset points")
    ax.set_xlabel("seconds")
    ax.set_ylabel("messages in the 'celery' list")
    integer_ticks(ax)
    ax.set_title(f"{len(messages)} messages wait in Redis until a worker exists, then drain")
    return fig


FIGURES = {
    "latency_hist.png": latency_histogram,
    "phases.png": phase_breakdown,
    "batch_timeline.png": batch_timeline,
    "cost_ladder.png": cost_ladder,
    "queue_length.png": queue_timeline,
}
