"""Datasets of the course: 2-D toy mixtures, offline digit images, downloads with clear errors.

Everything here works offline except the torchvision datasets (MNIST, Fashion-MNIST, CIFAR-10),
which download into :func:`data_root` and raise :class:`DatasetUnavailableError` (naming the offline
alternative) when they cannot. Images are float32 tensors in [-1, 1] of shape (N, C, H, W).
Nothing runs at import time; randomness comes from an explicit seed or ``torch.Generator``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import TensorDataset

DATA_ROOT_ENV = "COURSE_DATA"
"""Environment variable naming the folder for datasets and caches (default ~/.cache/course_lib)."""

IMAGE_DATASETS = ("digits28", "sklearn_digits", "mnist", "fashion_mnist", "cifar10")
"""Names accepted by :func:`load_images`; the first two need no network."""

TOY_DISTRIBUTIONS = ("ring", "grid", "spiral")
"""Names accepted by :func:`toy_distribution`."""

DIGITS28_VERSION = "2"
"""Bump when the digit renderer's code changes: it is in the cache key, so old caches go unused."""

DIGITS28_SIZES = {"train": 20_000, "test": 5_000}
"""Default number of images per split of :func:`digits28`."""

_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
_PRETTY = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


class DatasetUnavailableError(RuntimeError):
    """A dataset could not be downloaded or read; the message names the offline alternative."""


def data_root() -> Path:
    """The folder for datasets and caches: ``$COURSE_DATA`` or ``~/.cache/course_lib`` (created)."""
    root = Path(os.environ.get(DATA_ROOT_ENV) or "~/.cache/course_lib").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _check_n(n: int | None, what: str = "n") -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
        raise ValueError(f"{what}={n!r} is not a positive integer; pass e.g. {what}=1000 or None.")


def _check_split(split: str) -> None:
    if split not in DIGITS28_SIZES:
        raise ValueError(f"split={split!r} is not a split; use 'train' or 'test'.")


def _check_positive(value: float, what: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise ValueError(f"{what}={value!r} must be a positive finite number, e.g. {what}=1.0.")


def _check_count(value: int, what: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what}={value!r} must be an integer >= {minimum}.")


# ---------------------------------------------------------------------------------------------
# 2-D toy distributions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GaussianMixture2D:
    """Equal-weight mixture of K isotropic 2-D Gaussians: p(x) = (1/K) sum_k N(x; c_k, std^2 I).

    The standard test bed for mode collapse: a generator that covers all K modes with samples
    within a few ``std`` of a centre has learned the distribution; one that covers few has
    collapsed. ``centers`` is a (K, 2) float32 tensor; compared by identity (``eq=False``).
    Reference: Metz et al. 2017, arXiv:1611.02163, Section 3.1 (ring of 8);
    Srivastava et al. 2017 (VEEGAN), arXiv:1705.07761, Section 5.1 (ring and 5x5 grid).
    """

    name: str
    centers: Tensor
    std: float

    def __post_init__(self) -> None:
        centers = torch.as_tensor(self.centers, dtype=torch.float32)
        if centers.dim() != 2 or centers.shape[1] != 2 or centers.shape[0] < 1:
            raise ValueError(
                f"centers=<tensor of shape {tuple(centers.shape)}> is not (K, 2); "
                "pass one (x, y) centre per row."
            )
        _check_positive(self.std, "std")
        object.__setattr__(self, "centers", centers)
        object.__setattr__(self, "std", float(self.std))

    @property
    def n_modes(self) -> int:
        """K, the number of mixture components."""
        return int(self.centers.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw n points: k ~ Uniform{0..K-1}, x = c_k + std * eps, eps ~ N(0, I).

        Shapes: -> (n, 2) float32 on the device of ``centers`` (the generator must live there).
        """
        _check_count(n, "n")
        device = self.centers.device
        k = torch.randint(self.n_modes, (n,), generator=generator, device=device)
        eps = torch.randn(n, 2, generator=generator, device=device)
        return self.centers[k] + self.std * eps


def ring(n_modes: int = 8, radius: float = 2.0, std: float = 0.02) -> GaussianMixture2D:
    """K Gaussians evenly spaced on a circle: c_k = radius * (cos 2 pi k / K, sin 2 pi k / K).

    Defaults are the unrolled-GAN setting (8 modes, radius 2, std 0.02).
    Reference: Metz et al. 2017, arXiv:1611.02163, Section 3.1; VEEGAN, arXiv:1705.07761, 5.1.
    Shapes: centers (n_modes, 2).
    """
    _check_count(n_modes, "n_modes")
    _check_positive(radius, "radius")
    _check_positive(std, "std")
    angle = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    centers = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return GaussianMixture2D("ring", centers.float(), std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture2D:
    """side x side Gaussians on a square grid centred at 0 (default 25 modes at -4, -2, 0, 2, 4).

    Reference: Srivastava et al. 2017 (VEEGAN), arXiv:1705.07761, Section 5.1;
    Lin et al. 2018 (PacGAN), arXiv:1712.04086, Section 5.1.
    Shapes: centers (side**2, 2), row-major in (x, y).
    """
    _check_count(side, "side")
    _check_positive(spacing, "spacing")
    _check_positive(std, "std")
    axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    centers = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    return GaussianMixture2D("grid", centers.float(), std)


def spiral(
    n_modes: int = 20, turns: float = 2.0, radius: float = 2.0, std: float = 0.05
) -> GaussianMixture2D:
    """K Gaussians at equal arc length along an Archimedean spiral r = radius * theta / theta_max.

    theta runs from pi/2 to theta_max = pi/2 + 2 pi turns: modes sit on nested arms, so a
    generator must bend one sheet of mass around the centre. A discrete version of the Swiss
    roll of Gulrajani et al. 2017. With the defaults, neighbouring modes are 0.6-0.75 apart and
    the arms 0.9 apart, i.e. at least 12 std.
    Reference: course-made; cf. Gulrajani et al. 2017 (WGAN-GP), arXiv:1704.00028, Sec. 4, Fig. 1.
    Shapes: centers (n_modes, 2), ordered from the inside out.
    """
    _check_count(n_modes, "n_modes")
    _check_positive(turns, "turns")
    _check_positive(radius, "radius")
    _check_positive(std, "std")
    theta_max = math.pi / 2 + 2 * math.pi * turns
    theta = torch.linspace(math.pi / 2, theta_max, 4096, dtype=torch.float64)
    r = radius * theta / theta_max
    curve = torch.stack([r * theta.cos(), r * theta.sin()], dim=1)
    step = curve.diff(dim=0).norm(dim=1)
    arc = torch.cat([step.new_zeros(1), step.cumsum(0)])  # arc length at each theta
    targets = torch.linspace(0, float(arc[-1]), n_modes, dtype=torch.float64)
    idx = torch.searchsorted(arc, targets).clamp(max=len(arc) - 1)
    return GaussianMixture2D("spiral", curve[idx].float(), std)


def toy_distribution(name: str) -> GaussianMixture2D:
    """The default mixture called ``name``: "ring" (8 modes), "grid" (25) or "spiral" (20)."""
    factories = {"ring": ring, "grid": grid, "spiral": spiral}
    if name not in factories:
        raise ValueError(f"name={name!r} is not a toy distribution; use one of {TOY_DISTRIBUTIONS}")
    return factories[name]()


# ---------------------------------------------------------------------------------------------
# digits28: the offline 28x28 digit set, rendered from matplotlib's fonts
# ---------------------------------------------------------------------------------------------

# Fonts shipped in matplotlib's mpl-data/fonts/ttf with ordinary lining digits (cmmi10 has
# old-style figures, cmsy10/cmex10 map '0'-'9' to symbols, the Display fonts lack digits).
_FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf",
)  # fmt: skip
_DOTTED_ZERO = "DejaVuSansMono"  # its '0' carries a dot, which handwritten zeros lack
_BAR_ONE = "DejaVuSans"  # its '|' is a plain bar: most handwritten ones have no flag or foot
_TILE = 64  # template and working resolution (pixels)
_GLYPH = 40.0  # longest side of a glyph in a template (pixels); the 28x28 frame fits it into 20
_SHRINK = 0.8  # the warp shrinks glyphs so rotation and shear stay inside the tile
_BASE_WIDTH = 4.4  # minimum stroke width of a template (pixels; = 2.2 px in the 28x28 frame)
_CHUNK = 1000  # images drawn per random stream; any n is a prefix of a larger draw
_ROTATION = 12.0  # max |rotation| (degrees), uniform
_SHEAR = 0.3  # max |horizontal shear|, uniform
_ELASTIC_SIGMA, _ELASTIC_ALPHA = 4.0, 28.0  # 28x28-frame pixels; Simard et al. use 4 and 34
_STROKE = (1.8, 3.4)  # stroke width range (28x28-frame pixels), uniform
_STROKE_BLUR = 1.9  # Gaussian blur of the templates (pixels) that the stroke threshold acts on


def _font_folder() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _glyph_list() -> tuple[tuple[str, str, int], ...]:
    """(font file, text, label) of every template, for the fonts this matplotlib ships.

    Each font gives its ten digits (not the dotted zero of DejaVu Sans Mono); the DejaVu Sans
    fonts also give '|' as a one, since most handwritten ones are a single stroke.
    """
    folder = _font_folder()
    glyphs = []
    for font in _FONT_FILES:
        if not (folder / font).is_file():
            continue
        glyphs += [(font, str(d), d) for d in range(10) if d or not font.startswith(_DOTTED_ZERO)]
        if font.startswith(_BAR_ONE):
            glyphs.append((font, "|", 1))
    if {label for _, _, label in glyphs} != set(range(10)):
        raise DatasetUnavailableError(
            f"digits28 needs the fonts matplotlib ships in {folder}; reinstall matplotlib."
        )
    return tuple(glyphs)


@functools.lru_cache(maxsize=1)
def _digit_templates() -> tuple[Tensor, Tensor, Tensor]:
    """Render every glyph of :func:`_glyph_list` once: blurred ink (M, 64, 64), stroke, labels.

    Glyph outlines come from matplotlib.textpath.TextPath, are scaled so their longest side is
    40 px, centred, and filled by the Agg rasteriser (anti-aliased). Thin glyphs are thickened
    with a round-joined outline stroke so that every template's stroke is at least 4.4 px wide
    (width estimated as 2 * area / perimeter); ``stroke`` (M,) is that width after thickening.
    The ink is returned blurred (sigma = 1.9 px): :func:`_render_chunk` thresholds it after the
    warp to set the stroke width, so the blur is done once here instead of once per image.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    folder, glyph_list = _font_folder(), _glyph_list()
    paths, perimeters = [], []
    for font, text, _ in glyph_list:
        path = TextPath((0, 0), text, size=100, prop=FontProperties(fname=str(folder / font)))
        (x0, y0), (x1, y1) = path.vertices.min(0), path.vertices.max(0)
        scale = _GLYPH / max(x1 - x0, y1 - y0)
        fit = Affine2D().translate(-(x0 + x1) / 2, -(y0 + y1) / 2).scale(scale, -scale)
        path = fit.transform_path(path)
        rings = path.to_polygons(closed_only=True)
        perimeters.append(sum(np.linalg.norm(np.diff(r, axis=0), axis=1).sum() for r in rings))
        paths.append(path)

    def rasterise(widen: np.ndarray) -> np.ndarray:  # all glyphs on one canvas, one draw
        cols, rows = 16, -(-len(paths) // 16)
        fig = Figure(figsize=(cols * _TILE / 72, rows * _TILE / 72), dpi=72)  # 1 pt = 1 px
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        ax.set_xlim(0, cols * _TILE)
        ax.set_ylim(rows * _TILE, 0)  # y down, like image rows
        for i, path in enumerate(paths):
            row, col = divmod(i, cols)
            place = Affine2D().translate((col + 0.5) * _TILE, (row + 0.5) * _TILE)
            edge = "black" if widen[i] > 0 else "none"
            patch = PathPatch(
                place.transform_path(path),
                facecolor="black",
                edgecolor=edge,
                linewidth=2 * widen[i],
                joinstyle="round",
                snap=False,
            )
            ax.add_patch(patch)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        ink = 1.0 - np.asarray(canvas.buffer_rgba())[:, :, 0].astype(np.float32) / 255.0
        tiles = ink.reshape(rows, _TILE, cols, _TILE).transpose(0, 2, 1, 3)
        return tiles.reshape(rows * cols, _TILE, _TILE)[: len(paths)]

    plain = rasterise(np.zeros(len(paths)))
    width = 2 * plain.reshape(len(paths), -1).sum(1) / np.maximum(perimeters, 1e-6)
    # thicken non-bold glyphs to the base width, and by at least 0.5 px a side (their hairlines)
    widen = np.where(width < 6.0, np.maximum((_BASE_WIDTH - width) / 2, 0.5), 0.0)
    ink = torch.from_numpy(rasterise(widen))
    templates = _separable(ink, _gauss_matrix(_TILE, _TILE, _STROKE_BLUR)).contiguous()
    stroke = torch.from_numpy((width + 2 * widen).astype(np.float32))
    labels = torch.tensor([label for _, _, label in glyph_list])
    return templates, stroke, labels


def _gauss_matrix(n_out: int, n_in: int, sigma: float) -> Tensor:
    """(n_out, n_in) matrix that resamples a length-n_in signal to n_out points with Gaussian blur.

    Blurring an image x (..., H, W) is M_h @ x @ M_w.T; weights are normalised per output row.
    """
    pos_out = (torch.arange(n_out, dtype=torch.float32) + 0.5) * (n_in / n_out)
    pos_in = torch.arange(n_in, dtype=torch.float32) + 0.5
    w = torch.exp(-0.5 * ((pos_out[:, None] - pos_in[None, :]) / sigma) ** 2)
    return w / w.sum(1, keepdim=True)


def _separable(x: Tensor, m: Tensor) -> Tensor:
    """m @ x @ m.T over the last two dims of x (..., n, n) as two large matrix products."""
    return ((x @ m.T).transpose(-1, -2) @ m.T).transpose(-1, -2)


def _render_chunk(labels: Tensor, generator: torch.Generator) -> Tensor:
    """Distort font glyphs into MNIST-like digits: labels (B,) -> ink (B, 28, 28) in [0, 1].

    Per image, vectorised over the batch: a random template of its label; an affine warp
    (rotation and shear uniform in +-12 deg and +-0.3, log-normal size and aspect); an elastic
    field (Simard et al. 2003: uniform noise in [-1, 1] per pixel, Gaussian blur sigma, times
    alpha; sigma = 4, alpha = 28 frame pixels, milder than their 34 so serif hairlines survive),
    both applied in one grid_sample; a random stroke width (soft threshold of the pre-blurred
    template: a smooth dilation, to 1.8-3.4 frame pixels, never thinner than the font); then MNIST
    framing: the ink's bounding box is scaled into 20x20 (aspect kept) and its centre of mass
    put at the centre of the 28x28 field, by area resampling (anti-aliased). No random
    translation: the framing would undo it.
    """
    templates, stroke, template_labels = _digit_templates()
    b, t, g = labels.shape[0], _TILE, generator
    # a template drawn uniformly among those of each image's label
    match = (template_labels[None, :] == labels[:, None]).float()  # (B, M)
    pick = torch.multinomial(match, 1, generator=g).squeeze(1)
    src = templates[pick].unsqueeze(1)  # (B, 1, 64, 64)

    # affine: output -> input coordinates, theta = A^-1 with A = rotation @ shear @ scale
    angle = (torch.rand(b, generator=g) * 2 - 1) * math.radians(_ROTATION)
    shear = (torch.rand(b, generator=g) * 2 - 1) * _SHEAR
    log_s = torch.randn(b, 2, generator=g) * torch.tensor([0.08, 0.12])  # size, aspect
    sx = _SHRINK * torch.exp(log_s[:, 0] + log_s[:, 1] / 2)
    sy = _SHRINK * torch.exp(log_s[:, 0] - log_s[:, 1] / 2)
    cos, sin = angle.cos(), angle.sin()
    a = torch.stack([sx * cos, sy * (-sin - shear * cos), sx * sin, sy * (cos - shear * sin)], 1)
    det = a[:, 0] * a[:, 3] - a[:, 1] * a[:, 2]
    inv = torch.stack([a[:, 3], -a[:, 1], -a[:, 2], a[:, 0]], 1) / det[:, None]
    pos = (torch.arange(t, dtype=torch.float32) + 0.5) / t * 2 - 1  # pixel centres, grid units

    # elastic field (Simard 2003) in units of the 28x28 frame, drawn on a 2-px cell grid
    frame_px = t / (_GLYPH * _SHRINK / 20)  # the tile spans 40 frame pixels
    cells = int(frame_px / 2)
    noise = (torch.rand(b, 2, cells, cells, generator=g) * 2 - 1) / 2  # /2: 2x2-px cells
    m = _gauss_matrix(t, cells, _ELASTIC_SIGMA / 2) * (_ELASTIC_ALPHA * 2 / frame_px) ** 0.5
    half = (noise @ m.T).permute(0, 2, 3, 1).reshape(b, cells, t * 2)  # (B, cells, 64 * 2)
    warp = (m @ half).view(b, t, t, 2)  # (B, 64, 64, 2): blurred, upsampled, in grid units
    # plus the affine part: grid[b, h, w] += A^-1 (x_w, y_h)
    inv = inv.view(b, 1, 2, 2)  # [[x from x, x from y], [y from x, y from y]]
    warp += (inv[..., 0] * pos.view(1, t, 1))[:, None]  # term of the output column
    warp += (inv[..., 1] * pos.view(1, t, 1))[:, :, None]  # term of the output row
    blurred = F.grid_sample(src, warp, align_corners=False)[:, 0]  # (B, 64, 64)

    # stroke width: a soft threshold tau of the blurred ink moves each edge by -sigma Phi^-1(tau)
    lo, hi = _STROKE
    target = lo + (hi - lo) * torch.rand(b, generator=g)  # px in the 28x28 frame
    shift = (target * (_GLYPH * _SHRINK / 20) - stroke[pick] * _SHRINK) / 2  # tile px
    sigma, ramp = _STROKE_BLUR * _SHRINK, 0.15  # the blur as seen after the warp
    # strokes only get thicker (tau <= 0.5): eroding would break the hairlines of serif fonts
    tau = torch.special.ndtr(-shift / sigma).clamp(0.08, 0.5).view(b, 1, 1)
    ink = blurred.mul_(1 / ramp).add_(0.5 - tau / ramp).clamp_(0, 1)

    # MNIST framing: bounding box (ink > 0.2) -> 20 px, centre of mass -> centre of 28x28
    idx = torch.arange(t, dtype=torch.float32)

    def extent(profile: Tensor) -> Tensor:  # (B, 64) max ink per row/column -> (B,) length
        hit = (profile > 0.2).float()
        last = t - hit.flip(1).argmax(1)
        return (last - hit.argmax(1)).clamp(min=1).float()

    scale = 20.0 / torch.maximum(extent(ink.amax(2)), extent(ink.amax(1)))  # frame px / tile px
    rows, cols = ink.sum(2), ink.sum(1)  # (B, 64) each
    mass = rows.sum(1).clamp(min=1e-6)
    cy, cx = (rows * (idx + 0.5)).sum(1) / mass, (cols * (idx + 0.5)).sum(1) / mass
    # output pixel j covers frame [j, j+1] = tile [c + (j - 14) / s, c + (j - 13) / s]: average
    # the tile pixels it overlaps (area resampling, anti-aliased like MNIST's normalisation)
    j = torch.arange(28, dtype=torch.float32).view(1, 28, 1) - 14.0
    s = scale.view(b, 1, 1)

    def area(c: Tensor) -> Tensor:  # (B,) centre -> (B, 28, 64) resampling matrix
        lo, hi = c.view(b, 1, 1) + j / s, c.view(b, 1, 1) + (j + 1) / s
        overlap = torch.minimum(hi, idx + 1) - torch.maximum(lo, idx.view(1, 1, t))
        return overlap.clamp_(min=0) * s

    out = area(cy) @ ink @ area(cx).transpose(1, 2)  # (B, 28, 28)
    return out.clamp_(0, 1)


def _content_key() -> str:
    """Short hash of everything else that shapes the images: glyphs and renderer constants."""
    params = (_glyph_list(), _TILE, _GLYPH, _SHRINK, _BASE_WIDTH, _CHUNK, _ROTATION, _SHEAR)
    params += (_ELASTIC_SIGMA, _ELASTIC_ALPHA, _STROKE, _STROKE_BLUR)
    return hashlib.sha256(repr(params).encode()).hexdigest()[:8]


def _chunk_generator(split: str, seed: int, chunk: int) -> torch.Generator:
    key = f"course_lib.digits28/v{DIGITS28_VERSION}/{split}/{seed}/{chunk}".encode()
    value = int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & (2**63 - 1)
    return torch.Generator().manual_seed(value)


def _generate_digits28(split: str, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``size`` (a multiple of 1000) digits: uint8 images (size, 28, 28), int64 labels."""
    images, labels = [], []
    for chunk in range(size // _CHUNK):
        g = _chunk_generator(split, seed, chunk)
        # each block of 10 holds every digit once, so every prefix is balanced to within one
        y = torch.argsort(torch.rand(_CHUNK // 10, 10, generator=g), dim=1).reshape(-1)
        ink = _render_chunk(y, g)
        images.append((ink * 255).round().to(torch.uint8).numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write arrays to ``path`` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache may be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def digits28(
    split: str = "train", n: int | None = None, seed: int = 0, root: str | Path | None = None
) -> TensorDataset:
    """The course's offline labelled digits: 28x28 grey images rendered from matplotlib's fonts.

    Each image is a digit glyph from one of 21 fonts that matplotlib ships (DejaVu Sans, Serif
    and Mono, STIX, Computer Modern; several weights and slants; plus a plain bar '|' as a one)
    under a random affine warp, an elastic distortion (Simard et al.) and a random stroke
    width, then framed like MNIST: fitted into a 20x20 box (aspect kept) and centred by its
    centre of mass in 28x28 (LeCun et al.). Pixels are stored as uint8 and returned as
    x / 127.5 - 1, so the background is exactly -1. They are font digits, not handwriting:
    fine for training and comparing models offline, not a substitute for MNIST results.
    Splits are independent random streams (train 20,000, test 5,000 images by default); the
    first ``n`` images of a split are the same whatever ``n``, and every prefix is balanced
    (each block of 10 holds each digit once). Generated once (seconds) and cached as .npz in
    ``root`` (default :func:`data_root`), keyed by version, split, seed, size and a hash of the
    glyphs and renderer settings.
    Reference: Simard et al. 2003, ICDAR, Section 2 (elastic distortion; their alpha = 34, here
    28); LeCun et al. 1998, Proc. IEEE 86(11), Section III-A (MNIST 20x20 box, centre of mass).
    Shapes: images (N, 1, 28, 28) float32 in [-1, 1], labels (N,) int64 in 0..9.
    """
    _check_split(split)
    _check_n(n)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} is not an integer; pass e.g. seed=0.")
    count = DIGITS28_SIZES[split] if n is None else n
    size = -(-max(DIGITS28_SIZES[split], count) // _CHUNK) * _CHUNK  # whole chunks
    folder = Path(root).expanduser() if root is not None else data_root()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"digits28_v{DIGITS28_VERSION}_{split}_seed{seed}_n{size}_{_content_key()}.npz"
    images = labels = None
    if path.is_file():
        try:
            with np.load(path) as z:
                images, labels = z["images"], z["labels"]
            if images.shape != (size, 28, 28) or labels.shape != (size,):
                images = labels = None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            images = labels = None  # a corrupt or partial cache is regenerated
    if images is None or labels is None:
        images, labels = _generate_digits28(split, seed, size)
        _save_npz_atomic(path, images=images, labels=labels)
    x = torch.from_numpy(images[:count].astype(np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)
    return TensorDataset(x, torch.from_numpy(labels[:count].astype(np.int64)))


# ---------------------------------------------------------------------------------------------
# scikit-learn's digits and the torchvision datasets
# ---------------------------------------------------------------------------------------------


def sklearn_digits(n: int | None = None) -> TensorDataset:
    """scikit-learn's 1,797 8x8 handwritten digits (UCI optdigits test set), scaled to [-1, 1].

    Pixel counts 0..16 map to x / 8 - 1. ``n`` keeps the first n images (in scikit-learn's order).
    Reference: Alpaydin & Kaynak 1998, UCI "Optical Recognition of Handwritten Digits".
    Shapes: images (N, 1, 8, 8) float32, labels (N,) int64.
    """
    _check_n(n)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    if n is not None and n > len(bunch.images):
        raise ValueError(f"n={n} is more than the {len(bunch.images)} images; pass n <= 1797.")
    x = torch.from_numpy(bunch.images[:n].astype(np.float32)).div_(8.0).sub_(1.0).unsqueeze(1)
    return TensorDataset(x, torch.from_numpy(bunch.target[:n].astype(np.int64)))


_OFFLINE_HINTS = ("urlopen error", "name resolution", "not known", "unreachable", "timed out")


def _short_cause(exc: BaseException) -> str:
    """One short line: 'no network: <reason>' for network failures, else '<Type>: <message>'."""
    import socket
    import urllib.error

    text = " ".join(str(exc).split())
    reasons = re.findall(r"<urlopen error (.*?)>", text)  # torchvision wraps these in a list
    network = (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError)
    offline = isinstance(exc, network) or any(hint in text for hint in _OFFLINE_HINTS)
    reason = reasons[-1] if reasons else f"{type(exc).__name__}: {text}".rstrip(": ")
    reason = reason if len(reason) <= 100 else reason[:97] + "..."
    return f"no network: {reason}" if offline else reason


def _torchvision_images(name: str, split: str, root: Path) -> TensorDataset:
    pretty = _PRETTY[name]
    try:
        import torchvision

        cls = getattr(torchvision.datasets, _TORCHVISION[name])
        ds = cls(str(root), train=(split == "train"), download=True)
        data, targets = ds.data, ds.targets
    except Exception as exc:
        raise DatasetUnavailableError(
            f"{pretty} could not be loaded ({_short_cause(exc)}). Use load_images('digits28'), "
            f"which the course generates offline, or put the {pretty} files torchvision expects "
            f"in {root}."
        ) from exc
    x = torch.as_tensor(np.asarray(data)).float().div_(127.5).sub_(1.0)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2).contiguous()  # CIFAR: NHWC
    return TensorDataset(x, torch.as_tensor(np.asarray(targets), dtype=torch.int64))


def load_images(
    name: str,
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    root: str | Path | None = None,
) -> TensorDataset:
    """Load an image dataset by name as TensorDataset(images in [-1, 1], int64 labels).

    "digits28" (offline, :func:`digits28`; ``seed`` picks its random draw), "sklearn_digits"
    (offline 8x8, train split only), "mnist", "fashion_mnist" (1x28x28) and "cifar10" (3x32x32)
    through torchvision with download=True into ``root`` (default :func:`data_root`). Any
    failure to get a torchvision dataset raises :class:`DatasetUnavailableError`, whose message
    names the offline alternative. ``n`` keeps the first n images of the split.
    Shapes: images (N, C, H, W) float32, labels (N,) int64.
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"name={name!r} is not an image dataset; use one of {IMAGE_DATASETS}.")
    _check_split(split)
    _check_n(n)
    if name == "digits28":
        return digits28(split, n=n, seed=seed, root=root)
    if name == "sklearn_digits":
        if split != "train":
            raise ValueError(
                f"split={split!r}: sklearn_digits has only split='train' (1,797 images); "
                "hold out part of it yourself."
            )
        return sklearn_digits(n)
    folder = Path(root).expanduser() if root is not None else data_root()
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = _torchvision_images(name, split, folder).tensors
    return TensorDataset(images[:n], labels[:n])
