"""Coverage: modes of a 2-D mixture and classes of generated digits that samples reach."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from course_lib._checks import check_number, shown
from course_lib.data.toy import GaussianMixture2D
from course_lib.metrics.distances import as_float64
from course_lib.metrics.quality import classifier_logits

# --------------------------------------------------------------------------------------------
# Coverage: modes of a 2-D mixture, classes of generated digits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeCoverage:
    """Result of :func:`mode_coverage`; ``counts[k]`` = high-quality samples nearest to mode k."""

    modes_covered: int
    n_modes: int
    high_quality_fraction: float
    counts: tuple[int, ...]
    min_count: int

    def __str__(self) -> str:
        return (
            f"{self.modes_covered}/{self.n_modes} modes covered (>= {self.min_count} samples each),"
            f" {self.high_quality_fraction:.1%} high-quality samples"
        )


def mode_coverage(
    samples: Tensor,
    distribution: GaussianMixture2D,
    n_std: float = 3.0,
    min_count: int | None = None,
) -> ModeCoverage:
    """Modes covered and fraction of high-quality samples for a Gaussian mixture.

    A sample is high quality when its Euclidean distance to the nearest mode centre is at most
    ``n_std * distribution.std``; a mode is covered when at least ``min_count`` high-quality
    samples have it as nearest centre. Default ``min_count = max(1, round(20 * N / 2500))``:
    20 of 2,500 samples as in PacGAN, scaled to N (VEEGAN counts a mode with a single sample).
    For real samples of an isotropic 2-D Gaussian, P(r <= 3 std) = 1 - exp(-4.5) = 0.989.
    Reference: Srivastava et al. 2017 (VEEGAN), arXiv:1705.07761;
    Lin et al. 2018 (PacGAN), arXiv:1712.04086, 2D-ring / 2D-grid experiments.
    Shapes: samples (N, D) with D = centers.shape[1] (2); distribution has ``centers`` (K, D)
    and ``std`` (float) -> ModeCoverage.
    """
    if not hasattr(distribution, "centers") or not hasattr(distribution, "std"):
        raise ValueError(
            f"distribution must have centers and std (a data.GaussianMixture2D, e.g. "
            f"data.ring()), got {shown(distribution)}."
        )
    centers = as_float64(distribution.centers, "distribution.centers", 2)
    x = as_float64(samples, "samples", 2)
    if x.shape[0] == 0 or x.shape[1] != centers.shape[1]:
        raise ValueError(
            f"samples must have shape (N, {centers.shape[1]}) with N >= 1; got {tuple(x.shape)}."
        )
    n_std = check_number("n_std", n_std, 0.0, strict=True)
    if not distribution.std > 0:
        raise ValueError(f"distribution.std must be > 0; got {distribution.std}.")
    n = x.shape[0]
    if min_count is None:
        min_count = max(1, round(20 * n / 2500))
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1 (or None for the default); got {min_count}.")
    dist, nearest = torch.cdist(x, centers).min(dim=1)
    high_quality = dist <= n_std * distribution.std
    counts = torch.bincount(nearest[high_quality], minlength=centers.shape[0])
    return ModeCoverage(
        modes_covered=int((counts >= min_count).sum()),
        n_modes=centers.shape[0],
        high_quality_fraction=float(high_quality.double().mean()),
        counts=tuple(int(c) for c in counts),
        min_count=int(min_count),
    )


@dataclass(frozen=True)
class ClassCoverage:
    """Result of :func:`class_coverage`: predicted-class histogram of the confident samples."""

    counts: tuple[int, ...]
    fractions: tuple[float, ...]
    classes_covered: int
    n_classes: int
    confident_fraction: float

    def __str__(self) -> str:
        return (
            f"{self.classes_covered}/{self.n_classes} classes covered,"
            f" {self.confident_fraction:.1%} of samples classified confidently"
        )


def class_coverage(
    images: Tensor,
    classifier: nn.Module | None = None,
    confidence: float = 0.9,
    min_fraction: float = 0.2,
    batch_size: int = 500,
) -> ClassCoverage:
    """Which digit classes a generator produces, judged by a classifier.

    Keep the samples whose top softmax probability is >= ``confidence`` (default 0.9; unclear
    digits do not count for any class), histogram their predicted classes, and call class c
    covered when its fraction of the confident samples is >= ``min_fraction / n_classes``, i.e.
    at least ``min_fraction`` of its fair share (default 0.2: PacGAN's 20 of an expected 100 per
    mode on the 25-mode grid). The class analogue of mode counting on Stacked MNIST.
    Reference: Srivastava et al. 2017 (VEEGAN), arXiv:1705.07761; Lin et al. 2018
    (PacGAN), arXiv:1712.04086.
    Shapes: images (N, C, H, W) in [-1, 1]; classifier maps them to logits (N, n_classes);
    default the shipped :class:`DigitClassifier` on the images' device -> ClassCoverage
    (fractions are of the confident samples; all zero when none is confident).
    """
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence must be in [0, 1]; got {confidence}.")
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1]; got {min_fraction}.")
    logits = classifier_logits(images, classifier, batch_size)
    n_classes = logits.shape[1]
    prob, pred = logits.float().softmax(dim=1).max(dim=1)
    confident = prob >= confidence
    counts = torch.bincount(pred[confident], minlength=n_classes)
    n_confident = int(counts.sum())
    fractions = counts.double() / max(n_confident, 1)
    covered = (counts > 0) & (fractions >= min_fraction / n_classes - 1e-12)
    return ClassCoverage(
        counts=tuple(int(c) for c in counts),
        fractions=tuple(float(f) for f in fractions),
        classes_covered=int(covered.sum()),
        n_classes=n_classes,
        confident_fraction=n_confident / images.shape[0],
    )
