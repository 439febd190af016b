"""The command line: exit codes, one-line errors, Ctrl-C, and the driver-as-script."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from labkit.results import held, read_result
from labs import packages
from tests import board
from tests.conftest import REPO, cli_env

CLI = [sys.executable, "-m", "labkit"]


def _run(args, results, timeout=60):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=cli_env(results))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket closes


def _assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_unreachable_broker_is_exit_2_with_one_line(tmp_path):
    started = time.monotonic()
    proc = _run(["run", "01", "--quick", "--broker", f"redis://127.0.0.1:{_closed_port()}/0"],
                tmp_path, timeout=30)
    elapsed = time.monotonic() - started
    _assert_one_line_error(proc, "broker unreachable")
    # reported with the figure, not asserted as a speed target: the bound is the subprocess timeout
    print(f"unreachable broker reported in {elapsed:.2f} s")


@pytest.mark.parametrize("args,needle", [
    (["run", "99"], "unknown lab '99'"),
    (["run", "nope"], "unknown lab 'nope'"),
    (["run", "01", "--param", "no_such=1"], "unknown param 'no_such'"),
    (["run", "01", "--param", "batch=many"], "bad param batch='many'"),
    (["run", "01", "--param", "concurrency=0"], "must be >= 1"),
    (["run", "01", "--param", "batch"], "use key=value"),
    (["env", "42"], "unknown lab"),
])
def test_bad_lab_or_param_is_exit_2_with_one_line(tmp_path, args, needle):
    proc = _run(args, tmp_path)
    _assert_one_line_error(proc, needle)
    assert not (tmp_path / "01_hello_world").exists()  # nothing started, nothing written


@pytest.mark.parametrize("package", packages())
def test_every_driver_is_a_script_that_refuses_a_bad_param_in_one_line(tmp_path, package):
    """``python -m labs.labNN.driver`` is ``celery-lab run NN``: the same parser, the same
    exit 2 (the labs' full runs go through it in tests/test_param_extremes.py)."""
    proc = subprocess.run([sys.executable, "-m", f"labs.{package}.driver", "--param", "no_such=1"],
                          capture_output=True, text=True, timeout=60, cwd=REPO, env=cli_env(tmp_path))
    _assert_one_line_error(proc, "unknown param 'no_such'")
    assert not any(tmp_path.iterdir())  # nothing started, nothing written


def test_list_names_every_lab_by_number_and_name(tmp_path):
    proc = _run(["list"], tmp_path)
    assert proc.returncode == 0
    assert "01_hello_world" in proc.stdout
    assert "sequential=200, --quick 50" in proc.stdout
    assert "prefetched=2 [min 1, max 8]" in proc.stdout  # the declared range: the legal values
    assert "timeout=30.0 [min 10]" in proc.stdout


def test_env_prints_the_three_variables_a_worker_reads(tmp_path):
    from app.config import ENV_VARS

    proc = _run(["env", "01", "--broker", "redis://example:6379/0"], tmp_path)
    assert proc.returncode == 0
    exported = [line.split()[1].split("=")[0] for line in proc.stdout.splitlines()]
    assert exported == list(ENV_VARS)


def test_ctrl_c_stops_the_run_and_every_process_it_started(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "labs.lab01_hello_world.driver", "--quick"],
        cwd=REPO, env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if "ready in" in line and "worker" in line:
                break
            assert time.monotonic() < deadline, "worker never became ready"
        family = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in family)
        assert "redis-server" in names and "worker" in names
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    _gone, alive = psutil.wait_procs(family, timeout=5)
    assert not alive, [p.pid for p in alive]


def test_doctor_finds_redis_and_round_trips_a_task(tmp_path):
    proc = _run(["doctor"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "redis-server: " in proc.stdout
    assert "round trip: lab01.add(2, 2) = 4" in proc.stdout
    assert "celery: 5.7" in proc.stdout


def _several(workdir: Path) -> tuple[subprocess.CompletedProcess, Path]:
    results = workdir / "results"
    return board.command([*CLI, "run", "06,08", "--quick"], cli_env(results), REPO, workdir,
                         timeout=300), results


SEVERAL = board.declare("cli-run-06,08", _several, expected_s=20)


def test_several_labs_end_with_a_summary_and_a_report_linking_every_plot(test_board):
    """`run all` and `run 06,08` share one path; two fast labs keep this test short
    (`make lab` runs all of them, and each lab has its own test)."""
    proc, tmp_path = test_board[SEVERAL]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = proc.stdout[proc.stdout.index("lab "):]
    for lab_id in ("06_routing", "08_observability"):
        ok, failed = held(read_result(tmp_path / lab_id / "latest"))
        assert ok and not failed, failed
        row = next(line for line in table.splitlines() if line.startswith(lab_id))
        assert row.split()[-1] == f"{len(ok)}/{len(ok)}"  # the table says what result.json says
    report = (tmp_path / "REPORT.md").read_text()
    links = [line[line.index("(") + 1:-1] for line in report.splitlines() if line.startswith("![")]
    assert len(links) >= 6 and all((tmp_path / link).exists() for link in links)


def test_an_unknown_lab_among_several_is_exit_2_before_anything_runs(tmp_path):
    proc = _run(["run", "01,99"], tmp_path)
    assert proc.returncode == 2
    assert "unknown lab '99'" in proc.stderr
    assert not (tmp_path / "01_hello_world").exists()
