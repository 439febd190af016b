"""Progress lines on stderr, stamped with the run's elapsed time, so a long lab shows where it is."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled
        self.t0 = time.monotonic()

    def step(self, message: str) -> None:
        if self.enabled:
            print(f"[{self.label} {time.monotonic() - self.t0:6.1f}s] {message}",
                  file=sys.stderr, flush=True)
