"""Inception Score, precision/recall and SSIM diversity."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_lib._checks import check_int
from course_lib.metrics.distances import ArrayLike, as_float64, check_feature_pair
from course_lib.metrics.features import (
    Extractor,
    check_images,
    checked_extractor,
    features_of,
    run_batched,
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
    Reference: Salimans et al. 2016, arXiv:1606.03498 (the formula) and their
    ``inception_score.py`` (10 splits, mean and population std of the split scores).
    Departures: any classifier's logits (the course uses its digit classifier: a domain IS, at
    most 10, NOT comparable to the published Inception-v3 IS over 1000 ImageNet classes); the
    rows are split in the given order (torchmetrics' ``InceptionScore`` shuffles them first and
    reports the Bessel-corrected std). Computed in float64 from log-softmax, so confident
    logits do not underflow; 0 log 0 counts as 0.
    Shapes: logits (N, C), C >= 2, 1 <= splits <= N -> (mean, std) over the splits.
    """
    z = as_float64(logits, "logits", 2)
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
    Reference: Salimans et al. 2016, arXiv:1606.03498; Barratt & Sharma 2018,
    arXiv:1801.01973 (why the number is easy to misread).
    Shapes: images (N, C, H, W) in [-1, 1] -> (mean, std) over ``splits``.
    """
    logits = classifier_logits(images, classifier, batch_size)
    return inception_score_from_logits(logits, splits=splits)


def classifier_logits(images: Tensor, classifier: nn.Module | None, batch_size: int) -> Tensor:
    """Logits (N, n_classes) of ``classifier`` (default: the shipped digit classifier)."""
    classifier = checked_extractor(classifier, images=images)
    logits = run_batched(classifier, classifier, images, batch_size, "images")
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
    Reference: Kynkäänniemi et al. 2019, arXiv:1904.06991 (k = 3, VGG-16
    features, 50k images in the paper; any features work, compare only like with like).
    Shapes: real (N, F), fake (M, F), with N, M >= k + 1 -> (precision, recall), each in [0, 1].
    ``batch_size`` rows of distances are held at a time (memory, not the result).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1 (the paper uses 3); got {k!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    real_t, fake_t = check_feature_pair(real, fake, min_rows=k + 1, names=("real", "fake"))
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
    arXiv:1904.06991 (they use VGG-16 features; numbers from different features or
    sample sizes are not comparable).
    Shapes: images (N, C, H, W), (M, C, H, W) in [-1, 1], N, M >= k + 1 -> (precision, recall).
    """
    extractor = checked_extractor(extractor, images_real=images_real, images_fake=images_fake)
    return precision_recall_from_features(
        features_of(images_real, extractor), features_of(images_fake, extractor), k=k
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
    Reference: SSIM, Wang et al. 2004, IEEE TIP 13(4); as a diversity measure (with
    MS-SSIM, which needs larger images than 28x28) Odena et al. 2017, arXiv:1610.09585.
    Computed on the images' device.
    Shapes: images (N, C, H, W) in [-1, 1], N >= 2, H, W >= 11 -> float (mean over pairs).
    """
    check_images(images, "images", (-1.0, 1.0))
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"images needs at least 2 samples to form pairs; got {n}.")
    if min(images.shape[-2:]) < 11:
        raise ValueError(
            f"images must be at least 11x11 (the SSIM window); got {tuple(images.shape[-2:])}. "
            "Upsample small images first, e.g. with F.interpolate."
        )
    check_int("n_pairs", n_pairs, 1)
    check_int("batch_size", batch_size, 1)
    check_int("seed", seed, 0)
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
