"""``make test``: the tests that read the test board and all the others, in two pytest processes
at once.

The board (tests/board.py) keeps two lanes of lab runs, notebooks, walkthroughs and graded
solutions busy for most of the run, while the other tests (the kit's pure parts, real workers
started one at a time, the command line) used to wait for it or make it wait. Side by side they
share the machine: the busy machine every lab's margins must survive anyway. In two processes,
each pytest's own checks (no process left behind) see only what it started. The board's jobs that
must run alone go last, and wait for the other half to end.

``python -m tests.both [pytest args]``: the same arguments go to both halves; the exit code is
the worse of the two (a half with no test selected counts as passed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.board import ALONE_AFTER_ENV

NO_TESTS = 5  # pytest's exit code when the selection is empty


def main(args: list[str]) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="celery-lab-tests-") as tmp:
        log = Path(tmp) / "others.txt"
        with log.open("w") as out:
            others = subprocess.Popen([sys.executable, "-m", "pytest", "-m", "not board", *args],
                                      stdout=out, stderr=subprocess.STDOUT)
        gate = Path(tmp) / "others-ended"
        # the board's lone jobs wait until the tests beside it have ended
        threading.Thread(target=lambda: (others.wait(), gate.touch()), daemon=True).start()
        try:
            board = subprocess.call([sys.executable, "-m", "pytest", "-m", "board", *args],
                                    env={**os.environ, ALONE_AFTER_ENV: str(gate)})
            rest = others.wait()
        except BaseException:
            others.terminate()
            others.wait(30)
            raise
        print(f"\n===== the tests beside the board (pytest -m 'not board'), exit {rest} =====")
        print(log.read_text(errors="replace"), end="")
    codes = {"board": board, "not board": rest}
    ran = {k: v for k, v in codes.items() if v != NO_TESTS}
    worst = max(ran.values(), default=NO_TESTS)
    print(f"===== make test: {', '.join(f'-m {k!r} exit {v}' for k, v in codes.items())}, "
          f"{time.monotonic() - started:.0f} s =====")
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
