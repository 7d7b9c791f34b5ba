"""Argument checks shared by the whole package, with one message style.

Each check returns the value it accepted (converted where that helps, e.g. to float), or raises a
``ValueError`` whose one line names the argument, what was received and, through ``hint``, what
to pass instead: ``lr must be a finite number > 0, got -1; try 2e-4.``
"""

from __future__ import annotations

import math
from collections.abc import Container


def _fail(message: str, hint: str) -> None:
    raise ValueError(f"{message}; {hint}." if hint else f"{message}.")


def shown(value: object) -> str:
    """``value`` for a one-line message: a tensor or array by type and shape, other values by
    their repr with whitespace collapsed, at most 60 characters."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, int | float):
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(name: str, value: object, minimum: int = 1, hint: str = "") -> int:
    """``value`` as an int >= ``minimum`` (bools are refused: ``True`` is no step count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(f"{name} must be an int >= {minimum}, got {shown(value)}", hint)
    return value  # type: ignore[return-value]


def check_number(
    name: str,
    value: object,
    minimum: float | None = None,
    *,
    strict: bool = False,
    maximum: float | None = None,
    hint: str = "",
) -> float:
    """``value`` as a finite float, >= ``minimum`` (> with ``strict``) and <= ``maximum``."""
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    low_ok = minimum is None or (ok and (value > minimum if strict else value >= minimum))  # type: ignore[operator]
    high_ok = maximum is None or (ok and value <= maximum)  # type: ignore[operator]
    if not (ok and low_ok and high_ok):
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if strict else '>='} {minimum:g}")
        if maximum is not None:
            bounds.append(f"<= {maximum:g}")
        what = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
        _fail(f"{name} must be {what}, got {shown(value)}", hint)
    return float(value)  # type: ignore[arg-type]


def check_choice(name: str, value: object, choices: Container[object], hint: str = "") -> object:
    """``value`` if it is one of ``choices`` (bools are refused where numbers are expected)."""
    if isinstance(value, bool) or value not in choices:
        options = ", ".join(map(repr, choices)) if isinstance(choices, tuple | list) else choices
        _fail(f"{name} must be one of {options}, got {shown(value)}", hint)
    return value


def check_every(value: object) -> int:
    """A callback's period: an int >= 1."""
    return check_int("every", value, 1, hint="e.g. every=100")
