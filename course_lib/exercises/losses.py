"""Exercises of notebook 03, loss variants: the hinge and LSGAN losses and the gradient penalty."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from course_lib.check import Exercise
from course_lib.exercises.gan import fake_logits, logit_pairs
from course_lib.gan import losses


class HalfSquaredNorm(nn.Module):
    """A critic x -> 0.5 ||x||^2 per example: its input gradient at x is x itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(dim=1)


def critic_batches() -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """(critic, real, fake) for the gradient-penalty exercise.

    Linear critics (penalty (||w|| - 1)^2 wherever x_hat lies; with ||w|| = 0.5 < 1, a
    one-sided max(0, ||g|| - 1)^2 gives 0 instead of 0.25), a quadratic one (the penalty depends
    on x_hat, on points and on images) and a small conv critic with (N, 1) outputs.
    """
    g = torch.Generator().manual_seed(15)
    with torch.random.fork_rng(devices=[]):  # building layers draws from the global RNG
        linear, gentle = nn.Linear(2, 1), nn.Linear(2, 1)
        conv = nn.Sequential(
            nn.Conv2d(1, 4, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64, 1)
        )  # (N, 1, 8, 8) -> (N, 4, 4, 4) -> (N, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[3.0, 4.0]]))
        linear.bias.fill_(0.5)
        gentle.weight.copy_(torch.tensor([[0.3, 0.4]]))  # ||w|| = 0.5: gradients shorter than 1
        gentle.bias.fill_(-1.0)
        for p in conv.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    images = [torch.rand(6, 1, 8, 8, generator=g) * 2 - 1 for _ in range(4)]
    return [
        (linear, torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)),
        (gentle, torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)),
        (HalfSquaredNorm(), torch.randn(16, 2, generator=g), 3 * torch.randn(16, 2, generator=g)),
        (HalfSquaredNorm(), images[0], images[1]),
        (conv, images[2], images[3]),
    ]


def seeded_penalty(fn: Callable[..., Any], case: tuple[Any, ...]) -> Any:
    """``fn(critic, real, fake)`` with the global RNG seeded (eps comes from it), then restored:
    the penalty, and its gradient with respect to the critic's parameters.

    The gradient is what training uses: without ``create_graph=True`` in the input gradient,
    the penalty has the right value but no path back to the critic's weights (zeros here), so
    it would not train the critic at all.
    """
    critic = case[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        penalty = fn(*case)
    params = [p for p in critic.parameters() if p.requires_grad]
    if not isinstance(penalty, torch.Tensor) or not params:
        return penalty
    found = (
        torch.autograd.grad(penalty, params, allow_unused=True)
        if penalty.requires_grad
        else [None] * len(params)
    )
    grads = tuple(
        torch.zeros_like(p) if g is None else g for p, g in zip(params, found, strict=True)
    )
    return (penalty.detach(), *grads)


EXERCISES: dict[str, Exercise] = {
    "d_loss_hinge": Exercise(reference=losses.d_loss_hinge, cases=logit_pairs),
    "g_loss_lsgan": Exercise(reference=losses.g_loss_lsgan, cases=fake_logits),
    "gradient_penalty": Exercise(
        reference=losses.gradient_penalty, cases=critic_batches, evaluate=seeded_penalty
    ),
}
