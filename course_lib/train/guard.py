"""The divergence guard: a run stops at the first logged value that is NaN, infinite or huge
(above the trainer's ``max_abs_loss``), or at non-finite weights; it says where, what was kept and
what to try, and never overwrites its last good checkpoint with a diverged run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn


class NonFiniteLossError(RuntimeError):
    """A loss or a weight became NaN or infinite; the message says where and what to try."""


class LossExplodedError(NonFiniteLossError):
    """A logged value grew past the trainer's ``max_abs_loss`` while still finite: the run
    diverged. A subclass of :class:`NonFiniteLossError`, so one ``except`` catches both."""


def first_nonfinite(row: Mapping[str, float], keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` whose value in ``row`` is NaN or infinite, or None."""
    return next((k for k in keys if not math.isfinite(row[k])), None)


def first_exploded(
    row: Mapping[str, float], keys: tuple[str, ...], max_abs: float | None
) -> str | None:
    """The first of ``keys`` whose value in ``row`` has magnitude above ``max_abs``, or None."""
    if max_abs is None:
        return None
    return next((k for k in keys if abs(row[k]) > max_abs), None)


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
    step: int,
    what: str,
    last_checkpoint: tuple[Path, int] | None,
    stateful: Mapping[str, Any],
    checkpoint_path: Path | None = None,
) -> str:
    """The message of a :class:`NonFiniteLossError`: what happened at ``step``, the checkpoint
    that was kept (or why there is none), and what to try, quoting each optimizer's learning
    rate as it was set (and the scheduled one where a scheduler changed it)."""
    if last_checkpoint is not None:
        kept = (
            f"the last good checkpoint is kept at {last_checkpoint[0]} (step {last_checkpoint[1]})"
        )
    elif checkpoint_path is not None:
        kept = f"no checkpoint had been written to {checkpoint_path} yet"
    else:
        kept = "no checkpoint was written (pass checkpoint_path= to fit to keep one)"
    rates = []
    for name, obj in stateful.items():
        if isinstance(obj, torch.optim.Optimizer):
            lr, now = obj.defaults.get("lr"), obj.param_groups[0]["lr"]
            shown = f"{name} lr={lr:g}" if isinstance(lr, int | float) else f"{name} lr={now:g}"
            if isinstance(lr, int | float) and not math.isclose(now, lr):
                shown += f" (scheduled: now {now:g})"
            rates.append(shown)
    advice = f"a lower lr (now {', '.join(rates)})" if rates else "a lower learning rate"
    return (
        f"step {step}: {what}; {kept}. Try {advice}, check that the data is finite and in the "
        "model's range (generators: [-1, 1]), or another seed."
    )
