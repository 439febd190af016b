"""Lab 08's plots, drawn from a run directory."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from labkit.plotting import integer_ticks, legend_below, legend_outside, new_figure
from labkit.results import read_csv

STATES = {"PENDING": "0.85", "STARTED": "tab:blue", "RETRY": "tab:orange", "SUCCESS": "tab:green",
          "FAILURE": "tab:red", "REVOKED": "tab:purple"}
# each event type on its own row inside a lane: events a few ms apart would hide each other
EVENTS = {"task-sent": ("o", "black"), "task-received": ("v", "0.45"),
          "task-started": ("^", "tab:blue"), "task-retried": ("P", "tab:orange"),
          "task-succeeded": ("s", "tab:green"), "task-failed": ("X", "tab:red"),
          "task-revoked": ("D", "tab:purple")}


def states_timeline(run_dir: Path) -> Figure:
    data = json.loads((run_dir / "states.json").read_text())
    polls = data["polls"]
    t0 = polls[0]["t"]
    names = [*data["ids"], "unknown"]
    kinds = {**EVENTS, **{e["type"]: ("*", "0.3") for e in data["events"] if e["type"] not in EVENTS}}
    fig, (ax,) = new_figure(11, 1.2 + 0.9 * len(names))
    for i, name in enumerate(names):
        y = len(names) - 1 - i
        for a, b in itertools.pairwise(polls):  # the state a poll saw, until the next poll
            ax.broken_barh([(a["t"] - t0, b["t"] - a["t"])], (y - 0.4, 0.35),
                           color=STATES.get(a[name], "white"))
        for k, (kind, (marker, colour)) in enumerate(kinds.items()):
            xs = [e["t"] - t0 for e in data["events"] if e["task"] == name and e["type"] == kind]
            ax.scatter(xs, [y + 0.05 + 0.45 * k / len(kinds)] * len(xs), marker=marker,
                       color=colour, s=22, zorder=3)
    ax.set_yticks(range(len(names)), names[::-1])
    ax.set_ylim(-0.55, len(names) - 0.45)
    ax.set_xlabel("time since the first poll (s)")
    ax.set_ylabel("task")
    handles = [Patch(color=c, label=f"polled: {s}") for s, c in STATES.items()]
    handles += [Line2D([], [], marker=m, color=c, linestyle="none", label=f"event: {e}")
                for e, (m, c) in kinds.items()]
    legend_outside(ax, handles=handles)
    ax.set_title("The life of a task: polled state (bars) and events (markers) side by side",
                 fontsize=10)
    return fig


def inspect_counts(run_dir: Path) -> Figure:
    rows = read_csv(run_dir / "inspect.csv")
    t0 = rows[0]["t"]
    x = [r["t"] - t0 for r in rows]
    fig, (ax,) = new_figure(10.5, 4.5)
    keys = ["queue", "reserved", "scheduled", "active", "done"]
    ax.stackplot(x, *[[r[k] for r in rows] for k in keys], labels=[
        "in the Redis list", "reserved (prefetched)", "scheduled (ETA)", "active", "done"],
        step="post")
    resumed = json.loads((run_dir / "burst.json").read_text()).get("resumed_at")
    if resumed is not None:
        ax.axvline(resumed - t0, color="black", linestyle=":", linewidth=1,
                   label="worker consumes again (Flower saw the backlog)")
    ax.set_xlabel("time since the first sample (s)")
    ax.set_ylabel("tasks")
    integer_ticks(ax)
    ax.set_title("Where every task sits, from inspect and LLEN", fontsize=10)
    legend_outside(ax)
    return fig


def flower_metrics(run_dir: Path) -> Figure:
    rows = read_csv(run_dir / "flower_scrapes.csv")
    threshold = json.loads((run_dir / "burst.json").read_text()).get("threshold")
    t0 = rows[0]["t"]
    fig, (ax1, ax2) = new_figure(11, 4, ncols=2)
    x = [r["t"] - t0 for r in rows]
    for key, colour in (("succeeded", "tab:green"), ("failed", "tab:red")):
        rate = [0.0] + [(b[key] - a[key]) / (b["t"] - a["t"]) for a, b in itertools.pairwise(rows)]
        ax1.plot(x, rate, color=colour, marker=".", label=f"{key} per s")
    ax1.set_xlabel("time since the first scrape (s)")
    ax1.set_ylabel("tasks/s")
    ax1.set_title("Throughput and failures from /metrics", fontsize=10)
    ax2.step(x, [r["queue_length"] for r in rows], where="post", label="/api/queues/length")
    if threshold is not None:
        ax2.axhline(threshold, color="tab:red", linestyle="--", label="alert threshold")
        firing = [r["queue_length"] > threshold for r in rows]
        # a firing sample holds until the next one: fill_between only fills between two
        # points its ``where`` keeps, so keep the one after each firing sample too
        ax2.fill_between(x, 0, [r["queue_length"] for r in rows], step="post",
                         where=[f or (i > 0 and firing[i - 1]) for i, f in enumerate(firing)],
                         color="tab:red", alpha=0.2, label="alert firing")
    ax2.set_xlabel("time since the first scrape (s)")
    ax2.set_ylabel("messages in the queue")
    integer_ticks(ax2)
    ax2.set_title("Backlog, and an alert on it", fontsize=10)
    legend_below(fig, ncols=5)
    return fig


FIGURES = {
    "states.png": states_timeline,
    "inspect.png": inspect_counts,
    "flower.png": flower_metrics,
}
