"""Sample-quality metrics: FID, KID, Inception Score, precision/recall, SSIM diversity, coverage.

Features. Inception-v3 weights cannot be downloaded offline, so the course ships a small CNN,
:class:`DigitClassifier`, trained on the offline ``digits28`` set by
``tools/train_digit_classifier.py``; :func:`load_digit_classifier` loads it. Its 128-d
penultimate activations are the default features of :func:`fid`, :func:`kid` and
:func:`precision_recall`, and its logits the default class posteriors of :func:`inception_score`.
Where the ``torch-fidelity`` package is installed and the network is reachable (once: the
weights are cached), :func:`inception_extractor` gives the standard Inception-v3 pool3 features
(2048-d, images resized to 299x299 inside the network) as an option; offline it raises
:class:`InceptionUnavailableError` with a one-line message saying what to do.

**FID and KID computed with these domain features are NOT comparable to published FID/KID
numbers, which use Inception-v3 pool features on natural images; the same holds for the domain
Inception Score (at most 10 for 10 digit classes, vs 1000 ImageNet classes).** Compare numbers
only when they come from the same feature extractor, the same sample sizes (FID is biased in N
and shrinks as N grows; Chong & Forsyth 2020, arXiv:1911.07023) and the same preprocessing
(resizing, value range, quantization).

Everything here is computed in float64 on the CPU from features (SSIM runs on the images'
device); the feature extractor itself runs on its own device. Nothing happens at import time.
"""

from __future__ import annotations

import inspect
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from course_lib.data import GaussianMixture2D

WEIGHTS_FILE = "digit_classifier.pt"
"""File name of the shipped classifier weights, inside ``course_lib/weights/``."""

_TRAIN_HINT = "run `python tools/train_digit_classifier.py` from the repository root to rebuild it"

ArrayLike = Tensor | np.ndarray


# --------------------------------------------------------------------------------------------
# Fréchet distance and kernel distance on features
# --------------------------------------------------------------------------------------------


def _as_float64(x: ArrayLike, name: str, dim: int) -> Tensor:
    """``x`` as a float64 CPU tensor with ``dim`` dimensions and finite values, else ValueError."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.asarray(x))
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array; got {type(x).__name__}.")
    if x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimension(s); got shape {tuple(x.shape)}.")
    x = x.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(
            f"{name} contains NaN or inf; check the generator or features that produced it."
        )
    return x


def _sqrtm_psd(sigma: Tensor) -> Tensor:
    """Symmetric square root of a symmetric PSD matrix (negative rounding eigenvalues -> 0)."""
    w, v = torch.linalg.eigh((sigma + sigma.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2), squared.

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).
    Reference: Heusel et al. 2017, arXiv:1706.08500, eq. 6; Dowson & Landau 1982.
    Computed in float64. The trace term uses Tr((S1 S2)^{1/2}) = ||S1^{1/2} S2^{1/2}||_* (the sum
    of singular values), since S1^{1/2} S2 S1^{1/2} = A A^T with A = S1^{1/2} S2^{1/2}; this is
    real, symmetric in the two arguments and stable for singular covariances (fewer samples than
    features), where ``scipy.linalg.sqrtm(S1 @ S2)`` needs the eps-offset and imaginary-part
    workarounds of the reference implementations. Rounding below zero is clipped to 0.
    Shapes: mu (d,), sigma (d, d) symmetric PSD (a covariance) -> float.
    """
    m1, m2 = _as_float64(mu1, "mu1", 1), _as_float64(mu2, "mu2", 1)
    s1, s2 = _as_float64(sigma1, "sigma1", 2), _as_float64(sigma2, "sigma2", 2)
    d = m1.shape[0]
    if m2.shape != (d,):
        raise ValueError(f"mu2 must have shape ({d},) like mu1; got {tuple(m2.shape)}.")
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (d, d):
            raise ValueError(
                f"{name} must have shape ({d}, {d}) to match mu1; got {tuple(s.shape)}."
            )
    tr_covmean = torch.linalg.svdvals(_sqrtm_psd(s1) @ _sqrtm_psd(s2)).sum()
    value = (m1 - m2).square().sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean
    return max(float(value), 0.0)


def _check_feature_pair(
    a: ArrayLike, b: ArrayLike, min_rows: int, names: tuple[str, str] = ("a", "b")
) -> tuple[Tensor, Tensor]:
    a, b = _as_float64(a, names[0], 2), _as_float64(b, names[1], 2)
    for name, x in zip(names, (a, b), strict=True):
        if x.shape[0] < min_rows:
            raise ValueError(
                f"{name} needs at least {min_rows} rows (samples); got {x.shape[0]}. "
                "Pass more samples."
            )
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same feature dimension; got {a.shape[1]} "
            f"and {b.shape[1]}. Extract both with the same extractor."
        )
    return a, b


def fid_from_features(a: ArrayLike, b: ArrayLike) -> float:
    """FID between two feature sets: :func:`frechet_distance` of their Gaussian fits.

    mu = sample mean, sigma = unbiased sample covariance (divides by N - 1), in float64.
    Reference: Heusel et al. 2017, arXiv:1706.08500, Section 4 / eq. 6. FID is biased in the
    sample size (Chong & Forsyth 2020, arXiv:1911.07023): compare only equal N.
    Shapes: a (N, F), b (M, F), N, M >= 2 -> float.
    """
    a, b = _check_feature_pair(a, b, min_rows=2)
    return frechet_distance(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))


def _polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """k(x, y) = (x.y / d + 1)^3 for all pairs: (m, d), (n, d) -> (m, n)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD^2 with the cubic polynomial kernel, equal sample sizes m: (m, d), (m, d) -> ().

    MMD^2_u = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
              - 2 sum_{i,j} k(x_i, y_j) / m^2.
    """
    m = x.shape[0]
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    sum_xx = k_xx.sum() - k_xx.diagonal().sum()  # i != j
    sum_yy = k_yy.sum() - k_yy.diagonal().sum()
    return (sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def mmd2_unbiased(x: ArrayLike, y: ArrayLike) -> float:
    """Unbiased MMD^2 between two equal-size feature sets with the cubic polynomial kernel.

    k(x, y) = (x.y / d + 1)^3 and, for m rows each,
    MMD^2_u = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
              - 2 sum_{i,j} k(x_i, y_j) / m^2.
    Leaving out the i = j terms makes it an unbiased U-statistic (Gretton et al. 2012, JMLR 13,
    Lemma 6): its expectation is the population MMD^2, 0 when both sets come from the same
    distribution, so single estimates can be negative. One subset of :func:`kid_from_features`.
    Reference: Binkowski et al. 2018, arXiv:1801.01401, Section 3 (eq. 4 and the KID paragraph).
    Shapes: x (m, F), y (m, F), m >= 2 -> float; computed in float64.
    """
    a, b = _check_feature_pair(x, y, min_rows=2, names=("x", "y"))
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"x and y must have the same number of rows; got {a.shape[0]} and {b.shape[0]}. "
            "Subsample the larger set, or use kid_from_features, which draws equal subsets."
        )
    return float(_mmd2_unbiased(a, b))


def kid_from_features(
    a: ArrayLike, b: ArrayLike, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: unbiased MMD^2 between feature sets with the kernel k(x, y) = (x.y / d + 1)^3.

    MMD^2_u = 1/(m(m-1)) sum_{i!=j} [k(x_i,x_j) + k(y_i,y_j)] - 2/m^2 sum_{i,j} k(x_i,y_j), averaged
    over ``n_subsets`` random subsets of m = min(subset_size, N, M) rows drawn without replacement
    from each set (a ``torch.Generator`` seeded with ``seed``; for each subset a permutation of a,
    then of b). Unbiased, so it can be slightly negative and is ~0 for equal distributions.
    Reference: Binkowski et al. 2018, arXiv:1801.01401, Section 3 (eq. 4 and the KID paragraph).
    Shapes: a (N, F), b (M, F), N, M >= 2 -> (mean, std) over subsets; std is the population
    std (ddof=0) of the subset estimates, as in the authors' code and torchmetrics: a spread of
    the estimator, not a standard error of the mean.
    """
    a, b = _check_feature_pair(a, b, min_rows=2)
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be >= 1; got {n_subsets}.")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2; got {subset_size}.")
    m = min(subset_size, a.shape[0], b.shape[0])
    generator = torch.Generator().manual_seed(seed)
    scores = torch.empty(n_subsets, dtype=torch.float64)
    for i in range(n_subsets):
        idx_a = torch.randperm(a.shape[0], generator=generator)[:m]
        idx_b = torch.randperm(b.shape[0], generator=generator)[:m]
        scores[i] = _mmd2_unbiased(a[idx_a], b[idx_b])
    return float(scores.mean()), float(scores.std(correction=0))


# --------------------------------------------------------------------------------------------
# The shipped digit classifier (feature extractor)
# --------------------------------------------------------------------------------------------


class DigitClassifier(nn.Module):
    """A small CNN for 28x28 digits: (N, 1, 28, 28) in [-1, 1] -> logits (N, 10).

    Layers: two 3x3 conv-BN-ReLU blocks at 28x28 (``width`` channels), max-pool, two at 14x14
    (2 * ``width``), max-pool, flatten (2 * width * 7 * 7), Linear -> ``feature_dim`` (128) + ReLU
    (the features), dropout, Linear -> 10. About 0.23 M parameters for width 16.
    Input handling (documented departures from "28x28 grey only"): 3-channel images are turned
    grey with the ITU-R BT.601 luma weights (0.299, 0.587, 0.114); square images of another size
    are resized to 28x28 with antialiased bilinear interpolation (``F.interpolate(...,
    antialias=True)``). Images must be floating point in [-1, 1]; nothing is rescaled.
    """

    def __init__(self, width: int = 16, feature_dim: int = 128, n_classes: int = 10) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]

        self.width, self.feature_dim, self.n_classes = width, feature_dim, n_classes
        w = width
        # fmt: off
        self.body = nn.Sequential(
            *block(1, w), *block(w, w), nn.MaxPool2d(2),  # (N, w, 14, 14)
            *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),  # (N, 2w, 7, 7)
            nn.Flatten(),
            nn.Linear(2 * w * 7 * 7, feature_dim),
            nn.ReLU(inplace=True),  # (N, feature_dim): the features
        )
        # fmt: on
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, n_classes))

    def prepare(self, x: Tensor) -> Tensor:
        """Check and convert images to (N, 1, 28, 28) in the classifier's dtype (see class doc)."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be an image tensor (N, C, H, W); got {shape}.")
        if not x.is_floating_point():
            raise ValueError(
                f"x must be floating point in [-1, 1]; got dtype {x.dtype}. "
                "Convert with x.float() / 127.5 - 1 for 0..255 images."
            )
        if x.shape[1] == 3:
            luma = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
            x = (x * luma.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
        elif x.shape[1] != 1:
            raise ValueError(
                f"x must have 1 or 3 channels; got {x.shape[1]} (shape {tuple(x.shape)})."
            )
        if x.shape[2] != x.shape[3]:
            raise ValueError(f"x must hold square images; got {x.shape[2]}x{x.shape[3]}.")
        x = x.to(self.head[1].weight.dtype)
        if x.shape[2] != 28:
            x = F.interpolate(
                x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True
            )
        return x

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (after ReLU): (N, C, H, W) -> (N, feature_dim), default 128."""
        return self.body(self.prepare(x))

    def forward(self, x: Tensor) -> Tensor:
        """Logits over the 10 digit classes: (N, C, H, W) -> (N, 10)."""
        return self.head(self.features(x))


def _weights_file(path: str | Path | None) -> Any:
    """``path``, or the packaged weights as an importlib.resources Traversable (also in zips)."""
    if path is not None:
        return Path(path)
    return resources.files("course_lib").joinpath("weights", WEIGHTS_FILE)


def load_digit_classifier(
    device: torch.device | str | None = None, path: str | Path | None = None
) -> DigitClassifier:
    """The shipped :class:`DigitClassifier`, in eval mode, with ``requires_grad`` off.

    Loads ``course_lib/weights/digit_classifier.pt`` (or ``path``) with
    ``torch.load(weights_only=True)``: a dict with ``state_dict`` and ``meta`` (architecture
    arguments, held-out accuracy, data version), exposed as the model's ``meta`` attribute.
    ``device`` defaults to the CPU. A missing file raises FileNotFoundError, an unreadable or
    mismatched one RuntimeError; both messages say to run ``tools/train_digit_classifier.py``.
    """
    file = _weights_file(path)
    if not file.is_file():
        raise FileNotFoundError(f"digit classifier weights not found at {file}; {_TRAIN_HINT}.")
    try:
        checkpoint = torch.load(
            io.BytesIO(file.read_bytes()), map_location="cpu", weights_only=True
        )
        meta: dict[str, Any] = dict(checkpoint["meta"])
        model = DigitClassifier(**meta["arch"])
        model.load_state_dict(checkpoint["state_dict"])
    except Exception as err:  # any unpickling/shape/key error means the file is unusable
        raise RuntimeError(
            f"digit classifier weights at {file} are corrupt or do not match DigitClassifier "
            f"({type(err).__name__}); {_TRAIN_HINT}."
        ) from err
    model.meta = meta
    model.requires_grad_(False)
    return model.eval().to(device or "cpu")


# --------------------------------------------------------------------------------------------
# Image-level FID / KID
# --------------------------------------------------------------------------------------------

Extractor = nn.Module | Callable[[Tensor], Tensor]


def _check_images(images: Tensor, name: str) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(
            f"{name} must be a non-empty image tensor (N, C, H, W); got {got}. "
            "For a TensorDataset pass dataset.tensors[0]."
        )


def _run_batched(
    fn: Callable[[Tensor], Tensor], module: Any, images: Tensor, batch_size: int, name: str
) -> Tensor:
    """fn over images in batches under no_grad, on the module's device, in eval mode -> CPU."""
    _check_images(images, name)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    params = list(module.parameters()) if isinstance(module, nn.Module) else []
    device = params[0].device if params else images.device
    modes = {m: m.training for m in module.modules()} if isinstance(module, nn.Module) else {}
    if isinstance(module, nn.Module):
        module.eval()
    try:
        with torch.no_grad():
            out = [
                fn(images[i : i + batch_size].to(device)).cpu()
                for i in range(0, images.shape[0], batch_size)
            ]
    finally:
        for m, training in modes.items():
            m.training = training
    return torch.cat(out)


def extract_features(
    images: Tensor, extractor: Extractor | None = None, batch_size: int = 500
) -> Tensor:
    """Features of images: ``extractor.features(x)`` if it has that method, else ``extractor(x)``.

    Default extractor: the shipped :class:`DigitClassifier` (F = 128), loaded on the images'
    device. Runs under ``torch.no_grad()`` in eval mode (a module's train/eval mode is restored
    afterwards), in batches of ``batch_size`` on the extractor's device.
    Shapes: images (N, C, H, W) in [-1, 1] -> features (N, F), float64, on the CPU.
    """
    if extractor is None:
        _check_images(images, "images")
        extractor = load_digit_classifier(images.device)
    fn = extractor.features if hasattr(extractor, "features") else extractor
    feats = _run_batched(fn, extractor, images, batch_size, "images")
    if feats.dim() != 2 or feats.shape[0] != images.shape[0]:
        raise ValueError(
            f"extractor must map (N, C, H, W) to (N, F); got {tuple(feats.shape)} for "
            f"{images.shape[0]} images."
        )
    return feats.to(torch.float64)


def fid(images_a: Tensor, images_b: Tensor, extractor: Extractor | None = None) -> float:
    """FID between two image sets in the features of ``extractor`` (default: the digit CNN).

    :func:`fid_from_features` of :func:`extract_features` of each set. Reference: Heusel et al.
    2017, arXiv:1706.08500, eq. 6.
    NOT comparable to published Inception-v3 FID: with the default extractor this is a domain
    FID in the 128-d features of the course's digit classifier. Compare two numbers only when
    they use the same extractor, the same sample sizes (FID is biased in N; Chong & Forsyth
    2020, arXiv:1911.07023) and the same preprocessing.
    Shapes: images (N, C, H, W), (M, C, H, W) in [-1, 1], N, M >= 2 -> float (>= 0).
    """
    _check_images(images_a, "images_a")
    _check_images(images_b, "images_b")
    if extractor is None:
        extractor = load_digit_classifier(images_a.device)
    return fid_from_features(
        extract_features(images_a, extractor), extract_features(images_b, extractor)
    )


def kid(
    images_a: Tensor,
    images_b: Tensor,
    extractor: Extractor | None = None,
    n_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (mean, std over subsets) between two image sets in the features of ``extractor``.

    :func:`kid_from_features` of :func:`extract_features` of each set. Reference: Binkowski et al.
    2018, arXiv:1801.01401, Section 3. Same caveat as :func:`fid`: with the default extractor it
    is not comparable to Inception KID. Unbiased in N, unlike FID.
    Shapes: images (N, C, H, W), (M, C, H, W) in [-1, 1] -> (mean, std).
    """
    _check_images(images_a, "images_a")
    _check_images(images_b, "images_b")
    if extractor is None:
        extractor = load_digit_classifier(images_a.device)
    return kid_from_features(
        extract_features(images_a, extractor),
        extract_features(images_b, extractor),
        n_subsets=n_subsets,
        subset_size=subset_size,
        seed=seed,
    )


# --------------------------------------------------------------------------------------------
# Inception Score, precision/recall and SSIM diversity
# --------------------------------------------------------------------------------------------


def inception_score_from_logits(logits: ArrayLike, splits: int = 10) -> tuple[float, float]:
    """Inception Score from class logits: exp(E_x KL(p(y|x) || p(y))), mean and std over splits.

    p(y|x) = softmax(logits); the rows are cut into ``splits`` consecutive parts (part i holds
    rows i*N//splits to (i+1)*N//splits - 1, as in the authors' code), and in each part
    p(y) = mean of p(y|x) over the part and IS = exp(mean_x sum_y p(y|x) log(p(y|x) / p(y))).
    High when each sample is classified confidently (low entropy of p(y|x)) AND the classes are
    balanced (high entropy of p(y)); it ranges from 1 to the number of classes C and never looks
    at real data, so it cannot tell a generator that copies one perfect image per class from
    the data distribution (Barratt & Sharma 2018, arXiv:1801.01973).
    Reference: Salimans et al. 2016, arXiv:1606.03498, Section 4 (the formula) and their
    ``inception_score.py`` (10 splits, mean and population std of the split scores).
    Departures: any classifier's logits (the course uses its digit classifier: a domain IS, at
    most 10, NOT comparable to the published Inception-v3 IS over 1000 ImageNet classes); the
    rows are split in the given order (torchmetrics' ``InceptionScore`` shuffles them first and
    reports the Bessel-corrected std). Computed in float64 from log-softmax, so confident
    logits do not underflow; 0 log 0 counts as 0.
    Shapes: logits (N, C), C >= 2, 1 <= splits <= N -> (mean, std) over the splits.
    """
    z = _as_float64(logits, "logits", 2)
    n, n_classes = z.shape
    if n_classes < 2:
        raise ValueError(
            f"logits must have at least 2 classes (columns); got shape {tuple(z.shape)}."
        )
    if isinstance(splits, bool) or not isinstance(splits, int) or not 1 <= splits <= n:
        raise ValueError(
            f"splits must be an int between 1 and the number of samples ({n}); got {splits!r}."
        )
    log_p = torch.log_softmax(z, dim=1)  # log p(y|x)
    scores = torch.empty(splits, dtype=torch.float64)
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]
        log_marginal = torch.logsumexp(part, dim=0) - math.log(part.shape[0])  # log p(y)
        p = part.exp()
        kl = torch.where(p > 0, p * (part - log_marginal), 0.0).sum(dim=1)  # (n_part,)
        scores[i] = kl.mean().exp()
    return float(scores.mean()), float(scores.std(correction=0))


def inception_score(
    images: Tensor,
    classifier: nn.Module | None = None,
    splits: int = 10,
    batch_size: int = 500,
) -> tuple[float, float]:
    """Domain Inception Score of generated images, judged by a classifier (default: digit CNN).

    :func:`inception_score_from_logits` of ``classifier(images)``, run in eval mode without
    gradients, in batches of ``batch_size`` on the classifier's device. With the default
    shipped :class:`DigitClassifier` the score lies in [1, 10]; it is NOT comparable to
    published Inception-v3 scores (1000 ImageNet classes, Inception's own preprocessing).
    Shuffle the images first if their order follows the class (the splits are consecutive).
    Reference: Salimans et al. 2016, arXiv:1606.03498, Section 4; Barratt & Sharma 2018,
    arXiv:1801.01973 (why the number is easy to misread).
    Shapes: images (N, C, H, W) in [-1, 1] -> (mean, std) over ``splits``.
    """
    logits = _classifier_logits(images, classifier, batch_size)
    return inception_score_from_logits(logits, splits=splits)


def _classifier_logits(images: Tensor, classifier: nn.Module | None, batch_size: int) -> Tensor:
    """Logits (N, n_classes) of ``classifier`` (default: the shipped digit classifier)."""
    _check_images(images, "images")
    if classifier is None:
        classifier = load_digit_classifier(images.device)
    logits = _run_batched(classifier, classifier, images, batch_size, "images")
    if logits.dim() != 2 or logits.shape[0] != images.shape[0]:
        raise ValueError(
            f"classifier must return logits (N, n_classes); got {tuple(logits.shape)}."
        )
    return logits


def _knn_radii(x: Tensor, k: int, batch_size: int) -> Tensor:
    """Distance from each row of x to its k-th nearest other row: (n, F) -> (n,)."""
    radii = torch.empty(x.shape[0], dtype=x.dtype)
    for i in range(0, x.shape[0], batch_size):
        dist = torch.cdist(x[i : i + batch_size], x)  # includes the 0 to itself: take k + 1
        radii[i : i + batch_size] = dist.kthvalue(k + 1, dim=1).values
    return radii


def _inside_any_ball(points: Tensor, centres: Tensor, radii: Tensor, batch_size: int) -> Tensor:
    """For each point: is it within radii[j] of some centres[j]? (n, F), (m, F), (m,) -> (n,)."""
    inside = torch.empty(points.shape[0], dtype=torch.bool)
    for i in range(0, points.shape[0], batch_size):
        dist = torch.cdist(points[i : i + batch_size], centres)  # (b, m)
        inside[i : i + batch_size] = (dist <= radii).any(dim=1)
    return inside


def precision_recall_from_features(
    real: ArrayLike, fake: ArrayLike, k: int = 3, batch_size: int = 1000
) -> tuple[float, float]:
    """Improved precision and recall of generated features against real ones (k-NN manifolds).

    Each real feature phi_r gets a ball of radius ||phi_r - NN_k(phi_r)||, its distance to its
    k-th nearest other real feature; the union of these balls estimates the real manifold.
    precision = fraction of fake features inside at least one real ball (are samples realistic?);
    recall = fraction of real features inside at least one fake ball, the balls now built from
    the fakes' own k-NN distances (is all of the data covered?). A collapsed generator scores
    high precision and low recall; a diverse but sloppy one the reverse. precision(real, fake)
    equals recall(fake, real). Distances are Euclidean, in float64; a point exactly on a ball's
    boundary counts as inside, as in the authors' code.
    Reference: Kynkäänniemi et al. 2019, arXiv:1904.06991, Section 2, eq. 1-3 (k = 3, VGG-16
    features, 50k images in the paper; any features work, compare only like with like).
    Shapes: real (N, F), fake (M, F), with N, M >= k + 1 -> (precision, recall), each in [0, 1].
    ``batch_size`` rows of distances are held at a time (memory, not the result).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1 (the paper uses 3); got {k!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    real_t, fake_t = _check_feature_pair(real, fake, min_rows=k + 1, names=("real", "fake"))
    radii_real = _knn_radii(real_t, k, batch_size)
    radii_fake = _knn_radii(fake_t, k, batch_size)
    precision = _inside_any_ball(fake_t, real_t, radii_real, batch_size).double().mean()
    recall = _inside_any_ball(real_t, fake_t, radii_fake, batch_size).double().mean()
    return float(precision), float(recall)


def precision_recall(
    images_real: Tensor, images_fake: Tensor, extractor: Extractor | None = None, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall of generated images, in the features of ``extractor``.

    :func:`precision_recall_from_features` of :func:`extract_features` of each set (default
    extractor: the shipped digit classifier, 128-d). Reference: Kynkäänniemi et al. 2019,
    arXiv:1904.06991, Section 2 (they use VGG-16 features; numbers from different features or
    sample sizes are not comparable).
    Shapes: images (N, C, H, W), (M, C, H, W) in [-1, 1], N, M >= k + 1 -> (precision, recall).
    """
    _check_images(images_real, "images_real")
    _check_images(images_fake, "images_fake")
    if extractor is None:
        extractor = load_digit_classifier(images_real.device)
    return precision_recall_from_features(
        extract_features(images_real, extractor), extract_features(images_fake, extractor), k=k
    )


def ssim_diversity(
    images: Tensor, n_pairs: int = 1000, seed: int = 0, batch_size: int = 500
) -> float:
    """Mean SSIM between random pairs of distinct samples: higher means LESS diverse.

    Draws ``n_pairs`` pairs (i, j), i uniform, j uniform among the other N - 1 indices, with a
    ``torch.Generator`` seeded by ``seed``, and averages SSIM(x_i, x_j) computed by
    ``torchmetrics.functional.image.structural_similarity_index_measure`` (Gaussian window 11,
    sigma 1.5, K1 = 0.01, K2 = 0.03) on images mapped from [-1, 1] to [0, 1] (clamped), with
    data_range 1. A generator that repeats one image scores ~1; compare with the same statistic
    on real data, since similar-looking classes give real data a high score too.
    Reference: SSIM, Wang et al. 2004, IEEE TIP 13(4), eq. 13; as a diversity measure (with
    MS-SSIM, which needs larger images than 28x28) Odena et al. 2017, arXiv:1610.09585,
    Section 4.2. Computed on the images' device.
    Shapes: images (N, C, H, W) in [-1, 1], N >= 2, H, W >= 11 -> float (mean over pairs).
    """
    _check_images(images, "images")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [-1, 1]; got dtype {images.dtype}.")
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"images needs at least 2 samples to form pairs; got {n}.")
    if min(images.shape[-2:]) < 11:
        raise ValueError(
            f"images must be at least 11x11 (the SSIM window); got {tuple(images.shape[-2:])}. "
            "Upsample small images first, e.g. with F.interpolate."
        )
    if n_pairs < 1 or batch_size < 1:
        raise ValueError(f"n_pairs and batch_size must be >= 1; got {n_pairs} and {batch_size}.")
    from torchmetrics.functional.image import structural_similarity_index_measure

    g = torch.Generator().manual_seed(seed)
    i = torch.randint(n, (n_pairs,), generator=g)
    j = (i + torch.randint(1, n, (n_pairs,), generator=g)) % n  # never i
    x = ((images.detach() + 1) / 2).clamp(0, 1)
    values = []
    for s in range(0, n_pairs, batch_size):
        ii, jj = i[s : s + batch_size].to(x.device), j[s : s + batch_size].to(x.device)
        ssim = structural_similarity_index_measure(x[ii], x[jj], data_range=1.0, reduction="none")
        values.append(ssim.double().cpu())
    return float(torch.cat(values).mean())


# --------------------------------------------------------------------------------------------
# Inception-v3 features (optional: torch-fidelity and a network connection)
# --------------------------------------------------------------------------------------------

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
"""torch-fidelity's PyTorch port of the TensorFlow FID Inception weights (downloaded once)."""

_INCEPTION_FALLBACK = "or leave extractor=None to use the course's digit-classifier features"


class InceptionUnavailableError(RuntimeError):
    """Inception-v3 FID features cannot be built here: package missing or weights unreachable."""


class InceptionFeatures(nn.Module):
    """Inception-v3 features the way FID uses them: images in [-1, 1] -> (N, feature_dim).

    ``net`` maps uint8 RGB images (N, 3, H, W) to features and resizes them to 299x299 itself
    (torchmetrics' ``NoTrainInceptionV3``, built by :func:`inception_extractor`). This wrapper
    turns the course's images into that input: grey images are repeated to 3 channels, values
    are mapped from [-1, 1] to 0..255 and rounded to uint8, as saving a PNG does (torchmetrics'
    ``normalize=True`` truncates instead: at most one grey level of difference). The network
    runs in chunks of ``batch_size`` images (299x299 activations are large).
    """

    def __init__(self, net: nn.Module, feature_dim: int = 2048, batch_size: int = 64) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        self.net, self.feature_dim, self.batch_size = net, feature_dim, batch_size

    def prepare(self, x: Tensor) -> Tensor:
        """(N, 1 or 3, H, W) float in [-1, 1] -> (N, 3, H, W) uint8 in 0..255."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be images (N, 1 or 3, H, W); got {shape}.")
        if not x.is_floating_point():
            raise ValueError(f"x must be floating point in [-1, 1]; got dtype {x.dtype}.")
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    def features(self, x: Tensor) -> Tensor:
        """Pool features (N, feature_dim), float32, on the network's device."""
        x = self.prepare(x)
        out = [self.net(x[i : i + self.batch_size]) for i in range(0, x.shape[0], self.batch_size)]
        return torch.cat(out).reshape(x.shape[0], -1).float()

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def _build_inception(feature_dim: int, weights_path: str | None) -> nn.Module:
    """torchmetrics' FID Inception-v3 (torch-fidelity weights; downloads them if not cached)."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    kwargs: dict[str, Any] = {}
    if "antialias" in inspect.signature(NoTrainInceptionV3.__init__).parameters:
        kwargs["antialias"] = False  # resize like the original TensorFlow code and torch-fidelity
    return NoTrainInceptionV3(
        name="inception-v3-compat",
        features_list=[str(feature_dim)],
        feature_extractor_weights_path=weights_path,
        **kwargs,
    )


def inception_extractor(
    device: torch.device | str | None = None,
    feature_dim: int = 2048,
    weights_path: str | Path | None = None,
    batch_size: int = 64,
) -> InceptionFeatures:
    """The standard FID feature extractor, Inception-v3 pool3 (2048-d), for :func:`fid` & co.

    Pass it as ``extractor=`` to :func:`fid`, :func:`kid`, :func:`precision_recall` or
    :func:`extract_features`. It needs the ``torch-fidelity`` package and, once, the network
    (about 100 MB of weights, cached by torch under ``$TORCH_HOME/hub``), or ``weights_path``
    pointing at a local copy of ``pt_inception-2015-12-05-6726825d.pth``. Otherwise it raises
    :class:`InceptionUnavailableError` with a one-line message saying what to do.
    What makes an FID comparable with published numbers, and what this follows: the TensorFlow
    FID weights (not torchvision's ImageNet ``inception_v3`` weights, which give different
    numbers), images resized to 299x299 inside the network with TF-1.x bilinear interpolation
    (no antialiasing), the 2048-d pool3 features, and the same N (usually 50,000 samples against
    the training set). Digits are not natural images: Inception features describe them poorly,
    which is one reason the course's digit classifier is the default.
    Reference: Heusel et al. 2017, arXiv:1706.08500 (FID with pool3); Szegedy et al. 2016,
    arXiv:1512.00567 (Inception-v3); torch-fidelity (Obukhov et al. 2020).
    Shapes: the extractor maps (N, 1 or 3, H, W) in [-1, 1] to (N, feature_dim) float32;
    ``feature_dim`` in {64, 192, 768, 2048} picks the layer (2048 = pool3, the FID standard).
    """
    if feature_dim not in (64, 192, 768, 2048):
        raise ValueError(
            "feature_dim must be 64, 192, 768 or 2048 (pool3, the FID standard); "
            f"got {feature_dim}."
        )
    if weights_path is not None and not Path(weights_path).is_file():
        raise InceptionUnavailableError(
            f"no Inception weights file at {weights_path}: download {INCEPTION_WEIGHTS_FILE} "
            f"(torch-fidelity's release page) there, pass weights_path=None to download it, "
            f"{_INCEPTION_FALLBACK}."
        )
    try:
        import torch_fidelity  # noqa: F401
    except ImportError as err:
        raise InceptionUnavailableError(
            "Inception-v3 FID features need the torch-fidelity package: run "
            "`pip install torch-fidelity` (the weights then download once, about 100 MB), "
            f"{_INCEPTION_FALLBACK}."
        ) from err
    try:
        net = _build_inception(feature_dim, None if weights_path is None else str(weights_path))
    except Exception as err:  # offline: URLError; a broken cache file: RuntimeError
        cause = " ".join(str(err).split())[:160]
        raise InceptionUnavailableError(
            f"could not load the Inception-v3 FID weights ({type(err).__name__}: {cause}); "
            "connect to the network once (they are cached under $TORCH_HOME/hub), pass "
            f"weights_path= to a local copy of {INCEPTION_WEIGHTS_FILE}, {_INCEPTION_FALLBACK}."
        ) from err
    return InceptionFeatures(net, feature_dim, batch_size).to(device or "cpu")


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
    Reference: Srivastava et al. 2017 (VEEGAN), arXiv:1705.07761, Section 5.1;
    Lin et al. 2018 (PacGAN), arXiv:1712.04086, 2D-ring / 2D-grid experiments.
    Shapes: samples (N, D) with D = centers.shape[1] (2); distribution has ``centers`` (K, D)
    and ``std`` (float) -> ModeCoverage.
    """
    centers = _as_float64(distribution.centers, "distribution.centers", 2)
    x = _as_float64(samples, "samples", 2)
    if x.shape[0] == 0 or x.shape[1] != centers.shape[1]:
        raise ValueError(
            f"samples must have shape (N, {centers.shape[1]}) with N >= 1; got {tuple(x.shape)}."
        )
    if not n_std > 0:
        raise ValueError(f"n_std must be > 0; got {n_std}.")
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
    Reference: Srivastava et al. 2017 (VEEGAN), arXiv:1705.07761, Section 5.2; Lin et al. 2018
    (PacGAN), arXiv:1712.04086.
    Shapes: images (N, C, H, W) in [-1, 1]; classifier maps them to logits (N, n_classes);
    default the shipped :class:`DigitClassifier` on the images' device -> ClassCoverage
    (fractions are of the confident samples; all zero when none is confident).
    """
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence must be in [0, 1]; got {confidence}.")
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1]; got {min_fraction}.")
    logits = _classifier_logits(images, classifier, batch_size)
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


__all__ = [
    "ClassCoverage",
    "DigitClassifier",
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
]
