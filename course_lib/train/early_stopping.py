"""Early stopping, one design for every model family: the patience rule and a callback.

:func:`should_stop` is the rule; :class:`EarlyStopping` applies it to a metric that an
:class:`~course_lib.train.Evaluate` logs, keeps the best weights (in memory, in the trainer's
checkpoints and, with ``best_path``, in a file of their own) and asks the trainer to stop. The
GAN notebooks watch FID with it; :class:`course_lib.vae.VAETrainer` watches the held-out loss.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn

from course_lib._checks import check_choice
from course_lib._io import check_file_path
from course_lib.train.callbacks import Evaluate
from course_lib.train.checkpoint import load_checkpoint, save_checkpoint

MODES = ("min", "max")
"""Directions of a metric for :func:`should_stop`: lower is better, or higher is better."""


def _check_mode(mode: object) -> str:
    return str(check_choice("mode", mode, MODES, hint="'min' if lower is better (e.g. FID)"))


def _patience_state(scores: Sequence[float], min_delta: float, mode: str) -> tuple[int, int]:
    """(index of the best score, evaluations since it) under the rule of :func:`should_stop`."""
    best, best_i, wait = math.inf if mode == "min" else -math.inf, -1, 0
    for i, score in enumerate(scores):
        better = score < best - min_delta if mode == "min" else score > best + min_delta
        if better:
            best, best_i, wait = score, i, 0
        else:
            wait += 1
    return best_i, wait


def should_stop(
    scores: Sequence[float], patience: int, min_delta: float = 0.0, mode: str = "min"
) -> bool:
    """The patience rule: stop once ``patience`` evaluations in a row brought no improvement.

    Walk through ``scores`` (one per evaluation, in order) keeping the best so far, which
    starts at +inf for ``mode="min"`` (-inf for "max"). A score improves if it beats the best by
    more than ``min_delta`` (``score < best - min_delta`` for min); then it becomes the best and
    the count of evaluations without improvement goes back to 0, otherwise the count grows by 1.
    Return True when the count is >= ``patience``. NaN never improves.
    Reference: Goodfellow, Bengio & Courville 2016, *Deep Learning*, Section 7.8, Algorithm 7.1
    (patience p); Prechelt 1998, "Early stopping - but when?", in *Neural Networks: Tricks of
    the Trade*, LNCS 1524 (criteria for when to stop); ``min_delta`` as in Keras' EarlyStopping.
    """
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be an int >= 1 (evaluations), got {patience!r}.")
    if not isinstance(min_delta, int | float) or not min_delta >= 0:
        raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}.")
    _check_mode(mode)
    return _patience_state(scores, float(min_delta), mode)[1] >= patience


class EarlyStopping:
    """Evaluate a metric, keep the best weights, and stop the run when it stops improving.

    Wraps an :class:`~course_lib.train.Evaluate` (same ``every``; pass the EarlyStopping to fit
    instead of the Evaluate): each call runs the evaluation, logs its values as usual, and applies
    :func:`should_stop` to all values of ``key`` in the history plus the new one, so the rule
    picks up where it was after a resume (the history is in the checkpoint). ``key`` defaults to
    the evaluation's only key; ``patience=None`` keeps the best weights without ever stopping.
    When the new value is the best, the weights of the modules named in ``keep`` (attributes of
    the trainer or of its algorithm; missing ones are skipped) are copied to :attr:`best_state`
    (on the CPU) and, with ``best_path``, written with :func:`save_checkpoint` as
    ``{"step", "key", "value", "mode", <name>: weights, ...}``. The state is also saved in the
    trainer's checkpoints. When patience runs out it calls ``trainer.request_stop``.
    After fit: :attr:`best_step`, :attr:`best_value`, :attr:`stopped_at`, :meth:`restore_best`.
    Reference: see :func:`should_stop`.
    """

    def __init__(
        self,
        evaluate: Evaluate,
        patience: int | None,
        min_delta: float = 0.0,
        mode: str = "min",
        key: str | None = None,
        best_path: str | os.PathLike[str] | None = None,
        keep: str | Sequence[str] = ("G", "G_ema"),
    ):
        if not isinstance(evaluate, Evaluate):
            raise ValueError(
                f"evaluate must be a train.Evaluate, got {type(evaluate).__name__}; wrap your "
                "function: EarlyStopping(train.Evaluate(fid_fn, every=100), patience=3)."
            )
        should_stop([], 1 if patience is None else patience, min_delta, mode)  # validates
        self.evaluate = evaluate
        self.every = evaluate.every
        self.at_end = evaluate.at_end
        self.patience, self.min_delta, self.mode = patience, float(min_delta), mode
        self.key = key
        self.keep = (keep,) if isinstance(keep, str) else tuple(keep)
        # a bad path fails now, not at the first improvement
        self.best_path = (
            None if best_path is None else check_file_path(best_path, "best_path", "best.pt")
        )
        self.best_step: int | None = None
        self.best_value: float | None = None
        self.best_state: dict[str, dict[str, Tensor]] | None = None
        self.stopped_at: int | None = None

    def __call__(self, trainer: Any) -> dict[str, float]:
        out = self.evaluate(trainer)
        key = self.key
        if key is None:
            if len(out) != 1:
                raise ValueError(
                    f"the evaluation logs {sorted(out)}; pass key= to say which one to watch."
                )
            key = next(iter(out))
        if key not in out:
            raise ValueError(f"the evaluation logs {sorted(out)}, not key={key!r}.")
        past = trainer.history[key] if key in trainer.history else np.array([])
        past_steps = trainer.history["step"][~np.isnan(past)] if len(past) else []
        scores = [float(v) for v in past[~np.isnan(past)]] + [out[key]]
        best_i, wait = _patience_state(scores, self.min_delta, self.mode)
        if best_i == len(scores) - 1:
            self._keep(trainer, key, out[key])
        elif self.best_step is None and best_i >= 0:  # resumed: the best came before the resume
            self.best_step, self.best_value = int(past_steps[best_i]), scores[best_i]
        if self.patience is not None and wait >= self.patience:
            self.stopped_at = trainer.step
            at = f" at step {self.best_step}" if self.best_step is not None else ""
            trainer.request_stop(
                f"early stopping: {key} has not improved for {wait} evaluations "
                f"(best {scores[best_i]:.4g}{at})"
            )
        return out

    def __str__(self) -> str:
        if self.best_step is None:
            return "no best value yet"
        return f"best {self.key or 'value'} {self.best_value:.4g} at step {self.best_step}"

    def _modules(self, trainer: Any) -> dict[str, nn.Module]:
        found = {}
        for name in self.keep:
            module = getattr(trainer, name, None)
            if module is None:
                module = getattr(getattr(trainer, "algorithm", None), name, None)
            if isinstance(module, nn.Module):
                found[name] = module
        if not found:
            raise ValueError(f"the trainer has none of keep={list(self.keep)} to keep.")
        return found

    def _keep(self, trainer: Any, key: str, value: float) -> None:
        self.best_step, self.best_value = trainer.step, float(value)
        self.best_state = {
            name: {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
            for name, module in self._modules(trainer).items()
        }
        if self.best_path is not None:
            meta = {"step": trainer.step, "key": key, "value": float(value), "mode": self.mode}
            save_checkpoint(meta | self.best_state, self.best_path)

    def restore_best(self, module: nn.Module | None = None, name: str | None = None) -> nn.Module:
        """Load the best weights of ``name`` (default: the first name in ``keep``) into
        ``module``: those kept in memory, else those in ``best_path``. Returns the module."""
        name = self.keep[0] if name is None else name
        state = None if self.best_state is None else self.best_state.get(name)
        if state is None and self.best_path is not None and self.best_path.is_file():
            state = load_checkpoint(self.best_path).get(name)
        if state is None:
            raise ValueError("no best weights yet: run fit with this callback first.")
        if module is None:
            raise ValueError(f"pass the module to load the best {name} into.")
        module.load_state_dict(state)
        return module

    def state_dict(self) -> dict[str, Any]:
        """The record a checkpoint keeps: best step, value and weights, and where it stopped."""
        return {
            "best_step": self.best_step,
            "best_value": self.best_value,
            "best_state": self.best_state,
            "stopped_at": self.stopped_at,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_step, self.best_value = state["best_step"], state["best_value"]
        self.best_state, self.stopped_at = state["best_state"], state["stopped_at"]
