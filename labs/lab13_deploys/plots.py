"""Lab 13's plots, drawn from a run directory."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from labkit.plotting import integer_ticks, legend_outside, new_figure
from labs.lab13_deploys.rolling import outcome as rollout_outcome
from labs.lab13_deploys.sequences import SEQUENCES

OUTCOMES = {  # part 1's outcomes, their colour and a short label
    "finished": ("tab:green", "finished"),
    "restored at once": ("tab:blue", "back in the queue at once"),
    "waits for the visibility timeout": ("tab:orange", "waits for visibility_timeout"),
    "lost": ("tab:red", "lost"),
    "ran, and restored (runs again)": ("tab:purple", "ran, and will run again"),
    "ran, and waits for the visibility timeout": ("tab:purple", "ran, and will run again"),
    "ran twice": ("tab:purple", "ran twice"),
}
ROLES = ("running", "prefetched", "eta")
ROLLOUT = {"once": "tab:green", "twice": "tab:purple", "stranded": "tab:orange", "lost": "tab:red"}
BARS = {"lost": "tab:red", "stranded": "tab:orange", "twice": "tab:purple", "re_executed": "tab:grey"}


def matrix_plot(run_dir: Path) -> Figure:
    """Signal sequence x (ack mode, task role): what became of the tasks the worker held, with
    how long the worker took to exit."""
    with (run_dir / "cells.csv").open() as f:
        rows = list(csv.DictReader(f))
    exits = {e["cell"]: e for e in json.loads((run_dir / "exits.json").read_text())}
    names = list(OUTCOMES)
    cmap = ListedColormap([OUTCOMES[n][0] for n in names])
    columns = [(ack, role) for ack in ("early", "late") for role in ROLES]
    grid = []
    for seq in SEQUENCES:
        line = []
        for ack, role in columns:
            found = [r["outcome"] for r in rows if r["sequence"] == seq.name and r["ack"] == ack
                     and r["role"] == role]
            line.append(names.index(max(set(found), key=found.count)) if found else -1)
        grid.append(line)
    fig, (ax,) = new_figure(11, 5.2)
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=len(names) - 1, aspect="auto")
    ax.set_xticks(range(len(columns)), [f"{ack} ack\n{role}" for ack, role in columns])
    labels = []
    for seq in SEQUENCES:
        times = [exits.get(f"{seq.name}-{ack}".replace("_", "")) for ack in ("early", "late")]
        spent = ", ".join(f"{e['exit_s']:.1f}" + (" killed" if e["killed"] else "") for e in times if e)
        labels.append(f"{seq.label}\n(exit after {spent} s)")
    ax.set_yticks(range(len(SEQUENCES)), labels, fontsize=8)
    for x in (2.5,):
        ax.axvline(x, color="white", linewidth=3)
    ax.set_title("One worker, one signal sequence: what became of the running, prefetched and ETA tasks",
                 fontsize=10)
    seen = {OUTCOMES[n][1]: OUTCOMES[n][0] for n in names}
    ax.legend(handles=[Patch(color=c, label=label) for label, c in seen.items()],
              loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return fig


def timeline_plot(run_dir: Path) -> Figure:
    """Each procedure's rollout: every worker's life and the signals (above), and each task's
    latency by when it was sent (below; a lost task at latency 0)."""
    rolls = json.loads((run_dir / "rollouts.json").read_text())
    fig = Figure(figsize=(12, 3.6 * len(rolls)), layout="constrained")
    axes = fig.subplots(2 * len(rolls), 1, gridspec_kw={"height_ratios": [1, 1.3] * len(rolls)})
    for n, (name, roll) in enumerate(rolls.items()):
        life, lat = axes[2 * n], axes[2 * n + 1]
        t0 = roll["t_start"]
        stops = {s["worker"]: s for s in roll["stops"]}
        hosts = [w["worker"] for w in roll["life"]]
        for y, w in enumerate(roll["life"]):
            h = w["worker"]
            begin = max(w["t_ready"], t0) - t0
            end = (stops[h]["t_exit"] if h in stops else roll["t_end"]) - t0
            life.broken_barh([(begin, end - begin)], (y - 0.3, 0.6), color="lightgrey")
            if h in stops:
                s = stops[h]
                life.plot([s["t_signal"] - t0], [y], marker="v", color="black", linestyle="",
                          label="SIGTERM")
                life.plot([s["t_exit"] - t0], [y], marker="X" if s["killed"] else "o", linestyle="",
                          color="red" if s["killed"] else "black",
                          label="SIGKILL" if s["killed"] else "exited")
        life.set_yticks(range(len(hosts)), [h.split("@")[0] for h in hosts], fontsize=7)
        life.set_title(f"{name}: {roll['label']}", fontsize=9)
        legend_outside(life)
        for kind, colour in ROLLOUT.items():
            ts = [t for t in roll["tasks"] if rollout_outcome(t) == kind]
            lat.scatter([t["t_sent"] - t0 for t in ts],
                        [t["latency_s"] if t["latency_s"] is not None else 0 for t in ts],
                        s=10 if kind == "once" else 40, color=colour,
                        marker="o" if kind == "once" else "x", label=f"{kind} ({len(ts)})")
        for ax in (life, lat):
            ax.axvspan(roll["t_rollout"] - t0, roll["t_rolled"] - t0, color="khaki", alpha=0.3)
        lat.set_xlim(life.get_xlim())
        life.set_xlabel("s since the stream began", fontsize=7, labelpad=1)
        lat.set_xlabel("when the task was sent (s since the stream began; shaded: the rollout)", fontsize=8)
        lat.set_ylabel("latency, s")
        legend_outside(lat)
    return fig


def counts_plot(run_dir: Path) -> Figure:
    """Per procedure: tasks lost, stranded, applied twice, and run again (the guard held)."""
    with (run_dir / "rollouts.csv").open() as f:
        rows = list(csv.DictReader(f))
    kinds = ("lost", "stranded", "twice", "re_executed")
    fig, (ax,) = new_figure(8, 3.8)
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        xs = [n + i * width for n in range(len(rows))]
        ys = [int(r[kind]) for r in rows]
        ax.bar(xs, ys, width, label=kind.replace("_", "-"), color=BARS[kind])
        for x, y in zip(xs, ys, strict=True):
            ax.text(x, y, str(y), ha="center", va="bottom", fontsize=8)
    ax.set_xticks([n + 0.3 for n in range(len(rows))],
                  [f"{r['procedure']}\n({r['sent']} sent)" for r in rows])
    ax.set_ylabel("tasks")
    integer_ticks(ax)
    ax.set_title("A rolling restart under load: what each procedure cost", fontsize=10)
    legend_outside(ax)
    return fig


FIGURES = {"matrix.png": matrix_plot, "timeline.png": timeline_plot, "counts.png": counts_plot}
