"""What a run keeps: its findings, its measurements and the files it writes into its directory.

Needs no broker and no process, so a lab's check functions can be fed counter-examples in a
unit test exactly as a run feeds them measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from labkit.plotting import Plotter, draw_all
from labkit.results import Finding, write_csv, write_json


class Evidence:
    def __init__(self, run_dir: Path, step: Callable[[str], None] = lambda message: None) -> None:
        self.run_dir = run_dir
        self.step = step
        self.findings: list[Finding] = []
        self.measurements: dict[str, Any] = {}
        self.files: list[str] = []

    def check(self, id: str, claim: str, measured: Any, expected: str, holds: bool) -> Finding:
        """Record a claim the lab teaches with what this run measured, and whether it held."""
        finding = Finding(id, claim, measured, expected, bool(holds))
        self.findings.append(finding)
        self.step(f"finding {id}: {'holds' if finding.holds else 'DOES NOT HOLD'} "
                  f"(measured {measured})")
        return finding

    def finding(self, id: str) -> Finding:
        return next(f for f in self.findings if f.id == id)

    def measured(self, **values: Any) -> None:
        """Keep measurements for result.json (``measurements``)."""
        self.measurements.update(values)

    def write_csv(self, name: str, rows: list[dict[str, Any]]) -> Path:
        return self._kept(name, lambda path: write_csv(path, rows))

    def write_json(self, name: str, data: Any) -> Path:
        return self._kept(name, lambda path: write_json(path, data))

    def save_figure(self, name: str, fig: Figure) -> Path:
        return self._kept(name, lambda path: fig.savefig(path, dpi=110, bbox_inches="tight"))

    def save_figures(self, plotters: dict[str, Plotter]) -> list[Path]:
        """Draw every figure from what this run wrote, and save each as a PNG."""
        return [self.save_figure(name, fig) for name, fig in draw_all(plotters, self.run_dir).items()]

    def _kept(self, name: str, write: Callable[[Path], object]) -> Path:
        path = self.run_dir / name
        write(path)
        self.files.append(name)
        return path
