"""The CPU sampler's window arithmetic, on samples given by hand (no threads, no processes)."""

from __future__ import annotations

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
    # a process that spins for 1.5 s uses about one core; this one only waits for it
    spin = "import time\nt = time.time()\nwhile time.time() - t < 1.5:\n    pass\n"
    proc = subprocess.Popen([sys.executable, "-c", spin])
    try:
        with CpuSampler([proc.pid], interval=0.02, run_pid=proc.pid) as s:
            began = time.time() + 0.3  # past its start-up
            proc.wait(10)
        window = s.window(began, began + 1.0)
    finally:
        proc.kill()
        proc.wait()
    assert window["used_cores"] > 0.6
    assert window["available_cores"] >= window["used_cores"]
