"""The summary of ``celery-lab run all``: a table on the terminal and ``results/REPORT.md``."""

from __future__ import annotations

import os
from pathlib import Path

from labkit.runner import Outcome


def summary_rows(outcomes: list[Outcome], failures: dict[str, str]) -> list[tuple[str, str, str]]:
    rows = [(o.lab.id, f"{o.wall_s:.1f} s", f"{o.held}/{len(o.findings)}"
             + ("" if o.error is None else " (crashed)")) for o in outcomes]
    rows += [(lab_id, "-", f"setup error: {why}") for lab_id, why in failures.items()]
    return rows


def table(rows: list[tuple[str, str, str]]) -> str:
    header = ("lab", "wall time", "findings held")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_report(root: Path, outcomes: list[Outcome], failures: dict[str, str]) -> Path:
    lines = ["# celery-lab report", "", "```", table(summary_rows(outcomes, failures)), "```", ""]
    for o in outcomes:
        rel = Path(os.path.relpath(o.run_dir, root))
        versions = o.result.get("versions", {})
        lines += [f"## {o.lab.id}: {o.lab.title}", "",
                  f"Run `{rel}` in {o.wall_s:.1f} s; celery {versions.get('celery')}, "
                  f"kombu {versions.get('kombu')}, redis-server {versions.get('redis-server')}.", "",
                  "| finding | holds | measured | expected |", "|---|---|---|---|"]
        lines += [f"| {f.claim} | {'yes' if f.holds else '**NO**'} | {f.measured} | {f.expected} |"
                  for f in o.findings]
        lines.append("")
        lines += [f"![{name}]({rel / name})" for name in o.result.get("files", [])
                  if name.endswith(".png")]
        lines.append("")
    path = root / "REPORT.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
