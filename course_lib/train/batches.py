"""Batches for the training loop: a seeded permutation per epoch, or a sampler function.

The batch with global index b is a pure function of (seed, b): ``e, i = divmod(b, N // B)`` and
rows ``perm_e[i*B:(i+1)*B]`` of the data, ``perm_e`` a permutation seeded by (seed, e). A run
stopped and resumed therefore sees the same batches as one that never stopped. The last partial
batch of an epoch is dropped, so BatchNorm always sees full batches.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from course_lib._io import derive_seed

Sampler = Callable[[int, torch.Generator], Tensor]
"""Toy data as a function: ``sample(n, generator) -> Tensor (n, ...)``."""

Batch = Tensor | tuple[Tensor, ...]
"""What a training step receives: a tensor (from a tensor or a sampler) or, from a
``TensorDataset``, a tuple with a batch of each of its tensors (images and labels, pairs, ...)."""


def _check_tensor(x: Tensor, name: str, *, images: bool) -> None:
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(
            f"{name} is empty (shape {tuple(x.shape)}); pass a tensor of examples (N, ...) with "
            "N >= batch_size, e.g. check the filter or the split that produced it."
        )
    if images and (not x.is_floating_point() or x.dim() < 2):
        raise ValueError(
            f"{name} must be a float tensor (N, ...), got dtype {x.dtype} and shape "
            f"{tuple(x.shape)}; convert images with x.float() / 127.5 - 1."
        )
    if x.is_floating_point():
        lo, hi = (v.item() for v in torch.aminmax(x))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or inf; clean it before training.")
        if images and x.dim() == 4 and (lo < -1.001 or hi > 1.001):
            warnings.warn(
                f"image data lies in [{lo:.3g}, {hi:.3g}] but generators output [-1, 1] (tanh); "
                "rescale it, e.g. x / 127.5 - 1 for bytes or 2 * x - 1 for [0, 1].",
                stacklevel=4,
            )


def make_batches(
    data: Tensor | TensorDataset | Sampler,
    batch_size: int,
    *,
    seed: int,
    device: torch.device,
    sampler_generator: Callable[[], torch.Generator],
) -> tuple[Callable[[int], Batch], dict[str, Any]]:
    """Validate ``data``; return (global batch index -> batch on ``device``, the data's spec).

    ``data``: a float tensor (N, ...); a ``TensorDataset`` (every tensor is batched with the same
    rows; the first one is checked like a tensor when it holds images, i.e. is floating point or
    4-D); or a function ``sample(n, generator)`` drawing from ``sampler_generator()``. Tensors
    move to the device once; batches are then gathered there. The spec (batch size and data
    shapes) goes into checkpoints, so that a resumed run is refused other data.
    """
    if isinstance(data, TensorDataset):
        tensors = tuple(t.to(device) for t in data.tensors)
        first = tensors[0]
        _check_tensor(first, "data", images=first.is_floating_point() or first.dim() == 4)
        for t in tensors[1:]:
            _check_tensor(t, "data", images=False)
        spec = {"batch_size": batch_size, "data": [list(t.shape) for t in tensors]}
        pick = _epoch_rows(first.shape[0], batch_size, seed, device)
        return (lambda b: tuple(t[pick(b)] for t in tensors)), spec
    if isinstance(data, Tensor):
        _check_tensor(data, "data", images=True)
        data = data.to(device)
        pick = _epoch_rows(data.shape[0], batch_size, seed, device)
        return (lambda b: data[pick(b)]), {"batch_size": batch_size, "data": list(data.shape)}
    if not callable(data):
        raise ValueError(
            f"data must be a tensor (N, ...), a TensorDataset or a function sample(n, generator), "
            f"got {type(data).__name__}."
        )
    sample = data

    def sampled(_: int) -> Tensor:
        x = sample(batch_size, sampler_generator())
        if not isinstance(x, Tensor) or x.shape[0] != batch_size:
            raise ValueError(
                f"sample(n={batch_size}, generator) must return a tensor with "
                f"{batch_size} rows, got {getattr(x, 'shape', type(x).__name__)}."
            )
        return x.to(device, non_blocking=True)

    return sampled, {"batch_size": batch_size, "data": "sampler"}


def _epoch_rows(
    n: int, batch_size: int, seed: int, device: torch.device
) -> Callable[[int], Tensor]:
    """Global batch index -> the row indices of that batch (see the module docstring)."""
    if n < batch_size:
        raise ValueError(
            f"batch_size={batch_size} is larger than the data ({n} examples); "
            f"use batch_size <= {n}."
        )
    per_epoch = n // batch_size
    cache: dict[str, Any] = {"epoch": -1, "perm": None}

    def rows(b: int) -> Tensor:
        epoch, i = divmod(b, per_epoch)
        if epoch != cache["epoch"]:
            gen = torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
            cache["perm"] = torch.randperm(n, generator=gen).to(device)
            cache["epoch"] = epoch
        return cache["perm"][i * batch_size : (i + 1) * batch_size]

    return rows
