"""``results/REPORT.md`` and the summary table, built only from result.json files, so a report
can be rebuilt at any time from what runs left on disk (``celery-lab report [DIR]``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labkit.results import RESULT_FILE, held, read_result

Result = dict[str, Any]


def newest_results(root: Path) -> list[Result]:
    """For each lab under ``root``, its newest run that wrote a result.json (complete or
    crashed: a report shows what happened last, not only what went well)."""
    out = []
    for lab_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        runs = sorted(p for p in lab_dir.iterdir()
                      if not p.is_symlink() and (p / RESULT_FILE).is_file())
        if runs:
            out.append(read_result(runs[-1]))
    return out


def summary_rows(results: list[Result], failures: dict[str, str]) -> list[tuple[str, str, str]]:
    rows = []
    for r in results:
        ok, not_ok = held(r)
        crashed = " (crashed)" if r.get("status") == "error" else ""
        rows.append((r["lab"], f"{r['wall_s']:.1f} s", f"{len(ok)}/{len(ok) + len(not_ok)}{crashed}"))
    rows += [(lab_id, "-", f"setup error: {why}") for lab_id, why in failures.items()]
    return rows


def table(rows: list[tuple[str, str, str]]) -> str:
    header = ("lab", "wall time", "findings held")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render(root: Path, results: list[Result], failures: dict[str, str]) -> str:
    """REPORT.md's text; links are relative to ``root``, where the report is written."""
    lines = ["# celery-lab report", "", "```", table(summary_rows(results, failures)), "```", ""]
    for r in results:
        rel = Path(os.path.relpath(r["run_dir"], root))
        v = r.get("versions", {})
        lines += [f"## {r['lab']}: {r['title']}", "",
                  f"Run `{rel}` in {r['wall_s']:.1f} s; celery {v.get('celery')}, "
                  f"kombu {v.get('kombu')}, redis-server {v.get('redis-server')}.", ""]
        if r.get("error"):
            lines += [f"The lab crashed: `{r['error']}` (see `{rel / 'traceback.txt'}`).", ""]
        lines += ["| finding | holds | measured | expected |", "|---|---|---|---|"]
        lines += [f"| {f['claim']} | {'yes' if f['holds'] else '**NO**'} | {f['measured']} "
                  f"| {f['expected']} |" for f in r.get("findings", [])]
        lines.append("")
        lines += [f"![{name}]({rel / name})" for name in r.get("files", []) if name.endswith(".png")]
        lines.append("")
    return "\n".join(lines)


def write_report(root: Path, results: list[Result], failures: dict[str, str]) -> Path:
    path = root / "REPORT.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(root, results, failures))
    return path
