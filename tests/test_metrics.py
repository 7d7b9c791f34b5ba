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
    path = Path(metrics.__file__).parent / "weights" / metrics.WEIGHTS_FILE
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
