"""Figures without pyplot's global state, so a driver, a test and a notebook can all draw.

The helpers below are the few conventions every lab's figures share, kept here so no lab
repeats them: counts get whole-number ticks, and legends go beside or under the axes, never
on the data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.ticker import MaxNLocator

Plotter = Callable[[Path], Figure]


def draw_all(plotters: dict[str, Plotter], run_dir: Path | str) -> dict[str, Figure]:
    """Every figure of a lab, drawn from a run directory (so any past run can be redrawn)."""
    return {name: plot(Path(run_dir)) for name, plot in plotters.items()}


def new_figure(width: float = 8, height: float = 4.5, ncols: int = 1, nrows: int = 1) -> tuple[Figure, list]:
    """A figure and its axes, as a flat list (row by row)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, list(axes.flat)


def integer_ticks(ax: Axes, axis: Literal["x", "y"] = "y") -> None:
    """Whole-number ticks on a count axis: a tick at 2.5 tasks reads as a measurement."""
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def _entries(axes: list[Axes]) -> dict[str, object]:
    """Each label once (a scatter drawn point by point names its series many times)."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    return entries


def legend_outside(ax: Axes, **kwargs) -> Legend:
    """The axes' legend to their right, where it cannot cover data whatever the data does;
    the constrained layout of ``new_figure`` narrows the axes to make room. Each label once."""
    kwargs.setdefault("fontsize", 8)
    if "handles" not in kwargs:
        entries = _entries([ax])
        kwargs.update(handles=list(entries.values()), labels=list(entries))
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, **kwargs)


def legend_below(fig: Figure, ncols: int = 3, **kwargs) -> Legend:
    """One legend for the whole figure, under its axes: for panels side by side, where a legend
    beside one panel would squeeze it. Entries of every axes, each label once; needs the
    constrained layout of ``new_figure`` (``outside`` locations)."""
    entries = _entries(fig.axes)
    kwargs.setdefault("fontsize", 8)
    return fig.legend(list(entries.values()), list(entries), loc="outside lower center",
                      ncols=min(ncols, len(entries)) or 1, **kwargs)
