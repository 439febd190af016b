"""The CPU sampler's window arithmetic, on samples given by hand (no threads, no processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from labkit.cpu_share import CpuSampler


def sampler(samples: list[tuple[float, ...]]) -> CpuSampler:
    s = CpuSampler([os.getpid()])
    s.samples = samples
    return s


def test_a_window_reads_the_cores_used_and_idle_between_the_samples_inside_it():
    # 1 s apart: the workers used 1.5 s of CPU a second, the whole run (their Redis, the
    # driver) 1.7, the machine left 0.2 s a second idle: the rest of it took 0.1 of 2 cores
    s = sampler([(t, 1.5 * t, 1.7 * t, 0.2 * t, 0.1 * t) for t in range(11)])
    w = s.window(2.0, 8.0)
    assert w == {"wall_s": 6.0, "used_cores": 1.5, "run_cores": 1.7, "idle_cores": 0.2,
                 "available_cores": 1.9, "own_cores": 0.1}


def test_the_runs_own_process_is_read_apart_from_its_tree():
    # the driver itself used 0.3 of a core while its workers and Redis used more
    s = sampler([(t, 1.0 * t, 1.6 * t, 0.1 * t, 0.3 * t) for t in range(5)])
    assert s.window(0.0, 4.0)["own_cores"] == 0.3


def test_a_window_inside_one_interval_reads_the_samples_around_it():
    s = sampler([(0.0, 0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0, 0.1), (2.0, 3.0, 3.0, 1.0, 0.2)])
    assert s.window(1.2, 1.4)["used_cores"] == pytest.approx(2.0)  # from 1.0 to 2.0


def test_a_busy_machine_shows_as_few_cores_at_hand():
    # two workers sharing a core with another job: 1 core between them, nothing idle
    s = sampler([(t, 1.0 * t, 1.1 * t, 0.0, 0.1 * t) for t in range(5)])
    assert s.window(0.0, 4.0)["available_cores"] == 1.1


def test_sampling_a_live_process_counts_its_cpu():
    """A process that spins for 1.5 s, reporting its own CPU time as it goes: the sampler's reading
    of a window must match what the process itself used then (on a busy machine, such as make
    test's board beside this test, that can be far below a core; the reading must follow it)."""
    spin = ("import time, json\nt = time.time()\nwhile time.time() - t < 1.5:\n"
            "    if int((time.time() - t) * 50) % 2 == 0:\n"
            "        print(json.dumps([time.time(), time.process_time()]), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        with CpuSampler([proc.pid], interval=0.02, run_pid=proc.pid) as s:
            began = time.time() + 0.3  # past its start-up
            out, _ = proc.communicate(timeout=10)
        window = s.window(began, began + 1.0)
    finally:
        proc.kill()
        proc.wait()
    marks = [json.loads(line) for line in out.splitlines()]

    def cpu_at(t: float) -> float:  # the process's own CPU time at wall time t (its nearest mark)
        return min(marks, key=lambda m: abs(m[0] - t))[1]

    own = cpu_at(began + 1.0) - cpu_at(began)
    assert own > 0.05  # it ran
    assert abs(window["used_cores"] - own) < 0.2, (window, own)
    assert window["available_cores"] >= window["used_cores"]
