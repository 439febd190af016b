"""What a run keeps and how it is reported: findings, files, result.json's schema, and a
REPORT.md rebuilt from result.json files alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit import cli, report
from labkit.evidence import Evidence
from labkit.plotting import new_figure
from labkit.results import (
    SCHEMA,
    Finding,
    held,
    point_latest,
    read_csv,
    read_result,
    result_document,
    write_json,
)


def test_a_check_records_the_claim_the_measurement_and_the_verdict(tmp_path):
    ev = Evidence(tmp_path)
    ev.check("once", "each task runs once", {"runs": 2}, "1 run", holds=0)
    finding = ev.finding("once")
    assert finding.holds is False and finding.measured == {"runs": 2}
    assert "DOES NOT HOLD" in finding.line()


def test_files_written_through_evidence_are_listed_for_the_report(tmp_path):
    ev = Evidence(tmp_path)
    ev.write_json("a.json", {"x": 1})
    ev.write_csv("b.csv", [{"t": 1.5, "name": "w1"}, {"t": 2, "extra": ""}])

    def plot(run_dir: Path):
        fig, (ax,) = new_figure()
        ax.plot([r["t"] for r in read_csv(run_dir / "b.csv")])
        return fig

    ev.save_figures({"c.png": plot})
    assert ev.files == ["a.json", "b.csv", "c.png"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert read_csv(tmp_path / "b.csv") == [{"t": 1.5, "name": "w1", "extra": None},
                                            {"t": 2.0, "name": None, "extra": None}]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def _result(run_dir: Path, lab: str, findings: list[Finding], error: str | None = None,
            files: tuple[str, ...] = ()) -> dict:
    run_dir.mkdir(parents=True)
    doc = result_document(
        lab_id=lab, title=f"title of {lab}", started_at="2026-01-01T00:00:00+00:00", wall_s=12.34,
        quick=True, params={"n": 1}, stated_wall_time="about 10 s", versions={"celery": "5.7.0"},
        broker={"embedded": True}, workers=[], celery_settings={}, measurements={},
        findings=findings, files=list(files), error=error)
    write_json(run_dir / "result.json", doc)
    return doc


def test_result_json_carries_its_schema_and_every_finding_field(tmp_path):
    doc = _result(tmp_path / "r", "01_x", [Finding("a", "claim", 1, "1", True)])
    assert doc["schema"] == SCHEMA and doc["status"] == "complete"
    assert set(doc["findings"][0]) == {"id", "claim", "measured", "expected", "holds"}
    assert read_result(tmp_path / "r")["run_dir"] == str(tmp_path / "r")


def test_held_counts_findings_by_id():
    doc = {"findings": [{"id": "a", "holds": True}, {"id": "b", "holds": False}]}
    assert held(doc) == (["a"], ["b"])


@pytest.fixture
def results_on_disk(tmp_path) -> Path:
    root = tmp_path / "results"
    old = root / "01_x" / "20260101T000000.000000Z"
    _result(old, "01_x", [Finding("a", "old claim", 1, "1", False)])
    new = root / "01_x" / "20260102T000000.000000Z"
    _result(new, "01_x", [Finding("a", "claim a", 1, "1", True), Finding("b", "claim b", 2, "2", True)],
            files=("plot.png", "data.csv"))
    point_latest(old)  # latest points at an older run: the report still shows the newest
    crashed = root / "02_y" / "20260103T000000.000000Z"
    _result(crashed, "02_y", [Finding("c", "claim c", 0, "1", False)], error="RuntimeError: boom")
    (root / "03_empty").mkdir()
    return root


def test_the_report_shows_each_labs_newest_run_crashed_or_not(results_on_disk):
    results = report.newest_results(results_on_disk)
    assert [(r["lab"], Path(r["run_dir"]).name) for r in results] == [
        ("01_x", "20260102T000000.000000Z"), ("02_y", "20260103T000000.000000Z")]
    rows = report.summary_rows(results, {"04_z": "broker unreachable"})
    assert rows == [("01_x", "12.3 s", "2/2"), ("02_y", "12.3 s", "0/1 (crashed)"),
                    ("04_z", "-", "setup error: broker unreachable")]


def test_report_md_links_every_plot_relative_to_itself(results_on_disk):
    text = report.render(results_on_disk, report.newest_results(results_on_disk), {})
    assert "![plot.png](01_x/20260102T000000.000000Z/plot.png)" in text
    assert "data.csv" not in text
    assert "| claim c | **NO** | 0 | 1 |" in text and "RuntimeError: boom" in text


def test_celery_lab_report_rebuilds_report_md_from_disk(results_on_disk, capsys):
    assert cli.main(["report", str(results_on_disk)]) == 0
    text = (results_on_disk / "REPORT.md").read_text()
    assert "## 01_x: title of 01_x" in text and "## 02_y" in text
    assert "01_x" in capsys.readouterr().out


def test_a_report_of_nothing_is_a_setup_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "none")]) == 2
    assert "no result.json" in capsys.readouterr().err
