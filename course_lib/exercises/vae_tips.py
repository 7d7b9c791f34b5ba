"""Exercises of notebook 11, VAE training tips: cyclical annealing, free bits and active units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from course_lib import vae
from course_lib.check import Exercise


def schedule_values(cls: Callable[..., Any], case: tuple[int, float]) -> list[float]:
    """The KL weights of ``cls(period, ratio)`` at steps 0, period/10, ... up to 3 periods."""
    period, ratio = case
    schedule = cls(period, ratio)
    return [float(schedule(step)) for step in range(0, 3 * period + 1, max(1, period // 10))]


def kl_per_dim_cases() -> list[tuple[torch.Tensor, float]]:
    """(kl_per_dim (N, d), free_bits) pairs.

    In the last two, some examples are below lambda while their dimension's batch mean is above
    it (clamping per example then differs).
    """
    g = torch.Generator().manual_seed(13)
    small = torch.tensor([[0.1, 2.0], [0.3, 1.0]])
    return [
        (small, 0.5),
        (small, 0.0),
        (small, 3.0),
        (0.6 * torch.rand(32, 8, generator=g), 0.25),
        (2.0 * torch.rand(64, 16, generator=g), 0.5),
    ]


def encoder_mean_cases() -> list[tuple[Any, ...]]:
    """Encoder means (N, d) whose columns have variances 0, ~0.001, ~0.005, ~0.017, 0.25, 4."""
    g = torch.Generator().manual_seed(14)
    stds = torch.tensor([0.0, 0.03, 0.07, 0.13, 0.5, 2.0])
    mu = torch.randn(400, 6, generator=g) * stds + torch.randn(6, generator=g)
    wide = 10 * torch.randn(50, 4, generator=g) + 3
    return [(mu,), (mu[:, :3],), (wide,), (0.1 * mu,), (mu, 0.1)]


EXERCISES: dict[str, Exercise] = {
    "cyclical_annealing": Exercise(
        reference=vae.CyclicalAnnealing,
        cases=lambda: [(100, 0.5), (10, 1.0), (40, 0.25), (7, 0.3)],
        evaluate=schedule_values,
    ),
    "free_bits": Exercise(reference=vae.free_bits_kl, cases=kl_per_dim_cases),
    "active_units": Exercise(reference=vae.active_units, cases=encoder_mean_cases),
}
