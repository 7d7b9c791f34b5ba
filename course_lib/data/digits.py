"""digits28, the offline 28x28 digit set: its splits, their true factors, and aligned style pairs.

The renderer is :mod:`course_lib.data.glyphs`; this file draws its random streams, quantises the
ink to uint8 and caches the images on disk. :func:`digits28` serves the train and test splits
(optionally with the factors each image was rendered with), :func:`render_digits` renders chosen
digits with chosen factors, and :func:`digits28_pairs` renders the same digits in two styles.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from course_lib._checks import check_choice, check_int, check_number
from course_lib._io import atomic_write, check_folder, derive_seed
from course_lib.data.glyphs import (
    DIGITS28_FACTORS,
    DIGITS28_FONTS,
    digit_glyphs,
    draw_digit_factors,
    render_ink,
    renderer_key,
)
from course_lib.data.root import DatasetUnavailableError, data_root

DIGITS28_VERSION = "2"
"""Bump when the digit renderer's code changes: it is in the cache key, so old caches go unused."""

DIGITS28_SIZES = {"train": 20_000, "test": 5_000}
"""Default number of images per split of :func:`digits28`."""

_REGULAR_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf", "STIXGeneralItalic.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf",
    "cmti10.ttf",
)  # fmt: skip

DIGITS28_STYLES = {
    "sans": {"font": "DejaVuSans.ttf"},
    "serif": {"font": "DejaVuSerif.ttf"},
    "thin": {"font": _REGULAR_FONTS, "stroke": 1.8},
    "bold": {"font": _REGULAR_FONTS, "stroke": 4.0},
}
"""Named styles of :func:`digits28_pairs`: what a style fixes (font, stroke width in px).

"font" is a file name of :data:`DIGITS28_FONTS` or a tuple of them (one drawn per pair, the
same for both styles when both name the same tuple); "stroke" is a width in 28x28-frame
pixels. "thin" and "bold" draw among the ten regular-weight fonts with all ten digits: strokes
are only ever thickened, so a bold font cannot be drawn thin. "thin" (1.8 px) leaves each font
its own stroke (2.2-2.9 px), "bold" thickens it to 4 px. What neither style fixes is drawn once
per pair and shared.
"""

_CHUNK = 1000  # images drawn per random stream; any n is a prefix of a larger draw


def check_n(n: int | None, what: str = "n") -> None:
    """A number of examples to take: a positive int, or None for all."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
        raise ValueError(f"{what}={n!r} is not a positive integer; pass e.g. {what}=1000 or None.")


def check_split(split: str) -> None:
    """A split of the offline sets: 'train' or 'test'."""
    if split not in DIGITS28_SIZES:
        raise ValueError(f"split={split!r} is not a split; use 'train' or 'test'.")


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return value


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} is not an integer; pass e.g. seed=0.")
    return seed


def _chunk_generator(split: str, seed: int, chunk: int) -> torch.Generator:
    key = f"course_lib.digits28/v{DIGITS28_VERSION}/{split}/{seed}/{chunk}".encode()
    value = int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & (2**63 - 1)
    return torch.Generator().manual_seed(value)


def _draw_chunk(g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """One stream's labels (1000,), factors (1000, 7) and elastic field (1000, 2, 20, 20)."""
    # each block of 10 holds every digit once, so every prefix is balanced to within one
    y = torch.argsort(torch.rand(_CHUNK // 10, 10, generator=g), dim=1).reshape(-1)
    return (y, *draw_digit_factors(y, g))


def _pixels(labels: Tensor, factors: Tensor, elastic: Tensor | None) -> np.ndarray:
    """Rendered ink quantised the way the splits store it: uint8 (N, 28, 28), 255 = ink."""
    return (render_ink(labels, factors, elastic) * 255).round().to(torch.uint8).numpy()


def _images(pixels: np.ndarray) -> Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [-1, 1], background exactly -1."""
    return torch.from_numpy(pixels.astype(np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)


def _cached(
    path: Path, shapes: dict[str, tuple[int, ...]], make: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays in the .npz at ``path`` if it holds ``shapes``, else ``make()`` saved there.

    A cache that cannot be read back whole (truncated, a flipped bit: the zip's CRC fails,
    missing or misshapen arrays) is reported with a warning and rebuilt; nothing to delete by
    hand. The file is replaced atomically, so a kill while rebuilding leaves no partial cache.
    """
    arrays = None
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {key: z[key] for key in shapes}
            wrong = [key for key, shape in shapes.items() if arrays[key].shape != shape]
            if wrong:
                raise ValueError(f"{wrong[0]} has shape {arrays[wrong[0]].shape}")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            warnings.warn(
                f"the digits28 cache {path} is damaged (unreadable or incomplete: "
                f"{type(error).__name__}); rebuilding it (a few seconds).",
                stacklevel=3,
            )
            arrays = None
    if arrays is None:
        arrays = make()
        atomic_write(path, lambda f: np.savez_compressed(f, **arrays), mode=0o644)
    return arrays


def data_folder(root: str | Path | None) -> Path:
    """``root`` or :func:`data_root`, checked to be a folder the cache can be written to."""
    if root is None:
        return data_root()
    return check_folder(
        Path(root).expanduser(), "root", DatasetUnavailableError, "pass a root you can write to"
    )


def digits28(
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    root: str | Path | None = None,
    factors: bool = False,
    shuffle: bool = False,
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
    (each block of 10 holds each digit once). ``shuffle=True`` instead draws the ``n`` images
    at random, without replacement, from the whole split (a fixed permutation per ``seed``), so
    their class counts vary as i.i.d. draws' do: use it for FID/KID reference and floor sets.
    A generator's samples are i.i.d., and two balanced halves are more alike than two i.i.d.
    sets, so a floor measured between balanced sets is one no generator can reach.
    Generated once (seconds) and cached as .npz in ``root`` (default :func:`data_root`), keyed
    by version, split, seed, size and a hash of the glyphs and renderer settings.
    ``factors=True`` also returns the true factors each image was rendered with (replayed from
    the same random streams, milliseconds): ``render_digits(labels, factors, elastic)``
    reproduces the images exactly. Ground truth for probes and audits.
    Reference: Simard et al. 2003, ICDAR (elastic distortion; here alpha = 28); LeCun et al.
    1998, Proc. IEEE 86(11) (MNIST 20x20 box, centre of mass).
    Shapes: images (N, 1, 28, 28) float32 in [-1, 1], labels (N,) int64 in 0..9; with
    ``factors=True`` also factors (N, 7) float64 (columns :data:`DIGITS28_FACTORS`, font
    names :data:`DIGITS28_FONTS`) and elastic (N, 2, 20, 20) float32 in [-1, 1].
    """
    check_split(split)
    check_n(n)
    seed = _check_seed(seed)
    _check_flag("factors", factors)
    _check_flag("shuffle", shuffle)
    count = DIGITS28_SIZES[split] if n is None else n
    pool = max(DIGITS28_SIZES[split], count)
    size = -(-pool // _CHUNK) * _CHUNK  # whole chunks
    name = f"digits28_v{DIGITS28_VERSION}_{split}_seed{seed}_n{size}_{renderer_key(_CHUNK)}.npz"

    def generate() -> dict[str, np.ndarray]:
        images, labels = [], []
        for chunk in range(size // _CHUNK):
            y, f, e = _draw_chunk(_chunk_generator(split, seed, chunk))
            images.append(_pixels(y, f, e))
            labels.append(y.numpy())
        return {"images": np.concatenate(images), "labels": np.concatenate(labels)}

    shapes = {"images": (size, 28, 28), "labels": (size,)}
    arrays = _cached(data_folder(root) / name, shapes, generate)
    rows = np.arange(count)
    if shuffle:
        rows = torch.randperm(pool, generator=torch.Generator().manual_seed(seed))[:count].numpy()
    x = _images(arrays["images"][rows])
    y = torch.from_numpy(arrays["labels"][rows].astype(np.int64))
    if not factors:
        return TensorDataset(x, y)
    chunks = -(-(int(rows.max()) + 1) // _CHUNK)
    draws = [_draw_chunk(_chunk_generator(split, seed, c)) for c in range(chunks)]
    table, elastic = (torch.cat([d[i] for d in draws])[torch.from_numpy(rows)] for i in (1, 2))
    return TensorDataset(x, y, table, elastic)


def render_digits(labels: Tensor, factors: Tensor, elastic: Tensor | None = None) -> Tensor:
    """Render chosen digits with chosen factors, exactly as digits28 renders its images.

    The renderer is :func:`~course_lib.data.glyphs.render_ink` (affine warp, elastic field,
    stroke, MNIST framing); its ink is quantised to 8 bits and mapped to x / 127.5 - 1 like the
    splits, so rows of ``digits28(..., factors=True)`` re-render bit for bit. To vary one
    factor, draw a table with :func:`draw_digit_factors` and overwrite that column
    (``DIGITS28_FACTORS.index("rotation")``); ``elastic=None`` renders without elastic field.
    Shapes: labels (N,) int64 in 0..9, factors (N, 7) with columns :data:`DIGITS28_FACTORS`,
    elastic (N, 2, 20, 20) or None -> images (N, 1, 28, 28) float32 in [-1, 1].
    """
    return _images(_pixels(labels, factors, elastic))


def _resolve_style(i: int, style: object) -> tuple[tuple[int, ...] | None, float | None]:
    """A style name or mapping -> (font indices to draw from or None, stroke in px or None)."""
    what = f"styles[{i}]"
    if isinstance(style, str):
        style = DIGITS28_STYLES[check_choice(what, style, tuple(DIGITS28_STYLES))]
    if not isinstance(style, Mapping) or not style or set(style) - {"font", "stroke"}:
        raise ValueError(
            f"{what} must be a name of DIGITS28_STYLES or a dict with keys 'font' and/or "
            f"'stroke', got {style!r}; e.g. {{'font': 'DejaVuSerif.ttf', 'stroke': 2.5}}."
        )
    fonts, stroke = style.get("font"), style.get("stroke")
    if fonts is not None:
        fonts = (fonts,) if isinstance(fonts, str) else fonts
        hint = "use file names of DIGITS28_FONTS, e.g. 'DejaVuSerif.ttf'"
        if not isinstance(fonts, tuple | list) or not fonts:
            raise ValueError(f"{what}['font'] must be a font or a tuple of fonts; {hint}.")
        for font in fonts:
            check_choice(f"{what}['font']", font, DIGITS28_FONTS, hint=hint)
            digits = {y for f, t, y in digit_glyphs() if f == font and t != "|"}
            if digits != set(range(10)):
                missing = sorted(set(range(10)) - digits)
                raise ValueError(f"{what}['font']: {font!r} has no glyph for {missing}; {hint}.")
        fonts = tuple(DIGITS28_FONTS.index(font) for font in fonts)
    if stroke is not None:
        stroke = check_number(f"{what}['stroke']", stroke, 0.0, strict=True, hint="e.g. 2.5 (px)")
    return fonts, stroke


def _styled(
    factors: Tensor, u: Tensor, fonts: tuple[int, ...] | None, stroke: float | None
) -> Tensor:
    """The factors with a style applied; u (N,) in [0, 1) picks the font among ``fonts``."""
    out = factors.clone()
    if fonts is not None:
        pick = (u * len(fonts)).long().clamp_(max=len(fonts) - 1)
        out[:, DIGITS28_FACTORS.index("font")] = torch.tensor(fonts, dtype=out.dtype)[pick]
        out[:, DIGITS28_FACTORS.index("bar_one")] = 0  # the font's own '1'
    if stroke is not None:
        out[:, DIGITS28_FACTORS.index("stroke")] = stroke
    return out


def digits28_pairs(
    n: int,
    seed: int = 0,
    styles: Sequence[str | Mapping[str, object]] = ("sans", "serif"),
    root: str | Path | None = None,
    factors: bool = False,
) -> TensorDataset:
    """Aligned pairs for image-to-image translation: each digit rendered in two styles.

    Per pair, digits28's factors are drawn once (:func:`draw_digit_factors`): glyph, rotation,
    shear, scale, stroke and elastic field; each style then overrides what it fixes (a font,
    with the font's own '1', or one of a tuple of fonts; a stroke width) and the digit is
    rendered twice. So x_a[i] and x_b[i] share label, pose (rotation, shear, scale) and elastic
    field and differ only by style. Styles are names of :data:`DIGITS28_STYLES` ("sans",
    "serif": two font families; "thin", "bold": the same regular font, two stroke widths) or
    dicts such as ``{"font": "cmr10.ttf", "stroke": 2.5}``. Labels come in blocks of 10
    holding each digit once. Seeded streams of their own (not the train or test images): the
    first ``n`` pairs are the same whatever ``n``, and the labels, poses and elastic fields of
    a seed are the same whatever ``styles``. Cached as .npz in ``root`` (default
    :func:`data_root`), like :func:`digits28`.
    Shapes: x_a, x_b (N, 1, 28, 28) float32 in [-1, 1], labels (N,) int64; with
    ``factors=True`` also factors_a, factors_b (N, 7) float64 (:data:`DIGITS28_FACTORS`) and
    the shared elastic field (N, 2, 20, 20), so render_digits(labels, factors_a, elastic) == x_a.
    """
    n = check_int("n", n, 1, hint="pass e.g. n=1000")
    seed = _check_seed(seed)
    _check_flag("factors", factors)
    if isinstance(styles, str) or not isinstance(styles, Sequence) or len(styles) != 2:
        raise ValueError(f"styles must be two styles, got {styles!r}; e.g. ('sans', 'serif').")
    resolved = tuple(_resolve_style(i, s) for i, s in enumerate(styles))
    if resolved[0] == resolved[1]:
        raise ValueError(f"styles must differ, got {styles!r}; e.g. ('thin', 'bold').")
    size = -(-n // _CHUNK) * _CHUNK
    style_key = hashlib.sha256(repr(resolved).encode()).hexdigest()[:8]
    name = f"digits28pairs_v{DIGITS28_VERSION}_seed{seed}_n{size}_{style_key}"

    def draw(chunk: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        g = torch.Generator().manual_seed(
            derive_seed("digits28_pairs", DIGITS28_VERSION, seed, chunk)
        )
        y, f, e = _draw_chunk(g)
        u = torch.rand(len(y), generator=g)  # a font for styles that name several
        return y, _styled(f, u, *resolved[0]), _styled(f, u, *resolved[1]), e

    def generate() -> dict[str, np.ndarray]:
        x_a, x_b, labels = [], [], []
        for chunk in range(size // _CHUNK):
            y, f_a, f_b, e = draw(chunk)
            x_a.append(_pixels(y, f_a, e))
            x_b.append(_pixels(y, f_b, e))
            labels.append(y.numpy())
        return {
            "x_a": np.concatenate(x_a),
            "x_b": np.concatenate(x_b),
            "labels": np.concatenate(labels),
        }

    shapes = {"x_a": (size, 28, 28), "x_b": (size, 28, 28), "labels": (size,)}
    arrays = _cached(data_folder(root) / f"{name}_{renderer_key(_CHUNK)}.npz", shapes, generate)
    x_a, x_b = _images(arrays["x_a"][:n]), _images(arrays["x_b"][:n])
    y = torch.from_numpy(arrays["labels"][:n].astype(np.int64))
    if not factors:
        return TensorDataset(x_a, x_b, y)
    draws = [draw(c) for c in range(size // _CHUNK)]
    f_a, f_b, elastic = (torch.cat([d[i] for d in draws])[:n] for i in (1, 2, 3))
    return TensorDataset(x_a, x_b, y, f_a, f_b, elastic)
