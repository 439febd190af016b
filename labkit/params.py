"""A lab's parameters: declared once with defaults, overridden by ``--param key=value``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.errors import SetupError


@dataclass(frozen=True)
class Param:
    default: Any
    help: str
    quick: Any = None
    min: float | None = None
    max: float | None = None

    def value(self, quick: bool) -> Any:
        return self.quick if quick and self.quick is not None else self.default


def _convert(name: str, raw: str, like: Any) -> Any:
    try:
        if isinstance(like, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
        if isinstance(like, (list, tuple)):
            kind = type(like[0]) if like else str
            items = [kind(item.strip()) for item in raw.split(",") if item.strip()]
            if not items:
                raise ValueError
            return items
    except ValueError:
        expected = (f"comma-separated {type(like[0]).__name__}s" if isinstance(like, (list, tuple)) and like
                    else type(like).__name__)
        raise SetupError(f"bad param {name}={raw!r}: expected {expected}") from None
    return raw


class Params(dict):
    """Resolved values, readable as attributes (``p.batch``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def resolve(spec: dict[str, Param], overrides: list[str] | dict[str, Any], quick: bool) -> Params:
    values = Params({name: p.value(quick) for name, p in spec.items()})
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides]
    for name, raw in items:
        if name not in spec:
            raise SetupError(f"unknown param {name!r}; this lab takes: {', '.join(sorted(spec))}")
        like = spec[name].default
        values[name] = _convert(name, raw, like) if isinstance(raw, str) else raw
    for name, p in spec.items():
        value = values[name]
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if p.min is not None and v < p.min:
                    raise SetupError(f"bad param {name}={v}: must be >= {p.min}")
                if p.max is not None and v > p.max:
                    raise SetupError(f"bad param {name}={v}: must be <= {p.max}")
    return values


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise SetupError(f"bad param {item!r}: use key=value")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def draw(spec: dict[str, Param], seed: int, quick: bool) -> dict[str, Any]:
    """Legal values for a lab author's sweep (``--random-params SEED``): each number within its
    declared range, log-uniform within a factor of 4 of its (quick) default so that a run stays
    about as long; switches, names and other strings as declared."""
    import math
    import random

    rng = random.Random(seed)

    def near(p: Param, value: float, like: Any) -> Any:
        low = max(p.min if p.min is not None else value / 4, value / 4)
        high = min(p.max if p.max is not None else value * 4, value * 4)
        if value <= 0 or low <= 0:
            low = p.min if p.min is not None else 0
            x = rng.uniform(low, max(low, high))
        else:
            x = math.exp(rng.uniform(math.log(low), math.log(max(low, high))))
        return max(1, round(x)) if isinstance(like, int) else round(x, 3)

    out: dict[str, Any] = {}
    for name, p in spec.items():
        value = p.value(quick)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[name] = near(p, value, value)
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            out[name] = sorted({near(p, v, v) for v in value})
    return out
