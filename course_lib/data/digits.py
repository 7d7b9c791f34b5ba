"""digits28: the offline 28x28 digit set, rendered from the fonts matplotlib ships, cached on disk.
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
from course_lib._checks import check_choice, check_every, check_int, check_number
from course_lib._io import as_float32, atomic_write, derive_seed, eval_mode
from course_lib.data.root import DatasetUnavailableError, data_root



DIGITS28_VERSION = "2"
"""Bump when the digit renderer's code changes: it is in the cache key, so old caches go unused."""

DIGITS28_SIZES = {"train": 20_000, "test": 5_000}
"""Default number of images per split of :func:`digits28`."""


def check_n(n: int | None, what: str = "n") -> None:
    """A number of examples to take: a positive int, or None for all."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
        raise ValueError(f"{what}={n!r} is not a positive integer; pass e.g. {what}=1000 or None.")


def check_split(split: str) -> None:
    """A split of the offline sets: 'train' or 'test'."""
    if split not in DIGITS28_SIZES:
        raise ValueError(f"split={split!r} is not a split; use 'train' or 'test'.")



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
    check_split(split)
    check_n(n)
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
        arrays = {"images": images, "labels": labels}
        atomic_write(path, lambda f: np.savez_compressed(f, **arrays), mode=0o644)
    x = torch.from_numpy(images[:count].astype(np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)
    return TensorDataset(x, torch.from_numpy(labels[:count].astype(np.int64)))


