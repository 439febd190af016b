"""Lab 05's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from labkit.plotting import integer_ticks, legend_below, new_figure
from labkit.results import read_csv


def schedule_vs_actual(run_dir: Path) -> Figure:
    ticks = read_csv(run_dir / "ticks.csv")
    fig, (ax1, ax2) = new_figure(11, 4, ncols=2)
    late = [t["late_s"] * 1000 for t in ticks if t["late_s"] is not None]
    ax1.hist(late, bins=20, color="tab:blue")
    ax1.axvline(0, color="black", linewidth=0.8)
    ax1.set_xlabel("period - interval (ms), each tick against the one before")
    ax1.set_ylabel("ticks")
    integer_ticks(ax1)
    ax1.set_title("Jitter", fontsize=10)
    t0 = ticks[0]["sent"]
    ax2.plot([t["sent"] - t0 for t in ticks], [t["drift_s"] * 1000 for t in ticks], marker="o",
             label="sent - (first + k * interval)")
    ran = [t for t in ticks if t["ran"]]
    ax2.plot([t["sent"] - t0 for t in ran], [(t["ran"] - t["sent"]) * 1000 for t in ran],
             marker="x", linestyle="none", label="ran - sent (queue + worker)")
    ax2.axhline(0, color="black", linewidth=0.8)
    ax2.set_xlabel("time since the first tick was sent (s)")
    ax2.set_ylabel("offset (ms)")
    ax2.set_title("Drift over the run; each tick runs shortly after it is sent", fontsize=10)
    legend_below(fig)
    return fig


def queue_backlog(run_dir: Path) -> Figure:
    samples = read_csv(run_dir / "queue_length.csv")
    away = json.loads((run_dir / "worker_away.json").read_text())
    t0 = samples[0]["t"]
    fig, (ax,) = new_figure(9, 4.6)
    ax.step([x["t"] - t0 for x in samples], [x["queue_length"] for x in samples], where="post")
    marks: dict[float, str] = {}  # marks closer than 2 % of the run share a label
    span = samples[-1]["t"] - t0 or 1
    for name, t in sorted(away["marks"].items(), key=lambda kv: kv[1]):
        near = next((x for x in marks if abs(x - (t - t0)) < 0.02 * span), None)
        if near is None:
            marks[t - t0] = name
        else:
            marks[near] += f" / {name}"
    for x in marks:
        ax.axvline(x, color="tab:gray", linestyle=":")
    top = ax.secondary_xaxis("top")  # the marks' names above the axes, never on the line
    top.set_xticks(list(marks), list(marks.values()), rotation=25, ha="left", fontsize=8)
    ax.set_xlabel("time since the first sample (s)")
    ax.set_ylabel("messages in the 'celery' list")
    integer_ticks(ax)
    ax.set_title("Beat keeps publishing with no worker; the backlog drains in a burst", fontsize=10)
    return fig


def timeline(run_dir: Path) -> Figure:
    data = json.loads((run_dir / "beat_down_doubled.json").read_text())
    down, doubled = data["down"], data["doubled"]
    t0 = down["stopped"] - 2
    fig, (ax,) = new_figure(10, 3.5)
    ax.eventplot([[t - t0 for t in down["sent_after"]]], lineoffsets=1, colors="tab:blue")
    beats = sorted({x["beat"] for x in doubled["sent"]})
    for i, beat in enumerate(beats):
        ax.eventplot([[x["t"] - t0 for x in doubled["sent"] if x["beat"] == beat]],
                     lineoffsets=0 - i * 0.5, linelengths=0.4,
                     colors=["tab:orange", "tab:green"][i % 2])
    ax.axvspan(down["stopped"] - t0, down["ready"] - t0, color="tab:red", alpha=0.15)
    ax.annotate("beat down", (down["stopped"] - t0, 1.5), fontsize=8)
    ax.axvspan(doubled["start"] - t0, doubled["end"] - t0, color="tab:purple", alpha=0.1)
    ax.annotate("two beats", (doubled["start"] - t0, 1.5), fontsize=8)
    ax.set_yticks([1, 0, -0.5], ["ticks sent (one beat)",
                                 f"beat {beats[0][:18]}" if beats else "",
                                 f"beat {beats[1][:18]}" if len(beats) > 1 else ""])
    ax.set_ylim(-0.9, 1.8)
    ax.set_xlabel("time (s), from 2 s before beat was stopped")
    ax.set_title("Beat down: a gap, no catch-up. Two beats: every tick twice", fontsize=10)
    return fig


def crontab_dues(run_dir: Path) -> Figure:
    data = json.loads((run_dir / "crontab.json").read_text())
    rows = [d for d in data["due"] if d["enable_utc"]]
    fig, (ax,) = new_figure(9, 3.5)
    for i, row in enumerate(rows):
        hours = [int(t[11:13]) + int(t[14:16]) / 60 for t in row["celery"][:1]]
        ax.barh(i, 0.3, left=hours[0] - 0.15, color="tab:blue")
        ax.annotate(row["celery"][0][11:16] + " UTC", (hours[0], i), xytext=(8, -3),
                    textcoords="offset points", fontsize=8)
    ax.set_yticks(range(len(rows)), [r["timezone"] for r in rows])
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3))
    ax.set_xlabel("due at, hour of day (UTC, h)")
    ax.set_ylabel("timezone setting")
    expr = data["expression"]
    ax.set_title(f"crontab(minute={expr['minute']}, hour={expr['hour']}): the same wall-clock time "
                 "is a different instant per timezone", fontsize=10)
    return fig


FIGURES = {
    "schedule_vs_actual.png": schedule_vs_actual,
    "queue_backlog.png": queue_backlog,
    "beat_timeline.png": timeline,
    "crontab_dues.png": crontab_dues,
}
