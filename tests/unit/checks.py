"""Assertions shared by the check functions' unit tests."""

from __future__ import annotations

from labkit.evidence import Evidence


def assert_only_fails(ev: Evidence, finding_id: str) -> None:
    """The named finding does not hold; every other finding of the same call still does (so a
    counter-example is shown to be about that one property)."""
    assert not ev.finding(finding_id).holds
    assert [f.id for f in ev.findings if not f.holds] == [finding_id]
