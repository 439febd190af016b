"""Lab 04's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from labkit.plotting import new_figure
from labkit.results import read_csv

OUTCOMES = [("once", "tab:green"), ("lost", "tab:red"), ("re-executed", "tab:orange"),
            ("completed twice", "tab:purple")]


def matrix_bars(run_dir: Path) -> Figure:
    rows = read_csv(run_dir / "matrix.csv")
    cells = list(dict.fromkeys((r["mode"], r["fault"]) for r in rows))
    fig, (ax,) = new_figure(12, 5)
    bottoms = [0.0] * len(cells)
    for outcome, colour in OUTCOMES:
        heights = [sum(1 for r in rows if (r["mode"], r["fault"]) == c and r["outcome"] == outcome)
                   for c in cells]
        ax.bar(range(len(cells)), heights, bottom=bottoms, color=colour, label=outcome)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xticks(range(len(cells)), [f"{m}\n{f}" for m, f in cells], fontsize=7, rotation=90)
    ax.set_ylabel("tasks (all trials)")
    ax.set_title("Every ack mode against every fault: what happened to each task", fontsize=10)
    ax.legend(fontsize=8, ncols=4)
    return fig


def redelivery_delay(run_dir: Path) -> Figure:
    rows = [r for r in read_csv(run_dir / "redelivery.csv") if r["after_delivery_s"] is not None]
    fig, (ax,) = new_figure(8, 4.5)
    vts = sorted({r["visibility_timeout"] for r in rows})
    ax.scatter([r["visibility_timeout"] for r in rows], [r["after_delivery_s"] for r in rows],
               color="tab:blue", zorder=3, label="measured: redelivered run started")
    ax.plot(vts, vts, color="tab:red", label="visibility_timeout (earliest)")
    ax.plot(vts, [max(r["latest_s"] for r in rows if r["visibility_timeout"] == v) for v in vts],
            color="tab:red", linestyle="--", label="+ sweep + worker start (latest)")
    ax.set_xlabel("visibility_timeout, s")
    ax.set_ylabel("seconds after the original delivery")
    ax.set_title("After a whole-worker SIGKILL the work waits out the visibility timeout",
                 fontsize=10)
    ax.legend(fontsize=8)
    return fig


def where_it_waits(run_dir: Path) -> Figure:
    part = json.loads((run_dir / "redelivery.json").read_text())[-1]
    samples = part["samples"]
    t0 = part["fault"]
    fig, (ax,) = new_figure(9, 4)
    x = [s["t"] - t0 for s in samples]
    dead = [sum(1 for score in s["scores"].values() if score < t0) for s in samples]
    fresh = [sum(1 for score in s["scores"].values() if score >= t0) for s in samples]
    ax.step(x, dead, where="post", color="tab:red",
            label="unacked, delivered to the killed worker (held by nobody)")
    ax.step(x, fresh, where="post", color="tab:green", label="unacked, redelivered to the fresh worker")
    ax.step(x, [s["queued"] for s in samples], where="post", color="tab:orange",
            label="in the queue")
    ax.axvline(0, color="tab:red", linestyle=":", label="SIGKILL")
    ax.axvline(part["fresh_ready"] - t0, color="tab:gray", linestyle=":", label="fresh worker ready")
    ax.set_xlabel("seconds after the kill")
    ax.set_ylabel("messages")
    ax.set_title(f"Where the work waits (visibility_timeout {part['visibility_timeout']} s)",
                 fontsize=10)
    ax.legend(fontsize=7)
    return fig


def idempotency(run_dir: Path) -> Figure:
    part = json.loads((run_dir / "redelivery.json").read_text())[0]
    fig, (ax,) = new_figure(6, 4)
    labels = ["no guard" if not c["guarded"] else "idempotency key" for c in part["charges"]]
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], [c["starts"] for c in part["charges"]], width=0.4,
           label="executions", color="tab:gray")
    ax.bar([i + 0.2 for i in x], [c["side_effects"] for c in part["charges"]], width=0.4,
           label="charges made", color="tab:red")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("count")
    ax.set_title("At-least-once needs idempotency", fontsize=10)
    ax.legend(fontsize=8)
    return fig


FIGURES = {
    "matrix.png": matrix_bars,
    "redelivery_delay.png": redelivery_delay,
    "where_it_waits.png": where_it_waits,
    "idempotency.png": idempotency,
}
