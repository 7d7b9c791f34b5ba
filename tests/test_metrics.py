from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from course_lib import metrics

# ------------------------------------------------------------------------------------------------
# Fréchet distance
# ------------------------------------------------------------------------------------------------


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The straightforward reference: float64 scipy.linalg.sqrtm of S1 S2 (real part)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.fixture(scope="module")
def feature_pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 24))
    b = rng.normal(size=(400, 24)) @ rng.normal(size=(24, 24)) * 0.4 + 0.3
    return a, b


def test_frechet_matches_scipy_sqrtm_reference(feature_pair):
    a, b = feature_pair
    expected = _scipy_fid(a, b)
    assert expected > 1.0
    assert metrics.fid_from_features(a, b) == pytest.approx(expected, rel=1e-6)
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    # torch inputs give the same number
    t = [torch.from_numpy(v) for v in (mu1, s1, mu2, s2)]
    assert metrics.frechet_distance(*t) == pytest.approx(expected, rel=1e-6)


def test_frechet_is_symmetric(feature_pair):
    a, b = feature_pair
    assert metrics.fid_from_features(a, b) == pytest.approx(
        metrics.fid_from_features(b, a), rel=1e-9
    )


def test_frechet_of_identical_sets_is_zero(feature_pair):
    a, _ = feature_pair
    assert isinstance(metrics.fid_from_features(a, a), float)
    assert abs(metrics.fid_from_features(a, a)) < 1e-6
    # singular covariance: fewer samples than features
    few = np.random.default_rng(1).normal(size=(20, 64)) * 3.0
    assert abs(metrics.fid_from_features(few, few)) < 1e-6


def test_frechet_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    got = metrics.frechet_distance(
        np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])
    )
    assert got == pytest.approx(9.0 + 1.0, rel=1e-12)
    # diagonal Gaussians: the 1-D formula summed over dimensions
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, -1.0])
    v1, v2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([4.0, 1.0, 0.25])
    expected = float(((mu1 - mu2) ** 2).sum() + ((v1.sqrt() - v2.sqrt()) ** 2).sum())
    got = metrics.frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2))
    assert got == pytest.approx(expected, rel=1e-12)
    # a singular covariance (rank 1) against the zero matrix: Tr(S1)
    got = metrics.frechet_distance(
        np.zeros(2), np.array([[1.0, 1.0], [1.0, 1.0]]), np.zeros(2), np.zeros((2, 2))
    )
    assert got == pytest.approx(2.0, abs=1e-12)


def test_frechet_bad_input():
    mu, s = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="mu2"):
        metrics.frechet_distance(mu, s, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="sigma2"):
        metrics.frechet_distance(mu, s, mu, np.eye(4))
    with pytest.raises(ValueError, match="sigma1"):
        metrics.frechet_distance(mu, np.zeros(3), mu, s)
    with pytest.raises(ValueError, match="mu1.*NaN"):
        metrics.frechet_distance(np.array([np.nan, 0, 0]), s, mu, s)
    with pytest.raises(ValueError, match="at least 2 rows"):
        metrics.fid_from_features(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="same feature dimension"):
        metrics.fid_from_features(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="a must have 2"):
        metrics.fid_from_features(np.zeros(5), np.zeros((5, 4)))


@pytest.mark.parametrize(
    "sigma, match",
    [
        (-np.eye(3), "sigma1 is not positive semi-definite"),  # would give 0 after clipping
        (np.diag([1.0, 1.0, -0.5]), "smallest eigenvalue -0.5"),
        (np.array([[1.0, 0.9, 0], [0, 1, 0], [0, 0, 1]]), "sigma1 is not symmetric"),
    ],
)
def test_frechet_refuses_a_matrix_that_is_no_covariance(sigma, match):
    with pytest.raises(ValueError, match=match):
        metrics.frechet_distance(np.zeros(3), sigma, np.zeros(3), np.eye(3))


def test_frechet_accepts_a_singular_covariance_of_few_samples():
    feats = torch.randn(20, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert metrics.fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------------------
# KID
# ------------------------------------------------------------------------------------------------


def _mmd2_loop(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y/d + 1)^3, written as the double sums of the paper."""
    m, d = x.shape
    k = lambda u, v: (float(u @ v) / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_matches_double_loop_reference():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.5
    # subset_size >= N: every subset is the whole set, so the estimate is exact and std is 0
    mean, std = metrics.kid_from_features(a, b, n_subsets=3, subset_size=50)
    assert mean == pytest.approx(_mmd2_loop(a, b), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)
    # unequal sizes: subsets of m = min(N, M) rows, drawn as documented (perm of a, then of b)
    b_big = rng.normal(size=(17, 5))
    mean, std = metrics.kid_from_features(a, b_big, n_subsets=4, subset_size=50, seed=7)
    g = torch.Generator().manual_seed(7)
    ref = []
    for _ in range(4):
        ia = torch.randperm(12, generator=g)[:12].numpy()
        ib = torch.randperm(17, generator=g)[:12].numpy()
        ref.append(_mmd2_loop(a[ia], b_big[ib]))
    assert mean == pytest.approx(np.mean(ref), rel=1e-10)
    assert std == pytest.approx(np.std(ref), rel=1e-8)


def test_kid_is_about_zero_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(16, 16, generator=g, dtype=torch.float64) / 4
    a = torch.randn(1500, 16, generator=g, dtype=torch.float64) @ mix
    b = torch.randn(1500, 16, generator=g, dtype=torch.float64) @ mix
    mean, std = metrics.kid_from_features(a, b, n_subsets=30, subset_size=500)
    assert std > 0
    assert abs(mean) < 3 * std
    shifted_mean, shifted_std = metrics.kid_from_features(a, b + 0.5, n_subsets=30, subset_size=500)
    assert shifted_mean > 10 * shifted_std
    # deterministic given the seed
    assert metrics.kid_from_features(a, b, n_subsets=5, subset_size=100, seed=3) == (
        metrics.kid_from_features(a, b, n_subsets=5, subset_size=100, seed=3)
    )


def test_kid_agrees_with_torchmetrics():
    kid_module = pytest.importorskip("torchmetrics.image.kid")
    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.normal(size=(300, 8)))
    b = torch.from_numpy(rng.normal(size=(250, 8)) * 1.2 + 0.2)
    with pytest.warns(UserWarning, match="save all extracted features"):
        tm = kid_module.KernelInceptionDistance(
            feature=torch.nn.Identity(), subsets=6, subset_size=200
        )
    tm.update(a, real=True)
    tm.update(b, real=False)
    with torch.random.fork_rng():
        torch.manual_seed(11)  # torchmetrics draws its subsets from the global generator
        tm_mean, tm_std = tm.compute()
    mean, std = metrics.kid_from_features(a, b, n_subsets=6, subset_size=200, seed=11)
    assert mean == pytest.approx(float(tm_mean), rel=1e-9)
    assert std == pytest.approx(float(tm_std), rel=1e-9)


def test_kid_bad_input():
    a = np.zeros((10, 3))
    with pytest.raises(ValueError, match="n_subsets"):
        metrics.kid_from_features(a, a, n_subsets=0)
    with pytest.raises(ValueError, match="subset_size"):
        metrics.kid_from_features(a, a, subset_size=1)
    with pytest.raises(ValueError, match="same feature dimension"):
        metrics.kid_from_features(a, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="b needs at least 2"):
        metrics.kid_from_features(a, np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"n_subsets must be an int >= 1, got 2.5"):
        metrics.kid_from_features(a, a, n_subsets=2.5)


# ------------------------------------------------------------------------------------------------
# Exact Wasserstein-1 between point clouds
# ------------------------------------------------------------------------------------------------


def test_wasserstein1_matches_the_sorted_formula_in_one_dimension():
    """In 1-D the optimal coupling pairs the sorted samples (scipy's wasserstein_distance)."""
    import scipy.stats

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 1)), rng.exponential(size=(300, 1))
    expected = scipy.stats.wasserstein_distance(x[:, 0], y[:, 0])
    assert metrics.wasserstein1(x, y) == pytest.approx(expected, rel=1e-9)


def test_wasserstein1_of_a_translation_is_its_length():
    """Moving every point by v costs |v|, and Kantorovich-Rubinstein with f(x) = v.x / |v|
    shows nothing cheaper exists: W1 = |v| exactly, whatever the cloud."""
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    shift = torch.tensor([3.0, -4.0])
    assert metrics.wasserstein1(x, x + shift) == pytest.approx(5.0, rel=1e-9)
    assert metrics.wasserstein1(x, x[torch.randperm(200)]) == pytest.approx(0.0, abs=1e-12)


def test_wasserstein1_beats_the_identity_pairing():
    """The assignment is optimal: never worse than pairing x_i with y_i, and symmetric."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(100, 2, generator=g), torch.randn(100, 2, generator=g) + 1
    w = metrics.wasserstein1(x, y)
    assert w <= (x - y).norm(dim=1).mean().item() + 1e-12
    assert w == pytest.approx(metrics.wasserstein1(y, x), rel=1e-12)


def test_wasserstein1_bad_input():
    x = torch.zeros(10, 2)
    with pytest.raises(ValueError, match="same number of points"):
        metrics.wasserstein1(x, torch.zeros(11, 2))
    with pytest.raises(ValueError, match="same feature dimension"):
        metrics.wasserstein1(x, torch.zeros(10, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.wasserstein1(x, torch.full((10, 2), float("nan")))


# ------------------------------------------------------------------------------------------------
# Mode coverage (a small stand-in mixture, and the course's ring when data is available)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mixture:
    centers: torch.Tensor
    std: float

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        idx = torch.randint(len(self.centers), (n,), generator=generator)
        return self.centers[idx] + self.std * torch.randn(n, 2, generator=generator)


def _ring(n_modes: int = 8, radius: float = 2.0, std: float = 0.02) -> _Mixture:
    angles = torch.arange(n_modes) * 2 * math.pi / n_modes
    return _Mixture(radius * torch.stack([angles.cos(), angles.sin()], dim=1), std)


def test_mode_coverage_of_real_samples_covers_all_modes():
    ring = _ring()
    result = metrics.mode_coverage(ring.sample(2500, torch.Generator().manual_seed(0)), ring)
    assert (result.modes_covered, result.n_modes, result.min_count) == (8, 8, 20)
    # P(r <= 3 std) for an isotropic 2-D Gaussian is 1 - exp(-4.5) = 0.989
    assert result.high_quality_fraction == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert sum(result.counts) == round(result.high_quality_fraction * 2500)
    assert "8/8 modes" in str(result)


def test_mode_coverage_of_collapsed_samples():
    ring = _ring()
    at_one_centre = ring.centers[3].repeat(1000, 1)
    result = metrics.mode_coverage(at_one_centre, ring)
    assert result.modes_covered == 1
    assert result.high_quality_fraction == 1.0
    assert result.counts[3] == 1000 and sum(result.counts) == 1000
    # far from every mode: nothing is high quality
    far = torch.full((100, 2), 10.0)
    assert metrics.mode_coverage(far, ring).modes_covered == 0
    assert metrics.mode_coverage(far, ring).high_quality_fraction == 0.0


def test_mode_coverage_thresholds():
    ring = _ring()
    # 4 modes with 30 samples each plus 5 samples on a fifth: min_count decides the fifth
    x = torch.cat([ring.centers[:4].repeat_interleave(30, 0), ring.centers[4].repeat(5, 1)])
    assert metrics.mode_coverage(x, ring).min_count == 1  # default: round(20 * 125 / 2500)
    assert metrics.mode_coverage(x, ring).modes_covered == 5
    assert metrics.mode_coverage(x, ring, min_count=10).modes_covered == 4
    # n_std: a point 0.05 from a centre (2.5 std) is high quality at 3 std, not at 2 std
    near = ring.centers[:1] + torch.tensor([[0.05, 0.0]])
    assert metrics.mode_coverage(near, ring).high_quality_fraction == 1.0
    assert metrics.mode_coverage(near, ring, n_std=2.0).high_quality_fraction == 0.0


def test_mode_coverage_bad_input():
    ring = _ring()
    with pytest.raises(ValueError, match="n_std"):
        metrics.mode_coverage(torch.zeros(10, 2), ring, n_std=0.0)
    with pytest.raises(ValueError, match="samples must have shape"):
        metrics.mode_coverage(torch.zeros(10, 3), ring)
    with pytest.raises(ValueError, match="samples must have 2"):
        metrics.mode_coverage(torch.zeros(10), ring)
    with pytest.raises(ValueError, match="min_count"):
        metrics.mode_coverage(torch.zeros(10, 2), ring, min_count=0)


def test_mode_coverage_on_the_course_ring():
    data = pytest.importorskip("course_lib.data")
    ring = data.ring()
    result = metrics.mode_coverage(ring.sample(2500, torch.Generator().manual_seed(0)), ring)
    assert result.modes_covered == 8 == result.n_modes
    assert result.high_quality_fraction > 0.97
    collapsed = metrics.mode_coverage(ring.centers[:1].repeat(2500, 1), ring)
    assert collapsed.modes_covered == 1


# ------------------------------------------------------------------------------------------------
# The digit classifier
# ------------------------------------------------------------------------------------------------


def test_classifier_shapes_and_input_handling():
    torch.manual_seed(0)
    model = metrics.DigitClassifier().eval()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert model(x).shape == (4, 10)
    assert model.features(x).shape == (4, 128) and model.feature_dim == 128
    # other square sizes are resized (antialiased bilinear), RGB is turned grey
    x32 = torch.rand(3, 1, 32, 32) * 2 - 1
    resized = torch.nn.functional.interpolate(x32, size=(28, 28), mode="bilinear", antialias=True)
    assert torch.allclose(model(x32), model(resized))
    grey = torch.rand(2, 1, 28, 28) * 2 - 1
    assert torch.allclose(model(grey.repeat(1, 3, 1, 1)), model(grey), atol=1e-5)
    assert metrics.DigitClassifier()(torch.zeros(2, 3, 64, 64)).shape == (2, 10)


def test_classifier_bad_input():
    model = metrics.DigitClassifier()
    with pytest.raises(ValueError, match="square"):
        model(torch.zeros(2, 1, 28, 32))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        model(torch.zeros(2, 2, 28, 28))
    with pytest.raises(ValueError, match="floating point"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        model(torch.zeros(28, 28))


@pytest.fixture(scope="module")
def classifier() -> metrics.DigitClassifier:
    return metrics.load_digit_classifier()


def test_shipped_weights_load_frozen_and_small(classifier):
    path = Path(metrics.__file__).parents[1] / "weights" / metrics.WEIGHTS_FILE
    assert path.stat().st_size < 2 * 1024 * 1024
    assert not classifier.training
    assert not any(p.requires_grad for p in classifier.parameters())
    assert classifier.meta["test_accuracy"] >= 0.98
    torch.load(path, weights_only=True)  # loadable without unpickling arbitrary objects


def test_missing_or_corrupt_weights_say_how_to_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match="tools/train_digit_classifier.py"):
        metrics.load_digit_classifier(path=tmp_path / "absent.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt.*tools/train_digit_classifier.py"):
        metrics.load_digit_classifier(path=corrupt)
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "meta": {"arch": {"width": 16}}}, wrong)
    with pytest.raises(RuntimeError, match="tools/train_digit_classifier.py"):
        metrics.load_digit_classifier(path=wrong)


@pytest.fixture(scope="module")
def digits() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Two disjoint sets of 1,000 held-out digits28 test images (only the test split is built)."""
    data = pytest.importorskip("course_lib.data")
    x, y = data.digits28("test", n=2000, seed=0).tensors
    return (x[1000:], y[1000:]), (x[:1000], y[:1000])


@pytest.mark.parametrize(
    "mistake, match",
    [
        (lambda x: (x + 1) / 2, r"in \[-1, 1\], got values in \[0, 1\]; they look like \[0, 1\]"),
        (lambda x: (x + 1) * 127.5, r"got values in \[0, 255\]; they look like 0\.\.255"),
        (lambda x: ((x + 1) * 127.5).to(torch.uint8), "must be floating point"),
        (lambda x: x * 1.5, r"got values in \[-1\.5, 1\.5\]"),
        (lambda x: torch.where(x > 0.9, math.nan, x), "contains NaN or inf"),
    ],
)
def test_every_image_metric_refuses_images_outside_the_extractors_range(digits, mistake, match):
    """A VAE's Bernoulli means in [0, 1] fed to FID is the natural mistake: every image-level
    metric names the argument and the conversion instead of returning a plausible number."""
    (real, _), (other, _) = digits
    bad = mistake(other[:200])
    calls = {
        "images_b": lambda: metrics.fid(real[:200], bad),
        "images_a": lambda: metrics.kid(bad, real[:200], subset_size=100),
        "images_fake": lambda: metrics.precision_recall(real[:200], bad),
        "images": lambda: metrics.inception_score(bad),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=f"^{name} .*{match}"):
            call()
    with pytest.raises(ValueError, match=f"^images .*{match}"):
        metrics.class_coverage(bad)
    with pytest.raises(ValueError, match=f"^images .*{match}"):
        metrics.ssim_diversity(bad)
    assert metrics.fid(real[:200], other[:200]) > 0  # the same images, in range, are fine


def test_image_metrics_refuse_sets_of_different_shapes(digits):
    (real, _), (other, _) = digits
    bigger = torch.nn.functional.interpolate(other[:100], size=32)
    with pytest.raises(ValueError, match=r"images_a holds images of shape \(1, 28, 28\), images_b"):
        metrics.fid(real[:100], bigger)
    with pytest.raises(ValueError, match=r"images_real .*\(1, 28, 28\), images_fake \(3, 28, 28\)"):
        metrics.precision_recall(real[:100], other[:100].expand(-1, 3, -1, -1))


def test_classifier_accuracy_on_held_out_digits(classifier, digits):
    _, (x, y) = digits
    with torch.no_grad():
        accuracy = (classifier(x).argmax(1) == y).double().mean().item()
    assert accuracy >= 0.97


# ------------------------------------------------------------------------------------------------
# Image-level FID / KID with the shipped classifier
# ------------------------------------------------------------------------------------------------


def test_extract_features(classifier, digits):
    _, (x, _) = digits
    feats = metrics.extract_features(x[:50], classifier, batch_size=16)
    assert feats.shape == (50, 128) and feats.dtype == torch.float64 and feats.device.type == "cpu"
    assert torch.allclose(feats, metrics.extract_features(x[:50], batch_size=500))
    # a module in train mode is evaluated in eval mode and put back
    model = metrics.DigitClassifier().train()
    metrics.extract_features(x[:8], model)
    assert model.training
    # any callable (N, C, H, W) -> (N, F) works as extractor
    flat = metrics.extract_features(x[:8], lambda t: t.flatten(1))
    assert flat.shape == (8, 784)
    with pytest.raises(ValueError, match="extractor must map"):
        metrics.extract_features(x[:8], lambda t: t)
    with pytest.raises(ValueError, match="images must be a non-empty image tensor"):
        metrics.extract_features(x[0])


@pytest.fixture(scope="module")
def sanity_features(classifier, digits) -> dict[str, torch.Tensor]:
    """Classifier features of two disjoint real sets and of uniform noise, 1,000 images each."""
    (x_other, _), (x_test, _) = digits
    noise = torch.rand(x_test.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    images = {"other": x_other, "test": x_test, "noise": noise}
    return {k: metrics.extract_features(v, classifier) for k, v in images.items()}


def test_fid_sanity_checks(classifier, digits, sanity_features):
    (x_other, _), (x_test, _) = digits
    f = sanity_features
    real_real = metrics.fid(x_other, x_test, classifier)
    assert real_real == pytest.approx(metrics.fid_from_features(f["other"], f["test"]), rel=1e-6)
    real_noise = metrics.fid_from_features(f["noise"], f["test"])
    assert abs(metrics.fid_from_features(f["test"], f["test"])) < 1e-6
    assert real_real < 20.0
    assert real_noise > 50 * real_real
    with pytest.raises(ValueError, match="images_b"):
        metrics.fid(x_test, x_test[0], classifier)


def test_digit_yardstick_measures_against_a_random_reference_with_its_floor_and_noise():
    data = pytest.importorskip("course_lib.data")
    yardstick = metrics.DigitYardstick(300)
    drawn = data.digits28("test", n=600, shuffle=True).tensors[0]
    assert torch.equal(yardstick.reference, drawn[:300]) and torch.equal(
        yardstick.held_out, drawn[300:]
    )
    assert not torch.equal(
        yardstick.reference, data.digits28("test", n=300).tensors[0]
    )  # not the prefix
    assert (
        yardstick(yardstick.held_out) == yardstick.floor
    )  # the floor is B scored like a generator
    expected = metrics.fid(yardstick.held_out, yardstick.reference, yardstick.classifier)
    assert yardstick.floor == pytest.approx(expected, rel=1e-9)
    assert 0 < yardstick.floor < yardstick.noise / 20
    assert "real vs real" in repr(yardstick) and f"{yardstick.floor:.1f}" in repr(yardstick)
    with pytest.raises(ValueError, match=r"\bn\b"):
        metrics.DigitYardstick(0)


def test_kid_sanity_checks(classifier, digits, sanity_features):
    (x_other, _), (x_test, _) = digits
    f = sanity_features
    mean, std = metrics.kid_from_features(f["other"], f["test"], n_subsets=20, subset_size=500)
    noise_mean, _ = metrics.kid_from_features(f["noise"], f["test"], n_subsets=20, subset_size=500)
    # KID is unbiased: real vs real is ~0 within the subset spread (it may be negative)
    assert abs(mean) < 4 * std
    assert noise_mean > 50 * max(abs(mean), std)
    # the image-level wrapper extracts the same features
    small = metrics.kid(x_other[:100], x_test[:100], classifier, n_subsets=3, subset_size=50)
    expected = metrics.kid_from_features(
        f["other"][:100], f["test"][:100], n_subsets=3, subset_size=50
    )
    assert small == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------------------------------------
# Class coverage
# ------------------------------------------------------------------------------------------------


def test_class_coverage_of_real_and_single_class_digits(classifier, digits):
    _, (x, y) = digits
    result = metrics.class_coverage(x, classifier)
    assert (result.classes_covered, result.n_classes) == (10, 10)
    assert result.confident_fraction > 0.9
    assert sum(result.counts) == round(result.confident_fraction * len(x))
    assert sum(result.fractions) == pytest.approx(1.0)
    threes = metrics.class_coverage(x[y == 3], classifier)
    assert threes.classes_covered == 1
    assert max(range(10), key=lambda c: threes.counts[c]) == 3
    assert "1/10 classes" in str(threes)


def test_class_coverage_thresholds_and_bad_input():
    class Fixed(torch.nn.Module):  # 7 confident 0s, 2 confident 1s, 1 unclear sample
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.full((x.shape[0], 4), -10.0)
            logits[:7, 0] = 10.0
            logits[7:9, 1] = 10.0
            logits[9] = 0.0  # uniform: top probability 0.25, argmax class 0
            return logits

    images = torch.zeros(10, 1, 28, 28)
    result = metrics.class_coverage(images, Fixed())
    assert result.counts == (7, 2, 0, 0) and result.n_classes == 4
    assert result.confident_fraction == pytest.approx(0.9)
    assert result.fractions == pytest.approx((7 / 9, 2 / 9, 0.0, 0.0))
    assert result.classes_covered == 2  # min_fraction 0.2: each class needs 0.05 of the samples
    # class 1 holds 2/9 < 1/4 of the confident samples: below its full fair share
    assert metrics.class_coverage(images, Fixed(), min_fraction=1.0).classes_covered == 1
    assert metrics.class_coverage(images, Fixed(), confidence=0.0).counts == (8, 2, 0, 0)
    with pytest.raises(ValueError, match="confidence"):
        metrics.class_coverage(images, Fixed(), confidence=1.5)
    with pytest.raises(ValueError, match="min_fraction"):
        metrics.class_coverage(images, Fixed(), min_fraction=0.0)
    with pytest.raises(ValueError, match="images"):
        metrics.class_coverage(torch.zeros(0, 1, 28, 28), Fixed())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_metrics_on_cuda(classifier, digits):
    _, (x, _) = digits
    gpu = metrics.load_digit_classifier("cuda")
    feats = metrics.extract_features(x[:64].cuda(), gpu)
    assert feats.device.type == "cpu"
    assert torch.allclose(feats, metrics.extract_features(x[:64], classifier), atol=1e-4)
    assert metrics.class_coverage(x.cuda()).classes_covered == 10


def test_shipped_classifier_was_trained_on_the_current_digits28():
    from course_lib import data

    meta = metrics.load_digit_classifier().meta
    assert meta["data_version"] == data.DIGITS28_VERSION, (
        "digits28 changed since the classifier was trained: run tools/train_digit_classifier.py"
    )


def test_the_training_script_writes_loadable_weights(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "tools" / "train_digit_classifier.py"
    out = tmp_path / "clf.pt"
    result = subprocess.run(
        [sys.executable, str(script), "--epochs", "1", "--n-train", "500", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    model = metrics.load_digit_classifier(path=out)
    assert model.meta["n_train"] == 500 and 0.0 <= model.meta["test_accuracy"] <= 1.0


# ------------------------------------------------------------------------------------------------
# Unbiased MMD^2, and the bias of FID (issue 5: KID's expectation is ~0 for one distribution)
# ------------------------------------------------------------------------------------------------


def test_mmd2_unbiased_matches_the_double_sums():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(9, 4)), rng.normal(size=(9, 4)) * 1.5
    assert metrics.mmd2_unbiased(x, y) == pytest.approx(_mmd2_loop(x, y), rel=1e-10)
    assert metrics.mmd2_unbiased(x, y) == pytest.approx(
        metrics.kid_from_features(x, y, n_subsets=1, subset_size=9)[0], rel=1e-12
    )
    with pytest.raises(ValueError, match="x and y must have the same number of rows"):
        metrics.mmd2_unbiased(x, y[:5])
    with pytest.raises(ValueError, match="y needs at least 2 rows"):
        metrics.mmd2_unbiased(x, y[:1])


def test_kid_expectation_is_zero_for_one_distribution_while_fid_is_biased():
    g = torch.Generator().manual_seed(5)
    repeats, d = 300, 6
    draw = lambda m: torch.randn(m, d, generator=g, dtype=torch.float64)  # noqa: E731
    mean_fid = {}
    for m in (20, 80):
        kids, biased, fids = [], [], []
        for _ in range(repeats):
            x, y = draw(m), draw(m)
            kids.append(metrics.mmd2_unbiased(x, y))
            k = lambda u, v: (u @ v.T / d + 1) ** 3  # noqa: E731
            biased.append(float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()))
            fids.append(metrics.fid_from_features(x, y))
        kids, biased = np.array(kids), np.array(biased)
        standard_error = kids.std() / math.sqrt(repeats)
        assert abs(kids.mean()) < 3 * standard_error, m
        # the V-statistic that keeps the i = j terms is biased upwards: the test above has power
        assert biased.mean() > 10 * biased.std() / math.sqrt(repeats)
        mean_fid[m] = float(np.mean(fids))
    # FID of two samples of one distribution is > 0 and shrinks roughly like 1/N
    assert mean_fid[20] > 2.5 * mean_fid[80] > 0


# ------------------------------------------------------------------------------------------------
# Inception Score
# ------------------------------------------------------------------------------------------------


def _is_reference(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """Salimans et al.'s inception_score.py on softmax probabilities, in numpy float64."""
    preds = np.exp(logits - logits.max(1, keepdims=True))
    preds /= preds.sum(1, keepdims=True)
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits) : ((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_the_authors_code():
    logits = np.random.default_rng(4).normal(size=(103, 7)) * 2
    for splits in (1, 3, 10):
        got = metrics.inception_score_from_logits(logits, splits=splits)
        assert got == pytest.approx(_is_reference(logits, splits), rel=1e-10), splits
    assert metrics.inception_score_from_logits(torch.from_numpy(logits), 3) == pytest.approx(
        _is_reference(logits, 3), rel=1e-10
    )


def test_inception_score_known_values():
    n_classes = 10
    uniform = torch.zeros(40, n_classes)
    assert metrics.inception_score_from_logits(uniform, 1)[0] == pytest.approx(1.0, abs=1e-12)
    confident = 60.0 * torch.eye(n_classes).repeat(5, 1)  # 50 confident samples, balanced
    mean, std = metrics.inception_score_from_logits(confident, splits=5)
    assert mean == pytest.approx(n_classes, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    one_class = confident[confident.argmax(1) == 3]  # confident, but always the same class
    assert metrics.inception_score_from_logits(one_class, 1)[0] == pytest.approx(1.0, abs=1e-9)
    # half the samples confidently class 0, half class 1: IS = 2 (the entropy of p(y) is log 2)
    two = torch.tensor([[800.0, 0.0, 0.0]] * 4 + [[0.0, 800.0, 0.0]] * 4)
    assert metrics.inception_score_from_logits(two, 1)[0] == pytest.approx(2.0, rel=1e-12)
    # splits are consecutive: sorted by class, each split sees one class only
    assert metrics.inception_score_from_logits(two, 2) == pytest.approx((1.0, 0.0), abs=1e-12)


def test_inception_score_agrees_with_torchmetrics():
    inception = pytest.importorskip("torchmetrics.image.inception")
    logits = torch.from_numpy(np.random.default_rng(6).normal(size=(120, 10)) * 3)
    with pytest.warns(UserWarning, match="save all extracted features"):
        tm = inception.InceptionScore(feature=torch.nn.Identity(), splits=4)
    tm.update(logits)
    with torch.random.fork_rng():
        torch.manual_seed(2)  # torchmetrics shuffles the rows with the global generator
        tm_mean, tm_std = tm.compute()
        torch.manual_seed(2)
        order = torch.randperm(120)
    mean, std = metrics.inception_score_from_logits(logits[order], splits=4)
    assert mean == pytest.approx(float(tm_mean), rel=1e-9)
    assert std * math.sqrt(4 / 3) == pytest.approx(float(tm_std), rel=1e-9)  # theirs: ddof=1


def test_inception_score_bad_input():
    with pytest.raises(ValueError, match="splits"):
        metrics.inception_score_from_logits(torch.zeros(5, 3), splits=6)
    with pytest.raises(ValueError, match="splits"):
        metrics.inception_score_from_logits(torch.zeros(5, 3), splits=0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        metrics.inception_score_from_logits(torch.zeros(5, 1))
    with pytest.raises(ValueError, match="logits contains NaN"):
        metrics.inception_score_from_logits(torch.full((5, 3), float("nan")))


def test_inception_score_of_real_and_single_class_digits(classifier, digits):
    _, (x, y) = digits
    mean, std = metrics.inception_score(x, classifier)
    assert 9.0 < mean <= 10.0 and 0.0 < std < 0.5
    assert metrics.inception_score(x[y == 3], classifier, splits=2)[0] < 1.2
    with torch.no_grad():
        logits = classifier(x[:200])
    assert metrics.inception_score(x[:200], classifier, splits=4) == pytest.approx(
        metrics.inception_score_from_logits(logits, splits=4), rel=1e-5
    )


# ------------------------------------------------------------------------------------------------
# Precision and recall (Kynkäänniemi et al. 2019)
# ------------------------------------------------------------------------------------------------


def _precision_recall_loop(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Eq. 1-3 of the paper with explicit loops: k-NN radius excludes the point itself."""

    def radii(x):
        out = []
        for i in range(len(x)):
            others = sorted(np.linalg.norm(x[i] - x[j]) for j in range(len(x)) if j != i)
            out.append(others[k - 1])  # distance to the k-th nearest other point
        return out

    def inside(points, centres, r):
        pairs = list(zip(centres, r, strict=True))
        return [any(np.linalg.norm(p - c) <= rc for c, rc in pairs) for p in points]

    precision = np.mean(inside(fake, real, radii(real)))
    recall = np.mean(inside(real, fake, radii(fake)))
    return float(precision), float(recall)


def test_precision_recall_matches_the_loop_reference():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(40, 3))
    fake = rng.normal(size=(33, 3)) * 0.6 + 0.8
    for k in (1, 3, 5):
        expected = _precision_recall_loop(real, fake, k)
        assert 0.0 < expected[0] < 1.0 and 0.0 < expected[1] < 1.0
        assert metrics.precision_recall_from_features(real, fake, k=k) == pytest.approx(expected)
        # batch_size only changes memory use
        assert metrics.precision_recall_from_features(
            real, fake, k=k, batch_size=7
        ) == pytest.approx(expected)


def test_precision_recall_invariants():
    rng = np.random.default_rng(8)
    real = rng.normal(size=(200, 5))
    # fakes that are real points: all realistic (precision 1), half the data covered or more
    precision, recall = metrics.precision_recall_from_features(real, real[::2])
    assert precision == 1.0 and recall >= 0.5
    # a collapsed generator: tiny noise around one real point -> precise, covers almost nothing
    collapsed = real[:1] + 1e-4 * rng.normal(size=(50, 5))
    precision, recall = metrics.precision_recall_from_features(real, collapsed)
    assert precision == 1.0 and recall == pytest.approx(1 / 200)
    # far away: neither
    assert metrics.precision_recall_from_features(real, real + 100.0) == (0.0, 0.0)
    # swapping the roles swaps the numbers
    fake = rng.normal(size=(150, 5)) * 1.3
    p, r = metrics.precision_recall_from_features(real, fake)
    assert metrics.precision_recall_from_features(fake, real) == pytest.approx((r, p))


def test_precision_recall_bad_input():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        metrics.precision_recall_from_features(x, x, k=0)
    with pytest.raises(ValueError, match="fake needs at least 4 rows"):
        metrics.precision_recall_from_features(x, x[:3], k=3)
    with pytest.raises(ValueError, match="real and fake must have the same feature dimension"):
        metrics.precision_recall_from_features(x, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="images_fake"):
        metrics.precision_recall(torch.zeros(5, 1, 28, 28), torch.zeros(5, 28, 28))


def test_precision_recall_of_digits(classifier, digits, sanity_features):
    (x_other, y_other), (x_test, _) = digits
    f = sanity_features
    precision, recall = metrics.precision_recall_from_features(f["test"], f["other"])
    assert precision > 0.75 and recall > 0.75
    # a generator that draws only 0s and 1s: its samples look real, most of the data is missed
    two_classes = f["other"][y_other < 2]
    precision, recall = metrics.precision_recall_from_features(f["test"], two_classes)
    assert precision > 0.75 and recall < 0.35
    assert metrics.precision_recall_from_features(f["test"], f["noise"])[0] < 0.05
    assert metrics.precision_recall(x_test[:100], x_other[:80], classifier) == pytest.approx(
        metrics.precision_recall_from_features(f["test"][:100], f["other"][:80])
    )


# ------------------------------------------------------------------------------------------------
# SSIM diversity
# ------------------------------------------------------------------------------------------------


def test_ssim_diversity_known_values():
    ssim_fn = pytest.importorskip("torchmetrics.functional.image")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 16, 16, generator=g) * 2 - 1
    # with two images every pair is (0, 1) or (1, 0), and SSIM is symmetric
    expected = ssim_fn.structural_similarity_index_measure(
        (x[:1] + 1) / 2, (x[1:] + 1) / 2, data_range=1.0
    )
    assert metrics.ssim_diversity(x, n_pairs=10) == pytest.approx(float(expected), rel=1e-5)
    # copies of one image are not diverse at all
    same = x[:1].repeat(6, 1, 1, 1)
    assert metrics.ssim_diversity(same, n_pairs=50) == pytest.approx(1.0, abs=1e-5)
    # the documented pair sampling, and batching does not change the mean
    images = torch.rand(7, 3, 12, 12, generator=g) * 2 - 1
    pairs = torch.Generator().manual_seed(4)
    i = torch.randint(7, (25,), generator=pairs)
    j = (i + torch.randint(1, 7, (25,), generator=pairs)) % 7
    assert bool((i != j).all())
    manual = ssim_fn.structural_similarity_index_measure(
        (images[i] + 1) / 2, (images[j] + 1) / 2, data_range=1.0
    )
    got = metrics.ssim_diversity(images, n_pairs=25, seed=4, batch_size=4)
    assert got == pytest.approx(float(manual), rel=1e-5)


def test_ssim_diversity_of_digits_and_of_a_collapsed_generator(digits):
    (x, _), _ = digits
    real = metrics.ssim_diversity(x[:300], n_pairs=300)
    g = torch.Generator().manual_seed(1)
    collapsed = (x[:1] + 0.05 * torch.randn(300, 1, 28, 28, generator=g)).clamp(-1, 1)
    assert metrics.ssim_diversity(collapsed, n_pairs=300) > real + 0.3


def test_ssim_diversity_bad_input():
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.ssim_diversity(torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim_diversity(torch.zeros(4, 1, 8, 8))
    with pytest.raises(ValueError, match="floating point"):
        metrics.ssim_diversity(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="n_pairs"):
        metrics.ssim_diversity(torch.zeros(4, 1, 28, 28), n_pairs=0)


# ------------------------------------------------------------------------------------------------
# Inception-v3 features: an option, with a clear error offline
# ------------------------------------------------------------------------------------------------


def test_inception_without_torch_fidelity_says_what_to_do(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails as if not installed
    with pytest.raises(metrics.InceptionUnavailableError) as info:
        metrics.inception_extractor()
    message = str(info.value)
    assert "\n" not in message
    assert "pip install torch-fidelity" in message and "extractor=None" in message


def test_inception_download_failure_says_what_to_do(monkeypatch):
    import sys
    import types
    import urllib.error

    def unreachable(feature_dim, weights_path):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name\nresolution")

    monkeypatch.setitem(sys.modules, "torch_fidelity", types.ModuleType("torch_fidelity"))
    monkeypatch.setattr(metrics.inception, "_build_inception", unreachable)
    with pytest.raises(metrics.InceptionUnavailableError) as info:
        metrics.inception_extractor()
    message = str(info.value)
    assert "\n" not in message and "URLError" in message
    assert "connect to the network" in message and "weights_path=" in message
    assert "extractor=None" in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_inception_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="feature_dim"):
        metrics.inception_extractor(feature_dim=1000)
    with pytest.raises(metrics.InceptionUnavailableError, match="no Inception weights file"):
        metrics.inception_extractor(weights_path=tmp_path / "absent.pth")


def test_inception_features_feed_the_network_uint8_rgb():
    seen = []

    class FakeInception(torch.nn.Module):  # stands in for the 299x299 network: mean colour
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x)
            return x.double().mean(dim=(2, 3))

    wrapper = metrics.InceptionFeatures(FakeInception(), feature_dim=3, batch_size=3)
    grey = (
        torch.tensor([-1.0, 0.0, 1.0, 0.5, -0.2, 1.0005, -1.0]).view(7, 1, 1, 1).expand(7, 1, 4, 4)
    )
    feats = metrics.extract_features(grey, wrapper)
    assert feats.shape == (7, 3) and feats.dtype == torch.float64
    assert [tuple(x.shape) for x in seen] == [(3, 3, 4, 4), (3, 3, 4, 4), (1, 3, 4, 4)]
    assert all(x.dtype == torch.uint8 for x in seen)
    # -1 -> 0, 0 -> 127.5 rounds to 128, 1 -> 255; rounding just past 1 is clamped
    assert feats[:, 0].tolist() == [0.0, 128.0, 255.0, 191.0, 102.0, 255.0, 0.0]
    with pytest.raises(ValueError, match=r"images must lie in \[-1, 1\], got values in \[-3"):
        metrics.extract_features(grey * 3, wrapper)  # beyond rounding: refused, not clamped
    assert torch.equal(feats[:, 0], feats[:, 2])  # grey is repeated to RGB
    assert metrics.fid(grey, grey, wrapper) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="1 or 3"):
        wrapper(torch.zeros(2, 2, 4, 4))


def test_inception_features_of_digits_where_available(digits):
    try:
        extractor = metrics.inception_extractor()
    except metrics.InceptionUnavailableError as err:
        pytest.skip(f"needs torch-fidelity and the Inception-v3 weights (network): {err}")
    _, (x, _) = digits
    feats = metrics.extract_features(x[:4], extractor)
    assert feats.shape == (4, 2048) and torch.isfinite(feats).all()


# ------------------------------------------------------------------------------------------------
# The exercises of notebook 07: the references pass, plausible wrong answers fail
# ------------------------------------------------------------------------------------------------


def _fid_scipy(a, b, ddof: int = 1, sqrt: bool = True) -> float:
    a, b = np.asarray(a), np.asarray(b)
    s1, s2 = np.cov(a, rowvar=False, ddof=ddof), np.cov(b, rowvar=False, ddof=ddof)
    product = scipy.linalg.sqrtm(s1 @ s2).real if sqrt else s1 @ s2
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * product))


def _mmd2(x, y, unbiased: bool = True) -> float:
    m, d = x.shape
    k_xx, k_yy, k_xy = ((u @ v.T / d + 1) ** 3 for u, v in ((x, x), (y, y), (x, y)))
    if not unbiased:  # the V-statistic: keeps k(x_i, x_i)
        return float(k_xx.mean() + k_yy.mean() - 2 * k_xy.mean())
    off = lambda k: (k.sum() - k.diagonal().sum()) / (m * (m - 1))  # noqa: E731
    return float(off(k_xx) + off(k_yy) - 2 * k_xy.mean())


def _is_numpy(logits, splits, marginal_over_all: bool = False, ddof: int = 0):
    p = torch.softmax(logits, dim=1).numpy()
    p_y_all = p.mean(0)
    scores = []
    for i in range(splits):
        part = p[i * len(p) // splits : (i + 1) * len(p) // splits]
        p_y = p_y_all if marginal_over_all else part.mean(0)
        scores.append(np.exp((part * (np.log(part) - np.log(p_y))).sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores, ddof=ddof if splits > 1 else 0))


def _pr_torch(real, fake, k, self_in_knn: bool = False):
    def radii(x):
        return torch.cdist(x, x).kthvalue(k if self_in_knn else k + 1, dim=1).values

    def inside(p, c, r):
        return (torch.cdist(p, c) <= r).any(dim=1).double().mean().item()

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


@pytest.mark.parametrize(
    ("name", "right", "wrong"),
    [
        ("eval.fid", _fid_scipy, lambda a, b: _fid_scipy(a, b, ddof=0)),  # biased covariance
        ("eval.fid", _fid_scipy, lambda a, b: _fid_scipy(a, b, sqrt=False)),  # no matrix sqrt
        ("eval.kid", _mmd2, lambda x, y: _mmd2(x, y, unbiased=False)),
        ("eval.inception_score", _is_numpy, lambda z, s: _is_numpy(z, s, marginal_over_all=True)),
        ("eval.inception_score", _is_numpy, lambda z, s: _is_numpy(z, s, ddof=1)),
        ("eval.precision_recall", _pr_torch, lambda r, f, k: _pr_torch(r, f, k, True)),
    ],
)
def test_exercises_accept_a_right_answer_and_reject_a_plausible_wrong_one(name, right, wrong):
    from course_lib import check

    assert check.verify(name, check.lookup(name).reference).passed
    assert check.verify(name, right).passed, check.verify(name, right).message
    result = check.verify(name, wrong)
    assert result.status == "fail", result.message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_new_metrics_on_cuda(classifier, digits):
    _, (x, _) = digits
    gpu = metrics.load_digit_classifier("cuda")
    assert metrics.inception_score(x[:200].cuda(), gpu, splits=2) == pytest.approx(
        metrics.inception_score(x[:200], classifier, splits=2), rel=1e-4
    )
    assert metrics.precision_recall(x[:100].cuda(), x[100:200].cuda(), gpu) == pytest.approx(
        metrics.precision_recall(x[:100], x[100:200], classifier), abs=0.02
    )
    assert metrics.ssim_diversity(x[:50].cuda(), n_pairs=40) == pytest.approx(
        metrics.ssim_diversity(x[:50], n_pairs=40), rel=1e-4
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metrics.DigitClassifier(width=-1), "width must be an int >= 1, got -1"),
        (lambda: metrics.mode_coverage(torch.zeros(4, 2), None), "distribution must have centers"),
        (
            lambda: metrics.kid_from_features(
                np.zeros((4, 3)), np.zeros((4, 3)), seed=torch.ones(3, 3)
            ),
            r"seed must be an int >= 0, got a Tensor of shape \(3, 3\)",
        ),
        (lambda: metrics.ssim_diversity(torch.zeros(4, 1, 28, 28) - 1, seed=1.5), "seed must be"),
    ],
)
def test_bad_arguments_get_one_line_naming_them(call, match):
    with pytest.raises(ValueError, match=match) as error:
        call()
    assert "\n" not in str(error.value)  # a tensor argument is described, not printed
