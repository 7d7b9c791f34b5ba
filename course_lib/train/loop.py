"""The training loop: :class:`Trainer` runs any algorithm's ``step`` with the course's plumbing.

An *algorithm* is a small object whose ``step(trainer, batch)`` does one update and returns a
dict of scalar tensors (its losses), e.g. :class:`course_lib.gan.GANStep` (Goodfellow et al.
2014, Algorithm 1) or :class:`course_lib.vae.VAEStep`. The step reads like the paper; the
trainer owns everything around it, once for every family:

- the device and mixed precision (:class:`~course_lib.train.precision.MixedPrecision`): a step
  calls ``trainer.autocast()`` and ``trainer.optimize(loss, opt, grad_clip)``;
- named random streams, ``trainer.generator("z")``, seeded from (seed, name) and saved;
- batches (:mod:`course_lib.train.batches`): ``fit`` hands the step the whole batch (images
  and labels from a ``TensorDataset``); a step that needs more calls ``trainer.next_batch()``;
- the step counter, the :class:`~course_lib.train.History` (means of the step's values between
  rows), the divergence guard (NaN, inf, or beyond ``max_abs_loss``), callbacks, a progress
  bar and stop requests;
- checkpoints: every attribute of the algorithm that has a ``state_dict`` (models, optimizers,
  schedulers, EMA copies), the scaler, the streams, the history, the state of callbacks that
  have one, and the algorithm's settings, which a resumed run must share. A run stopped and
  resumed ends with the same weights, bit for bit on CPU, as a run that never stopped.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from course_lib import runtime
from course_lib._checks import check_int
from course_lib._io import check_file_path, derive_seed
from course_lib.train.batches import Batch, Sampler, make_batches
from course_lib.train.callbacks import Callback, callback_keys, check_callbacks
from course_lib.train.checkpoint import (
    CheckpointError,
    check_run_state,
    load_checkpoint,
    save_checkpoint,
)
from course_lib.train.guard import (
    MAX_ABS_LOSS,
    NonFiniteLossError,
    diverged,
    nonfinite_message,
    nonfinite_module,
)
from course_lib.train.history import History
from course_lib.train.precision import MixedPrecision
from course_lib.train.state import (
    has_state,
    parts,
    restore,
    restore_streams,
    save_streams,
    settings,
    snapshot,
)

CHECKPOINT_VERSION = 2


class Algorithm(Protocol):
    """What :class:`Trainer` trains: ``step(trainer, batch)`` -> the step's scalar tensors;
    optional ``progress_keys``, the values on the progress bar (default: the first two)."""

    def step(self, trainer: Trainer, batch: Batch) -> Mapping[str, Tensor]: ...


class Trainer:
    """Train ``algorithm`` with :meth:`fit`; see the module docstring for what the trainer owns.

    ``device`` None picks one with :func:`course_lib.runtime.choose_device`; every module of the
    algorithm is moved there (build optimizers before or after: ``Module.to`` keeps parameter
    identity). ``amp`` None means on for CUDA only. ``seed`` fixes the trainer's random streams
    and the data order; it does not initialize the models.
    """

    max_abs_loss: float | None = MAX_ABS_LOSS
    """A logged value of larger magnitude stops the run (see :data:`guard.MAX_ABS_LOSS`); set
    ``trainer.max_abs_loss = None`` (or a larger value) where huge values are normal."""

    def __init__(
        self,
        algorithm: Algorithm,
        *,
        device: str | torch.device | None = None,
        amp: bool | None = None,
        seed: int = 0,
    ):
        if not callable(getattr(algorithm, "step", None)):
            raise ValueError(
                f"algorithm must have a method step(trainer, batch), got "
                f"{type(algorithm).__name__}; e.g. gan.GANStep(G, D, opt_g, opt_d)."
            )
        self.seed = check_int("seed", seed, 0)
        self.device = runtime.choose_device(None if device is None else str(device))
        self.precision = MixedPrecision(self.device, amp)
        self.algorithm = algorithm
        for value in parts(algorithm).values():
            if isinstance(value, nn.Module):
                value.to(self.device)
        self.step = 0
        self.history = History()
        self.stop_reason: str | None = None
        self.batches_drawn = 0
        self._streams: dict[str, torch.Generator] = {}
        self._next: Any = None  # global batch index -> batch, set by fit
        self._callbacks: tuple[Callback, ...] = ()
        self._callback_states: dict[str, Any] = {}  # loaded, not yet handed to a callback
        self._fit_spec: dict[str, Any] | None = None
        self._resumed_spec: dict[str, Any] | None = None
        self._last_checkpoint: tuple[Path, int] | None = None
        self._checkpoint_path: Path | None = None  # of the fit running now

    # ------------------------------------------------------------------ what a step calls

    @property
    def amp(self) -> bool:
        return self.precision.enabled

    def autocast(self) -> Any:
        """The context for a step's forward passes (autocast on CUDA, else nothing)."""
        return self.precision.autocast()

    def optimize(
        self, loss: Tensor, opt: torch.optim.Optimizer, grad_clip: float | None = None
    ) -> Tensor | None:
        """Backward and one optimizer step (see :meth:`MixedPrecision.optimize`)."""
        return self.precision.optimize(loss, opt, grad_clip)

    def generator(self, name: str, cpu: bool = False) -> torch.Generator:
        """The run's random stream ``name`` (created on first use, seeded from (seed, name),
        saved in checkpoints). On the trainer's device, or with ``cpu=True`` on the CPU (a CPU
        stream continues exactly even when a run resumes on another device)."""
        gen = self._streams.get(name)
        if gen is None:
            gen = torch.Generator("cpu" if cpu else self.device)
            gen.manual_seed(derive_seed(self.seed, name))
            self._streams[name] = gen
        return gen

    def next_batch(self) -> Batch:
        """The next real batch of the data passed to :meth:`fit` (for steps that use several)."""
        if self._next is None:
            raise RuntimeError("next_batch() works inside fit, which knows the data.")
        batch = self._next(self.batches_drawn)
        self.batches_drawn += 1
        return batch

    def request_stop(self, reason: str) -> None:
        """Ask ``fit`` to stop after the current step (for callbacks such as early stopping).

        fit finishes the step's history row and callbacks, writes a checkpoint if it has a
        ``checkpoint_path``, prints ``stopped at step k: <reason>`` and returns; the reason is
        kept in :attr:`stop_reason` until the next fit.
        """
        self.stop_reason = str(reason)

    # ------------------------------------------------------------------------------ fit

    def fit(
        self,
        data: Tensor | TensorDataset | Sampler,
        *,
        steps: int,
        batch_size: int = 64,
        callbacks: Iterable[Callback] = (),
        log_every: int | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        progress: bool = True,
    ) -> History:
        """Train until the step counter reaches ``steps``; return :attr:`history`.

        ``data``: a float tensor (N, ...), a ``TensorDataset`` (the step gets a tuple with a batch
        of each tensor) or a function ``sample(n, generator)``; see :func:`make_batches`.
        ``steps`` is the total to reach: after resuming at step 600, ``steps=1000`` runs 400.
        A history row (the means of the step's tensors since the previous row, the last value of
        its plain numbers) is written every ``log_every`` steps (default ``steps // 100``, at
        least 1), at the last step and where a callback or a checkpoint runs; between rows the
        values stay on the device, so the GPU never waits for Python. A callback runs every
        ``cb.every`` steps (and at the last step if it has ``at_end = True``); what it returns
        goes into the row. With ``checkpoint_path``: if the file exists and nothing has trained
        yet, the run resumes from it; a checkpoint is written every ``checkpoint_every`` steps and
        at the end. Raises :class:`NonFiniteLossError` when a logged value or the weights before a
        checkpoint are NaN/inf, or a logged value exceeds :attr:`max_abs_loss` (its subclass
        ``LossExplodedError``); the last good checkpoint is never overwritten. Data, paths and
        arguments are checked before the first step.
        """
        check_int("steps", steps, 0)
        check_int("batch_size", batch_size, 1)
        log_every = max(1, steps // 100) if log_every is None else log_every
        check_int("log_every", log_every, 1)
        if checkpoint_every is not None:
            check_int("checkpoint_every", checkpoint_every, 1)
            if checkpoint_path is None:
                raise ValueError("checkpoint_every needs a checkpoint_path to write to.")
        callbacks = check_callbacks(callbacks)
        self._next, spec = make_batches(
            data,
            batch_size,
            seed=self.seed,
            device=self.device,
            sampler_generator=lambda: self.generator("data", cpu=True),
        )
        path = None if checkpoint_path is None else Path(checkpoint_path)
        if path is not None:  # a bad path fails now, not at the first save minutes later
            check_file_path(path, "checkpoint_path")
        resumed = path is not None and self.step == 0 and path.exists()
        if resumed:
            self.resume(path)  # type: ignore[arg-type]
        if self._resumed_spec is not None and self._resumed_spec != spec:
            raise CheckpointError(
                f"the checkpoint's run used {self._resumed_spec}, this fit uses {spec}; "
                "pass the same data and batch_size to continue it, or start a new run."
            )
        self._resumed_spec, self._fit_spec = None, spec
        self._checkpoint_path = path
        self._callbacks = callbacks
        self._hand_states_to_callbacks()
        for cb in callbacks:  # a run that early stopping ended stays ended (until a new run)
            if getattr(cb, "stopped_at", None) is not None:
                print(f"this run stopped early at step {cb.stopped_at} ({cb}); nothing to do.")
                return self.history
        if self.step >= steps and self.step > 0 and not resumed:
            warnings.warn(
                f"the trainer is already at step {self.step} >= steps={steps}: nothing to do "
                f"(steps is the total to reach; use steps={self.step + steps} for {steps} more).",
                stacklevel=2,
            )
        return self._loop(steps, callbacks, log_every, path, checkpoint_every, progress)

    def _hand_states_to_callbacks(self) -> None:
        """Give each callback of this fit that keeps state its state from the checkpoint."""
        for key, cb in callback_keys(self._callbacks).items():
            if key in self._callback_states and has_state(cb):
                cb.load_state_dict(self._callback_states.pop(key))  # type: ignore[attr-defined]

    def _loop(
        self,
        steps: int,
        callbacks: tuple[Callback, ...],
        log_every: int,
        path: Path | None,
        checkpoint_every: int | None,
        progress: bool,
    ) -> History:
        keys: tuple[str, ...] | None = None
        tensor_keys: list[str] = []  # values on the device, summed there (no sync per step)
        total: Tensor | None = None
        last: dict[str, float] = {}  # plain numbers (a schedule's value): the row's last step
        count = 0
        self.stop_reason = None
        self._train_mode()
        bar = tqdm(total=steps, initial=min(self.step, steps), disable=not progress, desc="train")
        try:
            while self.step < steps:
                out = self.algorithm.step(self, self.next_batch())
                if keys is None:
                    keys = tuple(out)
                    tensor_keys = [k for k, v in out.items() if isinstance(v, Tensor)]
                elif tuple(out) != keys:
                    raise ValueError(f"step returned keys {list(out)}, earlier steps {list(keys)}.")
                values = torch.stack([out[k].detach() for k in tensor_keys]).float()
                total = values if total is None else total + values
                last.update({k: float(out[k]) for k in keys if k not in tensor_keys})
                count += 1
                self.step += 1
                bar.update(1)
                s = self.step
                due = [
                    cb
                    for cb in callbacks
                    if s % cb.every == 0 or (s == steps and getattr(cb, "at_end", False))
                ]
                save = path is not None and (
                    s == steps or (checkpoint_every is not None and s % checkpoint_every == 0)
                )
                if not (s % log_every == 0 or s == steps or due or save):
                    continue
                row = self._row(keys, tensor_keys, total, last, count)  # type: ignore[arg-type]
                total, count = None, 0
                for cb in due:
                    row.update(cb(self) or {})
                self.history.append(row)
                shown = getattr(self.algorithm, "progress_keys", keys[:2])
                bar.set_postfix({k: f"{row[k]:.3g}" for k in shown if k in row}, refresh=False)
                if path is not None and (save or self.stop_reason is not None):
                    self.save(path)
                if self.stop_reason is not None:
                    break
        finally:
            bar.close()
        if self.stop_reason is not None:
            print(f"stopped at step {self.step}: {self.stop_reason}")
        return self.history

    def _train_mode(self) -> None:
        for value in parts(self.algorithm).values():
            if isinstance(value, nn.Module) and not isinstance(
                value, torch.optim.swa_utils.AveragedModel
            ):
                value.train()

    def _row(
        self,
        keys: tuple[str, ...],
        tensor_keys: list[str],
        total: Tensor,
        last: dict[str, float],
        count: int,
    ) -> dict[str, float]:
        """The means of the step's tensors since the last row (one device sync) and the last
        value of its plain numbers (e.g. the KL weight of a schedule), behind the divergence
        guard: a diverged row is appended to the history (to be seen in plots), then raised.
        """
        means = dict(zip(tensor_keys, (total / count).tolist(), strict=True))
        row: dict[str, float] = {"step": self.step}
        row.update({k: means[k] if k in means else last[k] for k in keys})
        found = diverged(row, keys, self.max_abs_loss, self.step - count + 1)
        if found is not None:
            self.history.append(row)
            error, what = found
            raise error(self.nonfinite(what))
        return row

    def nonfinite(self, what: str) -> str:
        """The message of a :class:`NonFiniteLossError`: what, the checkpoint kept, what to try."""
        return nonfinite_message(
            self.step, what, self._last_checkpoint, self._stateful(), self._checkpoint_path
        )

    # ---------------------------------------------------------------------- checkpoints

    def _stateful(self) -> dict[str, Any]:
        """Name -> every object of the run whose state a checkpoint holds: the algorithm's
        attributes that have a ``state_dict`` (in their order), and the GradScaler if any."""
        found = {name: obj for name, obj in parts(self.algorithm).items() if has_state(obj)}
        if self.precision.scaler is not None:
            found["scaler"] = self.precision.scaler
        return found

    def hparams(self) -> dict[str, Any]:
        """The settings a resumed run must share with this one (see :func:`settings`)."""
        return settings(self.algorithm, self.seed)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly: weights, optimizers, RNGs, history."""
        callbacks = dict(self._callback_states)
        for key, cb in callback_keys(self._callbacks).items():
            if has_state(cb):
                callbacks[key] = cb.state_dict()  # type: ignore[attr-defined]
        return {
            "format": self._format(),
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "batches_drawn": self.batches_drawn,
            "hparams": self.hparams(),
            "fit": self._fit_spec,
            "state": {name: obj.state_dict() for name, obj in self._stateful().items()},
            "streams": save_streams(self._streams),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            },
            "callbacks": callbacks,
            "history": self.history.to_dict(),
        }

    def _format(self) -> str:
        return f"course_lib.{type(self.algorithm).__name__}"

    def load_state_dict(self, state: Mapping[str, Any], source: str = "the state dict") -> None:
        """Restore a :meth:`state_dict`; raises :class:`CheckpointError` if it does not match.

        Everything is checked (format, version, settings, model architectures) before anything
        is loaded, so the trainer is left as it was when the checkpoint is refused.
        """
        stateful = self._stateful()
        check_run_state(
            state,
            source=source,
            trainer=type(self).__name__,
            fmt=self._format(),
            version=CHECKPOINT_VERSION,
            stateful=stateful,
            settings=self.hparams(),
        )
        before = snapshot(stateful, self._streams)
        run = (self.step, self.batches_drawn, self.history, self._resumed_spec, self._fit_spec)
        try:
            self._load(state, stateful, source)
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            restore(stateful, self._streams, before)  # all or nothing: the trainer is as it was
            self.step, self.batches_drawn, self.history, self._resumed_spec, self._fit_spec = run
            raise CheckpointError(
                f"{source} could not be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); train a new run."
            ) from exc

    def _load(self, state: Mapping[str, Any], stateful: dict[str, Any], source: str) -> None:
        for name, obj in stateful.items():
            if state["state"].get(name) is not None:
                obj.load_state_dict(state["state"][name])
        step = int(state["step"])
        moved = restore_streams(
            self._streams, state["streams"], seed=self.seed, step=step, device=self.device
        )
        if moved:
            warnings.warn(
                f"{source} comes from a run on another device: the random streams {moved} are "
                "re-seeded, so the run will not repeat exactly.",
                stacklevel=4,
            )
        torch.set_rng_state(state["rng"]["torch"].cpu())
        cuda_rng = state["rng"].get("cuda") or []
        if cuda_rng and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_rng])
        self.step = step
        self.batches_drawn = int(state["batches_drawn"])
        self.history = History.from_dict(state["history"])
        self._callback_states = dict(state.get("callbacks") or {})
        self._hand_states_to_callbacks()
        self._resumed_spec = self._fit_spec = state.get("fit")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint of the whole run to ``path`` (atomically, see save_checkpoint).

        Refuses (NonFiniteLossError) if any weight is NaN/inf, so a diverged run never
        overwrites a good checkpoint.
        """
        broken = nonfinite_module(self._stateful())
        if broken is not None:
            raise NonFiniteLossError(self.nonfinite(f"{broken}'s weights are not finite"))
        path = save_checkpoint(self.state_dict(), check_file_path(path, "path"))
        self._last_checkpoint = (path, self.step)
        return path

    def resume(self, path: str | os.PathLike[str]) -> None:
        """Continue the run saved at ``path``; prints ``resumed from <path> at step <k>``."""
        path = Path(path)
        self.load_state_dict(load_checkpoint(path, map_location="cpu"), f"checkpoint {path}")
        self._last_checkpoint = (path, self.step)
        print(f"resumed from {path} at step {self.step}")
