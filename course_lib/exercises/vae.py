"""Exercises of notebook 10, VAE basics: the reparameterization trick and the KL term."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from course_lib import vae
from course_lib.check import Exercise


def reparameterize_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(mu, logvar, eps) triples; the last one has z = eps exactly."""
    g = torch.Generator().manual_seed(11)
    cases = []
    for n, d, scale in ((1, 1, 1.0), (4, 3, 1.0), (16, 8, 3.0)):
        mu = scale * torch.randn(n, d, generator=g)
        logvar = scale * torch.randn(n, d, generator=g)
        cases.append((mu, logvar, torch.randn(n, d, generator=g)))
    cases.append((torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2, 2)))
    return cases


def sample_and_gradients(fn: Callable[..., Any], case: tuple[torch.Tensor, ...]) -> tuple:
    """z = fn(mu, logvar, eps) and the gradients of a weighted sum of z w.r.t. mu and logvar.

    A gradient is None where none arrives, as with sampling that is not reparameterized.
    """
    mu, logvar = (t.clone().requires_grad_(True) for t in case[:2])
    z = fn(mu, logvar, case[2].clone())
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return (z.detach() if isinstance(z, torch.Tensor) else z, None, None)
    weights = torch.linspace(-1.0, 1.0, z.numel()).reshape(z.shape)
    grads = torch.autograd.grad((z * weights).sum(), (mu, logvar), allow_unused=True)
    return (z.detach(), *grads)


def gaussian_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mu, logvar) pairs of encoder outputs (N, d) for the KL exercise."""
    g = torch.Generator().manual_seed(12)
    return [
        (torch.zeros(3, 4), torch.zeros(3, 4)),  # q = prior: KL = 0
        (torch.ones(1, 2), torch.zeros(1, 2)),  # unit mean shift: 0.5 per dimension
        (torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)),
        (3 * torch.randn(16, 2, generator=g), 2 * torch.randn(16, 2, generator=g) - 1),
    ]


EXERCISES: dict[str, Exercise] = {
    "reparameterize": Exercise(
        reference=vae.reparameterize, cases=reparameterize_cases, evaluate=sample_and_gradients
    ),
    "kl": Exercise(reference=vae.kl_to_standard_normal, cases=gaussian_pairs),
}
