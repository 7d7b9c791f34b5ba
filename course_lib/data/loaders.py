"""Image datasets by name: offline digits, scikit-learn's 8x8 digits, and torchvision
downloads (MNIST, Fashion-MNIST, CIFAR-10) that fail offline with a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from course_lib.data.digits import check_n, check_split, data_folder, digits28
from course_lib.data.root import DatasetUnavailableError

IMAGE_DATASETS = ("digits28", "sklearn_digits", "mnist", "fashion_mnist", "cifar10")
"""Names accepted by :func:`load_images`; the first two need no network."""


_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
_PRETTY = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


# ---------------------------------------------------------------------------------------------
# scikit-learn's digits and the torchvision datasets
# ---------------------------------------------------------------------------------------------


def sklearn_digits(n: int | None = None) -> TensorDataset:
    """scikit-learn's 1,797 8x8 handwritten digits (UCI optdigits test set), scaled to [-1, 1].

    Pixel counts 0..16 map to x / 8 - 1. ``n`` keeps the first n images (in scikit-learn's order).
    Reference: Alpaydin & Kaynak 1998, UCI "Optical Recognition of Handwritten Digits".
    Shapes: images (N, 1, 8, 8) float32, labels (N,) int64.
    """
    check_n(n)
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
    shuffle: bool = False,
) -> TensorDataset:
    """Load an image dataset by name as TensorDataset(images in [-1, 1], int64 labels).

    "digits28" (offline, :func:`digits28`; ``seed`` picks its random draw), "sklearn_digits"
    (offline 8x8, train split only), "mnist", "fashion_mnist" (1x28x28) and "cifar10" (3x32x32)
    through torchvision with download=True into ``root`` (default :func:`data_root`). Any
    failure to get a torchvision dataset raises :class:`DatasetUnavailableError`, whose message
    names the offline alternative. ``n`` keeps the first n images of the split; with
    ``shuffle=True``, n images drawn at random from the whole split (a fixed permutation per
    ``seed``), as FID/KID reference and floor sets need (see :func:`digits28`).
    Shapes: images (N, C, H, W) float32, labels (N,) int64.
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"name={name!r} is not an image dataset; use one of {IMAGE_DATASETS}.")
    check_split(split)
    check_n(n)
    if not isinstance(shuffle, bool):
        raise ValueError(f"shuffle must be True or False, got {shuffle!r}.")
    if name == "digits28":
        return digits28(split, n=n, seed=seed, root=root, shuffle=shuffle)
    if name == "sklearn_digits":
        if split != "train":
            raise ValueError(
                f"split={split!r}: sklearn_digits has only split='train' (1,797 images); "
                "hold out part of it yourself."
            )
        dataset = sklearn_digits()
    else:
        dataset = _torchvision_images(name, split, data_folder(root))
    images, labels = dataset.tensors
    rows = slice(n)
    if shuffle:
        rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return TensorDataset(images[rows], labels[rows])
