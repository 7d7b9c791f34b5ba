"""Inception-v3 features (optional: torch-fidelity and a network connection)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

# --------------------------------------------------------------------------------------------
# Inception-v3 features (optional: torch-fidelity and a network connection)
# --------------------------------------------------------------------------------------------

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
"""torch-fidelity's PyTorch port of the TensorFlow FID Inception weights (downloaded once)."""

_INCEPTION_FALLBACK = "or leave extractor=None to use the course's digit-classifier features"


class InceptionUnavailableError(RuntimeError):
    """Inception-v3 FID features cannot be built here: package missing or weights unreachable."""


class InceptionFeatures(nn.Module):
    """Inception-v3 features the way FID uses them: images in [-1, 1] -> (N, feature_dim).

    ``net`` maps uint8 RGB images (N, 3, H, W) to features and resizes them to 299x299 itself
    (torchmetrics' ``NoTrainInceptionV3``, built by :func:`inception_extractor`). This wrapper
    turns the course's images into that input: grey images are repeated to 3 channels, values
    are mapped from [-1, 1] to 0..255 and rounded to uint8, as saving a PNG does (torchmetrics'
    ``normalize=True`` truncates instead: at most one grey level of difference). The network
    runs in chunks of ``batch_size`` images (299x299 activations are large).
    """

    input_range = (-1.0, 1.0)

    def __init__(self, net: nn.Module, feature_dim: int = 2048, batch_size: int = 64) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        self.net, self.feature_dim, self.batch_size = net, feature_dim, batch_size

    def prepare(self, x: Tensor) -> Tensor:
        """(N, 1 or 3, H, W) float in [-1, 1] -> (N, 3, H, W) uint8 in 0..255."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be images (N, 1 or 3, H, W); got {shape}.")
        if not x.is_floating_point():
            raise ValueError(f"x must be floating point in [-1, 1]; got dtype {x.dtype}.")
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    def features(self, x: Tensor) -> Tensor:
        """Pool features (N, feature_dim), float32, on the network's device."""
        x = self.prepare(x)
        out = [self.net(x[i : i + self.batch_size]) for i in range(0, x.shape[0], self.batch_size)]
        return torch.cat(out).reshape(x.shape[0], -1).float()

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def _build_inception(feature_dim: int, weights_path: str | None) -> nn.Module:
    """torchmetrics' FID Inception-v3 (torch-fidelity weights; downloads them if not cached)."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    kwargs: dict[str, Any] = {}
    if "antialias" in inspect.signature(NoTrainInceptionV3.__init__).parameters:
        kwargs["antialias"] = False  # resize like the original TensorFlow code and torch-fidelity
    return NoTrainInceptionV3(
        name="inception-v3-compat",
        features_list=[str(feature_dim)],
        feature_extractor_weights_path=weights_path,
        **kwargs,
    )


def inception_extractor(
    device: torch.device | str | None = None,
    feature_dim: int = 2048,
    weights_path: str | Path | None = None,
    batch_size: int = 64,
) -> InceptionFeatures:
    """The standard FID feature extractor, Inception-v3 pool3 (2048-d), for :func:`fid` & co.

    Pass it as ``extractor=`` to :func:`fid`, :func:`kid`, :func:`precision_recall` or
    :func:`extract_features`. It needs the ``torch-fidelity`` package and, once, the network
    (about 100 MB of weights, cached by torch under ``$TORCH_HOME/hub``), or ``weights_path``
    pointing at a local copy of ``pt_inception-2015-12-05-6726825d.pth``. Otherwise it raises
    :class:`InceptionUnavailableError` with a one-line message saying what to do.
    What makes an FID comparable with published numbers, and what this follows: the TensorFlow
    FID weights (not torchvision's ImageNet ``inception_v3`` weights, which give different
    numbers), images resized to 299x299 inside the network with TF-1.x bilinear interpolation
    (no antialiasing), the 2048-d pool3 features, and the same N (usually 50,000 samples against
    the training set). Digits are not natural images: Inception features describe them poorly,
    which is one reason the course's digit classifier is the default.
    Reference: Heusel et al. 2017, arXiv:1706.08500 (FID with pool3); Szegedy et al. 2016,
    arXiv:1512.00567 (Inception-v3); torch-fidelity (Obukhov et al. 2020).
    Shapes: the extractor maps (N, 1 or 3, H, W) in [-1, 1] to (N, feature_dim) float32;
    ``feature_dim`` in {64, 192, 768, 2048} picks the layer (2048 = pool3, the FID standard).
    """
    if feature_dim not in (64, 192, 768, 2048):
        raise ValueError(
            "feature_dim must be 64, 192, 768 or 2048 (pool3, the FID standard); "
            f"got {feature_dim}."
        )
    if weights_path is not None and not Path(weights_path).is_file():
        raise InceptionUnavailableError(
            f"no Inception weights file at {weights_path}: download {INCEPTION_WEIGHTS_FILE} "
            f"(torch-fidelity's release page) there, pass weights_path=None to download it, "
            f"{_INCEPTION_FALLBACK}."
        )
    try:
        import torch_fidelity  # noqa: F401
    except ImportError as err:
        raise InceptionUnavailableError(
            "Inception-v3 FID features need the torch-fidelity package: run "
            "`pip install torch-fidelity` (the weights then download once, about 100 MB), "
            f"{_INCEPTION_FALLBACK}."
        ) from err
    try:
        net = _build_inception(feature_dim, None if weights_path is None else str(weights_path))
    except Exception as err:  # offline: URLError; a broken cache file: RuntimeError
        cause = " ".join(str(err).split())[:160]
        raise InceptionUnavailableError(
            f"could not load the Inception-v3 FID weights ({type(err).__name__}: {cause}); "
            "connect to the network once (they are cached under $TORCH_HOME/hub), pass "
            f"weights_path= to a local copy of {INCEPTION_WEIGHTS_FILE}, {_INCEPTION_FALLBACK}."
        ) from err
    return InceptionFeatures(net, feature_dim, batch_size).to(device or "cpu")
