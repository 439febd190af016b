"""Lab 11's tasks: each execution records itself (``labkit.taskside``): when it started, which
queue and priority its message carried, and the order it was sent in (``seq``), so the order
of execution is the tasks' own evidence, not the client's."""

from __future__ import annotations

import time

from celery import shared_task

from labkit.taskside import record_attempt, store

JOB, LIMITED, GUARDED = "lab11.job", "lab11.limited", "lab11.guarded"  # sent by name (send_task)
RUNS = "lab11:runs"  # one record per execution of lab11.job and lab11.limited
GRANTS = "lab11:grants"  # one record per execution of lab11.guarded, stamped by Redis's clock
BUCKET = "lab11:bucket"  # the shared token bucket's state (its next free instant)

# A token bucket shared by every worker, in Redis (GCRA, a burst of one): a call is granted when
# the bucket's next free instant has come, and moves it one interval on. Redis's own clock
# decides, so workers on several hosts agree; the grant's instant is returned as evidence.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local free_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if free_at > now then
  return {0, tostring(free_at - now)}
end
redis.call('SET', KEYS[1], tostring(now + interval), 'PX', math.ceil(interval * 1000) + 1000)
return {1, tostring(now)}
"""


@shared_task(bind=True, name=JOB)
def job(self, label: str, seq: int, sleep_s: float = 0.0) -> int:
    """One unit of work: sleeps ``sleep_s``; records its start, its end and its message."""
    started = time.time()
    time.sleep(sleep_s)
    record_attempt(self, RUNS, label=label, seq=seq, started=started, ended=time.time())
    return seq


@shared_task(bind=True, name=LIMITED)
def limited(self, label: str, seq: int) -> int:
    """A task the run gives a ``rate_limit`` (``task_annotations``): records when it started."""
    record_attempt(self, RUNS, label=label, seq=seq, started=time.time())
    return seq


@shared_task(bind=True, name=GUARDED)
def guarded(self, label: str, seq: int, per_s: float, timeout: float = 30.0) -> float:
    """A global limit: waits for a token from the bucket every worker shares, then records the
    grant's instant (Redis's clock). It holds its pool slot while it waits (a retry would free
    the slot at the cost of a message per attempt)."""
    client, prefix = store(self)
    gate = client.register_script(GCRA)
    deadline = time.time() + timeout
    waited = 0
    while True:
        granted, value = gate(keys=[f"{prefix}{BUCKET}:{label}"], args=[1.0 / per_s])
        if granted:
            break
        if time.time() > deadline:
            raise TimeoutError(f"no token within {timeout} s")
        waited += 1
        time.sleep(min(float(value), 0.5))
    record_attempt(self, GRANTS, label=label, seq=seq, granted_at=float(value), waits=waited)
    return float(value)
