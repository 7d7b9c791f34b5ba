"""Exercises of notebook 08, monitoring and checkpointing: sample diversity and early stopping."""

from __future__ import annotations

import torch

from course_lib import monitor
from course_lib.check import Exercise, as_float


def sample_batches() -> list[tuple[torch.Tensor]]:
    """Batches (N, ...) for the diversity exercise: points, images, a collapsed batch, N = 2."""
    g = torch.Generator().manual_seed(16)
    return [
        (torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]),),  # distances 5, 0, 5: mean 10/3
        (torch.rand(9, 1, 4, 4, generator=g) * 2 - 1,),  # images: flatten each one
        (torch.ones(5, 3).repeat(1, 2),),  # total collapse: 0
        (torch.randn(2, 7, generator=g),),
        (torch.randn(40, 128, generator=g, dtype=torch.float64),),
    ]


def score_sequences() -> list[tuple[list[float], int, float, str]]:
    """(scores, patience, min_delta, mode) for the early-stopping exercise."""
    return [
        ([], 1, 0.0, "min"),
        ([5.0, 4.0, 3.0], 1, 0.0, "min"),
        ([5.0, 5.0], 1, 0.0, "min"),  # a tie is no improvement
        ([5.0, 6.0, 4.0, 4.5], 2, 0.0, "min"),  # the count starts again after 4.0
        ([5.0, 6.0, 7.0, 3.0], 2, 0.0, "min"),  # patience ran out before the late 3.0
        ([5.0, 4.95, 4.9], 2, 0.1, "min"),  # steps smaller than min_delta do not count
        ([5.0, 4.85, 4.9], 2, 0.1, "min"),
        ([0.1, 0.2, 0.3], 1, 0.0, "max"),
        ([0.3, 0.2, 0.25, 0.1], 3, 0.0, "max"),
        ([0.3, 0.2, 0.25, 0.1], 4, 0.0, "max"),
    ]


EXERCISES: dict[str, Exercise] = {
    "mean_pairwise_distance": Exercise(
        reference=monitor.mean_pairwise_distance, cases=sample_batches, evaluate=as_float
    ),
    "should_stop": Exercise(reference=monitor.should_stop, cases=score_sequences),
}
