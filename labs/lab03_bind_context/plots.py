"""Lab 03's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from labkit.plotting import integer_ticks, legend_below, legend_outside, new_figure
from labs.lab03_bind_context.measure import progress_window

WORKER_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]
MARKERS = ["o", "s", "^", "D", "v", "P"]


def call_tree(run_dir: Path) -> Figure:
    data = json.loads((run_dir / "contexts.json").read_text())
    rows = data["contexts"]
    first = {}
    for row in rows:
        first.setdefault(row["id"], row)
    hosts = sorted({r["hostname"] for r in first.values()})
    pids = sorted({r["pid"] for r in first.values()})
    fig, (ax,) = new_figure(10, 5.5)
    lanes = [("chain", data["ids"]["chain"]), ("group", data["ids"]["group_members"]),
             ("plain", [data["ids"]["plain"]]), ("retried", [data["ids"]["retried"]])]
    pos = {}
    for y, (name, ids) in enumerate(lanes):
        for x, task_id in enumerate(ids):
            pos[task_id] = (x, -y)
        ax.text(-0.6, -y, name, ha="right", va="center", fontsize=9)
    for task_id, row in first.items():
        if task_id not in pos:
            continue
        x, y = pos[task_id]
        parent = row["parent_id"]
        if parent in pos:
            px, py = pos[parent]
            ax.annotate("", (x, y), (px, py), arrowprops={  # ends at the markers' edges
                "arrowstyle": "->", "color": "gray", "shrinkA": 12, "shrinkB": 12})
        ax.scatter(x, y, s=260, color=WORKER_COLOURS[hosts.index(row["hostname"]) % 4],
                   marker=MARKERS[pids.index(row["pid"]) % len(MARKERS)], zorder=3)
        ax.annotate(f"{task_id[:6]}\npid {row['pid']}", (x, y), xytext=(0, -24),
                    textcoords="offset points", ha="center", fontsize=7)
    for i, host in enumerate(hosts):
        ax.scatter([], [], color=WORKER_COLOURS[i % 4], label=host, s=80)
    ax.set_xlim(-1.5, max(x for x, _ in pos.values()) + 0.8)
    ax.set_ylim(-len(lanes) + 0.4, 0.6)
    ax.axis("off")
    legend_outside(ax, title="worker\n(marker shape:\npool process)", title_fontsize=8)
    ax.set_title("Call tree from self.request: parent_id arrows, coloured by the worker that ran it",
                 fontsize=10)
    return fig


def progress_plot(run_dir: Path) -> Figure:
    data = json.loads((run_dir / "progress.json").read_text())
    prog, bare = data["with_backend"], data["without_backend"]
    t0 = prog["polls"][0]["t"]
    fig, (ax1, ax2) = new_figure(11, 4.6, ncols=2)
    for n, p in enumerate(prog["polls"]):
        ax1.axvline(p["t"] - t0, color="tab:red", alpha=0.15, label="a poll" if not n else None)
    window = progress_window(prog)
    if window:
        ax1.axvspan(window[0] - t0, window[1] - t0, color="tab:green", alpha=0.08,
                    label="PROGRESS surely stored")
    ax1.step([u["t"] - t0 for u in prog["updates"]], [u["done"] for u in prog["updates"]],
             where="post", color="tab:gray", label="update_state (task side)")
    polls = [p for p in prog["polls"] if p["done"] is not None]
    ax1.scatter([p["t"] - t0 for p in polls], [p["done"] for p in polls], color="tab:red",
                zorder=3, label="what a poll saw")
    ax1.set_xlabel("time since the first poll (s)")
    ax1.set_ylabel("steps done (steps)")
    integer_ticks(ax1)
    ax1.set_title("Polling AsyncResult with a result backend", fontsize=10)
    b0 = bare["polls"][0]["t"]
    states = sorted({p["state"] for p in bare["polls"]} | {"PROGRESS", "SUCCESS"})
    if bare.get("started_at") and bare.get("succeeded_at"):
        ax2.axvspan(bare["started_at"] - b0, bare["succeeded_at"] - b0, color="tab:orange",
                    alpha=0.12, label="task ran (task-started to task-succeeded event)")
    ax2.scatter([p["t"] - b0 for p in bare["polls"]],
                [states.index(p["state"]) for p in bare["polls"]], color="tab:red",
                label="what a poll saw")
    ax2.set_yticks(range(len(states)), states)
    ax2.set_xlabel("time since the first poll (s)")
    ax2.set_ylabel("state the client saw")
    ax2.set_title("Worker without a result backend: the client sees PENDING", fontsize=10)
    legend_below(fig, ncols=3)
    return fig


FIGURES = {
    "call_tree.png": call_tree,
    "progress.png": progress_plot,
}
