"""Exercises of notebook 07, evaluation: FID, KID, Inception Score and precision/recall."""

from __future__ import annotations

import torch

from course_lib import metrics
from course_lib.check import Exercise, as_float, as_floats


def feature_sets() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed float64 feature pairs for the FID exercise."""
    g = torch.Generator().manual_seed(7)
    mix = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = torch.randn(200, 6, generator=g, dtype=torch.float64)
    b = torch.randn(150, 6, generator=g, dtype=torch.float64) @ mix * 0.5 + 0.3
    c = torch.randn(120, 16, generator=g, dtype=torch.float64)
    d = torch.randn(100, 16, generator=g, dtype=torch.float64) * 1.5 - 1.0
    return [(a, b), (b, a), (a, a.clone()), (c, d)]


def equal_size_sets() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed float64 feature pairs with equal row counts (one KID subset)."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = torch.randn(12, 5, generator=g, dtype=torch.float64) + 0.5
    u = torch.randn(40, 8, generator=g, dtype=torch.float64)
    v = torch.randn(40, 8, generator=g, dtype=torch.float64)
    return [(x, y), (y, x), (u, v), (u, u.clone())]


def class_logits() -> list[tuple[torch.Tensor, int]]:
    """Logits and numbers of splits for the Inception Score exercise."""
    g = torch.Generator().manual_seed(9)
    noisy = 2 * torch.randn(103, 7, generator=g, dtype=torch.float64)
    confident = 30.0 * torch.eye(10, dtype=torch.float64).repeat(5, 1)
    two_classes = torch.tensor([[9.0, 0.0, 0.0]] * 6 + [[0.0, 9.0, 0.0]] * 6, dtype=torch.float64)
    return [(noisy, 1), (noisy, 3), (noisy, 10), (confident, 5), (two_classes, 1), (two_classes, 2)]


def real_fake_k() -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """Real and fake features and k for the precision/recall exercise."""
    g = torch.Generator().manual_seed(10)
    real = torch.randn(40, 3, generator=g, dtype=torch.float64)
    fake = torch.randn(33, 3, generator=g, dtype=torch.float64) * 0.6 + 0.8
    collapsed = real[:1] + 1e-3 * torch.randn(20, 3, generator=g, dtype=torch.float64)
    return [(real, fake, 3), (real, fake, 1), (fake, real, 5), (real, real[::2], 3),
            (real, collapsed, 3)]  # fmt: skip


EXERCISES: dict[str, Exercise] = {
    "fid": Exercise(reference=metrics.fid_from_features, cases=feature_sets, evaluate=as_float),
    "kid": Exercise(reference=metrics.mmd2_unbiased, cases=equal_size_sets, evaluate=as_float),
    "inception_score": Exercise(
        reference=metrics.inception_score_from_logits, cases=class_logits, evaluate=as_floats
    ),
    "precision_recall": Exercise(
        reference=metrics.precision_recall_from_features, cases=real_fake_k, evaluate=as_floats
    ),
}
