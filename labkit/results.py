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

from labs import REPO_ROOT

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


# result.json: what one run measured and concluded. Bump SCHEMA when a field changes meaning
# or goes away; adding a field keeps it.
SCHEMA = 1
RESULT_FILE = "result.json"


def result_document(*, lab_id: str, title: str, started_at: str, wall_s: float, quick: bool,
                    params: dict[str, Any], stated_wall_time: str, versions: dict[str, str],
                    broker: dict[str, Any], workers: list[dict[str, Any]],
                    celery_settings: dict[str, Any], measurements: dict[str, Any],
                    findings: list[Finding], files: list[str], error: str | None) -> dict[str, Any]:
    """The one shape of result.json (``schema`` says which)."""
    return {
        "schema": SCHEMA,
        "lab": lab_id,
        "title": title,
        "status": "error" if error else "complete",
        "error": error,
        "started_at": started_at,
        "wall_s": round(wall_s, 3),
        "quick": quick,
        "params": params,
        "stated_wall_time": stated_wall_time,
        "versions": versions,
        "broker": broker,
        "workers": workers,
        "celery_settings": celery_settings,
        "measurements": measurements,
        "findings": findings_as_dicts(findings),
        "files": files,
    }


def read_result(run_dir: Path) -> dict[str, Any]:
    """A run's result.json, with ``run_dir`` added (where it was read from)."""
    result = json.loads((run_dir / RESULT_FILE).read_text())
    result["run_dir"] = str(run_dir)
    return result


def held(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(ids that held, ids that did not) of a result.json."""
    findings = result.get("findings", [])
    return ([f["id"] for f in findings if f["holds"]], [f["id"] for f in findings if not f["holds"]])
