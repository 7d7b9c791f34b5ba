"""Instant feedback on exercises: compare a learner's function with the course's reference.

In a notebook, the cell after an exercise runs ``f = check.exercise("gan.d_loss_bce", f)``. It calls
the learner's ``f`` and the reference on fixed inputs and prints ``"gan.d_loss_bce: 5/5 cases
match"`` or the first failing case (input, expected, got). If the exercise is still a stub (raises
``NotImplementedError``), or fails, it says so and returns the reference, so that the rest of the
notebook still runs. The learner's code is never shown.

With the environment variable ``COURSE_CHECK_STRICT=1`` (set by the test suite) a mismatch raises
``AssertionError`` instead, so that the solution notebooks are tested against ``course_lib``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from course_lib import losses, models, viz

STRICT_ENV = "COURSE_CHECK_STRICT"


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


def _logit_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.zeros(4), torch.zeros(4)),
        (torch.randn(16, generator=g), torch.randn(16, generator=g)),
        (3 * torch.randn(64, generator=g), 3 * torch.randn(64, generator=g) - 2),
        # confident discriminators: a naive log(sigmoid(.)) overflows to inf here
        (torch.tensor([40.0, -40.0, 0.5]), torch.tensor([-40.0, 40.0, -0.5])),
    ]
    return cases


def _fake_logits() -> list[tuple[torch.Tensor]]:
    return [(real,) for real, _ in _logit_pairs()] + [(torch.tensor([-60.0, 60.0]),)]


def _init_statistics(init_fn: Callable[[nn.Module], None], case: tuple[int]) -> tuple[float, ...]:
    """Apply ``init_fn`` to a fresh DCGAN discriminator and summarize the weights it set.

    Per conv layer: weight mean and std; over all BatchNorm layers: weight mean and std; the
    largest absolute bias. Two correct inits agree on these to within sampling noise (< 0.006).
    """
    (seed,) = case
    torch.manual_seed(seed)
    module = models.DCGANDiscriminator(image_size=32, channels=3, width=32)
    with torch.no_grad():  # scramble, so that an init that does nothing fails
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    init_fn(module)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    stats: list[float] = []
    for conv in convs:
        stats += [conv.weight.mean().item(), conv.weight.std().item()]
    bn_weight = torch.cat([m.weight.flatten() for m in norms])
    stats += [bn_weight.mean().item(), bn_weight.std().item()]
    biases = [m.bias.flatten() for m in convs + norms if m.bias is not None]
    stats.append(torch.cat(biases).abs().max().item() if biases else 0.0)
    return tuple(stats)


def _module_signature(cls: Callable[..., nn.Module], case: tuple[int, int]) -> tuple[Any, ...]:
    """Build ``cls(image_size, channels, width=8)``; return its output shape, size and layers."""
    image_size, channels = case
    torch.manual_seed(0)
    module = cls(image_size=image_size, channels=channels, width=8)
    x = torch.randn(5, channels, image_size, image_size)
    out = module(x)
    layer_types = tuple(
        type(m).__name__ for m in module.modules() if not list(m.children())
    )
    n_params = sum(p.numel() for p in module.parameters())
    return tuple(out.shape), n_params, layer_types


def _pixel_batches() -> list[tuple[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.tensor([-1.0, 0.0, 1.0]),),
        (torch.rand(2, 1, 4, 4, generator=g) * 2 - 1,),
        (torch.tensor([-1.5, 1.2, 0.5]),),  # out of range: clamped
    ]


EXERCISES: dict[str, Exercise] = {
    "tour.to_unit_range": Exercise(reference=viz.to_unit_range, cases=_pixel_batches),
    "gan.d_loss_bce": Exercise(reference=losses.d_loss_bce, cases=_logit_pairs),
    "gan.g_loss_nonsaturating": Exercise(
        reference=losses.g_loss_nonsaturating, cases=_fake_logits
    ),
    "dcgan.init": Exercise(
        reference=models.dcgan_init_,
        cases=lambda: [(0,), (1,)],
        evaluate=_init_statistics,
        rtol=0.0,
        atol=0.006,
    ),
    "dcgan.discriminator": Exercise(
        reference=models.DCGANDiscriminator,
        cases=lambda: [(28, 1), (32, 1), (32, 3), (64, 3)],
        evaluate=_module_signature,
    ),
    # Part II: losses, gradients, tricks, bugs clinic (03-06)
    # Part III: metrics, monitoring, hyperparameter search (07-09)
    # Part IV: VAEs (10-11)
}


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
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; known: {', '.join(sorted(EXERCISES))}.")
    ex = EXERCISES[name]
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
    return EXERCISES[name].reference
