"""Exercises of notebook 06, the bugs clinic: the LSGAN target fix and a colleague's train step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from course_lib.check import Exercise
from course_lib.exercises import losses as losses_exercises
from course_lib.gan import losses, models


def clinic_train_step(
    G: nn.Module,
    D: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    x_real: torch.Tensor,
    z: torch.Tensor,
) -> tuple[float, float]:
    """Reference for "clinic.train_step": one D update, then one G update on the fake batch G(z).

    D minimizes losses.d_loss_bce with the fakes detached; G minimizes
    losses.g_loss_nonsaturating through D; each optimizer's gradients are zeroed before its
    backward. Reference: Goodfellow et al. 2014, arXiv:1406.2661, Algorithm 1.
    Returns (d_loss, g_loss) as floats.
    """
    x_fake = G(z)
    d_loss = losses.d_loss_bce(D(x_real), D(x_fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = losses.g_loss_nonsaturating(D(x_fake))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


def train_step_outcome(step_fn: Callable[..., Any], case: tuple[int]) -> tuple[Any, ...]:
    """Run ``step_fn(G, D, opt_g, opt_d, x_real, z)`` three times on small 2-D MLPs.

    The models and batches are seeded by ``case``; returns the losses of each step and all
    weights of G and D afterwards.
    """
    (seed,) = case
    torch.manual_seed(seed)
    G = models.MLPGenerator(latent_dim=2, hidden=16, depth=2)
    D = models.MLPDiscriminator(in_dim=2, hidden=16, depth=2)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-2, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(seed)
    step_losses = []
    for _ in range(3):
        x_real = 2.0 * torch.randn(32, 2, generator=g)
        z = torch.randn(32, 2, generator=g)
        step_losses.append(tuple(float(v) for v in step_fn(G, D, opt_g, opt_d, x_real, z)))
    weights = torch.cat([p.detach().flatten() for p in [*G.parameters(), *D.parameters()]])
    return tuple(step_losses), weights


EXERCISES: dict[str, Exercise] = {
    # the fix of bug 5 is notebook 03's LSGAN generator loss, checked on the same inputs
    "g_loss_lsgan": losses_exercises.EXERCISES["g_loss_lsgan"],
    "train_step": Exercise(
        reference=clinic_train_step, cases=lambda: [(0,), (1,)], evaluate=train_step_outcome
    ),
}
