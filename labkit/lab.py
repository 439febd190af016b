"""What a lab declares: its id, parameters, settings, the function that measures, its figures.

A declaration only: how a lab gets run is ``labkit.runner``'s business, and how labs are found
is ``labkit.catalog``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit.params import Param, Params
from labkit.plotting import Plotter

if TYPE_CHECKING:
    from labkit.session import LabSession


@dataclass(frozen=True)
class Lab:
    """A lab: an id like ``01_hello_world``, its parameters and the function that measures."""

    id: str
    title: str
    measure: Callable[[LabSession], None]
    params: dict[str, Param] = field(default_factory=dict)
    wall_time: str = ""  # the stated budget, e.g. "default ~25 s, --quick ~15 s"
    settings: Callable[[Params], dict[str, Any]] | None = None  # per-run Celery settings
    validate: Callable[[Params], None] | None = None  # raises SetupError before anything starts
    figures: dict[str, Plotter] = field(default_factory=dict)  # drawn from the run dir afterwards
    embedded_only: bool = False  # it stops or restarts its broker: refused on an external Redis

    @property
    def number(self) -> str:
        return self.id.split("_", 1)[0]

    def celery_settings(self, params: Params) -> dict[str, Any]:
        return self.settings(params) if self.settings else {}
