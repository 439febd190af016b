"""Lab 06's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from labkit.plotting import integer_ticks, legend_outside, new_figure


def log_heatmaps(run_dir: Path) -> Figure:
    configs = json.loads((run_dir / "log_levels.json").read_text())
    fig, axes = new_figure(11, 4, ncols=2)
    for ax, cfg in zip(axes, configs, strict=True):
        levels = list(cfg["matrix"])
        queues = [*cfg["queues"], "(dropped)"]
        grid = [[cfg["matrix"][lvl][q] for q in cfg["queues"]] + [cfg["dropped"][lvl]]
                for lvl in levels]
        top = cfg["published_per_level"]
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=top, aspect="auto")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                dropped = j == len(queues) - 1 and value
                ax.text(j, i, str(value), ha="center", va="center", fontsize=11,
                        fontweight="bold" if dropped else "normal",
                        color="white" if value > top / 2 else "black")
                if dropped:  # a red frame: messages nobody will ever consume
                    ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False,
                                           edgecolor="tab:red", linewidth=3))
        ax.set_xticks(range(len(queues)), queues, rotation=20, fontsize=8)
        ax.set_yticks(range(len(levels)), levels)
        ax.set_xlabel("queue the message landed in")
        ax.set_ylabel("routing key (log level)")
        ax.set_title(f"{cfg['config']}: messages per routing key and queue\n"
                     f"({top} published per key; red frame: dropped)", fontsize=10)
    return fig


def topic_grid(run_dir: Path) -> Figure:
    topic = json.loads((run_dir / "topic.json").read_text())
    keys, patterns = topic["keys"], list(topic["patterns"].values())
    fig, (ax,) = new_figure(8, 4)
    for row in topic["rows"]:
        i, j = keys.index(row["routing_key"]), patterns.index(row["pattern"])
        colour = "tab:green" if row["redis"] == row["amqp"] else "tab:red"
        label = ("R" if row["redis"] else "-") + "/" + ("A" if row["amqp"] else "-")
        ax.text(j, i, label, ha="center", va="center", color=colour, fontsize=11)
    ax.set_xlim(-0.5, len(patterns) - 0.5)
    ax.set_ylim(len(keys) - 0.5, -0.5)
    ax.set_xticks(range(len(patterns)), patterns)
    ax.set_yticks(range(len(keys)), keys)
    ax.set_xticks([x + 0.5 for x in range(len(patterns) - 1)], minor=True)
    ax.set_yticks([y + 0.5 for y in range(len(keys) - 1)], minor=True)
    ax.grid(which="minor", color="0.85")
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("binding pattern of the queue")
    ax.set_ylabel("routing key published")
    ax.set_title("Topic matching: R = delivered on Redis, A = AMQP would; red = they differ",
                 fontsize=10)
    return fig


def fanout_bars(run_dir: Path) -> Figure:
    fan = json.loads((run_dir / "fanout.json").read_text())
    workers = list(fan["per_worker"])
    fig, (ax,) = new_figure(8, 4)
    kinds = [("early_broadcasts", "broadcast before w3 joined"),
             ("late_broadcast", "broadcast after w3 joined"), ("shared", "shared direct queue")]
    for k, (key, label) in enumerate(kinds):
        bars = ax.bar([i + (k - 1) * 0.25 for i in range(len(workers))],
                      [fan["per_worker"][w][key] for w in workers], width=0.25, label=label,
                      color=["tab:blue", "tab:orange", "tab:green"][k])
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(range(len(workers)), workers)
    ax.set_xlabel("worker")
    ax.set_ylabel("messages run")
    ax.margins(y=0.1)
    integer_ticks(ax)
    ax.set_title("Fanout gives everyone a copy; a direct queue gives each message to one",
                 fontsize=10)
    legend_outside(ax)
    return fig


FIGURES = {
    "log_levels.png": log_heatmaps,
    "topic.png": topic_grid,
    "fanout.png": fanout_bars,
}
