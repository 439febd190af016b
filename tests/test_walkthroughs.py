"""Every lab's README walkthrough, followed as an attendee would: each typed command, each
Python line and each key press executed, each output compared with the README's block.

The eight rehearsals run two at a time: they mostly wait (on tasks, countdowns, a visibility
timeout), and two side by side are the busy machine their margins must survive anyway."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from labkit.walkthrough.play import Rehearsal, play
from labkit.walkthrough.terminals import StepFailed
from labs import lab_id, packages, readme

AT_ONCE = 2


@pytest.fixture(scope="module")
def rehearsals(tmp_path_factory) -> dict[str, Rehearsal | StepFailed]:
    # the longest first, so that the two lanes end together (Lab 04's is the longest)
    order = sorted(packages(), key=lambda p: p != "lab04_acks_late")
    workdirs = {package: tmp_path_factory.mktemp(package) for package in order}

    def rehearse(package: str) -> Rehearsal | StepFailed:
        try:
            return play(readme(lab_id(package)), workdir=workdirs[package])
        except StepFailed as exc:
            return exc

    with ThreadPoolExecutor(AT_ONCE) as pool:
        return dict(zip(order, pool.map(rehearse, order), strict=True))


@pytest.mark.walkthrough
@pytest.mark.timeout(900)
@pytest.mark.parametrize("package", packages())
def test_the_walkthrough_shows_what_its_readme_says(package, rehearsals):
    outcome = rehearsals[package]
    if isinstance(outcome, StepFailed):
        pytest.fail(str(outcome), pytrace=False)
    print(f"{package}: {outcome.wall_s:.1f} s")
