"""Every lab's README walkthrough, followed as an attendee would: each typed command, each
Python line and each key press executed, each output compared with the README's block.

The rehearsals run on the test board (tests/board.py), two at a time beside the other heavy
jobs: they mostly wait (on tasks, countdowns, a visibility timeout), and two side by side are
the busy machine their margins must survive anyway."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.walkthrough.play import Rehearsal, play
from labkit.walkthrough.terminals import StepFailed
from labs import lab_id, packages, readme
from tests import board

# about how long each rehearsal takes, so the board starts the longest first
EXPECTED_S = {"lab04_acks_late": 90, "lab02_retry": 45, "lab10_broker_outage": 45, "lab11_priorities": 35,
              "lab12_memory": 30, "lab13_deploys": 35}


def _rehearse(package: str):
    def run(workdir: Path) -> Rehearsal | StepFailed:
        try:
            return play(readme(lab_id(package)), workdir=workdir)
        except StepFailed as exc:
            return exc
    return run


REHEARSALS = {package: board.declare(f"walkthrough-{package}", _rehearse(package),
                                     expected_s=EXPECTED_S.get(package, 25))
              for package in packages()}


@pytest.mark.walkthrough
@pytest.mark.parametrize("package", packages())
def test_the_walkthrough_shows_what_its_readme_says(package, test_board):
    outcome = test_board[REHEARSALS[package]]
    if isinstance(outcome, StepFailed):
        pytest.fail(str(outcome), pytrace=False)
    print(f"{package}: {outcome.wall_s:.1f} s")
