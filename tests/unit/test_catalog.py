"""One lab discovery: the app, the kit and the tests see the same labs."""

from __future__ import annotations

import pytest

import labs
from labkit.catalog import all_labs, resolve
from labkit.errors import SetupError


def test_the_labs_on_disk_are_the_labs_the_kit_runs_and_the_app_loads():
    ids = [lab.id for lab in all_labs()]
    assert ids == [labs.lab_id(p) for p in labs.packages()]
    assert ids[:8] == ["01_hello_world", "02_retry", "03_bind_context", "04_acks_late", "05_beat",
                       "06_routing", "07_pools", "08_observability"]
    assert labs.task_modules() == [f"labs.lab{i}.tasks" for i in ids]


@pytest.mark.parametrize("ref", ["01", "1", "01_hello_world", "lab01_hello_world", "hello_world"])
def test_a_lab_is_found_by_number_or_name(ref):
    assert resolve(ref).id == "01_hello_world"


def test_an_unknown_lab_names_the_known_ones():
    with pytest.raises(SetupError, match=r"unknown lab '99'; known labs: 01_hello_world, 02_retry"):
        resolve("99")


def test_every_lab_declares_its_figures_and_a_stated_wall_time():
    for lab in all_labs():
        assert lab.figures and all(name.endswith(".png") for name in lab.figures), lab.id
        assert "quick" in lab.wall_time, lab.id
