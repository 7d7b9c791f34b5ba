"""The NaN/inf guard: a run stops at the first non-finite logged value or weight, says where, what
was kept and what to try, and never overwrites its last good checkpoint with broken weights."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn


class NonFiniteLossError(RuntimeError):
    """A loss or a weight became NaN or infinite; the message says where and what to try."""


def first_nonfinite(row: Mapping[str, float], keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` whose value in ``row`` is NaN or infinite, or None."""
    return next((k for k in keys if not math.isfinite(row[k])), None)


def nonfinite_module(stateful: Mapping[str, Any]) -> str | None:
    """The name of the first module whose floating-point weights or buffers are not all finite."""
    for name, module in stateful.items():
        if not isinstance(module, nn.Module):
            continue
        tensors = [t for t in module.state_dict().values() if t.is_floating_point()]
        if tensors and not bool(torch.stack([t.isfinite().all() for t in tensors]).all()):
            return name
    return None


def nonfinite_message(
    step: int, what: str, last_checkpoint: tuple[Path, int] | None, stateful: Mapping[str, Any]
) -> str:
    """The message of a :class:`NonFiniteLossError`: what happened at ``step``, the checkpoint
    that was kept, and what to try (with the learning rates of the run's optimizers)."""
    if last_checkpoint is None:
        kept = "no checkpoint was written (pass checkpoint_path= to fit to keep one)"
    else:
        kept = (
            f"the last good checkpoint is kept at {last_checkpoint[0]} (step {last_checkpoint[1]})"
        )
    lrs = ", ".join(
        f"{name} lr={obj.param_groups[0]['lr']:g}"
        for name, obj in stateful.items()
        if isinstance(obj, torch.optim.Optimizer)
    )
    return (
        f"step {step}: {what}; {kept}. Try a lower lr (now {lrs}), check that the data "
        "is finite and in the model's range (generators: [-1, 1]), or another seed."
    )
