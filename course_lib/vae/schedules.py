"""KL annealing schedules: linear and logistic warm-up (Bowman et al. 2016, arXiv:1511.06349)
and cyclical annealing (Fu et al. 2019, arXiv:1903.10145); each maps a step to a weight
in [0, 1]."""

from __future__ import annotations

import math
from dataclasses import dataclass

from course_lib._checks import check_int, check_number

# -------------------------------------------------------------------- KL annealing schedules


@dataclass(frozen=True)
class LinearAnnealing:
    """KL weight rising linearly from ``start`` to 1 over ``warmup_steps`` steps, then 1.

    weight(step) = start + (1 - start) * min(1, step / warmup_steps), step counted from 0 (the
    first update). KL cost annealing: start with (almost) no KL pressure so the decoder learns
    to use z before the KL term can switch it off.
    Reference: Bowman et al. 2016, arXiv:1511.06349, Section 3.1 ("KL cost annealing"; they
    use a sigmoid-shaped ramp, see :class:`LogisticAnnealing`).
    """

    warmup_steps: int
    start: float = 0.0

    def __post_init__(self) -> None:
        check_int("warmup_steps", self.warmup_steps, 1)
        if not 0.0 <= check_number("start", self.start, 0.0) <= 1.0:
            raise ValueError(f"start must lie in [0, 1], got {self.start!r}.")

    def __call__(self, step: int) -> float:
        return self.start + (1.0 - self.start) * min(1.0, max(step, 0) / self.warmup_steps)


@dataclass(frozen=True)
class LogisticAnnealing:
    """KL weight following a logistic curve: 1 / (1 + exp(-rate * (step - midpoint))).

    The sigmoid-shaped ramp of Bowman et al. 2016 (arXiv:1511.06349, Section 3.1 and Fig. 2):
    near 0 early, 0.5 at ``midpoint``, near 1 after about midpoint + 5 / rate.
    """

    midpoint: int
    rate: float = 0.01

    def __post_init__(self) -> None:
        check_int("midpoint", self.midpoint, 0)
        check_number("rate", self.rate, 0.0, strict=True)

    def __call__(self, step: int) -> float:
        return 1.0 / (1.0 + math.exp(-min(self.rate * (step - self.midpoint), 700.0)))


@dataclass(frozen=True)
class CyclicalAnnealing:
    """KL weight repeating a linear ramp: in each ``period``, 0 -> 1 over its first ``ratio``.

    tau = (step mod period) / period; weight = min(1, tau / ratio). Re-opening the KL pressure
    every cycle lets later cycles reuse the latent codes learned in earlier ones.
    Reference: Fu et al. 2019, arXiv:1903.10145 (a linear f and proportion R = ratio;
    their period is T / M for M cycles in T steps; their t - 1 is this step).
    """

    period: int
    ratio: float = 0.5

    def __post_init__(self) -> None:
        check_int("period", self.period, 1)
        if not 0.0 < check_number("ratio", self.ratio, 0.0) <= 1.0:
            raise ValueError(f"ratio must lie in (0, 1], got {self.ratio!r}.")

    def __call__(self, step: int) -> float:
        tau = (max(step, 0) % self.period) / self.period
        return min(1.0, tau / self.ratio)
