"""Lab 08's plots, drawn from a run directory."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from matplotlib.figure import Figure

from labkit.plotting import new_figure
from labkit.results import read_csv

STATES = ["PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"]


def states_timeline(run_dir: Path) -> Figure:
    data = json.loads((run_dir / "states.json").read_text())
    t0 = data["polls"][0]["t"]
    names = [*data["ids"], "unknown"]
    fig, (ax,) = new_figure(10, 4.5)
    for i, name in enumerate(names):
        xs = [r["t"] - t0 for r in data["polls"]]
        ys = [i + STATES.index(r[name]) * 0.12 for r in data["polls"]]
        ax.step(xs, ys, where="post", label=f"{name} (polled)")
        for e in data["events"]:
            if e["task"] == name:
                ax.annotate(e["type"].replace("task-", ""), (e["t"] - t0, i + 0.75), fontsize=6,
                            rotation=60)
                ax.axvline(e["t"] - t0, ymin=(i + 0.05) / len(names), ymax=(i + 0.7) / len(names),
                           color="gray", linewidth=0.6)
    ax.set_yticks([i + 0.3 for i in range(len(names))], names)
    ax.set_ylim(-0.2, len(names))
    ax.set_xlabel("seconds (steps: polled state, rising PENDING -> STARTED -> RETRY -> final; "
                  "labels: events)")
    ax.set_title("The life of a task: polling and events side by side", fontsize=10)
    return fig


def inspect_counts(run_dir: Path) -> Figure:
    rows = read_csv(run_dir / "inspect.csv")
    t0 = rows[0]["t"]
    x = [r["t"] - t0 for r in rows]
    fig, (ax,) = new_figure(9, 4.5)
    keys = ["queue", "reserved", "scheduled", "active", "done"]
    ax.stackplot(x, *[[r[k] for r in rows] for k in keys], labels=[
        "in the Redis list", "reserved (prefetched)", "scheduled (ETA)", "active", "done"],
        step="post")
    resumed = json.loads((run_dir / "burst.json").read_text()).get("resumed_at")
    if resumed is not None:
        ax.axvline(resumed - t0, color="black", linestyle=":", linewidth=1,
                   label="worker consumes again (Flower saw the backlog)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("tasks")
    ax.set_title("Where every task sits, from inspect and LLEN", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def flower_metrics(run_dir: Path) -> Figure:
    rows = read_csv(run_dir / "flower_scrapes.csv")
    threshold = json.loads((run_dir / "burst.json").read_text()).get("threshold")
    t0 = rows[0]["t"]
    fig, (ax1, ax2) = new_figure(11, 4, ncols=2)
    x = [r["t"] - t0 for r in rows]
    for key, colour in (("succeeded", "tab:green"), ("failed", "tab:red")):
        rate = [0.0] + [(b[key] - a[key]) / (b["t"] - a["t"]) for a, b in itertools.pairwise(rows)]
        ax1.plot(x, rate, color=colour, label=f"{key} per s")
    ax1.set_xlabel("seconds")
    ax1.set_title("Throughput and failures from /metrics", fontsize=10)
    ax1.legend(fontsize=8)
    ax2.step(x, [r["queue_length"] for r in rows], where="post", label="/api/queues/length")
    if threshold is not None:
        ax2.axhline(threshold, color="tab:red", linestyle="--", label="alert threshold")
        ax2.fill_between(x, 0, [r["queue_length"] for r in rows], step="post",
                         where=[r["queue_length"] > threshold for r in rows], color="tab:red",
                         alpha=0.2, label="alert firing")
    ax2.set_xlabel("seconds")
    ax2.set_title("Backlog, and an alert on it", fontsize=10)
    ax2.legend(fontsize=8)
    return fig


FIGURES = {
    "states.png": states_timeline,
    "inspect.png": inspect_counts,
    "flower.png": flower_metrics,
}
