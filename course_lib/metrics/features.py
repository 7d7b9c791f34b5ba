"""Features for the metrics: the course's shipped digit classifier; image-level FID and KID."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._checks import check_int
from course_lib._io import eval_mode
from course_lib.metrics.distances import fid_from_features, kid_from_features

WEIGHTS_FILE = "digit_classifier.pt"
"""File name of the shipped classifier weights, inside ``course_lib/weights/``."""

_TRAIN_HINT = "run `python tools/train_digit_classifier.py` from the repository root to rebuild it"


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
    antialias=True)``). Images must be floating point in [-1, 1] (``input_range``, checked by
    the metrics on the whole set); nothing is rescaled.
    """

    input_range = (-1.0, 1.0)

    def __init__(self, width: int = 16, feature_dim: int = 128, n_classes: int = 10) -> None:
        super().__init__()
        check_int("width", width, 1)
        check_int("feature_dim", feature_dim, 1)
        check_int("n_classes", n_classes, 2)

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


def check_images(images: Tensor, name: str, value_range: tuple[float, float] | None = None) -> None:
    """Raise ValueError (one line naming ``name``) unless ``images`` is a non-empty (N, C, H, W)
    tensor of finite values and, with ``value_range``, floating point inside that range.

    For the range (-1, 1) of the course's extractors it also refuses a set with no negative
    value at all: images in [0, 1] (a VAE's Bernoulli means, ``ToTensor`` output) would pass a
    plain bounds check and give a plausible-looking but wrong score. One device sync per set.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(
            f"{name} must be a non-empty image tensor (N, C, H, W); got {got}. "
            "For a TensorDataset pass dataset.tensors[0]."
        )
    if value_range is None:
        return
    low, high = value_range
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be floating point in [{low:g}, {high:g}]; got dtype {images.dtype}. "
            "Convert 0..255 images with x.float() / 127.5 - 1."
        )
    lo, hi = (float(v) for v in torch.stack(torch.aminmax(images.detach().float())).cpu())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(
            f"{name} contains NaN or inf; check the generator (or the data) that produced it."
        )
    tol = 1e-3 * (high - low)  # rounding of half-precision outputs
    wrong = lo < low - tol or hi > high + tol
    if low < 0 <= lo < hi <= 1 + tol:  # nothing negative: the [0, 1] mistake
        wrong, guess = True, "they look like [0, 1] images: map them with x * 2 - 1"
    elif hi > 2:
        guess = "they look like 0..255 images: map them with x / 127.5 - 1"
    else:
        guess = "rescale them, or clamp a generator's output with .clamp(-1, 1)"
    if wrong:
        raise ValueError(
            f"{name} must lie in [{low:g}, {high:g}], got values in [{lo:.3g}, {hi:.3g}]; {guess}."
        )


def input_range(extractor: object) -> tuple[float, float] | None:
    """The value range an extractor or classifier expects (its ``input_range``), or None."""
    found = getattr(extractor, "input_range", None)
    return None if found is None else (float(found[0]), float(found[1]))


def checked_extractor(extractor: Extractor | None, **sets: Tensor) -> Extractor:
    """``extractor`` (default: the shipped digit classifier, on the first set's device), after
    :func:`check_images` of each named set in the range the extractor expects."""
    for name, images in sets.items():
        check_images(images, name)
    if extractor is None:
        extractor = load_digit_classifier(next(iter(sets.values())).device)
    for name, images in sets.items():
        check_images(images, name, input_range(extractor))
    shapes = {name: tuple(images.shape[1:]) for name, images in sets.items()}
    if len(set(shapes.values())) > 1:
        (a, shape_a), (b, shape_b) = list(shapes.items())[:2]
        raise ValueError(
            f"{a} holds images of shape {shape_a}, {b} {shape_b}: compare sets of one channel "
            "count and size (the extractor would resize them differently and the score would "
            "measure that); resize one set with F.interpolate first."
        )
    return extractor


def run_batched(
    fn: Callable[[Tensor], Tensor], module: Any, images: Tensor, batch_size: int, name: str
) -> Tensor:
    """fn over images in batches under no_grad, on the module's device, in eval mode -> CPU."""
    check_images(images, name)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    params = list(module.parameters()) if isinstance(module, nn.Module) else []
    device = params[0].device if params else images.device
    modules = (module,) if isinstance(module, nn.Module) else ()
    with eval_mode(*modules):
        out = [
            fn(images[i : i + batch_size].to(device)).cpu()
            for i in range(0, images.shape[0], batch_size)
        ]
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
    return features_of(images, checked_extractor(extractor, images=images), batch_size)


def features_of(images: Tensor, extractor: Extractor, batch_size: int = 500) -> Tensor:
    """:func:`extract_features` for images that :func:`checked_extractor` has already checked
    (the metrics check each set once, then extract: one range check per set)."""
    fn = extractor.features if hasattr(extractor, "features") else extractor
    feats = run_batched(fn, extractor, images, batch_size, "images")
    if feats.dim() != 2 or feats.shape[0] != images.shape[0]:
        raise ValueError(
            f"extractor must map (N, C, H, W) to (N, F); got {tuple(feats.shape)} for "
            f"{images.shape[0]} images."
        )
    return feats.to(torch.float64)


def fid(images_a: Tensor, images_b: Tensor, extractor: Extractor | None = None) -> float:
    """FID between two image sets in the features of ``extractor`` (default: the digit CNN).

    :func:`fid_from_features` of :func:`extract_features` of each set. Reference: Heusel et al.
    2017, arXiv:1706.08500.
    NOT comparable to published Inception-v3 FID: with the default extractor this is a domain
    FID in the 128-d features of the course's digit classifier. Compare two numbers only when
    they use the same extractor, the same sample sizes (FID is biased in N; Chong & Forsyth
    2020, arXiv:1911.07023) and the same preprocessing.
    Shapes: images (N, C, H, W), (M, C, H, W) in [-1, 1], N, M >= 2 -> float (>= 0).
    """
    extractor = checked_extractor(extractor, images_a=images_a, images_b=images_b)
    return fid_from_features(features_of(images_a, extractor), features_of(images_b, extractor))


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
    2018, arXiv:1801.01401. Same caveat as :func:`fid`: with the default extractor it
    is not comparable to Inception KID. Unbiased in N, unlike FID.
    Shapes: images (N, C, H, W), (M, C, H, W) in [-1, 1] -> (mean, std).
    """
    extractor = checked_extractor(extractor, images_a=images_a, images_b=images_b)
    return kid_from_features(
        features_of(images_a, extractor),
        features_of(images_b, extractor),
        n_subsets=n_subsets,
        subset_size=subset_size,
        seed=seed,
    )
