"""Lab 10's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from labkit.plotting import legend_below, legend_outside, new_figure
from labs.lab10_broker_outage.restart import KINDS

OUTCOMES = ("ran once", "kept", "stranded", "lost", "ran twice")
COLOURS = ["tab:green", "tab:cyan", "gold", "tab:red", "tab:purple"]


def _outcome(kind: str, row: dict[str, int]) -> str:
    """The one outcome every task of a kind had in a round, or 'mixed'."""
    if row["ran_twice"]:
        return "ran twice"
    if kind == "result":
        return "kept" if row["kept"] == row["sent"] else "lost" if row["lost"] == row["sent"] else "mixed"
    for name, key in (("ran once", "ran_once"), ("stranded", "stranded"), ("lost", "lost")):
        if row[key] == row["sent"]:
            return name
    return "mixed"


def outcome_matrix(run_dir: Path) -> Figure:
    """Rounds (persistence and signal) against kinds of task: what a restart did to them."""
    rounds = json.loads((run_dir / "restarts.json").read_text())["rounds"]
    fig, (ax,) = new_figure(9, 1.6 + 0.7 * len(rounds))
    cmap = ListedColormap([*COLOURS, "lightgray"])
    names = [*OUTCOMES, "mixed"]
    grid = [[names.index(_outcome(k, r["by_kind"][k])) for k in KINDS] for r in rounds]
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=len(names) - 1, aspect="auto")
    for y, r in enumerate(rounds):
        for x, k in enumerate(KINDS):
            row = r["by_kind"][k]
            ax.text(x, y, f"{_outcome(k, row)}\n{row['sent']} sent", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(KINDS)), ["stored result", "running task", "prefetched", "queued", "ETA task"])
    ax.set_yticks(range(len(rounds)), [f"{r['round']}\n({r['outage_s']:.1f} s down)" for r in rounds])
    ax.set_xlabel("where the task was when Redis stopped")
    ax.set_title("A Redis restart: what each kind of task became (counted by the tasks)", fontsize=10)
    legend_outside(ax, handles=[Patch(color=c, label=n) for c, n in zip(COLOURS, OUTCOMES, strict=True)])
    return fig


def recovery(run_dir: Path) -> Figure:
    """Each round's outage and what the worker logged, on one time axis from the stop."""
    data = json.loads((run_dir / "restarts.json").read_text())
    rounds, room = data["rounds"], data.get("room")
    fig, (ax,) = new_figure(9, 1.4 + 0.6 * (len(rounds) + bool(room)))
    for y, r in enumerate(rounds):
        t0 = r["down_at"]
        ax.barh(y, r["up_at"] - t0, left=0, height=0.5, color="tab:red", alpha=0.5,
                label="Redis down")
        connected = r["log"]["connected_at"]
        if connected:
            ax.scatter(connected - t0, y, marker="|", s=300, color="black",
                       label="worker: Connected to redis")
        if r["first_start_after_up_s"] is not None:
            ax.scatter(r["up_at"] - t0 + r["first_start_after_up_s"], y, marker="o", color="tab:green",
                       label="first task started after the return")
    labels = [r["round"] for r in rounds]
    if room:
        y = len(rounds)
        ended = "consumer gave up: Unrecoverable error" if room["unrecoverable"] else "no error logged"
        came_back = "consumed again" if room["sentinel_consumed_within_window"] else "consumed nothing"
        ax.barh(y, room["up_at"] - room["down_at"], left=0, height=0.5, color="tab:red", alpha=0.5)
        ax.text(room["up_at"] - room["down_at"], y, f"  {ended}; {came_back} in the "
                f"{room['window_s']:.1f} s after", va="center", fontsize=8)
        labels.append("room in its prefetch\n(everysec-SIGKILL)")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("seconds since Redis was stopped (the worker's log stamps to the millisecond)")
    ax.set_title("The worker reconnects on its own retry schedule, unless its prefetch had room", fontsize=10)
    legend_below(fig)
    return fig


def client(run_dir: Path) -> Figure:
    """How long each send took and how it ended, while the broker was stopped or hung."""
    data = json.loads((run_dir / "client.json").read_text())
    stopped, hung = data["stopped"], data["hung"]
    rows = [(f"stopped: {name}", stopped[name]) for name in ("default", "no_retry", "keeps_result")]
    rows += [(f"hung: {name}", hung["sends"][name]) for name in ("default", "socket_timeout",
                                                                  "socket_timeout_warm")]
    fig, (ax,) = new_figure(9, 4.0)
    for y, (_, send) in enumerate(rows):
        seconds = send["seconds"] if send["seconds"] is not None else 0
        ax.barh(y, seconds, color="tab:red" if send["raised"] else "tab:green")
        ran = f"; ran {send['runs']}x" if "runs" in send else ""
        ax.text(seconds, y, f" {send['raised'] or 'sent'} after {seconds:.2f} s{ran}", va="center",
                fontsize=8)
    ax.axvline(hung["pause_s"], color="gray", linestyle="--",
               label=f"the hung broker resumed ({hung['pause_s']:g} s)")
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("seconds apply_async took")
    ax.set_xlim(0, max(hung["pause_s"], *(r["seconds"] or 0 for _, r in rows)) * 1.35)
    ax.set_title("The client: a send to a stopped broker raises, to a hung one it waits", fontsize=10)
    legend_below(fig)
    return fig


def hang(run_dir: Path) -> Figure:
    """The hung broker on one time axis from the SIGSTOP: what each worker logged and when each
    consumed again (the default worker's loop blocked where its stacks showed)."""
    h = json.loads((run_dir / "client.json").read_text())["hung"]
    d, pause = h["detecting"], h["pause_s"]
    fig, (ax,) = new_figure(9, 2.8)
    for y in (0, 1):
        ax.barh(y, pause, height=0.5, color="tab:red", alpha=0.35, label="Redis hung" if y == 0 else None)
    timer = (h.get("default_worker_stack") or {}).get("called_from") or "?"
    ax.text(0.1, 0, f"logs nothing; its loop blocked in {timer}", va="center", fontsize=8)
    ax.scatter(pause + h["sentinel_started_after_resume_s"], 0, marker="o", color="tab:green",
               label="first task started after the resume")
    marks = [(d["dropped_after_s"], "x", "tab:orange", "dropped its stale BRPOP connection"),
             (d["lost_after_s"], "|", "black", "logged 'Connection to broker lost'")]
    for t, marker, colour, label in marks:
        if t is not None:
            ax.scatter(t, 1, marker=marker, s=120, color=colour, label=label)
    ax.scatter(pause + d["next_task_started_after_resume_s"], 1, marker="o", color="tab:green")
    opts = d["settings"]
    ax.set_yticks([0, 1], ["default worker", f"health_check_interval {opts['health_check_interval']},"
                           f"\nsocket_timeout {opts['socket_timeout']:g}, no heartbeat"])
    ax.invert_yaxis()
    ax.set_xlabel("seconds since Redis was frozen (SIGSTOP); the worker's log stamps to the millisecond")
    ax.set_xlim(0, pause + max(2.0, h["sentinel_started_after_resume_s"],
                               d["next_task_started_after_resume_s"]) * 1.3)
    ax.set_title("A hung broker: only a worker whose loop sends nothing can notice it", fontsize=10)
    legend_below(fig)
    return fig


FIGURES = {
    "outcomes.png": outcome_matrix,
    "recovery.png": recovery,
    "client.png": client,
    "hang.png": hang,
}
