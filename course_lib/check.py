"""Instant feedback on exercises: compare a learner's function with the course's reference.

In a notebook, the cell after an exercise runs ``f = check.exercise("gan.d_loss_bce", f)``. It calls
the learner's ``f`` and the reference on fixed inputs and prints ``"gan.d_loss_bce: 4/4 cases
match"`` or the first failing case (input, expected, got). If the exercise is still a stub (raises
``NotImplementedError``), or fails, it says so and returns the reference, so that the rest of the
notebook still runs. The learner's code is never shown.

This module is the mechanism only. Each notebook's exercises live in a module of their own,
``course_lib/exercises/<module>.py``, as a dict ``EXERCISES`` of name -> :class:`Exercise`; the
key ``"<module>.<name>"`` names one, and its module is imported on first use, so that checking
notebook 00's exercise never imports what notebook 09 needs (Optuna).

With the environment variable ``COURSE_CHECK_STRICT=1`` (set by the test suite) a mismatch raises
``AssertionError`` instead, so that the solution notebooks are tested against ``course_lib``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

STRICT_ENV = "COURSE_CHECK_STRICT"
PACKAGE = "course_lib.exercises"


@dataclass(frozen=True)
class Exercise:
    """A reference solution, fixed inputs, and how to turn a candidate into comparable outputs.

    ``evaluate(candidate, case)`` returns what is compared (tensors, numbers, tuples of them);
    the default calls ``candidate(*case)``.
    """

    reference: Callable[..., Any]
    cases: Callable[[], Sequence[tuple[Any, ...]]]
    evaluate: Callable[[Callable[..., Any], tuple[Any, ...]], Any] = lambda fn, case: fn(*case)
    rtol: float = 1e-5
    atol: float = 1e-6


@dataclass(frozen=True)
class CheckResult:
    """The outcome of :func:`verify`: ``status`` is "pass", "fail" or "not implemented"."""

    name: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def as_float(fn: Callable[..., Any], case: tuple[Any, ...]) -> float:
    """An ``Exercise.evaluate`` for functions that return one number: ``float(fn(*case))``."""
    return float(fn(*case))


def as_floats(fn: Callable[..., Any], case: tuple[Any, ...]) -> tuple[float, ...]:
    """An ``Exercise.evaluate`` for functions that return several numbers, as a tuple of floats."""
    return tuple(float(v) for v in fn(*case))


def modules() -> list[str]:
    """The names of the exercise modules in ``course_lib/exercises/``, sorted (imports none)."""
    package = importlib.import_module(PACKAGE)
    return sorted(info.name for info in pkgutil.iter_modules(package.__path__))


def lookup(name: str) -> Exercise:
    """The exercise with key ``"<module>.<name>"``, importing ``course_lib.exercises.<module>``.

    Raises ValueError naming the key and listing the module's exercises (or the modules).
    """
    module_name, _, short = name.partition(".")
    known = modules()
    if module_name not in known:
        raise ValueError(
            f"unknown exercise {name!r}: there is no exercise module {module_name!r}; "
            f"modules: {', '.join(known)}."
        )
    exercises: dict[str, Exercise] = importlib.import_module(f"{PACKAGE}.{module_name}").EXERCISES
    if short not in exercises:
        known_keys = ", ".join(f"{module_name}.{key}" for key in sorted(exercises))
        raise ValueError(f"unknown exercise {name!r}; known: {known_keys}.")
    return exercises[short]


def _same(got: Any, expected: Any, rtol: float, atol: float) -> bool:
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return False
        return bool(torch.allclose(got.detach().double(), expected.detach().double(), rtol, atol))
    if isinstance(expected, float):
        return isinstance(got, int | float) and abs(got - expected) <= atol + rtol * abs(expected)
    if isinstance(expected, tuple | list):
        return (
            isinstance(got, tuple | list)
            and len(got) == len(expected)
            and all(_same(g, e, rtol, atol) for g, e in zip(got, expected, strict=True))
        )
    return bool(got == expected)


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        text = f"tensor{tuple(value.shape)} {value.detach().flatten()[:6].tolist()}"
        return text + (" ..." if value.numel() > 6 else "")
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return repr(value)


def verify(name: str, candidate: Callable[..., Any]) -> CheckResult:
    """Run exercise ``name``'s cases on ``candidate`` and the reference; catch its errors."""
    ex = lookup(name)
    cases = ex.cases()
    for i, case in enumerate(cases, start=1):
        expected = ex.evaluate(ex.reference, case)
        try:
            got = ex.evaluate(candidate, case)
        except NotImplementedError:
            return CheckResult(name, "not implemented", f"{name}: not implemented yet.")
        except Exception as exc:  # the learner's code failed: report it, do not crash the notebook
            return CheckResult(
                name, "fail", f"{name}: case {i}/{len(cases)} raised {type(exc).__name__}: {exc}"
            )
        if not _same(got, expected, ex.rtol, ex.atol):
            message = (
                f"{name}: case {i}/{len(cases)} differs\n  input:    {_show(case)}\n"
                f"  expected: {_show(expected)}\n  got:      {_show(got)}"
            )
            return CheckResult(name, "fail", message)
    return CheckResult(name, "pass", f"{name}: {len(cases)}/{len(cases)} cases match")


def exercise(name: str, candidate: Callable[..., Any]) -> Callable[..., Any]:
    """Check ``candidate`` against the reference of exercise ``name`` and print the verdict.

    Returns ``candidate`` when it passes, else the reference, so later cells keep working.
    Under ``COURSE_CHECK_STRICT=1`` a failing (not a stub) candidate raises AssertionError.
    """
    result = verify(name, candidate)
    if result.passed:
        print("✅ " + result.message)
        return candidate
    if result.status == "not implemented":
        print(f"✏️  {result.message} Using the reference solution so the notebook keeps running.")
    else:
        if os.environ.get(STRICT_ENV) == "1":
            raise AssertionError(result.message)
        print(f"❌ {result.message}\nUsing the reference solution for the rest of the notebook.")
    return lookup(name).reference
