"""Datasets of the course; everything works offline except the torchvision downloads.

- :mod:`~course_lib.data.toy`: 2-D Gaussian mixtures (ring, grid, spiral).
- :mod:`~course_lib.data.digits`: ``digits28``, 28x28 digits rendered from matplotlib's fonts.
- :mod:`~course_lib.data.loaders`: :func:`load_images` by name, scikit-learn's digits,
  MNIST / Fashion-MNIST / CIFAR-10 with a one-line error naming the offline alternative.
- :mod:`~course_lib.data.augment`: label-preserving augmentations (shifts) and a flip.

Images are float32 tensors in [-1, 1] of shape (N, C, H, W). Randomness comes from an explicit
seed or ``torch.Generator``; nothing runs at import time.
"""

from course_lib.data.digits import DIGITS28_SIZES, DIGITS28_VERSION, digits28
from course_lib.data.loaders import (
    IMAGE_DATASETS,
    DatasetUnavailableError,
    load_images,
    sklearn_digits,
)
from course_lib.data.root import DATA_ROOT_ENV, data_root
from course_lib.data.toy import TOY_DISTRIBUTIONS, GaussianMixture2D, grid, ring, spiral, toy_distribution

__all__ = [
    "DATA_ROOT_ENV",
    "DIGITS28_SIZES",
    "DIGITS28_VERSION",
    "IMAGE_DATASETS",
    "TOY_DISTRIBUTIONS",
    "DatasetUnavailableError",
    "GaussianMixture2D",
    "data_root",
    "digits28",
    "grid",
    "load_images",
    "ring",
    "sklearn_digits",
    "spiral",
    "toy_distribution",
]
