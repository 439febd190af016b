"""Parameters: declared once, overridden by ``--param key=value``, refused with one line."""

from __future__ import annotations

import pytest

from labkit.errors import SetupError
from labkit.params import Param, resolve

SPEC = {
    "tasks": Param(100, "tasks", quick=10, min=1, max=1000),
    "delay": Param(0.5, "seconds", min=0.05),
    "late": Param(False, "acks_late"),
    "ratios": Param([0.5, 3.0], "ratios", min=0.05, max=20),
    "modes": Param(["early", "late"], "modes"),
}


def test_defaults_and_quick_values():
    assert resolve(SPEC, [], quick=False).tasks == 100
    assert resolve(SPEC, [], quick=True).tasks == 10
    assert resolve(SPEC, [], quick=True).delay == 0.5  # no quick value: the default


@pytest.mark.parametrize("raw,value", [
    ("tasks=7", 7), ("delay=2", 2.0), ("late=yes", True), ("late=off", False),
    ("ratios=0.1, 4", [0.1, 4.0]), ("modes=late", ["late"]),
])
def test_command_line_values_take_the_type_of_the_default(raw, value):
    name = raw.split("=")[0]
    resolved = resolve(SPEC, [raw], quick=False)[name]
    assert resolved == value and type(resolved) is type(value)


def test_a_notebook_passes_python_values_as_they_are():
    assert resolve(SPEC, {"ratios": [1.0]}, quick=False).ratios == [1.0]


@pytest.mark.parametrize("raw,message", [
    ("nope=1", "unknown param 'nope'"),
    ("tasks=many", "bad param tasks='many': expected int"),
    ("late=maybe", "expected bool"),
    ("ratios=", "expected comma-separated floats"),
    ("tasks=0", "must be >= 1"),
    ("tasks=1001", "must be <= 1000"),
    ("ratios=0.5,30", "bad param ratios=30.0: must be <= 20"),
    ("tasks", "use key=value"),
])
def test_a_bad_value_is_a_setup_error_naming_the_param(raw, message):
    with pytest.raises(SetupError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(SPEC, [raw], quick=False)


def test_every_labs_declared_defaults_and_quick_values_are_inside_its_ranges():
    from labkit.catalog import all_labs

    for lab in all_labs():
        for quick in (False, True):
            values = resolve(lab.params, [], quick)
            if lab.validate:
                lab.validate(values)  # the stated defaults are never refused


def test_random_params_are_legal_repeatable_and_accepted_by_every_labs_validate():
    from labkit.catalog import all_labs
    from labkit.runner import drawn_params

    for lab in all_labs():
        for seed in (1, 2, 3):
            values = drawn_params(lab, seed, quick=True)
            assert values == drawn_params(lab, seed, quick=True), lab.id  # one seed, one draw
            for name, p in lab.params.items():
                for v in values[name] if isinstance(values[name], list) else [values[name]]:
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        assert (p.min is None or v >= p.min) and (p.max is None or v <= p.max), (
                            lab.id, name, v)


def test_random_params_and_explicit_params_are_not_mixed(capsys):
    from labkit import cli

    assert cli.main(["run", "01", "--random-params", "1", "--param", "batch=10"]) == 2
    assert "drop --param" in capsys.readouterr().err
