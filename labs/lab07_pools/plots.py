"""Lab 07's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from labkit.plotting import legend_outside, new_figure
from labkit.results import read_csv

COLOURS = {"prefork": "tab:blue", "threads": "tab:orange", "gevent": "tab:green",
           "eventlet": "tab:purple", "solo": "tab:red"}


WORKLOADS = ("io", "cpu", "mixed")
PLAIN = FuncFormatter(lambda v, _: f"{v:g}")  # 200, not 2 x 10^2


def throughput(run_dir: Path) -> Figure:
    """One panel per pool and workload, so each pool's lines stay apart: measured against the
    ideal, the ceiling (its no-op drain rate) and the bound, the smaller of the two."""
    rows = read_csv(run_dir / "sweep.csv")
    pools = [pool for pool in COLOURS if any(r["pool"] == pool for r in rows)]
    fig = Figure(figsize=(3.1 * len(pools) + 1.5, 8), layout="constrained")
    grid = fig.subplots(len(WORKLOADS), len(pools), squeeze=False)
    for i, workload in enumerate(WORKLOADS):
        for j, pool in enumerate(pools):
            ax = grid[i][j]
            pts = sorted((r["concurrency"], r) for r in rows
                         if r["pool"] == pool and r["workload"] == workload)
            xs = [c for c, _ in pts]
            colour = COLOURS[pool]
            ax.plot(xs, [r["bound"] for _, r in pts], color=colour, linewidth=6, alpha=0.2,
                    marker="s", markersize=9, label="bound = min(ideal, ceiling)")
            ax.plot(xs, [r["ideal"] for _, r in pts], color="black", linestyle=":", marker="x",
                    label="ideal")
            ceiling_rate = pts[0][1]["ceiling"]
            ax.axhline(ceiling_rate, color="tab:red", linestyle="--", linewidth=1,
                       label="ceiling: no-op tasks/s of one worker")
            ax.plot(xs, [r["throughput"] for _, r in pts], color=colour, marker="o",
                    label="measured")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(xs, [f"{c:g}" for c in xs])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(PLAIN)
            ax.yaxis.set_minor_formatter(NullFormatter())
            data = [v for _, r in pts for v in (r["throughput"], r["bound"], r["ideal"])]
            top = max(data) * 1.6
            ax.set_ylim(min(data) / 1.6, top)
            if ceiling_rate > top:
                ax.annotate(f"ceiling {ceiling_rate:.0f}/s above", (0.02, 0.93),
                            xycoords="axes fraction", fontsize=7, color="tab:red")
            ax.set_title(f"{pool}: {workload}", fontsize=9)
            ax.set_xlabel("concurrency (slots)", fontsize=8)
            ax.set_ylabel("tasks/s", fontsize=8)
    handles, _ = grid[0][0].get_legend_handles_labels()
    fig.legend(handles, ["bound = min(ideal, ceiling)", "ideal (min(c, cores) / cost on CPU)",
                         "ceiling: no-op tasks/s of one worker", "measured (pool colour)"],
               loc="outside lower center",
               ncols=2 if len(pools) < 4 else 4, fontsize=8)
    fig.suptitle("One worker per configuration, pre-filled queues, events off", fontsize=10)
    return fig


def ceiling(run_dir: Path) -> Figure:
    """Each pool's ceiling, and what the lab's instruments (task events) would take off it."""
    m = json.loads((run_dir / "ceiling.json").read_text())
    ceilings = m["ceiling_tasks_per_s"]
    cost = m.get("events_cost")
    two = m.get("two_workers")
    fig, (ax1, ax2) = new_figure(11, 4, ncols=2)
    pools = list(ceilings)
    ax1.bar(range(len(pools)), [ceilings[p] for p in pools],
            color=[COLOURS.get(p, "gray") for p in pools], label="events off (the sweep)")
    if cost:
        ax1.scatter([pools.index(cost["pool"])], [cost["with_events"]], marker="v", s=80,
                    color="black", zorder=3, label=f"{cost['pool']} with events on")
    ax1.set_xticks(range(len(pools)), pools)
    ax1.set_xlabel("pool, at its highest concurrency")
    ax1.set_ylabel("no-op tasks drained per second (tasks/s)")
    ax1.set_title("The one-worker ceiling", fontsize=10)
    legend_outside(ax1)
    if two:
        one = next(r for r in read_csv(run_dir / "sweep.csv") if r["pool"] == two["pool"]
                   and r["concurrency"] == two["concurrency"] and r["workload"] == "io")
        rates = [two["one_worker"]["throughput"], two["throughput"]]
        ax2.bar([0, 1], rates, color=COLOURS.get(two["pool"]))
        for x, (rate, used) in enumerate(zip(rates, [two["one_worker"].get("used_cores"),
                                                     two.get("used_cores")], strict=True)):
            if used is not None:  # the cores the workers used during that drain (sampled)
                ax2.annotate(f"{used:.1f} cores used", (x, rate), ha="center", va="bottom",
                             fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax2.axhline(one["ceiling"], color="tab:red", linestyle="--", linewidth=1,
                    label="one worker's no-op ceiling\n(measured apart, at its own noise)")
        ax2.set_xticks([0, 1], ["1 worker", "2 workers"])
        ax2.set_xlabel(f"{two['pool']} x{two['concurrency']} worker processes")
        ax2.set_ylabel("IO tasks/s")
        ax2.set_title("More processes, not more concurrency, lift it", fontsize=10)
        legend_outside(ax2)
    else:
        ax2.set_axis_off()
    return fig


def memory(run_dir: Path) -> Figure:
    rows = [r for r in read_csv(run_dir / "sweep.csv") if r["workload"] == "io"]
    fig, (ax,) = new_figure(10, 4)
    labels = [f"{r['pool']}\nx{int(r['concurrency'])}" for r in rows]
    ax.bar(range(len(rows)), [r["rss_mb"] for r in rows],
           color=[COLOURS.get(r["pool"], "gray") for r in rows])
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_xlabel("pool and concurrency")
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
    ax.set_xlabel("prefetch multiplier of the two single-process workers")
    ax.set_title("Short tasks stuck behind a long one by prefetch", fontsize=10)
    legend_outside(ax)
    return fig


FIGURES = {
    "throughput.png": throughput,
    "ceiling.png": ceiling,
    "memory.png": memory,
    "head_of_line.png": head_of_line,
}
