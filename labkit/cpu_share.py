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


def _tree_cpu_s(roots: list[psutil.Process], tree: bool = True) -> float:
    total = 0.0
    for root in roots:
        with contextlib.suppress(psutil.Error):
            for p in [root, *(root.children(recursive=True) if tree else [])]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
    return total


def tree_cpu_s(pid: int) -> float:
    """The CPU seconds a process and its descendants have used so far."""
    return _tree_cpu_s([psutil.Process(pid)])


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
    # (time, CPU of the measured trees, CPU of the run's tree, idle, CPU of the run's own
    # process alone: the driver, a client)
    samples: list[tuple[float, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._roots = [psutil.Process(pid) for pid in self.pids]
        self._run = [psutil.Process(self.run_pid)]
        self._cpus = _usable_cpus()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cpu-sampler", daemon=True)

    def _read(self) -> tuple[float, ...]:
        return (time.time(), _tree_cpu_s(self._roots), _tree_cpu_s(self._run), _idle_s(self._cpus),
                _tree_cpu_s(self._run, tree=False))

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
        cores the whole run used and the ones the machine left idle (those two together are the
        cores the run could have had: what the rest of the machine did not take), and the
        cores the run's own process used (``own_cores``). Cores are CPU seconds per second."""
        times = [s[0] for s in self.samples]
        i = min(bisect.bisect_left(times, t0), len(times) - 1)
        j = max(bisect.bisect_right(times, t1) - 1, 0)
        if j <= i:  # a window shorter than one interval: the samples around it
            i, j = max(i - 1, 0), min(i + 1, len(times) - 1)
        a, b = self.samples[i], self.samples[j]
        wall = b[0] - a[0]
        if wall <= 0:
            return {"wall_s": 0.0, "used_cores": None, "run_cores": None, "idle_cores": None,
                    "available_cores": None, "own_cores": None}
        used, run, idle, own = ((b[k] - a[k]) / wall for k in range(1, 5))
        return {"wall_s": round(wall, 3), "used_cores": round(used, 2), "run_cores": round(run, 2),
                "idle_cores": round(idle, 2), "available_cores": round(max(run, used) + idle, 2),
                "own_cores": round(own, 2)}
