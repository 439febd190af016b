"""Lab 12's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from labkit.plotting import integer_ticks, legend_outside, new_figure
from labs.lab12_memory.growth import segments

MIB = 2**20
LEAKERS = {"leak_none": "no limit", "leak_tasks": "max_tasks_per_child",
           "leak_memory": "max_memory_per_child"}


def growth_plot(run_dir: Path) -> Figure:
    """RSS of the process that ran each leaking task, a new line for each new process; and the
    time between two tasks within a process against across a replacement."""
    data = json.loads((run_dir / "growth.json").read_text())
    fig, (ax, bars) = new_figure(12, 4.3, ncols=2)
    colours = {"leak_none": "tab:red", "leak_tasks": "tab:blue", "leak_memory": "tab:green"}
    for name, label in LEAKERS.items():
        x = 0
        for n, seg in enumerate(segments(data["leaks"][name])):
            xs = list(range(x + 1, x + 1 + len(seg["rss"])))
            ax.plot(xs, [r / MIB for r in seg["rss"]], marker="o", markersize=3, color=colours[name],
                    label=f"{label}" + (f" ({data['max_tasks']})" if name == "leak_tasks" else
                                        f" ({data['max_memory_mib']} MiB)" if name == "leak_memory" else ""))
            if n:
                ax.axvline(x + 0.5, color=colours[name], linewidth=0.6, linestyle=":")
            x += len(seg["rss"])
    ax.axhline(data["max_memory_mib"], color="tab:green", linestyle="--", linewidth=1,
               label="the memory limit")
    ax.set_xlabel("task number (dotted: a new pool process)")
    ax.set_ylabel("RSS of the process after the task (MiB)")
    integer_ticks(ax, "x")
    ax.set_title(f"A task keeping {data['leak_mib']} MiB per run, one process per worker", fontsize=10)
    legend_outside(ax)
    within = [g for w in data["gaps"].values() for g in w["within"]]
    across = [g for w in data["gaps"].values() for g in w["across"]]
    bars.boxplot([within, across], tick_labels=["two tasks of\none process", "across a\nreplacement"])
    bars.set_yscale("log")
    bars.set_ylabel("seconds from one task's end to the next's (log)")
    bars.set_title("What replacing a process costs", fontsize=10)
    return fig


def eta_plot(run_dir: Path) -> Figure:
    """Where the ETA tasks are, with and without worker_eta_task_limit, and what the worker's
    main process grew by."""
    data = json.loads((run_dir / "eta.json").read_text())
    held = data["held"]
    labels = {"none": "no limit", "limited": f"worker_eta_task_limit={data['eta_limit']}"}
    fig, (ax, mem) = new_figure(11, 3.8, ncols=2)
    xs = list(labels.values())
    ax.bar(xs, [held[k]["held_unacked"] for k in labels], color="tab:orange",
           label="held by the worker (unacked)")
    ax.bar(xs, [held[k]["left_in_redis"] for k in labels], bottom=[held[k]["held_unacked"] for k in labels],
           color="tab:gray", label="still in the Redis list")
    for i, k in enumerate(labels):
        ran = "ran" if held[k]["plain_task_ran"] else "did not run"
        ax.annotate(f"a plain task on\nanother queue: {ran}", (i, held[k]["sent"]), ha="center",
                    va="bottom", fontsize=8)
    ax.set_ylabel("ETA tasks (countdown of an hour)")
    ax.set_ylim(0, max(h["sent"] for h in held.values()) * 1.15)
    integer_ticks(ax)
    ax.set_title("Where the ETA tasks wait", fontsize=10)
    legend_outside(ax)
    mem.bar(xs, [(held[k]["rss_after"] - held[k]["rss_before"]) / MIB for k in labels], color="tab:purple")
    mem.set_ylabel("worker main process RSS growth (MiB)")
    mem.set_title("What holding them costs the worker", fontsize=10)
    return fig


def backend_plot(run_dir: Path) -> Figure:
    """Result keys per worker after its drain and once a short expiry passed; and what a big
    argument costs the broker against an id."""
    res = json.loads((run_dir / "results.json").read_text())
    pay = json.loads((run_dir / "payload.json").read_text())
    fig, (ax, size) = new_figure(12, 3.8, ncols=2)
    names = {"default": "result_expires default", "short": f"result_expires={res['expires_s']:g} s",
             "ignored": "task_ignore_result"}
    after = [res["kept"][k]["keys"] for k in names]
    later = [res["kept"]["default"]["keys"], res["expired"]["keys"], res["kept"]["ignored"]["keys"]]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], after, width=0.4, color="tab:blue", label="just after the drain")
    ax.bar([i + 0.2 for i in x], later, width=0.4, color="tab:cyan",
           label=f"{res['expired']['waited_s']:g} s later (no beat)")
    ax.set_xticks(list(x), list(names.values()))
    ax.set_ylabel(f"result keys of {res['kept']['default']['n']} tasks")
    integer_ticks(ax)
    ax.set_title("Result keys in Redis", fontsize=10)
    legend_outside(ax)
    at = pay["at_rest"]
    kinds = {"a big argument": at["big_message_bytes"], "an id": at["id_message_bytes"]}
    size.bar(list(kinds), [v / 1024 for v in kinds.values()], color=["tab:red", "tab:green"])
    size.axhline(at["payload_bytes"] / 1024, color="black", linestyle=":", label="the argument itself")
    size.set_yscale("log")
    size.set_ylabel("bytes in Redis per waiting message (KiB, log)")
    size.set_title("Pass ids, not payloads", fontsize=10)
    legend_outside(size)
    return fig


FIGURES = {"growth.png": growth_plot, "eta.png": eta_plot, "backend.png": backend_plot}
