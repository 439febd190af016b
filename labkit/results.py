"""Findings and the run directory: ``results/<lab-id>/<UTC stamp>/`` with result.json, CSV, PNG."""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_ENV = "CELERY_LAB_RESULTS"


def results_root() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or REPO_ROOT / "results")


@dataclass
class Finding:
    """A claim the lab teaches, checked against what this run measured."""

    id: str
    claim: str
    measured: Any
    expected: str
    holds: bool

    def line(self) -> str:
        mark = "HOLDS" if self.holds else "DOES NOT HOLD"
        return f"[{mark}] {self.id}: {self.claim} (measured {self.measured}; expected {self.expected})"


def versions(redis_server: str) -> dict[str, str]:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "celery": v("celery"),
        "kombu": v("kombu"),
        "billiard": v("billiard"),
        "redis-py": v("redis"),
        "redis-server": redis_server,
    }


def new_run_dir(lab_id: str, root: Path | None = None) -> Path:
    base = (root or results_root()) / lab_id
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = base / stamp
    path.mkdir(parents=True, exist_ok=False)
    return path


def point_latest(run_dir: Path) -> None:
    latest = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, latest)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows back with numbers as floats and empty cells as None."""
    def convert(value: str) -> Any:
        if value == "":
            return None
        try:
            return float(value)
        except ValueError:
            return value

    with open(path, newline="") as f:
        return [{k: convert(v) for k, v in row.items()} for row in csv.DictReader(f)]


def findings_as_dicts(findings: list[Finding]) -> list[dict[str, Any]]:
    return [asdict(f) for f in findings]
