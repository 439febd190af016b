"""``celery-lab doctor``: is this machine ready to run the labs? Exit 0 yes, 2 no."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from labkit.broker import find_redis_server, redact
from labkit.params import Params
from labkit.results import versions
from labkit.session import LabSession


def doctor(broker_url: str | None) -> int:
    binary, source = find_redis_server()
    print(f"redis-server: {binary} ({source})")
    run_dir = Path(tempfile.mkdtemp(prefix="celery-lab-doctor-"))
    try:
        with LabSession("00_doctor", Params(), run_dir, broker_url=broker_url,
                        progress=False) as session:
            for name, version in versions(session.broker.server_version).items():
                print(f"{name}: {version}")
            where = "embedded" if session.broker.embedded else "external"
            print(f"broker: {where} {redact(session.broker.url)}"
                  + (f" up in {session.broker.startup_s:.3f} s" if session.broker.startup_s else ""))
            worker = session.start_worker("doctor", concurrency=1)
            print(f"worker: ready in {worker.ready_s:.2f} s")
            started = time.monotonic()
            value = session.app.send_task("lab01.add", (2, 2)).get(timeout=10)
            print(f"round trip: lab01.add(2, 2) = {value} in "
                  f"{(time.monotonic() - started) * 1000:.1f} ms")
            if value != 4:
                print("doctor: the worker answered wrongly", file=sys.stderr)
                return 1
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    print("ok: ready to run the labs")
    return 0
