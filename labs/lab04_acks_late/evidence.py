"""The driver's side of what Lab 04's tasks recorded: their runs and their counters."""

from __future__ import annotations

from typing import Any

from labkit.session import LabSession
from labkit.taskside import read_counts, read_records
from labs.lab04_acks_late.tasks import FINISHES, RUNS, SIDE_EFFECTS, STARTS


def runs(session: LabSession) -> list[dict[str, Any]]:
    with session.broker.client() as r:
        return read_records(r, session.broker.key(RUNS))


def counts(session: LabSession) -> tuple[dict[str, int], dict[str, int]]:
    """(starts, finishes) by task id."""
    with session.broker.client() as r:
        return (read_counts(r, session.broker.key(STARTS)),
                read_counts(r, session.broker.key(FINISHES)))


def side_effects(session: LabSession) -> dict[str, int]:
    with session.broker.client() as r:
        return read_counts(r, session.broker.key(SIDE_EFFECTS))
