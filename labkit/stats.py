"""Percentiles and summaries used by every lab's findings and plots."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def summary(values: Iterable[float]) -> dict[str, float | int]:
    data = np.asarray([v for v in values if v is not None], dtype=float)
    if data.size == 0:
        return {"n": 0}
    return {
        "n": int(data.size),
        "min": float(data.min()),
        "p50": float(np.percentile(data, 50)),
        "p90": float(np.percentile(data, 90)),
        "p99": float(np.percentile(data, 99)),
        "max": float(data.max()),
        "mean": float(data.mean()),
    }
