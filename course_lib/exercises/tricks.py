"""Exercises of notebook 05, stabilization tricks: label smoothing, instance noise and the EMA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from course_lib.check import Exercise, as_float
from course_lib.exercises.gan import logit_pairs
from course_lib.gan import tricks


def smoothing_cases() -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """(logits_real, logits_fake, real_label): the logit pairs of 01 with labels 0.9 and 0.8."""
    pairs = logit_pairs()
    return [(real, fake, 0.9) for real, fake in pairs] + [(pairs[2][0], pairs[2][1], 0.8)]


def instance_noise_sigma(sigma: float, anneal_steps: int | None, step: int) -> float:
    """The std ``tricks.InstanceNoise(sigma, anneal_steps)`` adds at ``step``.

    sigma * max(0, 1 - step / anneal_steps), or sigma when anneal_steps is None.
    Reference: Sønderby et al. 2017, arXiv:1610.04490 (instance noise, annealed).
    """
    return tricks.InstanceNoise(sigma, anneal_steps).sigma_at(step)


def noise_schedule_cases() -> list[tuple[float, int | None, int]]:
    """(sigma, anneal_steps, step): start, middle, the end, past the end, constant noise."""
    return [(0.1, 100, 0), (0.1, 100, 25), (0.2, 1000, 999), (0.1, 100, 100), (0.1, 100, 150),
            (0.3, None, 5000), (0.5, 7, 3)]  # fmt: skip


def ema_update(theta_ema: torch.Tensor, theta: torch.Tensor, decay: float) -> torch.Tensor:
    """One EMA step on a tensor, computed by the trainer's EMA (:func:`tricks.ema_generator`).

    decay * theta_ema + (1 - decay) * theta. Reference: Yazıcı et al. 2019, arXiv:1806.04498.
    """
    holder = nn.Module()
    holder.weight = nn.Parameter(theta_ema.detach().clone())
    ema = tricks.ema_generator(holder, decay)
    ema.update_parameters(holder)  # the first update copies: the average is theta_ema
    with torch.no_grad():
        holder.weight.copy_(theta)
    ema.update_parameters(holder)
    return ema.module.weight.detach().clone()


def ema_cases() -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """(theta_ema, theta, decay) for the EMA exercise."""
    g = torch.Generator().manual_seed(19)
    a, b = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    return [(torch.zeros(2), torch.ones(2), 0.9), (a, b, 0.999), (a, b, 0.5), (b, 3 * a, 0.95)]


def on_copies(fn: Callable[..., Any], case: tuple[Any, ...]) -> Any:
    """``fn(*case)`` on clones of the tensors, so an in-place answer cannot change the case."""
    return fn(*(c.clone() if isinstance(c, torch.Tensor) else c for c in case))


EXERCISES: dict[str, Exercise] = {
    "label_smoothing": Exercise(reference=tricks.d_loss_bce_smoothed, cases=smoothing_cases),
    "instance_noise_sigma": Exercise(
        reference=instance_noise_sigma, cases=noise_schedule_cases, evaluate=as_float
    ),
    "ema_update": Exercise(reference=ema_update, cases=ema_cases, evaluate=on_copies),
}
