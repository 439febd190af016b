"""What every check's unit test is handed: an Evidence that keeps findings in a temp run dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.evidence import Evidence


@pytest.fixture
def ev(tmp_path: Path) -> Evidence:
    return Evidence(tmp_path)
