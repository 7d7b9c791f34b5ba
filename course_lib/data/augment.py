"""Augmentations of training images: whole-pixel shifts, which keep a digit's label, and a
horizontal flip, which does not (a mirrored 2 is no 2). All draw from torch's global RNG."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib._checks import check_int, check_number

# ------------------------------------------------------------------------------ augmentations


def translate(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by a random whole number of pixels, up to ``ratio`` of its size per axis,
    filling with zeros (DiffAugment's "translation"; Zhao et al. 2020, arXiv:2006.10738).
    Draws from torch's global RNG. Shapes: (N, C, H, W) -> (N, C, H, W)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy + sh  # index into the padded image
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx + sw
    padded = F.pad(x, (sw, sw, sh, sh))  # (N, C, H + 2sh, W + 2sw)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


@dataclass(frozen=True)
class RandomShift:
    """Shift each image by a random whole number of pixels in [-max_shift, max_shift] per axis.

    Zero fill, so the data's background must be 0 (images in [0, 1], e.g. binarized digits).
    Keeps labels and, with whole pixels, keeps binary images binary. The transformation of
    :class:`course_lib.gan.tricks.DiffAugment`'s "translation" with a chosen size.
    Draws from torch's global RNG. Use: ``VAETrainer(..., augment=RandomShift(2))``.
    Shapes: x (N, C, H, W), step (unused) -> (N, C, H, W).
    """

    max_shift: int = 2

    def __post_init__(self) -> None:
        check_int("max_shift", self.max_shift, 0)

    def __call__(self, x: Tensor, step: int) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"RandomShift needs images (N, C, H, W), got {tuple(x.shape)}.")
        return translate(x, ratio=self.max_shift / max(x.shape[2:]))


@dataclass(frozen=True)
class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``.

    Fine for photographs of scenes; wrong for digits and text, where a mirrored 2, 3, 5, 6 or 9
    is no longer that digit (often no digit at all): the augmented data set is then a different
    distribution with changed labels.
    Draws from torch's global RNG. Shapes: x (N, C, H, W), step (unused) -> (N, C, H, W).
    """

    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= check_number("p", self.p, 0.0) <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {self.p!r}.")

    def __call__(self, x: Tensor, step: int) -> Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"RandomHorizontalFlip needs images (N, C, H, W), got {tuple(x.shape)}."
            )
        flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.p
        return torch.where(flip, x.flip(-1), x)
