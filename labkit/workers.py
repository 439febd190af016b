"""Real ``celery worker`` and ``celery beat`` processes, ready by ping and stoppable on purpose."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from celery import Celery

from labkit.errors import SetupError
from labkit.processes import ManagedProcess, ProcessRegistry

CELERY = [sys.executable, "-m", "celery", "-A", "app.celery_app"]


def wait_until_ready(proc: ManagedProcess, ready: Callable[[], bool], timeout: float,
                     what: str, action: str) -> float:
    """Seconds until ``ready()``; a setup error, with the log's tail, if the process dies or
    the timeout passes first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not proc.alive():
            raise SetupError(f"{what} exited with code {proc.popen.returncode}: {proc.log_tail(3)}")
        if ready():
            return time.monotonic() - started
    raise SetupError(f"{what} did not {action} within {timeout:.0f} s: {proc.log_tail(3)}")


@dataclass
class Worker:
    """One worker process tree: the main process and its pool children."""

    name: str
    hostname: str
    process: ManagedProcess
    registry: ProcessRegistry
    app: Celery
    ready_s: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def pool_pids(self) -> list[int]:
        return sorted(p.pid for p in self.process.descendants())

    def wait_ready(self, timeout: float = 15.0) -> float:
        """Ready means it answers a control ping: its consumer is up, not just its process. A
        connection the broker dropped (a lab that restarts it) is not an answer: ask again."""
        def answers() -> bool:
            try:
                return bool(self.app.control.ping(destination=[self.hostname], timeout=0.2))
            except self.app.connection_for_write().connection_errors:
                time.sleep(0.05)
                return False
        return wait_until_ready(self.process, answers, timeout, f"worker {self.hostname}", "answer a ping")

    def stop(self, timeout: float = 10.0) -> None:
        """Warm shutdown (SIGTERM): finish what runs, then exit; SIGKILL if it overruns."""
        self.registry.reap(self.process, term=signal.SIGTERM, grace=timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the main process only, as a crash or an OOM kill would."""
        self.process.signal(sig)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal the main process and its pool children together, as a lost host would."""
        self.process.signal_group(sig)

    def kill_pool_child(self, index: int = 0, sig: int = signal.SIGKILL) -> int:
        pids = self.pool_pids()
        if not pids:
            raise RuntimeError(f"worker {self.hostname} has no pool child")
        pid = pids[index % len(pids)]
        os.kill(pid, sig)
        return pid

    def wait_exit(self, timeout: float = 10.0) -> int | None:
        try:
            return self.process.popen.wait(timeout=timeout)
        except Exception:
            return None

    def rss_bytes(self) -> int:
        total = 0
        for p in [psutil.Process(self.pid), *self.process.descendants()]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total


def worker_argv(
    hostname: str,
    *,
    pool: str = "prefork",
    concurrency: int = 2,
    queues: Sequence[str] | None = None,
    prefetch: int | None = None,
    loglevel: str = "INFO",
    events: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """``events=False`` leaves out ``-E``: with ``worker_send_task_events`` off in the worker's
    settings too, it sends no task events (what measuring the events' own cost needs)."""
    argv = [*CELERY, "worker", "-n", hostname, "-P", pool, "-c", str(concurrency),
            "-l", loglevel, "--without-mingle", "--without-gossip", *(["-E"] if events else [])]
    if queues:
        argv += ["-Q", ",".join(queues)]
    if prefetch is not None:
        argv += ["--prefetch-multiplier", str(prefetch)]
    return argv + list(extra)


@dataclass
class Beat:
    """A ``celery beat`` process with its schedule state file in the run's temp dir."""

    process: ManagedProcess
    registry: ProcessRegistry
    schedule_file: Path
    ready_s: float | None = None
    log_offset: int = 0  # where this process's part of a shared log begins

    @property
    def nodename(self) -> str:
        """The hostname its events carry (an anonymous ``gen<pid>@host`` node)."""
        return f"gen{self.process.pid}@{socket.gethostname()}"

    def log(self) -> str:
        with open(self.process.log_path, errors="replace") as f:
            f.seek(self.log_offset)
            return f.read()

    def wait_ready(self, timeout: float = 10.0) -> float:
        """Beat has no ping: ready when it logs that its scheduler loop started."""
        def started() -> bool:
            if "beat: Starting..." in self.log():
                return True
            time.sleep(0.05)
            return False

        return wait_until_ready(self.process, started, timeout, "beat", "start")

    def stop(self, timeout: float = 5.0) -> None:
        self.registry.reap(self.process, term=signal.SIGTERM, grace=timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.process.signal(sig)


def beat_argv(schedule_file: Path, loglevel: str = "INFO", max_interval: int = 1) -> list[str]:
    return [*CELERY, "beat", "-l", loglevel, "-s", str(schedule_file),
            "--max-interval", str(max_interval), "--pidfile", ""]


@dataclass
class Flower:
    """A real Flower process on a loopback port, with basic auth from its environment."""

    process: ManagedProcess
    registry: ProcessRegistry
    url: str
    user: str
    password: str = field(repr=False)
    ready_s: float | None = None

    def get(self, path: str, *, auth: bool = True, timeout: float = 5.0) -> tuple[int, bytes]:
        """(status, body) of a GET; never raises for an HTTP error status."""
        request = urllib.request.Request(self.url + path)
        if auth:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 20.0) -> float:
        def answers() -> bool:
            try:
                return self.get("/healthcheck", auth=False, timeout=0.5)[0] == 200
            except OSError:
                time.sleep(0.1)
                return False

        return wait_until_ready(self.process, answers, timeout, "flower", "answer /healthcheck")

    def stop(self, timeout: float = 5.0) -> None:
        self.registry.reap(self.process, term=signal.SIGTERM, grace=timeout)


def flower_argv(port: int) -> list[str]:
    return [*CELERY, "flower", f"--port={port}", "--address=127.0.0.1"]
