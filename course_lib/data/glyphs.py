"""The digits28 renderer: font glyphs, the random factors of each digit, and ink from factors.

:func:`draw_digit_factors` draws what makes one image differ from another (font, rotation,
shear, scale, stroke width, elastic field) and :func:`render_ink` turns labels and factors into
28x28 ink; :mod:`course_lib.data.digits` quantises that ink, caches it and serves the splits.
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.data.root import DatasetUnavailableError

# Fonts shipped in matplotlib's mpl-data/fonts/ttf with ordinary lining digits (cmmi10 has
# old-style figures, cmsy10/cmex10 map '0'-'9' to symbols, the Display fonts lack digits).
DIGITS28_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf",
)  # fmt: skip
"""The fonts of digits28 (files in matplotlib's mpl-data/fonts/ttf); the "font" factor indexes it.

The four DejaVu Sans Mono fonts give no zero (theirs carries a dot, which handwritten zeros lack).
"""

DIGITS28_FACTORS = ("font", "bar_one", "rotation", "shear", "scale_x", "scale_y", "stroke")
"""Columns of the factor table (N, 7) float64 of :func:`draw_digit_factors` and digits28.

- font: index into :data:`DIGITS28_FONTS` (an integer value).
- bar_one: 1 where a one is drawn as DejaVu Sans's plain bar '|' (the DejaVu Sans and Sans Mono
  fonts only), else 0: most handwritten ones are a single stroke.
- rotation: degrees, uniform in [-12, 12]; positive turns the digit clockwise as displayed.
- shear: horizontal shear x' = x - shear * y (y down), uniform in [-0.3, 0.3]; positive
  leans the top to the right.
- scale_x, scale_y: scale of the glyph before the MNIST framing, log-normal: log scale_x =
  s + a / 2, log scale_y = s - a / 2 with size s ~ N(0, 0.08^2) and log aspect a ~ N(0, 0.12^2).
  The framing fits each digit into 20x20 pixels, so only the aspect scale_x / scale_y and the
  stroke relative to the glyph survive in the image, not the size.
- stroke: requested stroke width (28x28-frame pixels), uniform in [1.8, 3.4]. Strokes are only
  ever thickened, by at most about 2.7 px: a font whose own stroke is wider keeps its own.

The elastic field is not a column: it is a separate (N, 2, 20, 20) tensor (see
:func:`draw_digit_factors`), because the splits draw it for 1,000 images at a time from one
random stream, so no per-image seed exists to record.
"""

_DOTTED_ZERO = "DejaVuSansMono"  # its '0' carries a dot, which handwritten zeros lack
_BAR_ONE = "DejaVuSans"  # its '|' is a plain bar: most handwritten ones have no flag or foot
_TILE = 64  # template and working resolution (pixels)
_GLYPH = 40.0  # longest side of a glyph in a template (pixels); the 28x28 frame fits it into 20
_SHRINK = 0.8  # the warp shrinks glyphs so rotation and shear stay inside the tile
_BASE_WIDTH = 4.4  # minimum stroke width of a template (pixels; = 2.2 px in the 28x28 frame)
_ROTATION = 12.0  # max |rotation| (degrees), uniform
_SHEAR = 0.3  # max |horizontal shear|, uniform
_ELASTIC_SIGMA, _ELASTIC_ALPHA = 4.0, 28.0  # 28x28-frame pixels; Simard et al. use 4 and 34
_STROKE = (1.8, 3.4)  # stroke width range (28x28-frame pixels), uniform
_STROKE_BLUR = 1.9  # Gaussian blur of the templates (pixels) that the stroke threshold acts on


def _font_folder() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def digit_glyphs() -> tuple[tuple[str, str, int], ...]:
    """(font file, text, label) of every glyph digits28 draws from, for the fonts matplotlib ships.

    Each font of :data:`DIGITS28_FONTS` gives its ten digits (not the dotted zero of DejaVu Sans
    Mono); the DejaVu Sans fonts also give '|' as a one. A font missing from this matplotlib is
    skipped; :class:`DatasetUnavailableError` if some digit then has no glyph at all.
    """
    folder = _font_folder()
    glyphs = []
    for font in DIGITS28_FONTS:
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
def _digit_templates() -> tuple[Tensor, Tensor]:
    """Render every glyph of :func:`digit_glyphs` once: blurred ink (M, 64, 64) and stroke (M,).

    Glyph outlines come from matplotlib.textpath.TextPath, are scaled so their longest side is
    40 px, centred, and filled by the Agg rasteriser (anti-aliased). Thin glyphs are thickened
    with a round-joined outline stroke so that every template's stroke is at least 4.4 px wide
    (width estimated as 2 * area / perimeter); ``stroke`` (M,) is that width after thickening.
    The ink is returned blurred (sigma = 1.9 px): :func:`render_ink` thresholds it after the
    warp to set the stroke width, so the blur is done once here instead of once per image.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    folder, glyph_list = _font_folder(), digit_glyphs()
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
    return templates, stroke


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


def _frame_px() -> float:
    """Width of the 64-px working tile in 28x28-frame pixels (40: a glyph's 32 px become 20)."""
    return _TILE / (_GLYPH * _SHRINK / 20)


def elastic_shape() -> tuple[int, int, int]:
    """Shape of one image's elastic field: (2, 20, 20), x and y noise on 2-frame-pixel cells."""
    cells = int(_frame_px() / 2)
    return (2, cells, cells)


def renderer_key(chunk: int) -> str:
    """Short hash of the glyphs and renderer settings (and the caller's ``chunk``), for cache keys.

    ``chunk`` is the number of images its caller draws per random stream (1000 for digits28);
    it is hashed with the rest, in the place it has always had, so existing caches stay valid.
    """
    params = (digit_glyphs(), _TILE, _GLYPH, _SHRINK, _BASE_WIDTH, chunk, _ROTATION, _SHEAR)
    params += (_ELASTIC_SIGMA, _ELASTIC_ALPHA, _STROKE, _STROKE_BLUR)
    return hashlib.sha256(repr(params).encode()).hexdigest()[:8]


def _glyph_index() -> dict[tuple[int, int, bool], int]:
    """(font index, label, bar one) -> row of :func:`digit_glyphs` (and of the templates)."""
    glyphs = digit_glyphs()
    return {(DIGITS28_FONTS.index(f), y, t == "|"): i for i, (f, t, y) in enumerate(glyphs)}


def _check_labels(labels: object) -> Tensor:
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.dtype != torch.int64:
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(
            f"labels must be a 1-D int64 tensor, got {got}; pass e.g. torch.arange(10)."
        )
    if len(labels) == 0 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(
            f"labels must hold digits 0..9 (at least one), got {labels.tolist()[:10]}."
        )
    return labels


def draw_digit_factors(labels: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw digits28's random factors for given labels, in the order digits28 draws them.

    Per image: a glyph drawn uniformly among those of its label (:func:`digit_glyphs`), then
    rotation, shear, scale and stroke from the distributions of :data:`DIGITS28_FACTORS`, and an
    elastic field (Simard et al. 2003): uniform noise in [-1, 1] on a 20x20 grid of 2-frame-pixel
    cells per direction, which :func:`render_ink` blurs (sigma = 4 px) and scales (alpha = 28 px).
    Reference: Simard et al. 2003, ICDAR (elastic distortion).
    Shapes: labels (N,) int64 in 0..9, on the CPU -> factors (N, 7) float64 with columns
    :data:`DIGITS28_FACTORS`, elastic (N, 2, 20, 20) float32 in [-1, 1].
    """
    labels = _check_labels(labels)
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"generator must be a torch.Generator, got {type(generator).__name__}; "
            "pass e.g. torch.Generator().manual_seed(0)."
        )
    glyphs, g, b = digit_glyphs(), generator, labels.shape[0]
    template_labels = torch.tensor([label for _, _, label in glyphs])
    # a glyph drawn uniformly among those of each image's label
    match = (template_labels[None, :] == labels[:, None]).float()  # (N, M)
    pick = torch.multinomial(match, 1, generator=g).squeeze(1)
    angle = (torch.rand(b, generator=g) * 2 - 1) * math.radians(_ROTATION)
    shear = (torch.rand(b, generator=g) * 2 - 1) * _SHEAR
    log_s = torch.randn(b, 2, generator=g) * torch.tensor([0.08, 0.12])  # size, aspect
    scale_x = torch.exp(log_s[:, 0] + log_s[:, 1] / 2)
    scale_y = torch.exp(log_s[:, 0] - log_s[:, 1] / 2)
    elastic = torch.rand(b, *elastic_shape(), generator=g) * 2 - 1
    lo, hi = _STROKE
    stroke = lo + (hi - lo) * torch.rand(b, generator=g)  # px in the 28x28 frame
    font = torch.tensor([DIGITS28_FONTS.index(f) for f, _, _ in glyphs])[pick]
    bar = torch.tensor([t == "|" for _, t, _ in glyphs])[pick]
    # float32 -> float64 is exact, and so is the way back (rotation: float64 deg <-> rad)
    columns = (font.double(), bar.double(), torch.rad2deg(angle.double()), shear.double())
    factors = torch.stack(columns + (scale_x.double(), scale_y.double(), stroke.double()), 1)
    return factors, elastic


def _check_factors(labels: Tensor, factors: object, elastic: object) -> Tensor:
    """The glyph row of each image; ValueError naming the factor and the first bad image."""
    n, k = len(labels), len(DIGITS28_FACTORS)
    if not isinstance(factors, Tensor) or tuple(factors.shape) != (n, k):
        got = tuple(factors.shape) if isinstance(factors, Tensor) else type(factors).__name__
        raise ValueError(
            f"factors must be a ({n}, {k}) tensor (one row per label, columns "
            f"DIGITS28_FACTORS), got {got}; draw one with draw_digit_factors(labels, generator)."
        )
    if not factors.is_floating_point() or not bool(factors.isfinite().all()):
        raise ValueError("factors must be finite floats; pass a float64 table without NaN/inf.")
    col = dict(zip(DIGITS28_FACTORS, factors.double().unbind(1), strict=True))
    for name in ("scale_x", "scale_y", "stroke"):
        if bool((col[name] <= 0).any()):
            i = int((col[name] <= 0).nonzero()[0])
            raise ValueError(f"factor {name} must be > 0, got {col[name][i].item()} at image {i}.")
    rows, index = [], _glyph_index()
    fonts, bars = col["font"].tolist(), col["bar_one"].tolist()
    for i, (f, bar, y) in enumerate(zip(fonts, bars, labels.tolist(), strict=True)):
        key = (int(f), y, bar == 1)
        if key not in index or f != int(f) or bar not in (0, 1):
            ok = f == int(f) and 0 <= f < len(DIGITS28_FONTS)
            font = DIGITS28_FONTS[int(f)] if ok else f"index {f:g}"
            raise ValueError(
                f"factors of image {i}: font {font} with bar_one={bar:g} has no glyph for "
                f"label {y}; use font indices 0..{len(DIGITS28_FONTS) - 1} of DIGITS28_FONTS "
                "(DejaVu Sans Mono has no zero) and bar_one=1 only for ones in DejaVu Sans fonts."
            )
        rows.append(index[key])
    shape = (n, *elastic_shape())
    if elastic is not None and (
        not isinstance(elastic, Tensor) or tuple(elastic.shape) != shape
        or not elastic.is_floating_point()
    ):  # fmt: skip
        got = tuple(elastic.shape) if isinstance(elastic, Tensor) else type(elastic).__name__
        raise ValueError(
            f"elastic must be a float tensor of shape {shape} or None (no distortion), got "
            f"{got}; use the field draw_digit_factors returns."
        )
    return torch.tensor(rows, dtype=torch.int64)


def render_ink(labels: Tensor, factors: Tensor, elastic: Tensor | None = None) -> Tensor:
    """Render digits with given factors: the ink of each image before quantisation.

    Per image, vectorised: the glyph (font, bar_one, label), warped by the affine map
    A = rotation @ shear @ diag(scale) (times 0.8 so the digit stays in its tile) plus the
    elastic field (Simard et al. 2003: the noise blurred with sigma = 4, times alpha = 28 frame
    pixels, kept mild so serif hairlines survive), both in one grid_sample; the
    stroke set by a soft threshold of the pre-blurred glyph (a smooth dilation, never thinner
    than the font); then MNIST framing: the ink's bounding box is scaled into 20x20 (aspect
    kept) and its centre of mass put at the centre of the 28x28 field by area resampling
    (anti-aliased). No translation: the framing would undo it. ``elastic=None``: no field.
    Reference: Simard et al. 2003, ICDAR; LeCun et al. 1998, Proc. IEEE 86(11)
    (MNIST 20x20 box, centre of mass).
    Shapes: labels (N,) int64, factors (N, 7) (:data:`DIGITS28_FACTORS`), elastic
    (N, 2, 20, 20) or None -> ink (N, 28, 28) float32 in [0, 1] (1 = ink), on the CPU.
    """
    labels = _check_labels(labels)
    pick = _check_factors(labels, factors, elastic)
    col = dict(zip(DIGITS28_FACTORS, factors.cpu().double().unbind(1), strict=True))
    angle = torch.deg2rad(col["rotation"]).float()
    shear, stroke = col["shear"].float(), col["stroke"].float()
    if elastic is None:
        elastic = torch.zeros(len(labels), *elastic_shape())
    templates, template_stroke = _digit_templates()
    b, t = labels.shape[0], _TILE
    src = templates[pick].unsqueeze(1)  # (B, 1, 64, 64)

    # affine: output -> input coordinates, theta = A^-1 with A = rotation @ shear @ scale
    sx, sy = _SHRINK * col["scale_x"].float(), _SHRINK * col["scale_y"].float()
    cos, sin = angle.cos(), angle.sin()
    a = torch.stack([sx * cos, sy * (-sin - shear * cos), sx * sin, sy * (cos - shear * sin)], 1)
    det = a[:, 0] * a[:, 3] - a[:, 1] * a[:, 2]
    inv = torch.stack([a[:, 3], -a[:, 1], -a[:, 2], a[:, 0]], 1) / det[:, None]
    pos = (torch.arange(t, dtype=torch.float32) + 0.5) / t * 2 - 1  # pixel centres, grid units

    # elastic field (Simard 2003) in units of the 28x28 frame, drawn on a 2-px cell grid
    frame_px = _frame_px()  # the tile spans 40 frame pixels
    cells = elastic.shape[-1]
    noise = elastic.cpu().float() / 2  # /2: 2x2-px cells
    m = _gauss_matrix(t, cells, _ELASTIC_SIGMA / 2) * (_ELASTIC_ALPHA * 2 / frame_px) ** 0.5
    half = (noise @ m.T).permute(0, 2, 3, 1).reshape(b, cells, t * 2)  # (B, cells, 64 * 2)
    warp = (m @ half).view(b, t, t, 2)  # (B, 64, 64, 2): blurred, upsampled, in grid units
    # plus the affine part: grid[b, h, w] += A^-1 (x_w, y_h)
    inv = inv.view(b, 1, 2, 2)  # [[x from x, x from y], [y from x, y from y]]
    warp += (inv[..., 0] * pos.view(1, t, 1))[:, None]  # term of the output column
    warp += (inv[..., 1] * pos.view(1, t, 1))[:, :, None]  # term of the output row
    blurred = F.grid_sample(src, warp, align_corners=False)[:, 0]  # (B, 64, 64)

    # stroke width: a soft threshold tau of the blurred ink moves each edge by -sigma Phi^-1(tau)
    shift = (stroke * (_GLYPH * _SHRINK / 20) - template_stroke[pick] * _SHRINK) / 2  # tile px
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
