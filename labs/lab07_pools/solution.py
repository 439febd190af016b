"""Exercise 07, a reference answer: greenlets for waiting (many slots, one process, one
ceiling), processes for CPU (one per core: the GIL lets threads use one)."""

import os

IO_BOUND = {"pool": "gevent", "concurrency": 64}
CPU_BOUND = {"pool": "prefork", "concurrency": os.cpu_count() or 1}
