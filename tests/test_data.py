"""Tests of course_lib.data: toy mixtures, the offline digit set, loaders and their errors."""

from __future__ import annotations

import hashlib
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import data

SMALL = {"train": 2000, "test": 1000}


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Shrink the default digits28 split sizes so that a cold generation takes about a second."""
    for split, size in SMALL.items():
        monkeypatch.setitem(data.DIGITS28_SIZES, split, size)
    return SMALL


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder shared by the tests that only read the small splits (generated once)."""
    return tmp_path_factory.mktemp("digits28")


# ---------------------------------------------------------------------------------------------
# data_root
# ---------------------------------------------------------------------------------------------


def test_data_root_follows_env_and_is_created(monkeypatch, tmp_path):
    target = tmp_path / "nested" / "course"
    monkeypatch.setenv(data.DATA_ROOT_ENV, str(target))
    assert data.data_root() == target
    assert target.is_dir()


def test_data_root_default_is_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(data.DATA_ROOT_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.data_root() == tmp_path / ".cache" / "course_lib"
    assert data.data_root().is_dir()


# ---------------------------------------------------------------------------------------------
# 2-D toy distributions
# ---------------------------------------------------------------------------------------------


def test_ring_grid_spiral_centres():
    ring = data.ring()
    assert ring.n_modes == 8 and ring.std == 0.02
    torch.testing.assert_close(ring.centers[0], torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(ring.centers.norm(dim=1), torch.full((8,), 2.0))
    assert data.ring(n_modes=3, radius=1.0).centers[1, 0].item() == pytest.approx(-0.5)

    grid = data.grid()
    assert grid.n_modes == 25 and grid.std == 0.05
    assert sorted(set(grid.centers[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    torch.testing.assert_close(grid.centers.mean(0), torch.zeros(2))

    spiral = data.spiral()
    radii = spiral.centers.norm(dim=1)
    assert spiral.n_modes == 20
    assert radii.max().item() == pytest.approx(2.0)
    assert bool((radii.diff() > 0).all())  # ordered from the inside out
    gaps = torch.cdist(spiral.centers, spiral.centers) + 1e9 * torch.eye(20)
    assert gaps.min().item() > 10 * spiral.std  # modes are well separated


@pytest.mark.parametrize("name", data.TOY_DISTRIBUTIONS)
def test_toy_sampler_matches_its_parameters(name):
    dist = data.toy_distribution(name)
    n = 40_000
    x = dist.sample(n, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and x.dtype == torch.float32
    mode = torch.cdist(x, dist.centers).argmin(dim=1)
    counts = torch.bincount(mode, minlength=dist.n_modes).float()
    expected = n / dist.n_modes
    assert (counts - expected).abs().max() < 5 * expected**0.5  # equal weights
    for k in range(dist.n_modes):
        pts = x[mode == k]
        err = (pts.mean(0) - dist.centers[k]).abs().max().item()
        assert err < 5 * dist.std / len(pts) ** 0.5
        assert pts.std(0).tolist() == pytest.approx([dist.std] * 2, rel=0.15)


def test_toy_sampler_is_seeded():
    dist = data.ring()
    a = dist.sample(100, torch.Generator().manual_seed(1))
    b = dist.sample(100, torch.Generator().manual_seed(1))
    c = dist.sample(100, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: data.ring(n_modes=0), "n_modes"),
        (lambda: data.ring(std=0.0), "std"),
        (lambda: data.ring(radius=-1.0), "radius"),
        (lambda: data.grid(side=0), "side"),
        (lambda: data.grid(std=float("nan")), "std"),
        (lambda: data.spiral(n_modes=2.5), "n_modes"),
        (lambda: data.spiral(turns=0), "turns"),
        (lambda: data.ring().sample(0), "n"),
        (lambda: data.GaussianMixture2D("bad", torch.zeros(3, 3), 0.1), "centers"),
        (lambda: data.GaussianMixture2D("bad", torch.zeros(3, 2), 0), "std"),
        (lambda: data.toy_distribution("moons"), "name"),
    ],
)
def test_toy_bad_arguments(call, argument):
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        call()


# ---------------------------------------------------------------------------------------------
# digits28
# ---------------------------------------------------------------------------------------------


def test_digits28_shapes_range_and_balance(small, shared_root):
    images, labels = data.digits28("train", root=shared_root).tensors
    assert images.shape == (small["train"], 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (small["train"],) and labels.dtype == torch.int64
    assert images.min().item() == -1.0 and images.max().item() == 1.0
    assert torch.bincount(labels, minlength=10).tolist() == [small["train"] // 10] * 10
    # every block of 10 holds each digit once, so any prefix is balanced to within one
    assert torch.bincount(labels[:95], minlength=10).min().item() == 9
    # background is exactly -1: most pixels, and nearly all of the outer frame
    assert (images == -1).float().mean().item() > 0.6
    assert (images[:, :, [0, -1], :] == -1).float().mean().item() > 0.97


def test_digits28_is_framed_like_mnist(small, shared_root):
    images, _ = data.digits28("test", root=shared_root).tensors
    ink = (images[:, 0] + 1) / 2  # (N, 28, 28) in [0, 1]
    pos = torch.arange(28.0)
    mass = ink.sum((1, 2))
    com_y = (ink.sum(2) * pos).sum(1) / mass
    com_x = (ink.sum(1) * pos).sum(1) / mass
    assert (com_y - 13.5).abs().max() < 0.3 and (com_x - 13.5).abs().max() < 0.3
    hit = ink > 0.2
    rows, cols = hit.any(2).float(), hit.any(1).float()
    height = 28 - rows.flip(1).argmax(1) - rows.argmax(1)
    width = 28 - cols.flip(1).argmax(1) - cols.argmax(1)
    longest = torch.maximum(height, width)
    assert longest.min() >= 18 and longest.max() <= 22  # fitted into a 20x20 box
    assert 0.08 < ink.mean().item() < 0.25  # MNIST's mean ink is about 0.13


def test_digits28_is_deterministic_and_splits_differ(small, shared_root, tmp_path):
    a = data.digits28("test", seed=0, root=shared_root).tensors
    b = data.digits28("test", seed=0, root=tmp_path).tensors  # generated again, not cached
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    other_seed = data.digits28("test", seed=1, root=tmp_path).tensors
    train = data.digits28("train", seed=0, root=shared_root).tensors
    for images, labels in (other_seed, train):
        assert not torch.equal(images[:1000], a[0])
        assert not torch.equal(labels[:1000], a[1])
    # no test image appears in the train split
    flat_train = {row.tobytes() for row in train[0].numpy().reshape(len(train[0]), -1)}
    assert not any(row.tobytes() in flat_train for row in a[0].numpy().reshape(len(a[0]), -1))


def test_digits28_n_is_a_prefix(small, shared_root, tmp_path):
    full_x, full_y = data.digits28("test", root=shared_root).tensors
    x, y = data.digits28("test", n=123, root=shared_root).tensors
    assert x.shape == (123, 1, 28, 28)
    assert torch.equal(x, full_x[:123]) and torch.equal(y, full_y[:123])
    # more than the default size draws more chunks of the same streams
    big_x, big_y = data.digits28("test", n=small["test"] + 10, root=tmp_path).tensors
    assert len(big_x) == small["test"] + 10
    head = slice(0, small["test"])
    assert torch.equal(big_x[head], full_x) and torch.equal(big_y[head], full_y)


def test_digits28_shuffle_draws_at_random_from_the_whole_split(small, shared_root):
    full_x, full_y = data.digits28("test", root=shared_root).tensors
    x, y = data.digits28("test", n=400, shuffle=True, root=shared_root).tensors
    again = data.digits28("test", n=400, shuffle=True, root=shared_root).tensors
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])  # a fixed permutation
    rows = {r.tobytes(): i for i, r in enumerate(full_x.numpy().reshape(len(full_x), -1))}
    index = [rows[r.tobytes()] for r in x.numpy().reshape(len(x), -1)]
    assert len(set(index)) == 400 and torch.equal(y, full_y[index])  # distinct rows of the split
    assert max(index) >= 400  # not the prefix
    counts = torch.bincount(y, minlength=10)
    assert counts.max() - counts.min() >= 5  # class counts vary, as i.i.d. draws' do
    _, _, factors, _ = data.digits28(
        "test", n=50, shuffle=True, factors=True, root=shared_root
    ).tensors
    _, _, all_factors, _ = data.digits28("test", factors=True, root=shared_root).tensors
    assert torch.equal(factors, all_factors[index[:50]])  # factors follow the same rows


def test_digits28_cache_hit_is_identical_and_faster(small, tmp_path):
    start = time.perf_counter()
    cold = data.digits28("test", seed=3, root=tmp_path).tensors
    cold_s = time.perf_counter() - start
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary file left behind
    for key in ("test", "seed3", f"n{small['test']}", f"v{data.DIGITS28_VERSION}"):
        assert key in files[0].name
    start = time.perf_counter()
    warm = data.digits28("test", seed=3, root=tmp_path).tensors
    warm_s = time.perf_counter() - start
    assert torch.equal(cold[0], warm[0]) and torch.equal(cold[1], warm[1])
    assert warm_s < cold_s / 3


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped bit"])
def test_digits28_reports_and_rebuilds_a_damaged_cache(small, tmp_path, damage):
    good = data.digits28("test", root=tmp_path).tensors
    (path,) = tmp_path.glob("*.npz")
    raw = bytearray(path.read_bytes())
    if damage == "garbage":
        raw = bytearray(b"not a zip file")
    elif damage == "truncated":
        raw = raw[: len(raw) // 2]
    else:  # inside the compressed images: the zip's CRC no longer matches
        raw[len(raw) // 3] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=r"digits28 cache .* is damaged .*rebuilding it"):
        again = data.digits28("test", root=tmp_path).tensors
    assert torch.equal(good[0], again[0]) and torch.equal(good[1], again[1])
    with np.load(path) as z:  # and the cache was rewritten
        assert z["images"].shape == (small["test"], 28, 28)


def test_an_unwritable_data_folder_fails_before_any_work(small, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv(data.DATA_ROOT_ENV, str(tmp_path / "a_file" / "cache"))
    with pytest.raises(data.DatasetUnavailableError, match=r"\$COURSE_DATA .* is a file, not a"):
        data.digits28("test")
    with pytest.raises(data.DatasetUnavailableError, match=r"^root .* pass a root you can write"):
        data.digits28("test", root=tmp_path / "a_file")


def test_digits28_cache_key_follows_renderer_settings(small, shared_root, monkeypatch):
    before = data.digits28("test", n=20, root=shared_root).tensors[0]
    monkeypatch.setattr(data.glyphs, "_ELASTIC_ALPHA", 0.0)  # no elastic distortion: other images
    after = data.digits28("test", n=20, root=shared_root).tensors[0]
    assert not torch.equal(before, after)


def test_digits28_uses_data_root_by_default(small, monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_ROOT_ENV, str(tmp_path / "root"))
    data.digits28("test", n=10)
    assert len(list((tmp_path / "root").glob("digits28_*.npz"))) == 1


def test_digits28_classes_are_learnable(small, shared_root):
    """Labels match the pictures: a linear classifier reaches well above chance (10%)."""
    x, y = data.digits28("train", root=shared_root).tensors
    xt, yt = data.digits28("test", root=shared_root).tensors
    features = torch.cat([x.flatten(1), torch.ones(len(x), 1)], dim=1).double()
    targets = torch.nn.functional.one_hot(y, 10).double()
    gram = features.T @ features + 10.0 * torch.eye(features.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, features.T @ targets)  # ridge regression on one-hot labels
    test_features = torch.cat([xt.flatten(1), torch.ones(len(xt), 1)], dim=1).double()
    accuracy = ((test_features @ weights).argmax(1) == yt).double().mean().item()
    assert accuracy > 0.8


def test_digits28_default_sizes():
    assert data.DIGITS28_SIZES == {"train": 20_000, "test": 5_000}


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n": 0}, "n"),
        ({"n": -5}, "n"),
        ({"n": 2.5}, "n"),
        ({"split": "val"}, "split"),
        ({"seed": "zero"}, "seed"),
        ({"factors": 1}, "factors"),
        ({"shuffle": "no"}, "shuffle"),
    ],
)
def test_digits28_bad_arguments(kwargs, argument, tmp_path):
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        data.digits28(root=tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())  # nothing generated or written


def test_digits28_train_prefix_is_pinned(small, shared_root):
    """The splits behind every number quoted in the notebooks: a change here must be deliberate.

    If this fails, the renderer or its random streams changed: bump DIGITS28_VERSION, retrain
    the shipped classifier (tools/train_digit_classifier.py) and re-check the notebooks' numbers.
    """
    x, y = data.digits28("train", n=64, root=shared_root).tensors
    digest = hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
    assert y[:10].tolist() == [5, 4, 1, 3, 9, 8, 6, 0, 7, 2]
    assert digest == "eef004488cdd4e8f966da8abc6683b478d8881262100509ea29646adbe4f7a18"


# ---------------------------------------------------------------------------------------------
# digits28 factors, render_digits, draw_digit_factors
# ---------------------------------------------------------------------------------------------

COLUMN = {name: i for i, name in enumerate(data.DIGITS28_FACTORS)}


def test_factor_and_font_lists():
    assert data.DIGITS28_FACTORS == (
        "font", "bar_one", "rotation", "shear", "scale_x", "scale_y", "stroke",
    )  # fmt: skip
    assert len(data.DIGITS28_FONTS) == 21 and data.DIGITS28_FONTS[0] == "DejaVuSans.ttf"
    glyphs = data.digit_glyphs()
    assert {font for font, _, _ in glyphs} <= set(data.DIGITS28_FONTS)
    assert all(str(label) == text or (text, label) == ("|", 1) for _, text, label in glyphs)


def test_digits28_factors_shapes_and_ranges(small, shared_root):
    x, y, f, e = data.digits28("test", root=shared_root, factors=True).tensors
    n = small["test"]
    plain = data.digits28("test", root=shared_root).tensors
    assert torch.equal(x, plain[0]) and torch.equal(y, plain[1])
    assert f.shape == (n, 7) and f.dtype == torch.float64
    assert e.shape == (n, 2, 20, 20) and e.dtype == torch.float32
    assert e.min() >= -1 and e.max() <= 1 and e.std() > 0.5  # uniform in [-1, 1]
    font, bar = f[:, COLUMN["font"]], f[:, COLUMN["bar_one"]]
    assert torch.equal(font, font.round()) and font.min() >= 0 and font.max() <= 20
    assert len(font.unique()) == 21
    assert set(bar.tolist()) == {0.0, 1.0} and bool((y[bar == 1] == 1).all())
    dejavu_sans = [i for i, name in enumerate(data.DIGITS28_FONTS) if name.startswith("DejaVuSans")]
    assert set(font[bar == 1].tolist()) <= set(map(float, dejavu_sans))
    mono = [i for i, name in enumerate(data.DIGITS28_FONTS) if "Mono" in name]
    assert not bool(torch.isin(font[y == 0], torch.tensor(mono, dtype=f.dtype)).any())
    rotation, shear = f[:, COLUMN["rotation"]], f[:, COLUMN["shear"]]
    assert rotation.abs().max() <= 12 and rotation.abs().max() > 11.5
    assert shear.abs().max() <= 0.3 and shear.abs().max() > 0.29
    log_x, log_y = f[:, COLUMN["scale_x"]].log(), f[:, COLUMN["scale_y"]].log()
    size, aspect = (log_x + log_y) / 2, log_x - log_y
    assert size.std().item() == pytest.approx(0.08, rel=0.1)
    assert aspect.std().item() == pytest.approx(0.12, rel=0.1)
    stroke = f[:, COLUMN["stroke"]]
    assert stroke.min() >= 1.8 and stroke.max() <= 3.4 and stroke.max() - stroke.min() > 1.5


def test_digits28_factors_re_render_the_images_bit_for_bit(small, shared_root):
    x, y, f, e = data.digits28("train", n=1100, root=shared_root, factors=True).tensors
    rows = slice(950, 1100)  # across the boundary of two random streams
    assert torch.equal(data.render_digits(y[rows], f[rows], e[rows]), x[rows])
    head = data.digits28("train", n=30, root=shared_root, factors=True).tensors
    assert torch.equal(head[2], f[:30]) and torch.equal(head[3], e[:30])  # a prefix too


def test_render_digits_follows_each_factor(small, shared_root):
    x, y, f, e = data.digits28("test", n=8, root=shared_root, factors=True).tensors
    ink = data.render_ink(y, f, e)
    assert ink.shape == (8, 28, 28) and ink.dtype == torch.float32
    assert ink.min() >= 0 and ink.max() <= 1
    assert torch.allclose(ink * 2 - 1, x[:, 0], atol=1 / 255)  # x is ink quantised to 8 bits
    for name, value in [("rotation", 30.0), ("shear", -0.5), ("scale_x", 1.5), ("stroke", 5.0)]:
        g = f.clone()
        g[:, COLUMN[name]] = value
        assert not torch.equal(data.render_digits(y, g, e), x), name
    no_field = data.render_digits(y, f, None)
    assert no_field.shape == x.shape and not torch.equal(no_field, x)
    # positive rotation turns clockwise, positive shear leans right: the top moves right
    one = torch.tensor([1])
    bar = torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 2.5]], dtype=torch.float64)
    for name, value in [("rotation", 10.0), ("shear", 0.3)]:
        g = bar.clone()
        g[0, COLUMN[name]] = value
        ink = (data.render_digits(one, g)[0, 0] + 1) / 2
        top, bottom = ink[:10], ink[18:]
        x_top = (top.sum(0) * torch.arange(28.0)).sum() / top.sum()
        x_bottom = (bottom.sum(0) * torch.arange(28.0)).sum() / bottom.sum()
        assert x_top - x_bottom > 1.5, name


def test_draw_digit_factors_is_seeded():
    labels = torch.arange(10).repeat(3)
    f, e = data.draw_digit_factors(labels, torch.Generator().manual_seed(5))
    g, d = data.draw_digit_factors(labels, torch.Generator().manual_seed(5))
    h, _ = data.draw_digit_factors(labels, torch.Generator().manual_seed(6))
    assert torch.equal(f, g) and torch.equal(e, d) and not torch.equal(f, h)
    assert f.shape == (30, 7) and e.shape == (30, 2, 20, 20)
    images = data.render_digits(labels, f, e)
    assert images.shape == (30, 1, 28, 28) and images.min() == -1


def _one_line_value_error(call, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{argument}(?!\w)") as info:
        call()
    assert "\n" not in str(info.value)


def _factor_table(**values: float) -> torch.Tensor:
    row = {"font": 0, "bar_one": 0, "rotation": 0, "shear": 0, "scale_x": 1, "scale_y": 1}
    row |= {"stroke": 2.5} | values
    return torch.tensor([[float(row[name]) for name in data.DIGITS28_FACTORS]], dtype=torch.float64)


@pytest.mark.parametrize(
    ("labels", "factors", "elastic", "argument"),
    [
        (torch.tensor([1.0]), _factor_table(), None, "labels"),
        (torch.tensor([10]), _factor_table(), None, "labels"),
        (torch.tensor([1]), _factor_table()[:, :6], None, "factors"),
        (torch.tensor([1, 2]), _factor_table(), None, "factors"),
        (torch.tensor([1]), _factor_table(font=21), None, "font"),
        (torch.tensor([1]), _factor_table(font=0.5), None, "font"),
        (torch.tensor([0]), _factor_table(font=4), None, "font"),  # DejaVu Sans Mono: no zero
        (torch.tensor([2]), _factor_table(bar_one=1), None, "bar_one"),
        (torch.tensor([1]), _factor_table(font=8, bar_one=1), None, "bar_one"),  # a serif font
        (torch.tensor([1]), _factor_table(scale_y=0), None, "scale_y"),
        (torch.tensor([1]), _factor_table(stroke=-1), None, "stroke"),
        (torch.tensor([1]), _factor_table(rotation=float("nan")), None, "factors"),
        (torch.tensor([1]), _factor_table(), torch.zeros(1, 2, 28, 28), "elastic"),
        (torch.tensor([1]), _factor_table(), "none", "elastic"),
    ],
)
def test_render_digits_bad_arguments(labels, factors, elastic, argument):
    _one_line_value_error(lambda: data.render_digits(labels, factors, elastic), argument)


def test_draw_digit_factors_bad_arguments():
    _one_line_value_error(lambda: data.draw_digit_factors(torch.tensor([1]), 0), "generator")
    g = torch.Generator().manual_seed(0)
    _one_line_value_error(lambda: data.draw_digit_factors(torch.tensor([-1]), g), "labels")
    _one_line_value_error(lambda: data.draw_digit_factors([1, 2], g), "labels")


# ---------------------------------------------------------------------------------------------
# digits28_pairs
# ---------------------------------------------------------------------------------------------

POSE = [COLUMN[name] for name in ("rotation", "shear", "scale_x", "scale_y")]


@pytest.fixture(scope="module")
def pairs(shared_root: Path) -> tuple[torch.Tensor, ...]:
    """1,200 sans/serif pairs with their factors (two random streams)."""
    return data.digits28_pairs(1200, seed=0, root=shared_root, factors=True).tensors


def test_digits28_pairs_are_aligned(pairs):
    x_a, x_b, y, f_a, f_b, e = pairs
    assert x_a.shape == x_b.shape == (1200, 1, 28, 28) and x_a.dtype == torch.float32
    assert y.shape == (1200,) and y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [120] * 10
    assert x_a.min() == -1 and x_a.max() == 1 and x_b.min() == -1 and x_b.max() == 1
    assert torch.equal(f_a[:, POSE], f_b[:, POSE])  # same pose
    assert torch.equal(f_a[:, COLUMN["stroke"]], f_b[:, COLUMN["stroke"]])
    fonts = data.DIGITS28_FONTS
    assert set(f_a[:, COLUMN["font"]].tolist()) == {float(fonts.index("DejaVuSans.ttf"))}
    assert set(f_b[:, COLUMN["font"]].tolist()) == {float(fonts.index("DejaVuSerif.ttf"))}
    assert bool((f_a[:, COLUMN["bar_one"]] == 0).all())
    assert bool((x_a != x_b).flatten(1).sum(1).min() > 20)  # every pair differs by its style
    rows = slice(990, 1010)  # the factors re-render both images
    assert torch.equal(data.render_digits(y[rows], f_a[rows], e[rows]), x_a[rows])
    assert torch.equal(data.render_digits(y[rows], f_b[rows], e[rows]), x_b[rows])
    # the same digit in the same pose: the two styles agree far more than unrelated digits do
    same = (x_a - x_b).abs().mean().item()
    other = (x_a - x_b.roll(1, dims=0)).abs().mean().item()
    assert same < 0.6 * other


def test_digits28_pairs_thin_bold_share_font_and_pose(pairs, shared_root):
    x_a, x_b, y, f_a, f_b, e = data.digits28_pairs(
        300, styles=("thin", "bold"), root=shared_root, factors=True
    ).tensors
    assert torch.equal(y, pairs[2][:300]) and torch.equal(e, pairs[5][:300])  # same draws
    assert torch.equal(f_a[:, POSE], pairs[3][:300, POSE])
    assert torch.equal(f_a[:, COLUMN["font"]], f_b[:, COLUMN["font"]])
    assert len(f_a[:, COLUMN["font"]].unique()) == 10  # the regular-weight fonts
    assert set(f_a[:, COLUMN["stroke"]].tolist()) == {1.8}
    assert set(f_b[:, COLUMN["stroke"]].tolist()) == {4.0}
    assert (x_b > 0).sum() > 1.3 * (x_a > 0).sum()  # bold has more ink
    assert bool((x_a != x_b).flatten(1).sum(1).min() > 20)
    own = data.digits28_pairs(
        5, styles=({"font": "cmr10.ttf", "stroke": 3.0}, "sans"), root=shared_root
    )
    assert own.tensors[0].shape == (5, 1, 28, 28)


def test_digits28_pairs_are_deterministic_prefixes_and_cached(pairs, tmp_path):
    x_a, x_b, y = data.digits28_pairs(30, seed=0, root=tmp_path).tensors
    assert torch.equal(x_a, pairs[0][:30]) and torch.equal(x_b, pairs[1][:30])
    assert torch.equal(y, pairs[2][:30])
    (path,) = tmp_path.glob("digits28pairs_*.npz")
    assert "seed0" in path.name and "n1000" in path.name
    again = data.digits28_pairs(30, seed=0, root=tmp_path).tensors
    assert torch.equal(again[0], x_a) and len(list(tmp_path.iterdir())) == 1
    other = data.digits28_pairs(30, seed=1, root=tmp_path).tensors
    assert not torch.equal(other[0], x_a)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n": 0}, "n"),
        ({"n": 10, "seed": 1.5}, "seed"),
        ({"n": 10, "factors": "yes"}, "factors"),
        ({"n": 10, "styles": ("sans",)}, "styles"),
        ({"n": 10, "styles": "sans"}, "styles"),
        ({"n": 10, "styles": ("sans", "sans")}, "styles"),
        ({"n": 10, "styles": ("sans", "gothic")}, r"styles\[1\]"),
        ({"n": 10, "styles": ({"font": "DejaVuSansMono.ttf"}, "sans")}, r"styles\[0\]"),
        ({"n": 10, "styles": ({"font": "Arial.ttf"}, "sans")}, r"styles\[0\]"),
        ({"n": 10, "styles": ({"stroke": 0}, "sans")}, r"styles\[0\]"),
        ({"n": 10, "styles": ({"colour": "red"}, "sans")}, r"styles\[0\]"),
    ],
)
def test_digits28_pairs_bad_arguments(kwargs, argument, tmp_path):
    _one_line_value_error(lambda: data.digits28_pairs(root=tmp_path, **kwargs), argument)
    assert not list(tmp_path.iterdir())  # nothing generated or written


# ---------------------------------------------------------------------------------------------
# sklearn_digits and load_images
# ---------------------------------------------------------------------------------------------


def test_sklearn_digits():
    images, labels = data.sklearn_digits().tensors
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert images.min().item() == -1.0 and images.max().item() == 1.0
    assert labels.dtype == torch.int64 and set(labels.tolist()) == set(range(10))
    few, few_labels = data.sklearn_digits(n=10).tensors
    assert torch.equal(few, images[:10]) and torch.equal(few_labels, labels[:10])
    with pytest.raises(ValueError, match=r"\bn="):
        data.sklearn_digits(n=5000)


def test_load_images_dispatches_offline_sets(small, shared_root):
    got = data.load_images("digits28", split="test", n=50, root=shared_root).tensors
    want = data.digits28("test", n=50, root=shared_root).tensors
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert data.load_images("sklearn_digits", n=7).tensors[0].shape == (7, 1, 8, 8)
    got = data.load_images("digits28", split="test", n=50, shuffle=True, root=shared_root).tensors
    want = data.digits28("test", n=50, shuffle=True, root=shared_root).tensors
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    every = data.sklearn_digits().tensors[0].flatten(1)
    drawn = data.load_images("sklearn_digits", n=300, shuffle=True).tensors[0].flatten(1)
    assert not torch.equal(drawn, every[:300])  # not the prefix ...
    index = [int((every == row).all(1).nonzero()[0, 0]) for row in drawn]
    assert max(index) >= 300 and len(set(index)) == 300  # ... but distinct images of the split
    assert set(data.IMAGE_DATASETS) == {
        "digits28",
        "sklearn_digits",
        "mnist",
        "fashion_mnist",
        "cifar10",
    }


def test_load_images_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"name='celeba'.*digits28.*mnist"):
        data.load_images("celeba", root=tmp_path)
    with pytest.raises(ValueError, match=r"\bsplit="):
        data.load_images("mnist", split="validation", root=tmp_path)
    with pytest.raises(ValueError, match=r"\bsplit="):
        data.load_images("sklearn_digits", split="test")
    with pytest.raises(ValueError, match=r"\bn="):
        data.load_images("mnist", n=0, root=tmp_path)
    with pytest.raises(ValueError, match=r"\bshuffle\b"):
        data.load_images("sklearn_digits", shuffle="yes")


def _raising(exc: BaseException) -> type:
    class Unreachable:
        def __init__(self, *args, **kwargs):
            raise exc

    return Unreachable


@pytest.mark.parametrize(
    ("name", "attribute", "pretty"),
    [
        ("mnist", "MNIST", "MNIST"),
        ("fashion_mnist", "FashionMNIST", "Fashion-MNIST"),
        ("cifar10", "CIFAR10", "CIFAR-10"),
    ],
)
def test_download_failure_names_the_offline_alternative(
    name, attribute, pretty, monkeypatch, tmp_path
):
    torchvision = pytest.importorskip("torchvision")
    cause = urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torchvision.datasets, attribute, _raising(cause))
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load_images(name, root=tmp_path)
    message = str(info.value)
    assert message.startswith(pretty) and "no network" in message
    assert "load_images('digits28')" in message and str(tmp_path) in message
    assert "\n" not in message
    assert info.value.__cause__ is cause


def test_torchvision_mirror_errors_read_as_no_network(monkeypatch, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    failed = RuntimeError(  # what torchvision raises when every mirror fails
        "Error downloading train-images-idx3-ubyte.gz:\nTried https://example.org/mnist/, got:\n"
        "<urlopen error [Errno -2] Name or service not known>\n"
    )
    monkeypatch.setattr(torchvision.datasets, "MNIST", _raising(failed))
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load_images("mnist", root=tmp_path)
    assert "(no network: [Errno -2] Name or service not known)" in str(info.value)


def test_corrupt_download_is_also_unavailable(monkeypatch, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    broken = RuntimeError("Dataset not found or corrupted. You can use download=True")
    monkeypatch.setattr(torchvision.datasets, "MNIST", _raising(broken))
    with pytest.raises(data.DatasetUnavailableError, match="MNIST.*corrupted.*digits28"):
        data.load_images("mnist", split="test", root=tmp_path)


def test_torchvision_arrays_are_converted(monkeypatch, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    seen: dict[str, object] = {}

    class FakeMNIST:
        def __init__(self, root, train, download):
            seen.update(root=root, train=train, download=download)
            self.data = torch.zeros(5, 28, 28, dtype=torch.uint8)
            self.data[:, :, 1] = 255
            self.targets = torch.arange(5)

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            self.data = np.full((4, 32, 32, 3), 255, dtype=np.uint8)
            self.data[:, :, :, 0] = 0
            self.targets = [3, 1, 4, 1]

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    x, y = data.load_images("mnist", split="test", n=3, root=tmp_path).tensors
    assert seen == {"root": str(tmp_path), "train": False, "download": True}
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x[0, 0, 0, :2].tolist() == [-1.0, 1.0]
    x, y = data.load_images("cifar10", root=Path(tmp_path)).tensors
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [3, 1, 4, 1]
    assert x[:, 0].eq(-1).all() and x[:, 1:].eq(1).all()  # channels first: red is 0
