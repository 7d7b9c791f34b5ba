"""Sample-quality metrics: FID, KID, Inception Score, precision/recall, SSIM diversity, coverage.

- :mod:`~course_lib.metrics.distances`: the Fréchet distance and the kernel MMD on features, the
  exact Wasserstein-1 distance between two small point clouds.
- :mod:`~course_lib.metrics.features`: the shipped digit classifier (the offline feature
  extractor), :func:`extract_features`, image-level :func:`fid` and :func:`kid`.
- :mod:`~course_lib.metrics.quality`: Inception Score, precision/recall, SSIM diversity.
- :mod:`~course_lib.metrics.inception`: Inception-v3 features (torch-fidelity, network).
- :mod:`~course_lib.metrics.coverage`: modes of a 2-D mixture, classes of generated digits.
- :mod:`~course_lib.metrics.yardstick`: :class:`DigitYardstick`, the course's FID on digits28
  with its real-vs-real floor and noise level.

**FID and KID computed with the digit classifier's features are NOT comparable to published
FID/KID numbers, which use Inception-v3 pool features on natural images; the same holds for the
domain Inception Score (at most 10 for 10 digit classes).** Compare numbers only when they come
from the same feature extractor, the same sample sizes (FID is biased in N; Chong & Forsyth
2020, arXiv:1911.07023) and the same preprocessing.
"""

from course_lib.metrics.coverage import ClassCoverage, ModeCoverage, class_coverage, mode_coverage
from course_lib.metrics.distances import (
    fid_from_features,
    frechet_distance,
    kid_from_features,
    mmd2_unbiased,
    wasserstein1,
)
from course_lib.metrics.features import (
    WEIGHTS_FILE,
    DigitClassifier,
    extract_features,
    fid,
    kid,
    load_digit_classifier,
)
from course_lib.metrics.inception import (
    InceptionFeatures,
    InceptionUnavailableError,
    inception_extractor,
)
from course_lib.metrics.quality import (
    inception_score,
    inception_score_from_logits,
    precision_recall,
    precision_recall_from_features,
    ssim_diversity,
)
from course_lib.metrics.yardstick import DigitYardstick

__all__ = [
    "WEIGHTS_FILE",
    "ClassCoverage",
    "DigitClassifier",
    "DigitYardstick",
    "InceptionFeatures",
    "InceptionUnavailableError",
    "ModeCoverage",
    "class_coverage",
    "extract_features",
    "fid",
    "fid_from_features",
    "frechet_distance",
    "inception_extractor",
    "inception_score",
    "inception_score_from_logits",
    "kid",
    "kid_from_features",
    "load_digit_classifier",
    "mmd2_unbiased",
    "mode_coverage",
    "precision_recall",
    "precision_recall_from_features",
    "ssim_diversity",
    "wasserstein1",
]
