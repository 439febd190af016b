"""The figures' shared conventions (labkit.plotting) and Lab 04's matrix heatmap, no Redis."""

from __future__ import annotations

from pathlib import Path

from matplotlib.colors import to_rgba

from labkit.plotting import integer_ticks, legend_below, legend_outside, new_figure
from labkit.results import write_csv
from labs.lab04_acks_late.plots import matrix_heatmap
from tests.figures import drawn, overlaps_axes

# --- the helpers -----------------------------------------------------------------------------

def test_integer_ticks_leave_only_whole_numbers():
    fig, (ax,) = new_figure()
    ax.plot([0, 1], [0, 3])
    drawn(fig)
    assert any(t != int(t) for t in ax.get_yticks())  # matplotlib's default would show 0.5 tasks
    integer_ticks(ax)
    drawn(fig)
    ticks = ax.get_yticks()
    assert len(ticks) >= 2 and all(t == int(t) for t in ticks)
    assert any(t != int(t) for t in ax.get_xticks())  # the other axis is left alone


def test_integer_ticks_on_x():
    fig, (ax,) = new_figure()
    ax.plot([0, 3], [0, 1])
    integer_ticks(ax, "x")
    drawn(fig)
    assert all(t == int(t) for t in ax.get_xticks())


def test_legend_outside_is_off_the_axes():
    fig, (ax,) = new_figure()
    for k in range(3):
        ax.plot([0, 1], [k, k + 1], label=f"series {k}")
    inside = ax.legend(loc="upper right")
    drawn(fig)
    assert overlaps_axes(fig, inside)  # the check can fail: a plain legend sits on the data
    legend = legend_outside(ax)
    drawn(fig)
    assert ax.get_legend() is legend
    assert not overlaps_axes(fig, legend)
    assert fig.bbox.contains(*legend.get_window_extent().p1)  # and still on the page


def test_legend_below_is_under_every_panel_with_each_label_once():
    fig, (ax1, ax2) = new_figure(10, 4, ncols=2)
    ax1.plot([0, 1], [0, 1], label="shared")
    ax2.plot([0, 1], [1, 0], label="shared")
    ax2.plot([0, 1], [0.5, 0.5], label="only right")
    legend = legend_below(fig)
    drawn(fig)
    assert [t.get_text() for t in legend.get_texts()] == ["shared", "only right"]
    assert not overlaps_axes(fig, legend)
    top = legend.get_window_extent().y1
    assert all(top <= ax.get_tightbbox().y0 + 1 for ax in (ax1, ax2))  # under the x labels too


# --- Lab 04's matrix heatmap ---------------------------------------------------------------

def matrix_row(mode: str, fault: str, n: int, victim: bool, outcome: str) -> dict:
    """A matrix.csv row with the real columns (matrix.run_trial's, plus the driver's outcome)."""
    starts, finishes = {"once": (1, 1), "lost": (1, 0), "re-executed": (2, 1),
                        "completed twice": (2, 2)}[outcome]
    return {"trial": 0, "mode": mode, "fault": fault, "id": f"{mode}-{fault}-{n}",
            "victim": victim, "starts": starts, "finishes": finishes,
            "state": "SUCCESS" if finishes else "FAILURE", "exception": "",
            "redelivered_runs": 0, "retried_runs": 0, "again_after_s": None,
            "kill_fraction": 0.3, "in_flight_at_fault": 1, "fault_late_s": 0.01,
            "outcome": outcome}


def synthetic_rows() -> list[dict]:
    """2 modes x 2 faults; in each cell one hit task and two untouched ones."""
    rows = []
    for mode, fault, hit_outcome in (("early", "child_kill", "lost"),
                                     ("early", "warm", "once"),
                                     ("late", "child_kill", "re-executed"),
                                     ("late", "warm", "once")):
        rows.append(matrix_row(mode, fault, 0, True, hit_outcome))
        rows += [matrix_row(mode, fault, n, False, "once") for n in (1, 2)]
    return rows


def heatmap(tmp_path: Path, rows: list[dict]):
    write_csv(tmp_path / "matrix.csv", rows)
    fig = matrix_heatmap(tmp_path)
    return fig, fig.axes[0]


def cell(ax, row: int, col: int) -> tuple[list[str], tuple]:
    """(the cell's texts top to bottom, its colour)."""
    texts = sorted((t for t in ax.texts if t.get_position()[0] == col
                    and abs(t.get_position()[1] - row) < 0.5), key=lambda t: t.get_position()[1])
    return [t.get_text() for t in texts], tuple(ax.images[0].get_array()[row, col])


def colour(name: str) -> tuple:
    return to_rgba(name, 0.45)


def test_heatmap_rows_are_modes_and_columns_faults(tmp_path):
    _, ax = heatmap(tmp_path, synthetic_rows())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["early", "late"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["child_kill", "warm"]
    assert ax.images[0].get_array().shape[:2] == (2, 2)


def test_heatmap_cells_count_the_hit_tasks_and_the_untouched_apart(tmp_path):
    _, ax = heatmap(tmp_path, synthetic_rows())
    assert cell(ax, 0, 0) == (["1 lost", "+2 untouched, all once"], colour("tab:red"))
    assert cell(ax, 0, 1) == (["1 once", "+2 untouched, all once"], colour("tab:green"))
    assert cell(ax, 1, 0) == (["1 re-executed", "+2 untouched, all once"], colour("tab:orange"))


def test_heatmap_follows_the_csv(tmp_path):
    rows = synthetic_rows()
    rows[0] = matrix_row("early", "child_kill", 0, True, "completed twice")  # the hit task
    rows[1] = matrix_row("early", "child_kill", 1, False, "lost")  # an untouched one
    rows.append(matrix_row("early", "child_kill", 3, True, "once"))  # a second hit task
    _, ax = heatmap(tmp_path, rows)
    texts, fill = cell(ax, 0, 0)
    assert texts == ["1 completed twice\n1 once", "+2 untouched: 1 lost, 1 once"]
    assert fill == colour("tab:purple")  # coloured by the hit tasks only, worst first
    assert cell(ax, 1, 0)[0] == ["1 re-executed", "+2 untouched, all once"]  # others unchanged


def test_heatmap_a_cell_no_task_was_hit_in(tmp_path):
    rows = [r for r in synthetic_rows() if not (r["mode"] == "late" and r["victim"]
                                                and r["fault"] == "warm")]
    _, ax = heatmap(tmp_path, rows)
    assert cell(ax, 1, 1) == (["no task hit", "+2 untouched, all once"], colour("lightgray"))
