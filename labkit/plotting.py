"""Figures without pyplot's global state, so a driver, a test and a notebook can all draw."""

from __future__ import annotations

from matplotlib.figure import Figure


def new_figure(width: float = 8, height: float = 4.5, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, list(axes) if ncols > 1 else [axes]
