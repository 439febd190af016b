"""Levers on the kit's own Redis, for a lab that takes the broker away at exact moments: stop it
(SIGTERM or SIGKILL), start it again on the same port and data directory, pause it (SIGSTOP)
and resume it (SIGCONT), and set its persistence. Each is bounded by a timeout and keeps the
kit's process hygiene: a restarted server is registered like the first, a paused one is resumed
before it is reaped.

Only an embedded broker can be controlled: against an external Redis the lab refuses up front
(``require_embedded``), since stopping someone else's server is not a lab's to do.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator

from labkit.broker import Broker, EmbeddedServer
from labkit.errors import SetupError

PERSISTENCE_KEYS = ("appendonly", "appendfsync", "save")


def require_embedded(broker: Broker, lab: str = "this lab") -> EmbeddedServer:
    """The broker's server, or SetupError (exit 2) for an external Redis."""
    if not broker.embedded or broker.server is None:
        raise SetupError(f"{lab} stops and restarts its broker: it runs only on the kit's own "
                         "embedded Redis, not with --broker or CELERY_LAB_BROKER")
    return broker.server


def configure(broker: Broker, **settings: str) -> None:
    """Set persistence at run time (``appendonly="yes"``, ``appendfsync="always"``, ``save=""``),
    and remember it, so that a restart starts the server as it was configured."""
    server = require_embedded(broker)
    unknown = set(settings) - set(PERSISTENCE_KEYS)
    if unknown:
        raise ValueError(f"not a persistence setting: {sorted(unknown)}")
    with broker.client() as r:
        for name, value in settings.items():
            r.config_set(name, value)
        if settings.get("appendonly") == "yes":
            _wait_for_aof_rewrite(r, timeout=10.0)
    server.config.update(settings)


def _wait_for_aof_rewrite(r, timeout: float) -> None:
    """Turning AOF on writes the data set to a fresh file in a child: until it is done, a
    restart would find no AOF and start empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = r.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
            return
        time.sleep(0.01)
    raise TimeoutError(f"Redis's AOF rewrite did not finish within {timeout:g} s")


def wait_for_aof_written(broker: Broker, timeout: float = 5.0) -> dict[str, float]:
    """Wait until Redis has handed its AOF buffer to the kernel (``aof_buffer_length`` 0).

    Redis replies before it writes: its buffer goes to the file at the end of the event loop's
    turn, and with ``appendfsync everysec`` it postpones that write for up to 2 s while the
    background fsync of the second before is still running (a slow disk: it counts
    ``aof_delayed_fsync`` when it gives up waiting). A SIGKILL in that window loses replied
    writes; once the buffer is written, a killed process loses nothing the kernel holds.
    Returns what the wait saw, for the run's record."""
    require_embedded(broker)
    began = time.monotonic()
    first = None
    with broker.client() as r:
        while True:
            info = r.info("persistence")
            if not info.get("aof_enabled"):
                return {"aof": 0, "waited_s": 0.0, "buffer_bytes_at_first_look": 0}
            buffered = int(info.get("aof_buffer_length", 0))
            first = buffered if first is None else first
            if buffered == 0:
                return {"aof": 1, "waited_s": round(time.monotonic() - began, 3),
                        "buffer_bytes_at_first_look": first,
                        "delayed_fsyncs": int(info.get("aof_delayed_fsync", 0))}
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"Redis still held {buffered} bytes of AOF unwritten after "
                                   f"{timeout:g} s")
            time.sleep(0.01)


def stop(broker: Broker, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
    """Stop the server with ``sig`` (SIGTERM: it flushes its AOF and exits; SIGKILL: it loses
    whatever was not yet on disk) and wait for it to exit. Returns the seconds it took."""
    server = require_embedded(broker)
    proc = broker.process
    began = time.monotonic()
    if proc is not None and proc.alive():
        proc.signal(sig)
        proc.signal(signal.SIGCONT)  # a paused server acts on the signal only once resumed
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"redis-server {proc.pid} did not exit within {timeout:g} s "
                               f"of {signal.Signals(sig).name}") from None
    took = time.monotonic() - began
    if proc is not None:
        server.registry.reap(proc, grace=0.0)  # closes its log and forgets it
    broker.process = None
    return took


def start_again(broker: Broker, timeout: float = 10.0) -> float:
    """Start the server again on the same port and data directory, with the configuration it
    had; ready once it answers and has loaded what it kept. Returns the seconds it took."""
    server = require_embedded(broker)
    if broker.process is not None and broker.process.alive():
        raise RuntimeError("redis-server is still running: stop it first")
    began = time.monotonic()
    proc = server.spawn()
    broker.process = proc
    if server.wait_ready(proc, timeout) is None:
        tail = proc.log_tail() or "did not answer"
        server.registry.reap(proc, grace=1.0)
        broker.process = None
        raise TimeoutError(f"redis-server did not come back on port {server.port} within "
                           f"{timeout:g} s: {tail}")
    return time.monotonic() - began


def pause(broker: Broker) -> None:
    """SIGSTOP: the server keeps its sockets open and answers nothing, a hung broker."""
    require_embedded(broker)
    if broker.process is not None:
        broker.process.signal(signal.SIGSTOP)


def resume(broker: Broker) -> None:
    require_embedded(broker)
    if broker.process is not None:
        broker.process.signal(signal.SIGCONT)


@contextlib.contextmanager
def paused(broker: Broker) -> Iterator[None]:
    """Hung for the length of the block, resumed however the block ends."""
    pause(broker)
    try:
        yield
    finally:
        resume(broker)
