"""Exercises of notebook 00, setup and tour: mapping generator outputs to pixel values."""

from __future__ import annotations

import torch

from course_lib import viz
from course_lib.check import Exercise


def pixel_batches() -> list[tuple[torch.Tensor]]:
    """Generator outputs in [-1, 1] (and one out of range, which must be clamped)."""
    g = torch.Generator().manual_seed(0)
    return [
        (torch.tensor([-1.0, 0.0, 1.0]),),
        (torch.rand(2, 1, 4, 4, generator=g) * 2 - 1,),
        (torch.tensor([-1.5, 1.2, 0.5]),),  # out of range: clamped
    ]


EXERCISES: dict[str, Exercise] = {
    "to_unit_range": Exercise(reference=viz.to_unit_range, cases=pixel_batches),
}
