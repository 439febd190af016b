"""One lab run's live parts, behind one object a lab's code is handed.

``LabSession`` composes parts that each do one job and can be used alone: the broker
(``labkit.broker``), the run's settings and environment (``labkit.run_settings``), the client
app (``labkit.client``), the event recorder (``labkit.events``), the processes
(``labkit.launcher``), and what the run keeps (``labkit.evidence``). Entering starts the broker,
the client and the event recorder; leaving (normally, on an exception or on Ctrl-C) stops every
process the run started and deletes what it wrote to an external Redis.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from celery import Celery
from matplotlib.figure import Figure

from app.celery_app import create_app
from labkit import drain
from labkit.broker import Broker, connect_external, start_embedded
from labkit.client import client_app
from labkit.events import EventRecorder
from labkit.evidence import Evidence
from labkit.launcher import Launcher
from labkit.params import Params
from labkit.plotting import Plotter
from labkit.processes import ManagedProcess, ProcessRegistry
from labkit.progress import Progress
from labkit.results import Finding
from labkit.run_settings import RunSettings
from labkit.taskside import RECORD_STORE, read_counts, read_records
from labkit.workers import Beat, Flower, Worker


def open_broker(registry: ProcessRegistry, workdir: Path, url: str | None,
                step: Callable[[str], None]) -> Broker:
    """An external Redis at ``url`` (checked, keys prefixed), or a private embedded one."""
    if url:
        broker = connect_external(url)
        step(f"external Redis {broker.server_version}; this run's keys are "
             f"prefixed {broker.prefix!r}")
    else:
        broker = start_embedded(registry, workdir)
        step(f"embedded redis-server {broker.server_version} ({broker.source}) "
             f"up in {broker.startup_s:.3f} s at {broker.url}")
    return broker


class LabSession:
    """``with LabSession("01_hello_world", params, run_dir, settings=...) as s: ...``"""

    def __init__(self, lab_id: str, params: Params, run_dir: Path, *,
                 settings: dict[str, Any] | None = None, broker_url: str | None = None,
                 progress: bool = True) -> None:
        self.lab_id = lab_id
        self.params = params
        self.run_dir = run_dir
        self.progress = Progress(lab_id, progress)
        self.evidence = Evidence(run_dir, self.progress.step)
        self.registry = ProcessRegistry()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"celery-lab-{lab_id}-"))
        self._lab_settings = settings or {}
        self._broker_url = broker_url
        self._stack = ExitStack()
        self.broker: Broker | None = None
        self.run_settings: RunSettings | None = None
        self.app: Celery | None = None
        self.events: EventRecorder | None = None
        self.launcher: Launcher | None = None
        self._publisher: Celery | None = None
        self.record_store: Broker | None = None

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
        self._stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        self._stack.callback(self._forget_external_keys)
        self._stack.callback(self.registry.reap_all)
        self.broker = open_broker(self.registry, self.tmp / "redis", self._broker_url, self.step)
        self.run_settings = RunSettings.for_run(self.broker, self._lab_settings)
        self.app = self._stack.enter_context(client_app(self.run_settings))
        self.events = EventRecorder(self.app)
        self._stack.callback(self.events.stop)
        ready = self.events.start()
        self.step(f"event recorder subscribed in {ready:.3f} s")
        self.launcher = Launcher(self.registry, self.run_settings, self.app, self.run_dir / "logs",
                                 self.tmp, self.step)

    def _forget_external_keys(self) -> None:
        if self.broker is not None and not self.broker.embedded:
            deleted = self.broker.delete_own_keys()
            self.step(f"deleted this run's {deleted} keys under {self.broker.prefix!r}")

    def close(self) -> None:
        """Event recorder, client, processes, external keys, temp dir: in that order."""
        self._stack.close()

    @property
    def settings(self) -> dict[str, Any]:
        return self.run_settings.settings

    @contextmanager
    def client_app(self, settings: dict[str, Any]) -> Iterator[Celery]:
        """A second client configured as a process started with the run's settings amended by
        ``settings`` would be (environment included); the run's client again afterwards."""
        with client_app(self.run_settings.amended(settings)) as app:
            yield app

    # -- processes (labkit.launcher) -------------------------------------------------------
    @property
    def workers(self) -> list[Worker]:
        return self.launcher.workers

    def spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        return self.launcher.spawn(name, argv)

    def start_worker(self, name: str = "w1", *, ready_timeout: float = 20.0,
                     settings: dict[str, Any] | None = None, **options: Any) -> Worker:
        """Start ``celery worker`` and return once it answers a ping."""
        return self.launcher.start_workers({name: dict(options, settings=settings)},
                                           ready_timeout=ready_timeout)[0]

    def start_workers(self, specs: dict[str, dict[str, Any]],
                      ready_timeout: float = 20.0) -> list[Worker]:
        return self.launcher.start_workers(specs, ready_timeout)

    def stop_workers(self, workers: list[Worker], timeout: float = 10.0) -> None:
        self.launcher.stop_workers(workers, timeout)

    def start_beat(self, name: str = "beat", **options: Any) -> Beat:
        return self.launcher.start_beat(name, **options)

    def start_flower(self, *, ready_timeout: float = 20.0) -> Flower:
        return self.launcher.start_flower(ready_timeout=ready_timeout)

    # -- throughput on a pre-filled queue (labkit.drain) -----------------------------------
    def drain(self, workers: list[Worker], task: str, args: list[tuple], *, timeout: float,
              results: bool = True, no_ack: bool = False,
              wake: Sequence[str] = ()) -> drain.Drain:
        """Fill a fresh queue with ``task`` x ``args`` while nothing consumes it, then time
        ``workers`` draining it. The publisher is a second client on the run's broker that
        sends no task-sent events (filling costs the event recorder nothing); it is never the
        default app, so the lab's own ``delay()`` calls keep the run's client."""
        if self._publisher is None:
            self._publisher = create_app(
                self.run_settings.amended({"task_send_sent_event": False}).env)
            self._stack.callback(self._publisher.close)
        return drain.measure(self.app, self._publisher, self.broker,
                             [w.hostname for w in workers], task, args, timeout,
                             results=results, no_ack=no_ack, wake=wake)

    # -- what the tasks left in Redis (labkit.taskside) ------------------------------------
    def start_record_store(self) -> dict[str, Any]:
        """A second private Redis for the tasks' evidence, for a lab that takes its broker away;
        returns the settings that send a process's records there (give them to its workers)."""
        self.record_store = start_embedded(self.registry, self.tmp / "records")
        self.step(f"record store: a second redis-server at {self.record_store.url}")
        return {RECORD_STORE: self.record_store.url}

    @property
    def evidence_store(self) -> Broker:
        """Where the tasks' records are: the record store if the lab started one, else the broker."""
        return self.record_store or self.broker

    def records(self, name: str) -> list[dict[str, Any]]:
        """Every record the tasks appended under ``name`` (``taskside.record_attempt``)."""
        with self.evidence_store.client() as r:
            return read_records(r, self.evidence_store.key(name))

    def counts(self, name: str) -> dict[str, int]:
        """Counters by task id under ``name`` (``taskside.count_execution``)."""
        with self.evidence_store.client() as r:
            return read_counts(r, self.evidence_store.key(name))

    # -- what the run keeps (labkit.evidence) ----------------------------------------------
    def step(self, message: str) -> None:
        self.progress.step(message)

    def check(self, id: str, claim: str, measured: Any, expected: str, holds: bool) -> Finding:
        return self.evidence.check(id, claim, measured, expected, holds)

    def measured(self, **values: Any) -> None:
        self.evidence.measured(**values)

    @property
    def measurements(self) -> dict[str, Any]:
        return self.evidence.measurements

    def write_csv(self, name: str, rows: list[dict[str, Any]]) -> Path:
        return self.evidence.write_csv(name, rows)

    def write_json(self, name: str, data: Any) -> Path:
        return self.evidence.write_json(name, data)

    def save_figure(self, name: str, fig: Figure) -> Path:
        return self.evidence.save_figure(name, fig)

    def save_figures(self, plotters: dict[str, Plotter]) -> list[Path]:
        return self.evidence.save_figures(plotters)
