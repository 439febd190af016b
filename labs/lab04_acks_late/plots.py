"""Lab 04's plots, drawn from a run directory."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from labkit.plotting import integer_ticks, legend_outside, new_figure
from labkit.results import read_csv

# worst first: a cell takes the colour of the worst thing that happened to a task the fault hit
OUTCOMES = [("lost", "tab:red"), ("completed twice", "tab:purple"), ("re-executed", "tab:orange"),
            ("once", "tab:green")]
NO_HIT = "lightgray"


def was_hit(row: dict[str, Any]) -> bool:
    """matrix.csv's ``victim``: the task was among the ids the fault hit (``matrix.inject``
    returns the tasks running at that instant). read_csv hands it back as the text True/False."""
    return str(row["victim"]).lower() in ("true", "1", "1.0")


def matrix_cells(rows: list[dict[str, Any]]
                 ) -> tuple[list[str], list[str], dict[tuple[str, str], tuple[Counter, Counter]]]:
    """(modes, faults, {(mode, fault): (outcomes of the hit tasks, outcomes of the others)}),
    modes and faults in the order the CSV has them, all trials together."""
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    faults = list(dict.fromkeys(r["fault"] for r in rows))
    cells = {(m, f): (Counter(), Counter()) for m in modes for f in faults}
    for r in rows:
        cells[r["mode"], r["fault"]][0 if was_hit(r) else 1][r["outcome"]] += 1
    return modes, faults, cells


def cell_text(hit: Counter, spared: Counter) -> tuple[str, str]:
    """(what happened to the hit tasks, a line for the untouched ones), worst outcome first."""
    order = [name for name, _ in OUTCOMES]
    first = "\n".join(f"{hit[o]} {o}" for o in order if hit[o]) or "no task hit"
    n = sum(spared.values())
    if not n:
        return first, ""
    if n == spared["once"]:
        return first, f"+{n} untouched, all once"
    return first, f"+{n} untouched: " + ", ".join(f"{spared[o]} {o}" for o in order if spared[o])


def cell_colour(hit: Counter) -> str:
    return next((colour for name, colour in OUTCOMES if hit[name]), NO_HIT)


def matrix_heatmap(run_dir: Path) -> Figure:
    """Ack mode x fault; each cell: what happened to the tasks the fault hit, coloured by the
    worst of it, and a line for the tasks it never touched (they should all run once)."""
    rows = read_csv(run_dir / "matrix.csv")
    modes, faults, cells = matrix_cells(rows)
    fig, (ax,) = new_figure(10, 1.2 + 1.1 * len(modes))
    grid = [[to_rgba(cell_colour(cells[m, f][0]), 0.45) for f in faults] for m in modes]
    ax.imshow(grid, aspect="auto")
    for i, m in enumerate(modes):
        for j, f in enumerate(faults):
            first, second = cell_text(*cells[m, f])
            ax.text(j, i - 0.08, first, ha="center", va="center", fontsize=10, fontweight="bold")
            spared = cells[m, f][1]  # an untouched task that did not run once is news: red
            ax.text(j, i + 0.36, second, ha="center", va="center", fontsize=8,
                    color="dimgray" if spared["once"] == spared.total() else "tab:red")
    ax.set_xticks(range(len(faults)), faults)
    ax.set_yticks(range(len(modes)), modes)
    ax.set_xticks([x + 0.5 for x in range(len(faults) - 1)], minor=True)
    ax.set_yticks([y + 0.5 for y in range(len(modes) - 1)], minor=True)
    ax.grid(which="minor", color="white", linewidth=3)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("fault injected while the tasks ran")
    ax.set_ylabel("ack mode")
    trials = len({r["trial"] for r in rows})
    ax.set_title(f"What happened to the tasks the fault hit (tasks, {trials} trial"
                 f"{'s' if trials != 1 else ''}); bottom line: the tasks it never touched",
                 fontsize=10)
    legend_outside(ax, handles=[Patch(color=to_rgba(colour, 0.45), label=name)
                                for name, colour in [*OUTCOMES[::-1], ("no task hit", NO_HIT)]],
                   title="worst outcome\nof a hit task", title_fontsize=8)
    return fig


def redelivery_delay(run_dir: Path) -> Figure:
    rows = [r for r in read_csv(run_dir / "redelivery.csv") if r["after_delivery_s"] is not None]
    fig, (ax,) = new_figure(8, 4.5)
    vts = sorted({r["visibility_timeout"] for r in rows})
    latest = [max(r["latest_s"] for r in rows if r["visibility_timeout"] == v) for v in vts]
    ax.fill_between(vts, vts, latest, color="tab:red", alpha=0.08, label="expected window")
    ax.plot(vts, vts, color="tab:red", label="earliest: visibility_timeout")
    ax.plot(vts, latest, color="tab:red", linestyle="--", label="latest: + sweep + worker start")
    ax.scatter([r["visibility_timeout"] for r in rows], [r["after_delivery_s"] for r in rows],
               facecolors="none", edgecolors="tab:blue", zorder=3,
               label="measured: the redelivered run started")
    ax.set_xticks(vts)
    ax.set_xlabel("visibility_timeout (s)")
    ax.set_ylabel("time after the original delivery (s)")
    ax.set_title("After a whole-worker SIGKILL the work waits out the visibility timeout",
                 fontsize=10)
    legend_outside(ax)
    return fig


def where_it_waits(run_dir: Path) -> Figure:
    part = json.loads((run_dir / "redelivery.json").read_text())[-1]
    samples = part["samples"]
    t0 = part["fault"]
    fig, (ax,) = new_figure(10, 4)
    x = [s["t"] - t0 for s in samples]
    dead = [sum(1 for score in s["scores"].values() if score < t0) for s in samples]
    fresh = [sum(1 for score in s["scores"].values() if score >= t0) for s in samples]
    # widest first, so a line lying on another still shows at its edges
    ax.step(x, dead, where="post", color="tab:red", linewidth=4, alpha=0.6,
            label="unacked, delivered to the killed worker\n(held by nobody)")
    ax.step(x, fresh, where="post", color="tab:green", linewidth=2.5,
            label="unacked, redelivered to the fresh worker")
    ax.step(x, [s["queued"] for s in samples], where="post", color="tab:orange", linewidth=1.2,
            linestyle="--", label="in the queue")
    ax.axvline(0, color="black", linestyle=":", label="SIGKILL")
    ax.axvline(part["fresh_ready"] - t0, color="tab:gray", linestyle="-.",
               label="fresh worker ready")
    ax.set_xlabel("time after the kill (s)")
    ax.set_ylabel("messages")
    integer_ticks(ax)
    ax.set_title(f"Where the work waits (visibility_timeout {part['visibility_timeout']} s)",
                 fontsize=10)
    legend_outside(ax)
    return fig


def idempotency(run_dir: Path) -> Figure:
    part = json.loads((run_dir / "redelivery.json").read_text())[0]
    fig, (ax,) = new_figure(7, 4)
    labels = ["no guard" if not c["guarded"] else "idempotency key" for c in part["charges"]]
    x = range(len(labels))
    bars = ax.bar([i - 0.2 for i in x], [c["starts"] for c in part["charges"]], width=0.4,
                  label="executions", color="tab:gray")
    ax.bar_label(bars)
    bars = ax.bar([i + 0.2 for i in x], [c["side_effects"] for c in part["charges"]], width=0.4,
                  label="charges made", color="tab:red")
    ax.bar_label(bars)
    ax.set_xticks(list(x), labels)
    ax.set_xlabel("the charge task, redelivered after a kill")
    ax.set_ylabel("times (executions, charges)")
    ax.margins(y=0.15)  # room for the bar labels
    integer_ticks(ax)
    ax.set_title("At-least-once needs idempotency", fontsize=10)
    legend_outside(ax)
    return fig


FIGURES = {
    "matrix.png": matrix_heatmap,
    "redelivery_delay.png": redelivery_delay,
    "where_it_waits.png": where_it_waits,
    "idempotency.png": idempotency,
}
