"""``celery-lab reset NN`` removes one lab's traces from a shared Redis and nothing else."""

from __future__ import annotations

import json

from labkit.reset import reset


def _message(task: str, task_id: str) -> str:
    return json.dumps({"body": "", "headers": {"task": task, "id": task_id},
                       "properties": {"delivery_tag": task_id}})


def test_reset_removes_the_labs_messages_counters_and_results_only(session):
    r = session.broker.client()
    r.sadd("_kombu.binding.celery", "celery\x06\x16\x06\x16celery")
    r.sadd("_kombu.binding.lab04", "lab04\x06\x16\x06\x16lab04")
    r.rpush("lab04", _message("lab04.work", "a"), _message("lab04.work", "b"))
    r.rpush("celery", _message("lab01.add", "keep-1"), _message("lab04.work", "c"))
    r.rpush("celery\x06\x163", _message("lab04.work", "p"))
    r.hset("unacked", mapping={"t1": json.dumps([json.loads(_message("lab04.work", "d")), "", "lab04"]),
                               "t2": json.dumps([json.loads(_message("lab02.flaky", "keep-2")), "",
                                                 "celery"])})
    r.zadd("unacked_index", {"t1": 1.0, "t2": 2.0})
    r.hset("lab04:starts", mapping={"e": 1, "a": 2})
    r.rpush("lab04:runs", "{}", json.dumps({"id": "f"}), "not json")
    r.hset("lab02:executions", "keep-2", 1)
    for task_id in ("a", "b", "c", "d", "e", "f", "p", "keep-1", "keep-2"):
        r.set(f"celery-task-meta-{task_id}", "{}")
    r.set("someone-elses-key", 1)

    removed = reset(r, "04")

    assert (removed.queued, removed.unacked, removed.keys, removed.results) == (4, 1, 2, 7)
    assert r.lrange("lab04", 0, -1) == []
    assert [json.loads(m)["headers"]["id"] for m in r.lrange("celery", 0, -1)] == ["keep-1"]
    assert r.llen("celery\x06\x163") == 0
    assert list(r.hkeys("unacked")) == [b"t2"] and r.zrange("unacked_index", 0, -1) == [b"t2"]
    assert sorted(k.decode() for k in r.keys("celery-task-meta-*")) == [
        "celery-task-meta-keep-1", "celery-task-meta-keep-2"]
    assert r.exists("lab02:executions", "someone-elses-key", "_kombu.binding.lab04") == 3
    assert reset(r, "04").line("04").startswith("reset lab 04: removed 0 queued message(s), 0")
