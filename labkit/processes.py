"""Starting and reaping child processes, so that no worker, beat, flower or redis outlives a run.

Every process is started in its own session (its own process group, so a terminal's Ctrl-C
reaches only the driver, which then stops children in order) and, on Linux, with a
parent-death signal, so even a driver killed with SIGKILL takes its children with it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL me when the spawning thread dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ManagedProcess:
    """A child the kit started: its name, its Popen and where its output goes."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    _log_file: object = field(repr=False, default=None)
    seen: dict[int, psutil.Process] = field(repr=False, default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def descendants(self) -> list[psutil.Process]:
        """Its children now; each one seen is remembered (``seen``), so that reaping still finds a
        pool child whose parent was SIGKILLed first (an orphan no longer shows as a child)."""
        try:
            found = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []
        self.seen.update({p.pid: p for p in found})
        return found

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def signal(self, sig: int) -> None:
        """Signal the main process only (a pool child survives a SIGKILL of its parent)."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class ProcessRegistry:
    """Owns every process a run starts; ``reap_all`` leaves none behind."""

    def __init__(self) -> None:
        self._procs: list[ManagedProcess] = []
        self._lock = threading.Lock()
        _LIVE_REGISTRIES.add(self)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 - closed in reap()
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        proc = ManagedProcess(name, popen, log_path, log)
        with self._lock:
            self._procs.append(proc)
        return proc

    @property
    def processes(self) -> list[ManagedProcess]:
        with self._lock:
            return list(self._procs)

    def reap(self, proc: ManagedProcess, *, term: int = signal.SIGTERM, grace: float = 5.0) -> None:
        """Stop ``proc`` and everything below it: ``term`` first, SIGKILL after ``grace`` s."""
        self.reap_many([proc], term=term, grace=grace)

    def reap_many(self, procs: list[ManagedProcess], *, term: int = signal.SIGTERM,
                  grace: float = 5.0) -> None:
        """Stop several at once: ``term`` to all, one shared ``grace``, then SIGKILL the rest."""
        families: list[psutil.Process] = []
        for proc in procs:
            if proc.alive():
                with contextlib.suppress(psutil.Error):
                    families.append(psutil.Process(proc.pid))
            proc.descendants()
            # psutil's is_running() also checks the create time: a reused pid is not ours
            families += [p for p in proc.seen.values() if p.is_running()]
            if proc.alive():
                proc.signal_group(term)
                proc.signal_group(signal.SIGCONT)  # a stopped process acts on ``term`` only once resumed
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in procs:
            proc.signal_group(signal.SIGKILL)
        for p in families:
            with contextlib.suppress(psutil.Error):
                p.kill()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
        psutil.wait_procs(families, timeout=5)
        with self._lock:
            for proc in procs:
                if proc._log_file is not None:
                    proc._log_file.close()
                    proc._log_file = None
                if proc in self._procs:
                    self._procs.remove(proc)

    def reap_all(self, grace: float = 5.0) -> None:
        # Everything else first, together; the broker they talk to last.
        procs = self.processes
        self.reap_many([p for p in procs if p.name != "redis"], grace=grace)
        self.reap_many([p for p in procs if p.name == "redis"], grace=grace)
        _LIVE_REGISTRIES.discard(self)


_LIVE_REGISTRIES: set[ProcessRegistry] = set()


@atexit.register
def _reap_everything_left() -> None:
    for registry in list(_LIVE_REGISTRIES):
        registry.reap_all(grace=1.0)
