"""Figures without pyplot's global state, so a driver, a test and a notebook can all draw."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure

Plotter = Callable[[Path], Figure]


def draw_all(plotters: dict[str, Plotter], run_dir: Path | str) -> dict[str, Figure]:
    """Every figure of a lab, drawn from a run directory (so any past run can be redrawn)."""
    return {name: plot(Path(run_dir)) for name, plot in plotters.items()}


def new_figure(width: float = 8, height: float = 4.5, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, list(axes) if ncols > 1 else [axes]
