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
