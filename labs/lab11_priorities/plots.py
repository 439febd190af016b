"""Lab 11's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from labkit.plotting import integer_ticks, legend_outside, new_figure
from labs.lab11_priorities.checks import DEFAULT_STEPS, step_of
from labs.lab11_priorities.rates import aggregate_rate

STEP_COLOURS = {0: "tab:red", 3: "tab:orange", 6: "tab:olive", 9: "tab:gray"}
CONFIGS = {"prefetch": "default prefetch", "prefetch_one": "prefetch 1", "late_one": "prefetch 1 + acks_late"}


def order_plot(run_dir: Path) -> Figure:
    """Position in the order run against the priority sent, with the default steps and with a
    list per value; each point coloured by the list it was stored in."""
    data = json.loads((run_dir / "order.json").read_text())
    fig, axes = new_figure(11, 4.2, ncols=2)
    for ax, key, title in zip(axes, ("default_steps", "fine_steps"),
                              ("priority_steps [0, 3, 6, 9] (the default)", "priority_steps 0-9"),
                              strict=True):
        ran = data[key]["ran"]
        colours = [STEP_COLOURS[step_of(r["priority"], DEFAULT_STEPS)] for r in ran]
        ax.scatter(range(1, len(ran) + 1), [r["priority"] for r in ran], c=colours, s=28)
        ax.set_xlabel("position in the order the worker ran them")
        ax.set_ylabel("priority sent (0 = most urgent on Redis)")
        ax.set_yticks(range(10))
        integer_ticks(ax, "x")
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=f"stored in step {s}'s list")
               for s, c in STEP_COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle("A pre-filled queue runs from priority 0 to 9, step by step; first in, first out "
                 "within a step", fontsize=10)
    return fig


def backlog_plot(run_dir: Path) -> Figure:
    """Per prefetch setting, when backlog and urgent tasks started against the moment the
    urgent ones were sent."""
    data = json.loads((run_dir / "backlog.json").read_text())
    fig, (ax,) = new_figure(10, 3.6)
    for y, name in enumerate(CONFIGS):
        trial = data["trials"][name][-1]
        ax.scatter(trial["bulk_starts"], [y] * len(trial["bulk_starts"]), marker="|", s=300,
                   color="tab:gray", label="backlog task started (priority 9)")
        ax.scatter(trial["urgent_starts"], [y] * len(trial["urgent_starts"]), marker="o", s=40,
                   color="tab:red", zorder=3, label="urgent task started (priority 0)")
        ax.annotate(f"held back by {trial['held']} prefetched", (trial["urgent_starts"][-1], y),
                    xytext=(8, 6), textcoords="offset points", fontsize=8)
    ax.axvline(0, color="black", linestyle="--", label="urgent tasks sent")
    ax.set_yticks(range(len(CONFIGS)), list(CONFIGS.values()))
    ax.set_ylim(-0.6, len(CONFIGS) - 0.4)
    ax.set_xlabel("seconds since the urgent tasks were sent")
    ax.set_title("What a worker already fetched runs first; acks_late + prefetch 1 holds nothing back",
                 fontsize=10)
    legend_outside(ax)
    return fig


def queues_plot(run_dir: Path) -> Figure:
    """The queue of each execution, in order, for the three two-queue workers."""
    data = json.loads((run_dir / "queues.json").read_text())
    rows = {"rr": "round robin (default)", "po": "queue_order_strategy\n'priority'",
            "cross": "'priority', high at\npriority 6, low at 0"}
    fig, (ax,) = new_figure(10, 3.2)
    for y, name in enumerate(rows):
        for x, queue in enumerate(data["turns"][name]["queues"]):
            high = queue.endswith("high")
            ax.scatter(x + 1, y, marker="s", s=120, color="tab:blue" if high else "tab:orange",
                       label="from -Q high (listed first)" if high else "from low")
    ax.set_yticks(range(len(rows)), list(rows.values()))
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("position in the order the worker ran them")
    integer_ticks(ax, "x")
    ax.set_title("One worker, -Q high,low, both pre-filled: which queue each task came from", fontsize=10)
    legend_outside(ax)
    return fig


def rates_plot(run_dir: Path) -> Figure:
    """Cumulative executions over time: rate_limit on one worker and on three, and the bucket
    in Redis they share; the limit drawn as a slope."""
    data = json.loads((run_dir / "rates.json").read_text())
    rate = data["rate"]
    series = {"rate_limit, one worker": [r["t"] for r in data["one"]["runs"]],
              "rate_limit, three workers": [r["t"] for r in data["three"]["runs"]],
              "shared bucket in Redis, three workers": [g["t"] for g in data["shared"]["grants"]]}
    fig, (ax,) = new_figure(9, 4.2)
    longest = 0.0
    for label, times in series.items():
        t0 = times[0]
        xs = [t - t0 for t in times]
        longest = max(longest, xs[-1])
        measured = aggregate_rate([{"t": t, "hostname": ""} for t in times])["rate"]
        ax.step(xs, range(1, len(xs) + 1), where="post", label=f"{label} ({measured or 0:.1f}/s)")
    ax.plot([0, longest], [1, 1 + rate * longest], color="black", linestyle=":",
            label=f"the limit, {rate:g}/s")
    ax.set_xlabel("seconds since the first execution of the run")
    ax.set_ylabel("executions so far")
    integer_ticks(ax)
    ax.set_title("rate_limit is per worker: three workers run past one limit; a bucket in Redis holds "
                 "them to it", fontsize=10)
    legend_outside(ax)
    return fig


FIGURES = {
    "order.png": order_plot,
    "backlog.png": backlog_plot,
    "queues.png": queues_plot,
    "rates.png": rates_plot,
}
