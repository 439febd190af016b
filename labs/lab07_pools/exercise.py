"""Exercise 07: choose a pool and a concurrency for each workload.

Two workloads, as Lab 07 measures them: ``lab07.io`` waits 50 ms (a network call), ``lab07.cpu``
spends 20 ms of pure-Python CPU. Set ``IO_BOUND`` and ``CPU_BOUND`` to the worker options that
reach the targets on this machine: IO at least 150 tasks/s within 400 MB of resident memory for
the whole worker; CPU: keep most of this machine's free cores busy (the grader reads the cores
your worker used during its drain, against the cores free at that moment).

Options: ``pool`` (prefork, threads, gevent, eventlet, solo) and ``concurrency`` (1-256).
Check it: ``celery-lab check 07``. Read first: labs/lab07_pools/README.md.
"""

IO_BOUND = {"pool": "prefork", "concurrency": 1}
CPU_BOUND = {"pool": "prefork", "concurrency": 1}
