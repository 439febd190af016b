"""How many cores some processes used, and how many more the machine had idle, over a window.

A throughput measured against another is only a verdict if both had the machine they needed:
on a busy laptop (a browser, a video call, a second lab) two worker processes may get one core
between them. A control run before or after a measurement can miss a burst during it; this
samples during it. A background thread reads, 20 times a second, the CPU time of the given
process trees (psutil) and the machine's idle time; ``window(t0, t1)`` is read afterwards for
any stretch of wall-clock time inside the sampling, such as a drain's first and last stamps.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil


def _tree_cpu_s(roots: list[psutil.Process]) -> float:
    total = 0.0
    for root in roots:
        with contextlib.suppress(psutil.Error):
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
    return total


def _usable_cpus() -> list[int]:
    """The CPUs this process may run on: idle time elsewhere (a container's host) is no core
    of ours."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(psutil.cpu_count() or 1))


def _idle_s(cpus: list[int]) -> float:
    per = psutil.cpu_times(percpu=True)
    return sum(per[c].idle + getattr(per[c], "iowait", 0.0) for c in cpus if c < len(per))


@dataclass
class CpuSampler:
    """``pids``: the process trees measured; the run's own tree (``run_pid``, this process by
    default: its workers, its Redis, itself) is not "the rest of the machine" either."""
    pids: list[int]
    interval: float = 0.05
    run_pid: int = field(default_factory=os.getpid)
    # (time, CPU of the measured trees, CPU of the run's tree, idle)
    samples: list[tuple[float, float, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._roots = [psutil.Process(pid) for pid in self.pids]
        self._run = [psutil.Process(self.run_pid)]
        self._cpus = _usable_cpus()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cpu-sampler", daemon=True)

    def _read(self) -> tuple[float, float, float, float]:
        return time.time(), _tree_cpu_s(self._roots), _tree_cpu_s(self._run), _idle_s(self._cpus)

    def _sample(self) -> None:
        while True:
            self.samples.append(self._read())
            if self._stop.wait(self.interval):
                self.samples.append(self._read())
                return

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        """Over the samples nearest inside [t0, t1]: the cores the measured processes used, the
        cores the whole run used and the ones the machine left idle; the last two together are
        the cores the run could have had (what the rest of the machine did not take)."""
        times = [s[0] for s in self.samples]
        i = min(bisect.bisect_left(times, t0), len(times) - 1)
        j = max(bisect.bisect_right(times, t1) - 1, 0)
        if j <= i:  # a window shorter than one interval: the samples around it
            i, j = max(i - 1, 0), min(i + 1, len(times) - 1)
        (a_t, a_cpu, a_run, a_idle), (b_t, b_cpu, b_run, b_idle) = self.samples[i], self.samples[j]
        wall = b_t - a_t
        if wall <= 0:
            return {"wall_s": 0.0, "used_cores": None, "run_cores": None, "idle_cores": None,
                    "available_cores": None}
        used, run, idle = ((b_cpu - a_cpu) / wall, (b_run - a_run) / wall, (b_idle - a_idle) / wall)
        return {"wall_s": round(wall, 3), "used_cores": round(used, 2), "run_cores": round(run, 2),
                "idle_cores": round(idle, 2), "available_cores": round(max(run, used) + idle, 2)}
