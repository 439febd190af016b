"""Every lab's README walkthrough, followed as an attendee would: each typed command, each
Python line and each key press executed, each output compared with the README's block.

The rehearsals run one after another in the half of ``make test`` that runs beside the test
board (tests/both.py): they mostly wait (on tasks, countdowns, a visibility timeout), so they
cost the two lanes of lab runs little, and beside them they meet the busy machine their margins
must survive anyway."""

from __future__ import annotations

import pytest

from labkit.walkthrough.play import play
from labkit.walkthrough.terminals import StepFailed
from labs import lab_id, packages, readme


@pytest.mark.walkthrough
@pytest.mark.parametrize("package", packages())
def test_the_walkthrough_shows_what_its_readme_says(package, tmp_path):
    try:
        outcome = play(readme(lab_id(package)), workdir=tmp_path)
    except StepFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    print(f"{package}: {outcome.wall_s:.1f} s")
