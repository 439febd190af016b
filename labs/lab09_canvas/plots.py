"""Lab 09's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from labkit.plotting import integer_ticks, legend_below, new_figure
from labs.lab09_canvas.cost import SHAPES

WORKER_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]


def timeline(run_dir: Path) -> Figure:
    """The group and the chord, one lane per pool process, coloured by worker; the chord's
    body and an arrow from the header member that completed the chord to it."""
    data = json.loads((run_dir / "flow.json").read_text())
    spans = [("group", s) for s in data["group"]["runs"]] + [("chord", s) for s in data["chord"]["runs"]]
    hosts = sorted({s["hostname"] for _, s in spans} | {b["hostname"] for b in data["chord"]["body"]})
    lanes = sorted({(s["hostname"], s["pid"]) for _, s in spans}
                   | {(b["hostname"], b["pid"]) for b in data["chord"]["body"]})
    t0 = min(s["start"] for _, s in spans)
    fig, (ax,) = new_figure(10, 4.8)
    for shape, s in spans:
        y = lanes.index((s["hostname"], s["pid"]))
        ax.barh(y, s["end"] - s["start"], left=s["start"] - t0, height=0.6,
                color=WORKER_COLOURS[hosts.index(s["hostname"]) % 4],
                hatch="//" if shape == "chord" else None, edgecolor="black", linewidth=0.5)
        ax.text(s["end"] - t0, y, f" {shape[0]}{s['i']}", va="center", fontsize=7)
    for body in data["chord"]["body"]:
        y = lanes.index((body["hostname"], body["pid"]))
        ax.scatter(body["t"] - t0, y, marker="*", s=220, color="black", zorder=3)
        last = max(data["chord"]["runs"], key=lambda s: s["end"])
        ax.annotate("", (body["t"] - t0, y), (last["end"] - t0, lanes.index((last["hostname"], last["pid"]))),
                    arrowprops={"arrowstyle": "->", "color": "gray"})
    ax.set_yticks(range(len(lanes)), [f"{h.split('@')[0]} pid {p}" for h, p in lanes])
    ax.set_xlabel("time since the group's first member started (s)")
    handles = [Patch(color=WORKER_COLOURS[i % 4], label=host) for i, host in enumerate(hosts)]
    handles += [Patch(facecolor="white", edgecolor="black", hatch="//", label="chord header member (c<i>)"),
                Line2D([], [], marker="*", markersize=12, color="black", linestyle="",
                       label="chord body (ran once)")]
    ax.set_title("A group's members run at once on both workers; the chord's body runs after its "
                 "last header member", fontsize=10)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return fig


def failure_matrix(run_dir: Path) -> Figure:
    """One row per cell: which members ran, whether the body ran, which errbacks fired, what
    the client's get() saw."""
    rows = json.loads((run_dir / "failures.json").read_text())["matrix"]
    columns = ["canvas: what goes wrong; where the errback is", "members ran", "body ran",
               "errbacks fired for", "client's get()", "stored state"]
    fig, (ax,) = new_figure(13, 0.32 * len(rows) + 1.2)
    ax.axis("off")
    cells, colours = [], []
    for r in rows:
        ran = " ".join(str(m["executions"]) + ("x" if m["fails"] else "") for m in r["members"])
        body = "-" if r["body_runs"] is None else str(r["body_runs"])
        fired = ", ".join(e["failed_is"] + ("" if not e["own_message"] else " (message)")
                          for e in r["errbacks"]) or "none"
        client = r["client"].get("raised") or f"value {r['client'].get('value')}"
        cells.append([r["row"], ran, body, fired, client, r["stored"]["state"] if r["stored"] else "-"])
        colours.append(["white", "white",
                        "#f4cccc" if r["body_runs"] == 0 else "white",
                        "#fff2cc" if len(r["errbacks"]) > 1 else "white",
                        "#f4cccc" if r["client"].get("raised") else "#d9ead3",
                        "white"])
    table = ax.table(cellText=cells, colLabels=columns, cellColours=colours, bbox=[0, 0, 1, 1],
                     colWidths=[0.47, 0.08, 0.06, 0.17, 0.12, 0.08], cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    for (row, col), cell in table.get_celld().items():
        if col == 0 and row > 0:
            cell.set_text_props(ha="left")
    ax.set_title("Failure matrix: members ran (x = raises), body runs, errbacks fired, what the client saw",
                 fontsize=10)
    return fig


def cost_plot(run_dir: Path) -> Figure:
    data = json.loads((run_dir / "cost.json").read_text())
    rows = data["costs"]["rows"]
    fig, (ax1, ax2, ax3, ax4) = new_figure(12, 7.5, ncols=2, nrows=2)
    for shape, marker in zip(SHAPES, "os^", strict=True):
        mine = [r for r in rows if r["shape"] == shape]
        ax1.plot([r["n"] for r in mine], [r["messages"] for r in mine], marker=marker, label=shape)
        ax2.plot([r["n"] for r in mine], [r["commands_net"] for r in mine], marker=marker, label=shape)
    ax1.set_xlabel("canvas size N (tasks in the chain, group or chord header)")
    ax1.set_ylabel("broker messages (task-sent events)")
    ax1.set_title("Messages: N for a chain or a group, N + 1 for a chord", fontsize=10)
    ax2.set_xlabel("canvas size N (tasks in the chain, group or chord header)")
    ax2.set_ylabel("Redis commands, net of the idle rate")
    ax2.set_title("Redis commands the canvas cost (INFO commandstats)", fontsize=10)
    for ax in (ax1, ax2):
        integer_ticks(ax)
    unlock = data["unlock"]
    t0 = unlock["unlock_at"][0] if unlock["unlock_at"] else 0
    ax3.eventplot([[t - t0 for t in unlock["unlock_at"]]], lineoffsets=1, colors="tab:red")
    if unlock["header_done_at"]:
        ax3.axvline(unlock["header_done_at"] - t0, color="tab:green", label="last header member ended")
    if unlock["body_started_at"]:
        ax3.axvline(unlock["body_started_at"] - t0, color="black", linestyle="--", label="body started")
    ax3.set_yticks([1], ["celery.chord_unlock\nruns"])
    ax3.set_xlabel("time since the first chord_unlock run (s)")
    ax3.set_title(f"No native join: chord_unlock polled {unlock['unlock_runs']} times", fontsize=10)
    chunks = data["chunks"]
    ways = ["group", "chunks"]
    best = [min(r["wall_s"] for r in chunks["rows"] if r["way"] == w) for w in ways]
    messages = [max(r["messages"] for r in chunks["rows"] if r["way"] == w) for w in ways]
    bars = ax4.bar(ways, best, color=["tab:gray", "tab:blue"])
    for bar, m in zip(bars, messages, strict=True):
        ax4.annotate(f"{m} messages", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                     ha="center", va="bottom", fontsize=8)
    ax4.set_ylabel("first publish to last task done, best of two (s)")
    ax4.set_title(f"{chunks['n']} tiny additions: a group against chunks of {chunks['size']}", fontsize=10)
    legend_below(fig, ncols=5)
    return fig


FIGURES = {
    "timeline.png": timeline,
    "failure_matrix.png": failure_matrix,
    "cost.png": cost_plot,
}
