"""Exercises of notebook 09, hyperparameter search: log-uniform draws and the median rule."""

from __future__ import annotations

from typing import Any

import torch

from course_lib import search
from course_lib.check import Exercise


def unit_draws() -> list[tuple[Any, float, float]]:
    """(u, low, high): u in [0, 1] as a float or a tensor, ranges over one to four decades."""
    return [
        (0.0, 1e-5, 1e-1),
        (1.0, 1e-5, 1e-1),
        (0.5, 1e-4, 1e-2),
        (0.25, 1e-4, 1.0),
        (torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]), 1e-5, 1e-2),
    ]


def trial_histories() -> list[tuple[list[float], list[float], str]]:
    """(this trial's values so far, the others' values at this step, direction)."""
    return [
        ([0.5], [0.4, 0.6, 0.7], "minimize"),
        ([0.9, 0.8], [0.4, 0.6, 0.7], "minimize"),
        ([0.5, 0.9], [0.4, 0.6, 0.7], "minimize"),  # the best so far counts, not the last
        ([0.5], [0.1, 0.6, 0.7], "minimize"),  # the median, not the mean
        ([0.55], [0.4, 0.5, 0.6, 0.7], "minimize"),  # a tie with the median is kept
        ([0.5], [0.4, 0.6, 0.7], "maximize"),
        ([0.65, 0.2], [0.4, 0.6, 0.7], "maximize"),
        ([3.0], [], "minimize"),  # nobody to compare with: keep it
    ]


EXERCISES: dict[str, Exercise] = {
    "log_uniform": Exercise(reference=search.log_uniform, cases=unit_draws),
    "median_rule": Exercise(reference=search.median_rule, cases=trial_histories),
}
