"""Datasets of the course; everything works offline except the torchvision downloads.

- :mod:`~course_lib.data.toy`: 2-D Gaussian mixtures (ring, grid, spiral).
- :mod:`~course_lib.data.digits`: ``digits28``, 28x28 digits rendered from matplotlib's fonts;
  ``digits28(..., factors=True)`` adds the true factors of each image (columns
  ``DIGITS28_FACTORS``, fonts ``DIGITS28_FONTS``), :func:`render_digits` renders chosen digits
  with chosen factors, :func:`digits28_pairs` renders aligned pairs in two ``DIGITS28_STYLES``.
- :mod:`~course_lib.data.glyphs`: the renderer behind them: :func:`draw_digit_factors` (the
  random factors), :func:`render_ink` (factors -> ink), :func:`digit_glyphs` (the glyph list).
- :mod:`~course_lib.data.loaders`: :func:`load_images` by name, scikit-learn's digits,
  MNIST / Fashion-MNIST / CIFAR-10 with a one-line error naming the offline alternative.
- :mod:`~course_lib.data.augment`: label-preserving augmentations (shifts) and a flip.

Images are float32 tensors in [-1, 1] of shape (N, C, H, W). Randomness comes from an explicit
seed or ``torch.Generator``; nothing runs at import time.
"""

from course_lib.data.digits import (
    DIGITS28_SIZES,
    DIGITS28_STYLES,
    DIGITS28_VERSION,
    digits28,
    digits28_pairs,
    render_digits,
)
from course_lib.data.glyphs import (
    DIGITS28_FACTORS,
    DIGITS28_FONTS,
    digit_glyphs,
    draw_digit_factors,
    render_ink,
)
from course_lib.data.loaders import (
    IMAGE_DATASETS,
    DatasetUnavailableError,
    load_images,
    sklearn_digits,
)
from course_lib.data.root import DATA_ROOT_ENV, data_root
from course_lib.data.toy import (
    TOY_DISTRIBUTIONS,
    GaussianMixture2D,
    grid,
    ring,
    spiral,
    toy_distribution,
)

__all__ = [
    "DATA_ROOT_ENV",
    "DIGITS28_FACTORS",
    "DIGITS28_FONTS",
    "DIGITS28_SIZES",
    "DIGITS28_STYLES",
    "DIGITS28_VERSION",
    "IMAGE_DATASETS",
    "TOY_DISTRIBUTIONS",
    "DatasetUnavailableError",
    "GaussianMixture2D",
    "data_root",
    "digit_glyphs",
    "digits28",
    "digits28_pairs",
    "draw_digit_factors",
    "grid",
    "load_images",
    "render_digits",
    "render_ink",
    "ring",
    "sklearn_digits",
    "spiral",
    "toy_distribution",
]
