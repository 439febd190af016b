"""labkit.drain's arithmetic and its reading of Celery's result metadata, no Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from labkit.drain import Drain, _date_done


def test_rates_are_tasks_over_the_measured_spans():
    d = Drain("q", 600, publish_s=0.3, started_at=100.0, ended_at=101.2)
    assert d.publish_rate == pytest.approx(2000.0)
    assert d.drain_s == pytest.approx(1.2)
    assert d.rate == pytest.approx(500.0)
    assert d.row()["drain_tasks_per_s"] == 500.0


def test_date_done_is_read_as_the_worker_stored_it():
    stamp = datetime(2026, 11, 22, 5, 10, 11, 301549, tzinfo=UTC)
    # the Redis backend stores an ISO string with microseconds; a decoded meta may be a datetime
    assert _date_done({"date_done": stamp.isoformat()}) == pytest.approx(stamp.timestamp())
    assert _date_done({"date_done": stamp}) == pytest.approx(stamp.timestamp())
    assert _date_done({"date_done": stamp.isoformat()}) != _date_done(
        {"date_done": stamp.replace(microsecond=0).isoformat()})
