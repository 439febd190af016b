"""Every lab's README walkthrough, followed as an attendee would: each typed command, each
Python line and each key press executed, each output compared with the README's block."""

from __future__ import annotations

import pytest

from labkit.walkthrough.play import play
from labkit.walkthrough.terminals import StepFailed
from labs import LABS_DIR, packages


@pytest.mark.walkthrough
@pytest.mark.parametrize("package", packages())
def test_the_walkthrough_shows_what_its_readme_says(package, tmp_path):
    try:
        rehearsal = play(LABS_DIR / package / "README.md", workdir=tmp_path)
    except StepFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    print(f"{package}: {rehearsal.wall_s:.1f} s")
