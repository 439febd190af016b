"""Every lab under ``labs/``, by number or name: what ``celery-lab list`` and ``run`` resolve."""

from __future__ import annotations

import importlib

import labs
from labkit.errors import SetupError
from labkit.lab import Lab


def load(package: str) -> Lab:
    """The ``LAB`` a lab's driver declares; its id must match its folder."""
    module = importlib.import_module(f"labs.{package}.driver")
    lab: Lab = module.LAB
    if lab.id != labs.lab_id(package):
        raise RuntimeError(f"labs/{package}/driver.py declares id {lab.id!r}, "
                           f"expected {labs.lab_id(package)!r}")
    return lab


def all_labs() -> list[Lab]:
    return [load(p) for p in labs.packages()]


def resolve(ref: str) -> Lab:
    """``01``, ``1``, ``01_hello_world``, ``hello_world`` or ``lab01_hello_world`` -> the lab."""
    ref = ref.strip().removeprefix("lab")
    packages = labs.packages()
    for package in packages:
        number, name = labs.LAB_PACKAGE.match(package).groups()
        if ref in (number, f"{number}_{name}", name) or (ref.isdigit() and int(ref) == int(number)):
            return load(package)
    known = ", ".join(labs.lab_id(p) for p in packages)
    raise SetupError(f"unknown lab {ref!r}; known labs: {known}")
