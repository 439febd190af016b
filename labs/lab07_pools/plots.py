"""Lab 07's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from labkit.plotting import new_figure
from labkit.results import read_csv

COLOURS = {"prefork": "tab:blue", "threads": "tab:orange", "gevent": "tab:green",
           "eventlet": "tab:purple", "solo": "tab:red"}


def throughput(run_dir: Path) -> Figure:
    rows = read_csv(run_dir / "sweep.csv")
    fig, axes = new_figure(14, 4.2, ncols=3)
    for ax, workload in zip(axes, ("io", "cpu", "mixed"), strict=True):
        mine = [r for r in rows if r["workload"] == workload]
        for pool, colour in COLOURS.items():
            pts = sorted((r["concurrency"], r["throughput"], r["ideal"]) for r in mine
                         if r["pool"] == pool)
            if not pts:
                continue
            ax.plot([c for c, _, _ in pts], [t for _, t, _ in pts], marker="o", color=colour,
                    label=pool)
            ax.plot([c for c, _, _ in pts], [i for _, _, i in pts], linestyle=":", color=colour)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrency")
        ax.set_ylabel("tasks/s")
        ax.set_title(f"{workload}: measured (solid) against ideal (dotted)", fontsize=10)
    axes[0].legend(fontsize=8)
    return fig


def memory(run_dir: Path) -> Figure:
    rows = [r for r in read_csv(run_dir / "sweep.csv") if r["workload"] == "io"]
    fig, (ax,) = new_figure(10, 4)
    labels = [f"{r['pool']}\nx{int(r['concurrency'])}" for r in rows]
    ax.bar(range(len(rows)), [r["rss_mb"] for r in rows],
           color=[COLOURS.get(r["pool"], "gray") for r in rows])
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("resident memory of the worker's process tree, MB")
    ax.set_title("Memory per pool and concurrency", fontsize=10)
    return fig


def head_of_line(run_dir: Path) -> Figure:
    hol = json.loads((run_dir / "head_of_line.json").read_text())
    fig, (ax,) = new_figure(8, 4)
    for i, case in enumerate(hol):
        label = f"multiplier {case['multiplier']}" + (" + acks_late" if case["acks_late"] else "")
        ax.scatter([i] * len(case["short_latencies"]), case["short_latencies"], alpha=0.6,
                   label=label)
    ax.axhline(hol[0]["long_s"], color="tab:red", linestyle="--", label="the long task")
    ax.set_xticks(range(len(hol)), [f"x{c['multiplier']}" for c in hol])
    ax.set_ylabel("short task latency, s")
    ax.set_title("Short tasks stuck behind a long one by prefetch", fontsize=10)
    ax.legend(fontsize=8)
    return fig


FIGURES = {
    "throughput.png": throughput,
    "memory.png": memory,
    "head_of_line.png": head_of_line,
}
