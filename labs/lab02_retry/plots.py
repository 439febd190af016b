"""Lab 02's plots, drawn from a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from labkit.plotting import integer_ticks, legend_below, legend_outside, new_figure
from labkit.results import read_csv


def retry_timeline(run_dir: Path) -> Figure:
    data = json.loads((run_dir / "retry.json").read_text())
    anatomy, contrast = data["anatomy"], data["contrast"]
    t0 = min(a["t"] for a in anatomy["attempts"])
    fig, (ax1, ax2) = new_figure(11, 4.5, ncols=2)
    runs = [a for a in anatomy["attempts"] if a["phase"] == "attempt"]
    ax1.scatter([a["t"] - t0 for a in runs], [2] * len(runs), color="tab:red", zorder=3)
    for a in runs:
        ax1.annotate(f"retries={a['retries']}\ntag {str(a['delivery_tag'])[:8]}",
                     (a["t"] - t0, 2), xytext=(0, 10), textcoords="offset points", fontsize=7,
                     ha="center")
    ax1.scatter([e["t"] - t0 for e in anatomy["received"]], [1] * len(anatomy["received"]),
                color="tab:blue", marker="v")
    ax1.scatter([t - t0 for t in anatomy["quick_done"]], [0] * len(anatomy["quick_done"]),
                color="tab:green", marker="x")
    ax1.set_yticks([2, 1, 0], ["attempt ran", "message received", "quick task done"])
    ax1.set_xlabel("time since the first attempt (s)")
    ax1.set_title("self.retry(countdown=...): the slot stays free", fontsize=10)
    c0 = contrast["start"]
    ax2.barh(1, contrast["end"] - c0, left=0, height=0.4, color="#ffb46e")
    ax2.scatter([t - c0 for t in contrast["quick_done"]], [0] * len(contrast["quick_done"]),
                color="tab:green", marker="x")
    ax2.set_yticks([1, 0], ["time.sleep() holds the slot", "quick task done"])
    ax2.set_xlabel("time since the task started (s)")
    ax2.set_title("time.sleep() in a loop: the slot is taken", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_ylim(-0.6, 2.8)
        ax.grid(axis="y", color="0.9")
        ax.set_axisbelow(True)
    return fig


def unacked_index(run_dir: Path) -> Figure:
    rows = [r for r in read_csv(run_dir / "unacked_samples.csv") if r["task"] == "lab02.flaky"]
    fig, (ax,) = new_figure(10, 4.5)
    if not rows:
        ax.set_title("no unacked_index sample of the flaky task")
        return fig
    t0 = min(r["t"] for r in rows)
    for tag in dict.fromkeys(r["tag"] for r in rows):
        mine = [r for r in rows if r["tag"] == tag]
        x = [r["t"] - t0 for r in mine]
        ax.plot(x, [r["score"] - t0 for r in mine], color="tab:blue", linewidth=3)
        if mine[0]["eta"] is not None:
            ax.plot(x, [r["eta"] - t0 for r in mine], color="tab:red", linestyle="--")
        ax.annotate(f"retries={mine[0]['retries']:.0f}", (x[0], mine[0]["score"] - t0),
                    xytext=(0, -12), textcoords="offset points", fontsize=8)
    lim = max(r["t"] - t0 for r in rows) + 0.5
    ax.plot([0, lim], [0, lim], color="gray", linewidth=0.8, label="now")
    ax.plot([], [], color="tab:blue", linewidth=3, label="score in unacked_index")
    ax.plot([], [], color="tab:red", linestyle="--", label="ETA in the message")
    ax.margins(y=0.1)  # room for the labels under the lowest line
    ax.set_xlabel("sampled at (s since the first sample)")
    ax.set_ylabel("time (s since the first sample)")
    ax.set_title("A delivery tag's score is when it was delivered, not when it will run", fontsize=10)
    legend_outside(ax)
    return fig


def backoff(run_dir: Path) -> Figure:
    rows = read_csv(run_dir / "backoff.csv")
    fig, (ax1, ax2) = new_figure(11, 4.5, ncols=2)
    ax2.sharey(ax1)
    for ax, policy in ((ax1, "plain"), (ax2, "jitter")):
        mine = [r for r in rows if r["policy"] == policy]
        ks = sorted({int(r["retries"]) for r in mine})
        # spread the points sideways so equal delays stay visible
        ax.scatter([r["retries"] + (n % 21 - 10) / 80 for n, r in enumerate(mine)],
                   [r["delay_s"] for r in mine], s=10, color="tab:blue", alpha=0.6,
                   label="measured delay, one retry")
        caps = [max(r["drawn_s"] for r in rows if r["policy"] == "plain" and r["retries"] == k)
                for k in ks]
        ax.plot(ks, caps, color="tab:red", marker="_", markersize=20, linestyle="--",
                label="cap: min(max, factor * 2**k)")
        ax.set_xticks(ks)
        ax.set_xlabel("retry k (request.retries when it failed)")
        ax.set_ylabel("measured delay (s)")
        ax.set_title("retry_jitter=False" if policy == "plain" else "retry_jitter=True (full jitter)",
                     fontsize=10)
    legend_below(fig)
    return fig


def visibility(run_dir: Path) -> Figure:
    phases = json.loads((run_dir / "visibility.json").read_text())
    fig, (ax,) = new_figure(9, 4.5)
    labels, means, mins, maxs = [], [], [], []
    for ph in phases:
        counts = list(ph["executions"].values())
        labels.append(f"{ph['name']}\ncountdown {ph['countdown']:.2g} s\nVT {ph['visibility_timeout']:.2g} s")
        means.append(sum(counts) / len(counts))
        mins.append(min(counts))
        maxs.append(max(counts))
    x = range(len(labels))
    bars = ax.bar(x, means, color=["tab:red" if m > 1 else "tab:green" for m in means])
    ax.bar_label(bars, labels=[f"{m:.3g}" for m in means], padding=8)
    ax.errorbar(x, means, yerr=[[m - lo for m, lo in zip(means, mins, strict=True)],
                                [hi - m for m, hi in zip(means, maxs, strict=True)]],
                fmt="none", color="black", capsize=6)
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_xlabel("phase: ETA countdown against visibility_timeout (VT)")
    ax.set_ylabel("executions per task id\n(mean, bar: min to max)")
    ax.margins(y=0.15)
    integer_ticks(ax)
    ax.set_title("ETA beyond visibility_timeout: Redis hands the message out again "
                 "(red: more than once)", fontsize=10)
    return fig


FIGURES = {
    "retry_timeline.png": retry_timeline,
    "unacked_index.png": unacked_index,
    "backoff.png": backoff,
    "visibility.png": visibility,
}
