"""The run's processes: workers, beat, Flower and any other child, each started with the run's
environment, logged into the run directory, ready-checked, and owned by one registry."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery

from labkit.broker import free_port
from labkit.processes import ManagedProcess, ProcessRegistry
from labkit.run_settings import RunSettings
from labkit.workers import Beat, Flower, Worker, beat_argv, flower_argv, worker_argv
from labs import REPO_ROOT


class Launcher:
    def __init__(self, registry: ProcessRegistry, run_settings: RunSettings, app: Celery, logs_dir: Path,
                 state_dir: Path, step: Callable[[str], None] = lambda message: None) -> None:
        self.registry = registry
        self.run_settings = run_settings
        self.app = app
        self.logs_dir = logs_dir
        self.state_dir = state_dir
        self.step = step
        self.workers: list[Worker] = []

    def _spawn(self, name: str, argv: list[str], log: str, settings: dict[str, Any] | None = None,
               env: dict[str, str] | None = None) -> ManagedProcess:
        child_env = self.run_settings.amended(settings).child_env()
        child_env.update(env or {})
        return self.registry.spawn(name, argv, env=child_env, log_path=self.logs_dir / log,
                                   cwd=REPO_ROOT)

    def spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        """Any other child process of the run (owned, logged, reaped like the rest)."""
        return self._spawn(name, argv, f"{name}.log")

    def start_workers(self, specs: dict[str, dict[str, Any]],
                      ready_timeout: float = 20.0) -> list[Worker]:
        """Start several workers at once (their start-ups overlap), then wait for each ping.

        ``specs`` maps a name to ``worker_argv`` options plus optional per-worker ``settings``
        and ``env`` (extra environment variables, e.g. a PYTHONPATH for a learner's module).
        """
        started = []
        for name, options in specs.items():
            options = dict(options)
            settings = options.pop("settings", None)
            env = options.pop("env", None)
            hostname = f"{name}@celery-lab"
            proc = self._spawn(f"worker {hostname}", worker_argv(hostname, **options),
                               f"worker-{name}.log", settings, env)
            started.append(Worker(name, hostname, proc, self.registry, self.app))
        for worker in started:
            worker.ready_s = worker.wait_ready(ready_timeout)
            self.workers.append(worker)
            self.step(f"worker {worker.hostname} ready in {worker.ready_s:.2f} s (pid {worker.pid}, "
                      f"pool pids {worker.pool_pids()})")
        return started

    def stop_workers(self, workers: list[Worker], timeout: float = 10.0) -> None:
        """Warm-stop several workers at once (SIGTERM to all, one shared timeout)."""
        self.registry.reap_many([w.process for w in workers], grace=timeout)
        for worker in workers:
            if worker in self.workers:
                self.workers.remove(worker)

    def start_beat(self, name: str = "beat", *, ready_timeout: float = 15.0,
                   settings: dict[str, Any] | None = None, **options: Any) -> Beat:
        """Start ``celery beat``; its state file lives in the run's state dir, one per ``name``
        (so starting the same name again resumes the same persistent schedule)."""
        schedule_file = self.state_dir / name / "celerybeat-schedule"
        schedule_file.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        proc = self._spawn(name, beat_argv(schedule_file, **options), log_path.name, settings)
        beat = Beat(proc, self.registry, schedule_file, log_offset=offset)
        beat.ready_s = beat.wait_ready(ready_timeout)
        self.step(f"{name} ready in {beat.ready_s:.2f} s (pid {proc.pid})")
        return beat

    def start_flower(self, *, ready_timeout: float = 20.0) -> Flower:
        """Flower with a fresh random basic-auth credential, handed over in its environment
        (FLOWER_BASIC_AUTH) and never written anywhere."""
        port = free_port()
        user, password = "lab", secrets.token_urlsafe(16)
        proc = self._spawn("flower", flower_argv(port), "flower.log",
                           env={"FLOWER_BASIC_AUTH": f"{user}:{password}"})
        flower = Flower(proc, self.registry, f"http://127.0.0.1:{port}", user, password)
        flower.ready_s = flower.wait_ready(ready_timeout)
        self.step(f"flower ready in {flower.ready_s:.2f} s at {flower.url} (basic auth)")
        return flower
