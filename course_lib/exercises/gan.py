"""Exercises of notebook 01, a GAN from scratch in 2-D: the losses of D and of G."""

from __future__ import annotations

import torch

from course_lib.check import Exercise
from course_lib.gan import losses


def logit_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(logits_real, logits_fake) pairs (N,), (M,), from zeros to confident discriminators, with
    N != M in one case (a loss that adds the two terms per example fails there)."""
    g = torch.Generator().manual_seed(0)
    return [
        (torch.zeros(4), torch.zeros(4)),
        (torch.randn(16, generator=g), torch.randn(16, generator=g)),
        (3 * torch.randn(64, generator=g), 3 * torch.randn(64, generator=g) - 2),
        # confident discriminators: a naive log(sigmoid(.)) overflows to inf here
        (torch.tensor([40.0, -40.0, 0.5]), torch.tensor([-40.0, 40.0, -0.5])),
        (torch.randn(5, generator=g), torch.randn(3, generator=g) - 1),  # N = 5 real, M = 3 fake
    ]


def fake_logits() -> list[tuple[torch.Tensor]]:
    """D's logits (N,) on fake batches: those of :func:`logit_pairs` and extreme ones. Below
    about -88.7, sigmoid underflows to 0 in float32 (exp(-l) overflows), so a naive
    -log(sigmoid(l)) returns inf."""
    extreme = [(torch.tensor([-60.0, 60.0]),), (torch.tensor([-200.0, -1000.0, 5.0]),)]
    return [(real,) for real, _ in logit_pairs()] + extreme


EXERCISES: dict[str, Exercise] = {
    "d_loss_bce": Exercise(reference=losses.d_loss_bce, cases=logit_pairs),
    "g_loss_nonsaturating": Exercise(reference=losses.g_loss_nonsaturating, cases=fake_logits),
}
