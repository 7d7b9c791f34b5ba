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


MAX_ABS_LOSS = 1e6
"""The default ``Trainer.max_abs_loss``: a logged value of larger magnitude stops the run with
:class:`LossExplodedError` before it can overwrite a good checkpoint (a loss that explodes stays
finite for many steps before it turns into NaN). The course's healthy values stay far below:
BCE ~ 1, an ELBO of 28x28 images ~ 1e2-1e3 nats, critic values in the thousands at most."""


def diverged(
    row: Mapping[str, float], keys: tuple[str, ...], max_abs: float | None, first_step: int
) -> tuple[type[NonFiniteLossError], str] | None:
    """Whether a history row shows divergence: the first of ``keys`` that is NaN or infinite
    (:class:`NonFiniteLossError`), else the first whose magnitude exceeds ``max_abs``
    (:class:`LossExplodedError`), with what to say about it; None for a healthy row. The row
    holds the means of steps ``first_step`` to ``row["step"]``."""
    last = int(row["step"])
    span = f"step {last}" if first_step == last else f"steps {first_step}-{last}"
    key = next((k for k in keys if not math.isfinite(row[k])), None)
    if key is not None:
        return NonFiniteLossError, f"{key} is {row[key]} ({span})"
    key = None if max_abs is None else next((k for k in keys if abs(row[k]) > max_abs), None)
    if key is not None:
        return LossExplodedError, (
            f"{key} is {row[key]:.3g} ({span}), beyond max_abs_loss={max_abs:g}: the run "
            "diverged (set trainer.max_abs_loss = None if such values are normal here)"
        )
    return None


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
