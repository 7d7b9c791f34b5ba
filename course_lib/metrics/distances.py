"""Distances between sample sets: the Frechet distance (FID), the kernel MMD (KID) and the exact
Wasserstein-1 distance between two small point clouds (the 2-D toy data's ground truth)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from course_lib._checks import check_int

ArrayLike = Tensor | np.ndarray


# --------------------------------------------------------------------------------------------
# Fréchet distance and kernel distance on features
# --------------------------------------------------------------------------------------------


def as_float64(x: ArrayLike, name: str, dim: int) -> Tensor:
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


def _sqrtm_psd(sigma: Tensor, name: str) -> Tensor:
    """Symmetric square root of a covariance; ValueError naming ``name`` unless ``sigma`` is
    symmetric and positive semi-definite up to rounding (eigenvalues >= -1e-6 of the largest;
    those rounding negatives become 0). A matrix that is not a covariance has no meaningful
    distance: clipping its negative eigenvalues would return a plausible-looking number."""
    scale = float(sigma.abs().max())
    if not torch.allclose(sigma, sigma.T, rtol=1e-6, atol=1e-9 * max(scale, 1e-300)):
        raise ValueError(
            f"{name} is not symmetric, so it is no covariance matrix; pass torch.cov(features.T) "
            "(or np.cov(features, rowvar=False))."
        )
    w, v = torch.linalg.eigh((sigma + sigma.T) / 2)
    if float(w.min()) < -1e-6 * max(float(w.abs().max()), 1e-300):
        raise ValueError(
            f"{name} is not positive semi-definite (smallest eigenvalue {float(w.min()):.3g}), "
            "so it is no covariance matrix; pass torch.cov(features.T) of real features."
        )
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2), squared.

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).
    Reference: Heusel et al. 2017, arXiv:1706.08500; Dowson & Landau 1982.
    Computed in float64. The trace term uses Tr((S1 S2)^{1/2}) = ||S1^{1/2} S2^{1/2}||_* (the sum
    of singular values), since S1^{1/2} S2 S1^{1/2} = A A^T with A = S1^{1/2} S2^{1/2}; this is
    real, symmetric in the two arguments and stable for singular covariances (fewer samples than
    features), where ``scipy.linalg.sqrtm(S1 @ S2)`` needs the eps-offset and imaginary-part
    workarounds of the reference implementations. Rounding below zero is clipped to 0; a sigma
    that is not symmetric PSD (no covariance) raises ValueError.
    Shapes: mu (d,), sigma (d, d) symmetric PSD (a covariance) -> float.
    """
    m1, m2 = as_float64(mu1, "mu1", 1), as_float64(mu2, "mu2", 1)
    s1, s2 = as_float64(sigma1, "sigma1", 2), as_float64(sigma2, "sigma2", 2)
    d = m1.shape[0]
    if m2.shape != (d,):
        raise ValueError(f"mu2 must have shape ({d},) like mu1; got {tuple(m2.shape)}.")
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (d, d):
            raise ValueError(
                f"{name} must have shape ({d}, {d}) to match mu1; got {tuple(s.shape)}."
            )
    tr_covmean = torch.linalg.svdvals(_sqrtm_psd(s1, "sigma1") @ _sqrtm_psd(s2, "sigma2")).sum()
    value = (m1 - m2).square().sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean
    return max(float(value), 0.0)


def check_feature_pair(
    a: ArrayLike, b: ArrayLike, min_rows: int, names: tuple[str, str] = ("a", "b")
) -> tuple[Tensor, Tensor]:
    a, b = as_float64(a, names[0], 2), as_float64(b, names[1], 2)
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
    Reference: Heusel et al. 2017, arXiv:1706.08500. FID is biased in the
    sample size (Chong & Forsyth 2020, arXiv:1911.07023): compare only equal N.
    Shapes: a (N, F), b (M, F), N, M >= 2 -> float.
    """
    a, b = check_feature_pair(a, b, min_rows=2)
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
    Leaving out the i = j terms makes it an unbiased U-statistic (Gretton et al. 2012, JMLR 13):
    its expectation is the population MMD^2, 0 when both sets come from the same distribution,
    so single estimates can be negative. One subset of :func:`kid_from_features`.
    Reference: Binkowski et al. 2018, arXiv:1801.01401 (the unbiased MMD estimator and the KID).
    Shapes: x (m, F), y (m, F), m >= 2 -> float; computed in float64.
    """
    a, b = check_feature_pair(x, y, min_rows=2, names=("x", "y"))
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
    a, b = check_feature_pair(a, b, min_rows=2)
    check_int("n_subsets", n_subsets, 1, hint="the KID paper uses 100")
    check_int("subset_size", subset_size, 2, hint="the KID paper uses 1000")
    check_int("seed", seed, 0)
    m = min(subset_size, a.shape[0], b.shape[0])
    generator = torch.Generator().manual_seed(seed)
    scores = torch.empty(n_subsets, dtype=torch.float64)
    for i in range(n_subsets):
        idx_a = torch.randperm(a.shape[0], generator=generator)[:m]
        idx_b = torch.randperm(b.shape[0], generator=generator)[:m]
        scores[i] = _mmd2_unbiased(a[idx_a], b[idx_b])
    return float(scores.mean()), float(scores.std(correction=0))


def wasserstein1(x: ArrayLike, y: ArrayLike) -> float:
    """The exact Wasserstein-1 (earth mover's) distance between two sets of n points each.

    W1 = min over couplings of the mean Euclidean distance moved. Between two empirical
    distributions with n points of weight 1/n each, an optimal coupling is a permutation (the
    assignment problem; Peyre & Cuturi 2019, arXiv:1803.00567), so
    W1 = min_perm mean_i ||x_i - y_perm(i)||, solved exactly by
    ``scipy.optimize.linear_sum_assignment`` (O(n^3): meant for n up to a few thousand).
    Two samples of one distribution give W1 > 0 at finite n: compare with that floor.
    Shapes: x (n, d), y (n, d) -> float; computed in float64.
    """
    a, b = check_feature_pair(x, y, min_rows=1, names=("x", "y"))
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"x and y must have the same number of points; got {a.shape[0]} and {b.shape[0]}. "
            "Draw the same number of samples from both."
        )
    cost = torch.cdist(a, b).numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())
