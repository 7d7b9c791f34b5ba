"""The course's FID yardstick on digits28: a random held-out reference set, its floor, its noise.

Notebook 02 builds it step by step; later notebooks use :class:`DigitYardstick`, so that every
FID of the course is measured the same way (one place to get right, not one copy per notebook).
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib.data.digits import check_n, digits28
from course_lib.metrics.distances import fid_from_features
from course_lib.metrics.features import extract_features, load_digit_classifier


class DigitYardstick:
    """FID against a fixed random set of held-out digits, next to its two sanity levels.

    ``DigitYardstick(n)`` draws 2n digits of the test split at random
    (``digits28("test", shuffle=True)``: their class counts vary, as a generator's samples' do)
    and embeds the first n once: the reference set ``reference`` (A). ``floor`` is the FID of
    the other n (``held_out``, B) against A: what a perfect generator scores at this N, above 0
    because FID is biased at finite N (Chong & Forsyth 2020, arXiv:1911.07023). ``noise`` is the
    FID of n uniform-noise images: what no digits at all score. ``yardstick(images)`` is the FID
    of ``images`` against A; pass n images, like the floor, so that the numbers compare.
    Features are the course's digit classifier's (``classifier``): these FIDs are NOT
    comparable with published Inception FIDs, only with each other at the same n.
    Shapes: images (M, 1, 28, 28) in [-1, 1] -> float.
    """

    def __init__(self, n: int, device: str | torch.device | None = None, seed: int = 0) -> None:
        check_n(n)
        test = digits28("test", n=2 * n, seed=seed, shuffle=True).tensors[0]
        self.n = n
        self.reference, self.held_out = test[:n], test[n:]
        self.classifier = load_digit_classifier(device)
        self.features = extract_features(self.reference, self.classifier)  # computed once
        self.floor = self(self.held_out)
        noise = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
        self.noise = self(noise)

    def __call__(self, images: Tensor) -> float:
        return fid_from_features(extract_features(images, self.classifier), self.features)

    def __repr__(self) -> str:
        return (
            f"DigitYardstick(n={self.n}): FID real vs real {self.floor:.1f}, "
            f"uniform noise vs real {self.noise:.1f}"
        )
