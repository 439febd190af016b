"""Every lab's README walkthrough, followed as an attendee would: each typed command, each
Python line and each key press executed, each output compared with the README's block.

Most rehearsals run one after another in the half of ``make test`` that runs beside the test
board (tests/both.py); the longest ones run on the board itself, two at a time with the other
heavy jobs, so that the two halves end together. They mostly wait (on tasks, countdowns, a
visibility timeout), and beside other jobs they meet the busy machine their margins must
survive anyway."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.walkthrough.play import Rehearsal, play
from labkit.walkthrough.terminals import StepFailed
from labs import lab_id, packages, readme
from tests import board

# the longest rehearsals (seconds, about), on the board; the others run beside it
ON_THE_BOARD = {"lab04_acks_late": 90, "lab02_retry": 45, "lab05_beat": 45, "lab08_observability": 45}


def _rehearse(package: str, workdir: Path) -> Rehearsal | StepFailed:
    try:
        return play(readme(lab_id(package)), workdir=workdir)
    except StepFailed as exc:
        return exc


REHEARSALS = {package: board.declare(f"walkthrough-{package}",
                                     lambda workdir, p=package: _rehearse(p, workdir),
                                     expected_s=ON_THE_BOARD[package])
              for package in packages() if package in ON_THE_BOARD}


def _shows(outcome: Rehearsal | StepFailed, package: str) -> None:
    if isinstance(outcome, StepFailed):
        pytest.fail(str(outcome), pytrace=False)
    print(f"{package}: {outcome.wall_s:.1f} s")


@pytest.mark.walkthrough
@pytest.mark.parametrize("package", [p for p in packages() if p in ON_THE_BOARD])
def test_the_walkthrough_shows_what_its_readme_says(package, test_board):
    _shows(test_board[REHEARSALS[package]], package)


@pytest.mark.walkthrough
@pytest.mark.parametrize("package", [p for p in packages() if p not in ON_THE_BOARD])
def test_the_walkthrough_shows_what_its_readme_says_beside_the_board(package, tmp_path):
    _shows(_rehearse(package, tmp_path), package)
