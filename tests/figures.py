"""What every lab figure must do to read at a glance, checked on a real run's figures."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from labkit.plotting import Plotter, draw_all


def drawn(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()
    return fig


def overlaps_axes(fig: Figure, legend) -> bool:
    box = legend.get_window_extent()
    return any(box.overlaps(ax.get_window_extent()) for ax in fig.axes if ax.axison)


def numeric(labels) -> bool:
    return all(t.get_text().replace("\u2212", "-").replace(".", "").lstrip("-").isdigit()
               for t in labels if t.get_text())


def assert_figures_read_at_a_glance(figures: dict[str, Plotter], run_dir: Path) -> None:
    """Every numeric axis names what it measures (a categorical one is named by its ticks);
    no legend sits on the data."""
    for name, fig in draw_all(figures, run_dir).items():
        drawn(fig)
        for ax in (a for a in fig.axes if a.axison):
            assert ax.get_xlabel() or not numeric(ax.get_xticklabels()), (name, "x")
            assert ax.get_ylabel() or not numeric(ax.get_yticklabels()), (name, "y")
        legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
        for legend in legends:
            assert not overlaps_axes(fig, legend), (name, "legend on the data")
