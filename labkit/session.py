"""One lab run: the broker, processes, client app, event recorder and run directory it owns.

Entering starts the broker and the event recorder; leaving (normally, on an exception or on
Ctrl-C) stops every process the run started and deletes what it wrote to an external Redis.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Celery
from matplotlib.figure import Figure

from app.celery_app import create_app
from app.config import BACKEND_ENV, BROKER_ENV
from labkit import run_settings
from labkit.broker import Broker, connect_external, free_port, start_embedded
from labkit.events import EventRecorder
from labkit.lab import Lab
from labkit.params import Params
from labkit.processes import ManagedProcess, ProcessRegistry
from labkit.results import Finding, write_csv
from labkit.workers import REPO_ROOT, Beat, Flower, Worker, beat_argv, flower_argv, worker_argv

# What Celery reads from the environment ahead of the app's own configuration.
PINNED_ENV = (BROKER_ENV, BACKEND_ENV, "CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL")


class LabSession:
    def __init__(self, lab: Lab, params: Params, run_dir: Path, *, broker_url: str | None = None,
                 progress: bool = True) -> None:
        self.lab = lab
        self.params = params
        self.run_dir = run_dir
        self.logs_dir = run_dir / "logs"
        self.broker_url = broker_url
        self.progress = progress
        self.findings: list[Finding] = []
        self.measurements: dict[str, Any] = {}
        self.files: list[str] = []
        self.registry = ProcessRegistry()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"celery-lab-{lab.id}-"))
        self.broker: Broker | None = None
        self.app: Celery | None = None
        self.events: EventRecorder | None = None
        self.settings: dict[str, Any] = {}
        self.env: dict[str, str] = {}
        self.workers: list[Worker] = []
        self._previous_app: Celery | None = None
        self.t0 = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> LabSession:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        if self.broker_url:
            self.broker = connect_external(self.broker_url)
            self.step(f"external Redis {self.broker.server_version}; this run's keys are "
                      f"prefixed {self.broker.prefix!r}")
        else:
            self.broker = start_embedded(self.registry, self.tmp / "redis")
            self.step(f"embedded redis-server {self.broker.server_version} ({self.broker.source}) "
                      f"up in {self.broker.startup_s:.3f} s at {self.broker.url}")
        self.settings = run_settings.merge(run_settings.kit_settings(self.broker),
                                           self.lab.celery_settings(self.params))
        self.env = run_settings.process_env(self.broker, self.settings)
        from celery import _state

        self._previous_app = _state.default_app
        self._pin_environment()
        self.app = create_app(self.env)
        self.app.set_default()
        self.events = EventRecorder(self.app)
        ready = self.events.start()
        self.step(f"event recorder subscribed in {ready:.3f} s")

    def _pin_environment(self) -> None:
        """Celery reads CELERY_BROKER_URL / CELERY_RESULT_BACKEND from os.environ before its
        config: for the run, this process's own environment says what the workers' says."""
        self._saved_env = _pin(self.env)

    def _restore_environment(self) -> None:
        _unpin(getattr(self, "_saved_env", {}))

    @contextmanager
    def client_app(self, settings: dict[str, Any]) -> Iterator[Celery]:
        """A second client configured exactly as a process started with the run's settings
        amended by ``settings`` would be (environment included); the run's client afterwards."""
        env = run_settings.process_env(self.broker, run_settings.merge(self.settings, settings))
        saved = _pin(env)
        app = create_app(env)
        try:
            yield app
        finally:
            app.close()
            _unpin(saved)
            self.app.set_default()
            self.app.set_current()

    def close(self) -> None:
        if self.events is not None:
            self.events.stop()
        self.registry.reap_all()
        if self.app is not None:
            self.app.close()
            if self._previous_app is not None:
                self._previous_app.set_default()
                self._previous_app.set_current()
        if self.broker is not None and not self.broker.embedded:
            deleted = self.broker.delete_own_keys()
            self.step(f"deleted this run's {deleted} keys under {self.broker.prefix!r}")
        self._restore_environment()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- processes -------------------------------------------------------------------------
    def process_env(self, extra: dict[str, Any] | None = None) -> dict[str, str]:
        """The environment of a child: ours, plus the run's settings (optionally amended)."""
        env = {k: v for k, v in os.environ.items() if k not in PINNED_ENV}
        env.update(self.env)
        if extra:
            env.update(run_settings.process_env(
                self.broker, run_settings.merge(self.settings, extra)))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        """Any other child process of the run (owned, logged, reaped like the rest)."""
        return self.registry.spawn(name, argv, env=self.process_env(),
                                   log_path=self.logs_dir / f"{name}.log", cwd=REPO_ROOT)

    def start_worker(self, name: str = "w1", *, ready_timeout: float = 20.0,
                     settings: dict[str, Any] | None = None, **options: Any) -> Worker:
        """Start ``celery worker`` and return once it answers a ping."""
        return self.start_workers({name: dict(options, settings=settings)},
                                  ready_timeout=ready_timeout)[0]

    def start_workers(self, specs: dict[str, dict[str, Any]],
                      ready_timeout: float = 20.0) -> list[Worker]:
        """Start several workers at once (their start-ups overlap), then wait for each ping.

        ``specs`` maps a name to ``worker_argv`` options plus optional per-worker ``settings``.
        """
        started = []
        for name, options in specs.items():
            options = dict(options)
            settings = options.pop("settings", None)
            hostname = f"{name}@celery-lab"
            proc = self.registry.spawn(
                f"worker {hostname}", worker_argv(hostname, **options),
                env=self.process_env(settings), log_path=self.logs_dir / f"worker-{name}.log",
                cwd=REPO_ROOT)
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
        """Start ``celery beat``; its state file lives in the run's temp dir, one per ``name``
        (so starting the same name again resumes the same persistent schedule)."""
        schedule_file = self.tmp / name / "celerybeat-schedule"
        schedule_file.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        proc = self.registry.spawn(name, beat_argv(schedule_file, **options),
                                   env=self.process_env(settings), log_path=log_path,
                                   cwd=REPO_ROOT)
        beat = Beat(proc, self.registry, schedule_file, log_offset=log_path.stat().st_size
                    if log_path.exists() else 0)
        beat.ready_s = beat.wait_ready(ready_timeout)
        self.step(f"{name} ready in {beat.ready_s:.2f} s (pid {proc.pid})")
        return beat

    def start_flower(self, *, ready_timeout: float = 20.0) -> Flower:
        """Flower with a fresh random basic-auth credential, handed over in its environment
        (FLOWER_BASIC_AUTH) and never written anywhere."""
        port = free_port()
        user, password = "lab", secrets.token_urlsafe(16)
        env = self.process_env()
        env["FLOWER_BASIC_AUTH"] = f"{user}:{password}"
        proc = self.registry.spawn("flower", flower_argv(port), env=env,
                                   log_path=self.logs_dir / "flower.log", cwd=REPO_ROOT)
        flower = Flower(proc, self.registry, f"http://127.0.0.1:{port}", user, password)
        flower.ready_s = flower.wait_ready(ready_timeout)
        self.step(f"flower ready in {flower.ready_s:.2f} s at {flower.url} (basic auth)")
        return flower

    # -- recording -------------------------------------------------------------------------
    def step(self, message: str) -> None:
        if self.progress:
            print(f"[{self.lab.id} {time.monotonic() - self.t0:6.1f}s] {message}",
                  file=sys.stderr, flush=True)

    def check(self, id: str, claim: str, measured: Any, expected: str, holds: bool) -> Finding:
        finding = Finding(id, claim, measured, expected, bool(holds))
        self.findings.append(finding)
        self.step(f"finding {id}: {'holds' if finding.holds else 'DOES NOT HOLD'} "
                  f"(measured {measured})")
        return finding

    def measure(self, **values: Any) -> None:
        self.measurements.update(values)

    def write_csv(self, name: str, rows: list[dict[str, Any]]) -> Path:
        path = self.run_dir / name
        write_csv(path, rows)
        self.files.append(name)
        return path

    def save_figure(self, name: str, fig: Figure) -> Path:
        path = self.run_dir / name
        fig.savefig(path, dpi=110, bbox_inches="tight")
        self.files.append(name)
        return path


def _pin(env: dict[str, str]) -> dict[str, str | None]:
    """Put ``env``'s broker/backend variables into os.environ; returns what was there."""
    saved = {name: os.environ.get(name) for name in PINNED_ENV}
    for name in PINNED_ENV:
        os.environ.pop(name, None)
    os.environ.update({k: v for k, v in env.items() if k in PINNED_ENV})
    return saved


def _unpin(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
