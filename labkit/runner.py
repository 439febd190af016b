"""Run one lab end to end: params, session, measurement, figures, result.json, exit code."""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from labkit import catalog
from labkit.broker import EXTERNAL_BROKER_ENV
from labkit.errors import SetupError
from labkit.lab import Lab
from labkit.params import Params, draw
from labkit.params import resolve as resolve_params
from labkit.plotting import draw_all
from labkit.progress import Progress
from labkit.results import (
    RESULT_FILE,
    Finding,
    new_run_dir,
    point_latest,
    result_document,
    results_root,
    versions,
    write_json,
)
from labkit.session import LabSession


def drawn_params(lab: Lab, seed: int, quick: bool, tries: int = 200) -> Params:
    """The first legal draw (inside every range, accepted by the lab's validate) from ``seed``."""
    for attempt in range(tries):
        values = resolve_params(lab.params, draw(lab.params, seed * 1000 + attempt, quick), quick)
        try:
            if lab.validate:
                lab.validate(values)
        except SetupError:
            continue
        return values
    raise SetupError(f"no legal parameters for {lab.id} in {tries} draws from seed {seed}")


@dataclass
class Outcome:
    """What a run produced; ``exit_code`` is 0 only when every finding holds."""

    lab: Lab
    run_dir: Path
    wall_s: float
    findings: list[Finding] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def held(self) -> int:
        return sum(f.holds for f in self.findings)

    @property
    def exit_code(self) -> int:
        ok = self.error is None and self.findings and self.held == len(self.findings)
        return 0 if ok else 1

    def figures(self) -> dict[str, Figure]:
        """The lab's figures, drawn again from this run's files (for a notebook to show)."""
        return draw_all(self.lab.figures, self.run_dir)


def run(lab: Lab | str, *, quick: bool = False, params: list[str] | dict[str, Any] | None = None,
        broker: str | None = None, results: Path | None = None, progress: bool = True,
        random_params: int | None = None) -> Outcome:
    """Raises SetupError (exit 2) before or while setting up; returns an Outcome otherwise."""
    lab = catalog.resolve(lab) if isinstance(lab, str) else lab
    if random_params is not None:
        values = drawn_params(lab, random_params, quick)
        Progress(lab.id, progress).step(f"random params (seed {random_params}): "
                                        + " ".join(f"{k}={v}" for k, v in values.items()))
    else:
        values = resolve_params(lab.params, params or [], quick)
        if lab.validate:
            lab.validate(values)
    broker = broker or os.environ.get(EXTERNAL_BROKER_ENV) or None
    if broker and lab.embedded_only:
        raise SetupError(f"Lab {lab.number} stops and restarts its broker: it runs only on the kit's "
                         f"own embedded Redis, not with --broker or {EXTERNAL_BROKER_ENV}")
    run_dir = new_run_dir(lab.id, Path(results) if results else results_root())
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat()
    error = None
    with LabSession(lab.id, values, run_dir, settings=lab.celery_settings(values),
                    broker_url=broker, progress=progress) as session:
        try:
            lab.measure(session)
            session.save_figures(lab.figures)
        except SetupError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            session.step(f"the lab crashed: {error}")
            (run_dir / "traceback.txt").write_text(traceback.format_exc())
        wall = time.monotonic() - started
        evidence = session.evidence
        result = result_document(
            lab_id=lab.id, title=lab.title, started_at=started_at, wall_s=wall, quick=quick,
            params=dict(values), stated_wall_time=lab.wall_time,
            versions=versions(session.broker.server_version),
            broker={"embedded": session.broker.embedded, "source": session.broker.source,
                    "key_prefix": session.broker.prefix, "startup_s": session.broker.startup_s},
            workers=[{"hostname": w.hostname, "ready_s": w.ready_s} for w in session.workers],
            celery_settings=session.settings, measurements=evidence.measurements,
            findings=evidence.findings, files=evidence.files, error=error)
        write_json(run_dir / RESULT_FILE, result)
        outcome = Outcome(lab, run_dir, wall, list(evidence.findings), result, error)
    if error is None:
        point_latest(run_dir)
    return outcome
