"""Train a GAN: :class:`GANTrainer` with Adam, AMP on CUDA, a NaN guard and exact checkpoint/resume.

:class:`BaseTrainer` holds what the course's trainers share (device, mixed precision, the fit
loop, the NaN guard, checkpoints); :class:`GANTrainer` and :class:`course_lib.vae.VAETrainer`
add their models, optimizers and update steps.

The training step is the alternating stochastic gradient game of Goodfellow et al. 2014
(arXiv:1406.2661, Algorithm 1): ``n_critic`` discriminator updates, then one generator update.
The real batch at step s is a pure function of (seed, s) (a permutation seeded by (seed, epoch)),
z comes from the trainer's own ``torch.Generator``, and a checkpoint holds every piece of state, so
a run stopped and resumed ends with the same weights, bit for bit on CPU, as a run that never
stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from course_lib import runtime, tricks
from course_lib.losses import GANLoss, get_loss

CHECKPOINT_FORMAT = "course_lib.GANTrainer"
CHECKPOINT_VERSION = 1
LOSS_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
"""The values logged at every history row: losses and mean D logits on real and fake batches."""

Sampler = Callable[[int, torch.Generator], Tensor]
"""Toy data as a function: ``sample(n, generator) -> Tensor (n, ...)``."""

Augment = Callable[[Tensor, int], Tensor]
"""What D sees: ``augment(x, step) -> x'``, e.g. :class:`course_lib.tricks.DiffAugment`."""


class NonFiniteLossError(RuntimeError):
    """A loss or a weight became NaN or infinite; the message says where and what to try."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not match the trainer; the message says why."""


# ---------------------------------------------------------------------------------------- history


class History:
    """The training log: a list of rows, each a dict with ``step`` and float values.

    Every row has ``step`` and the :data:`LOSS_KEYS` (means over the steps since the previous
    row); callbacks add their own keys to the rows of the steps they run at.
    ``history["d_loss"]`` is a float array with one entry per row, NaN where a row lacks the key,
    so every column lines up with ``history["step"]``.
    """

    def __init__(self, rows: Iterable[Mapping[str, float]] = ()):
        self.rows: list[dict[str, float]] = []
        for row in rows:
            self.append(row)

    def append(self, row: Mapping[str, float]) -> None:
        """Add one row; it must contain ``step``."""
        if "step" not in row:
            raise ValueError(f"a history row needs a 'step' entry, got keys {sorted(row)}.")
        self.rows.append(dict(row))

    def keys(self) -> list[str]:
        """All keys in order of first appearance."""
        return list(dict.fromkeys(k for row in self.rows for k in row))

    def __getitem__(self, key: str) -> np.ndarray:
        if key == "step":
            return np.array([row["step"] for row in self.rows], dtype=np.int64)
        if not any(key in row for row in self.rows):
            raise KeyError(f"{key!r} is not in the history; its keys are {self.keys()}.")
        return np.array([row.get(key, math.nan) for row in self.rows], dtype=np.float64)

    def __contains__(self, key: object) -> bool:
        return any(key in row for row in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def to_dict(self) -> dict[str, list[dict[str, float]]]:
        """``{"rows": [...]}`` of plain Python numbers: JSON- and ``weights_only``-safe."""
        return {"rows": [dict(row) for row in self.rows]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        return cls(data["rows"])

    def __repr__(self) -> str:
        if not self.rows:
            return "History(0 rows)"
        return (
            f"History({len(self)} rows, steps {self.rows[0]['step']}-{self.rows[-1]['step']}, "
            f"keys {self.keys()})"
        )

    def _repr_html_(self, max_rows: int = 10) -> str:
        keys = self.keys()
        head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{_format(row[k]) if k in row else ''}</td>" for k in keys)
            + "</tr>"
            for row in self.rows[-max_rows:]
        )
        shown = f" (last {max_rows})" if len(self) > max_rows else ""
        return (
            f"<p>History: {len(self)} rows{shown}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )


def _format(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


# ------------------------------------------------------------------------------------ checkpoints


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` with ``torch.save`` atomically: ``path`` holds the old file or the new one.

    The state goes to a temporary file in the same directory, is flushed and fsync'ed, then
    renamed over ``path`` with ``os.replace`` (atomic on POSIX and Windows), so a crash or a
    kill during the write never leaves a partial checkpoint. Creates missing parent folders.
    Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX only)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device | None = None
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``torch.load(weights_only=True)``.

    ``weights_only=True`` refuses arbitrary pickled objects, so loading a file from elsewhere
    cannot run code. Raises :class:`CheckpointError` (one line: the path and what to do) when
    the file is missing, truncated, corrupt, or does not hold a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; check the path, or train from scratch.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files; all mean the same here
        # torch's own text (chained below) is long and about pickling; the type is enough here
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}); "
            "delete it and train again, or restore an intact copy."
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} holds a {type(state).__name__}, not a checkpoint dict; "
            "pass a file written by save_checkpoint or GANTrainer."
        )
    return state


# -------------------------------------------------------------------------------------- callbacks


class Callback(Protocol):
    """Runs every ``every`` steps during a trainer's ``fit``; returned values go into history."""

    every: int

    def __call__(self, trainer: BaseTrainer) -> Mapping[str, float] | None: ...


@dataclass
class SampleGrid:
    """Generate images from a fixed batch ``z`` every ``every`` steps and keep them.

    ``images`` is a list of (step, CPU tensor (n, C, H, W)); a fixed z makes progress visible
    (pytorch/examples' DCGAN keeps a ``fixed_noise`` the same way). Logs nothing in the history.
    """

    z: Tensor
    every: int
    images: list[tuple[int, Tensor]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        _check_int("every", self.every, 1)

    def __call__(self, trainer: GANTrainer) -> None:
        self.images.append((trainer.step, trainer.generate(z=self.z).cpu()))


@dataclass
class Evaluate:
    """Call ``fn(trainer)`` every ``every`` steps and log its result in the history.

    ``fn`` returns a float (logged under ``name``, default ``fn.__name__``) or a dict of floats
    (logged under its own keys), e.g. ``Evaluate(lambda t: {"coverage": ...}, every=500)``.
    """

    fn: Callable[[BaseTrainer], Mapping[str, float] | float]
    every: int
    name: str | None = None

    def __post_init__(self) -> None:
        _check_int("every", self.every, 1)

    def __call__(self, trainer: BaseTrainer) -> dict[str, float]:
        out = self.fn(trainer)
        if isinstance(out, Mapping):
            return {str(k): float(v) for k, v in out.items()}
        return {self.name or getattr(self.fn, "__name__", "eval"): float(out)}


# ---------------------------------------------------------------------------------------- trainer


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


def _derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed for one named random stream of a run, e.g. (seed, "epoch", 3)."""
    digest = hashlib.blake2b(repr((seed, *keys)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class BaseTrainer:
    """What every trainer of the course does the same way, written once.

    :class:`GANTrainer` and :class:`course_lib.vae.VAETrainer` build on it. It owns the device
    and mixed precision (bf16 autocast on Ampere and newer GPUs, else fp16 with a GradScaler;
    Micikevicius et al. 2018, arXiv:1710.03740), the step counter and the :class:`History`, the
    loss means between history rows with the NaN guard, stop requests, the fit loop (progress
    bar, callbacks, checkpoints) and checkpoints that hold every piece of state: weights,
    optimizers, random streams, history. A subclass sets :attr:`checkpoint_format`,
    :attr:`loss_keys` and :attr:`progress_keys` and implements :meth:`hparams`,
    :meth:`_stateful`, :meth:`_streams` and :meth:`_retry_hint`.
    """

    checkpoint_format: str = ""
    """Written into checkpoints; a checkpoint of another trainer class is refused."""
    loss_keys: tuple[str, ...] = ()
    """The values of one training step, logged as means at every history row."""
    progress_keys: tuple[str, ...] = ()
    """The loss keys shown on the progress bar."""
    cpu_streams: tuple[str, ...] = ()
    """Random streams kept on the CPU whatever the device (restored even across devices)."""
    extra_state_keys: tuple[str, ...] = ()
    """Entries a subclass adds to :meth:`state_dict` and reads in :meth:`_load_extra_state`."""

    def __init__(self, *, device: str | torch.device | None, amp: bool | None, seed: int):
        self.seed = _check_int("seed", seed, 0)
        self.device = runtime.choose_device(None if device is None else str(device))
        if amp is None:
            amp = self.device.type == "cuda"
        if amp and self.device.type != "cuda":
            raise ValueError(
                f"amp=True needs a CUDA device, got device {self.device}; "
                "leave amp=None to use it automatically on CUDA."
            )
        self.amp = bool(amp)
        self.amp_dtype: torch.dtype | None = None
        self.scaler: torch.amp.GradScaler | None = None
        if self.amp:
            # Native bf16 needs compute capability >= 8 (Ampere); is_bf16_supported() also says
            # yes for slow emulated bf16 on older GPUs such as Colab's T4, which get fp16 here.
            bf16 = torch.version.hip is not None or (
                torch.cuda.get_device_capability(self.device)[0] >= 8
            )
            self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
            self.scaler = None if bf16 else torch.amp.GradScaler("cuda")
        self.step = 0
        self.history = History()
        self.stop_reason: str | None = None
        self._fit_spec: dict[str, Any] | None = None  # batch size and data shapes of the run
        self._resumed_spec: dict[str, Any] | None = None
        self._last_checkpoint: tuple[Path, int] | None = None
        self._acc = torch.zeros(len(self.loss_keys), device=self.device)  # sums since last row
        self._acc_n = 0

    # ------------------------------------------------------------------- for the subclasses

    def hparams(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        raise NotImplementedError

    def _stateful(self) -> dict[str, Any]:
        """Name -> each module, optimizer, scheduler or scaler whose state a checkpoint holds
        (None for one this trainer does not use, e.g. no EMA of G)."""
        raise NotImplementedError

    def _checkpointed(self) -> dict[str, Any]:
        return {name: obj for name, obj in self._stateful().items() if obj is not None}

    def _streams(self) -> dict[str, torch.Generator]:
        """Name -> each random stream of the trainer (``torch.Generator``)."""
        raise NotImplementedError

    def _retry_hint(self) -> str:
        """What to try after a NaN, with the settings that matter (e.g. the learning rates)."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------- one step

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _optimize(
        self, loss: Tensor, opt: torch.optim.Optimizer, grad_clip: float | None = None
    ) -> Tensor | None:
        """Backward and one optimizer step; with ``grad_clip``, the gradient is first rescaled to
        a global L2 norm of at most ``grad_clip`` (Pascanu et al. 2013, arXiv:1211.5063), and the
        norm before clipping is returned (a device tensor, no sync); without it, None."""
        opt.zero_grad(set_to_none=True)
        params = [p for group in opt.param_groups for p in group["params"]]
        norm = None
        if self.scaler is None:
            loss.backward()
            if grad_clip is not None:
                norm = nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
            opt.step()
        else:  # fp16: scale the loss so small gradients survive, skip steps with inf grads
            self.scaler.scale(loss).backward()
            if grad_clip is not None:
                self.scaler.unscale_(opt)  # clip the true gradient, not the scaled one
                norm = nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
            self.scaler.step(opt)
            self.scaler.update()
        return norm

    def request_stop(self, reason: str) -> None:
        """Ask ``fit`` to stop after the current step (for callbacks such as early stopping).

        fit finishes the step's history row and callbacks, writes a checkpoint if it has a
        ``checkpoint_path``, prints ``stopped at step k: <reason>`` and returns; the reason is
        kept in :attr:`stop_reason` until the next fit.
        """
        self.stop_reason = str(reason)

    # ---------------------------------------------------------------------------- fit

    def _epoch_batches(self, data: Tensor, batch_size: int) -> Callable[[int], Tensor]:
        """Global batch index b -> rows perm_e[i*B:(i+1)*B] of ``data`` (already on the device),
        with e, i = divmod(b, N // B) and perm_e a permutation seeded by (seed, e). The last
        partial batch of an epoch is dropped, so BatchNorm always sees full batches, and batch b
        is the same whether or not the run was stopped and resumed before it."""
        n = data.shape[0]
        if n < batch_size:
            raise ValueError(
                f"batch_size={batch_size} is larger than the data ({n} examples); "
                f"use batch_size <= {n}."
            )
        per_epoch = n // batch_size
        cache: dict[str, Any] = {"epoch": -1, "perm": None}

        def batch(b: int) -> Tensor:
            epoch, i = divmod(b, per_epoch)
            if epoch != cache["epoch"]:
                gen = torch.Generator().manual_seed(_derive_seed(self.seed, "epoch", epoch))
                cache["perm"] = torch.randperm(n, generator=gen).to(self.device)
                cache["epoch"] = epoch
            return data[cache["perm"][i * batch_size : (i + 1) * batch_size]]

        return batch

    @staticmethod
    def _check_fit_options(
        steps: int,
        batch_size: int,
        log_every: int | None,
        checkpoint_path: str | os.PathLike[str] | None,
        checkpoint_every: int | None,
        callbacks: Iterable[Callback],
    ) -> tuple[int, tuple[Callback, ...]]:
        """Validate fit's common arguments; returns (log_every with its default, callbacks)."""
        _check_int("steps", steps, 0)
        _check_int("batch_size", batch_size, 1)
        log_every = max(1, steps // 100) if log_every is None else log_every
        _check_int("log_every", log_every, 1)
        if checkpoint_every is not None:
            _check_int("checkpoint_every", checkpoint_every, 1)
            if checkpoint_path is None:
                raise ValueError("checkpoint_every needs a checkpoint_path to write to.")
        callbacks = tuple(callbacks)
        for cb in callbacks:
            every = getattr(cb, "every", None)
            if not callable(cb) or type(every) is not int or every < 1:
                raise ValueError(
                    f"callback {cb!r} must be callable with an int attribute every >= 1, "
                    "e.g. train.Evaluate(fn, every=100)."
                )
        return log_every, callbacks

    def _begin_fit(self, spec: dict[str, Any], path: Path | None) -> bool:
        """Resume from ``path`` if it exists and nothing has trained yet; check that the data
        and batch size (``spec``) are the resumed run's. Returns whether it resumed."""
        resumed = False
        if path is not None and self.step == 0 and path.exists():
            self.resume(path)
            resumed = True
        if self._resumed_spec is not None and self._resumed_spec != spec:
            raise CheckpointError(
                f"the checkpoint's run used {self._resumed_spec}, this fit uses {spec}; "
                "pass the same data and batch_size to continue it, or start a new run."
            )
        self._resumed_spec = None
        self._fit_spec = spec
        return resumed

    def _fit_loop(
        self,
        one_step: Callable[[], Tensor],
        steps: int,
        *,
        resumed: bool,
        callbacks: tuple[Callback, ...],
        log_every: int,
        path: Path | None,
        checkpoint_every: int | None,
        progress: bool,
        row_due: Callable[[int], bool] | None = None,
        extend_row: Callable[[dict[str, float]], None] | None = None,
    ) -> History:
        """Call ``one_step()`` (one update; a device tensor of :attr:`loss_keys`) until the step
        counter reaches ``steps``. A history row is written every ``log_every`` steps, at the
        last step, where a callback or a checkpoint runs, and where ``row_due(step)`` says so;
        ``extend_row(row)`` then adds the subclass's values, and the callbacks add theirs."""
        if self.step >= steps and self.step > 0 and not resumed:
            warnings.warn(
                f"the trainer is already at step {self.step} >= steps={steps}: nothing to do "
                f"(steps is the total to reach; use steps={self.step + steps} for {steps} more).",
                stacklevel=3,
            )
        self._acc.zero_()
        self._acc_n = 0
        self.stop_reason = None
        bar = tqdm(total=steps, initial=min(self.step, steps), disable=not progress, desc="train")
        try:
            while self.step < steps:
                self._acc += one_step()
                self._acc_n += 1
                self.step += 1
                bar.update(1)
                s = self.step
                due = [cb for cb in callbacks if s % cb.every == 0]
                save = path is not None and (
                    s == steps or (checkpoint_every is not None and s % checkpoint_every == 0)
                )
                extra = row_due is not None and row_due(s)
                if not (s % log_every == 0 or s == steps or due or save or extra):
                    continue
                row = self._loss_row()
                if extend_row is not None:
                    extend_row(row)
                for cb in due:
                    row.update(cb(self) or {})
                self.history.append(row)
                postfix = {k: f"{row[k]:.3g}" for k in self.progress_keys}
                bar.set_postfix(postfix, refresh=False)
                if path is not None and (save or self.stop_reason is not None):
                    self.save(path)
                if self.stop_reason is not None:
                    break
        finally:
            bar.close()
        if self.stop_reason is not None:
            print(f"stopped at step {self.step}: {self.stop_reason}")
        return self.history

    def _loss_row(self) -> dict[str, float]:
        """The means since the last row (one device sync); the NaN guard.

        A non-finite row is appended to the history (to be seen in plots), then raised.
        """
        values = (self._acc / self._acc_n).tolist()
        first = self.step - self._acc_n + 1
        self._acc.zero_()
        self._acc_n = 0
        row: dict[str, float] = {
            "step": self.step,
            **dict(zip(self.loss_keys, values, strict=True)),
        }
        for key in self.loss_keys:
            if not math.isfinite(row[key]):
                self.history.append(row)
                span = f"step {first}" if first == self.step else f"steps {first}-{self.step}"
                raise NonFiniteLossError(self._nonfinite(f"{key} is {row[key]} ({span})"))
        return row

    def _nonfinite(self, what: str) -> str:
        if self._last_checkpoint is None:
            kept = "no checkpoint was written (pass checkpoint_path= to fit to keep one)"
        else:
            kept = (
                f"the last good checkpoint is kept at {self._last_checkpoint[0]} "
                f"(step {self._last_checkpoint[1]})"
            )
        return f"step {self.step}: {what}; {kept}. {self._retry_hint()}"

    # ---------------------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly: weights, optimizers, RNGs, history."""
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
        return {
            "format": self.checkpoint_format,
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "hparams": self.hparams(),
            "fit": self._fit_spec,
            **{name: obj.state_dict() for name, obj in self._checkpointed().items()},
            "rng": {
                "device": self.device.type,
                **{name: gen.get_state() for name, gen in self._streams().items()},
                "torch": torch.get_rng_state(),
                "cuda": cuda_rng,
            },
            "history": self.history.to_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any], source: str = "the state dict") -> None:
        """Restore a :meth:`state_dict`; raises :class:`CheckpointError` if it does not match.

        Everything is checked (format, settings, model architectures) before anything is loaded.
        """
        trainer = type(self).__name__
        stateful = self._checkpointed()
        # a GradScaler's state is optional: a bf16 or CPU run has none to give to an fp16 run
        required = [k for k in stateful if k != "scaler"]
        keys = ("format", "version", "step", "hparams", "rng", *required, *self.extra_state_keys)
        if not isinstance(state, Mapping) or state.get("format") != self.checkpoint_format:
            raise CheckpointError(
                f"{source} was not written by {trainer}; pass a file from {trainer}.save or fit."
            )
        missing = [k for k in keys if k not in state]
        if missing or state["version"] != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{source} is incomplete or of another version (missing {missing}, version "
                f"{state.get('version')}, expected {CHECKPOINT_VERSION}); train a new run."
            )
        saved, own = state["hparams"], self.hparams()
        diffs = [f"{k}={saved.get(k)!r} (here {v!r})" for k, v in own.items() if saved.get(k) != v]
        if diffs:
            raise CheckpointError(
                f"{source} was written with other settings: {', '.join(diffs)}; create the trainer "
                "with the checkpoint's settings, or use a new checkpoint_path."
            )
        for name, obj in stateful.items():
            if isinstance(obj, nn.Module):
                _check_module_state(name, obj, state.get(name), source)

        try:
            for name, obj in stateful.items():
                if state.get(name) is not None:
                    obj.load_state_dict(state[name])
            rng = state["rng"]
            same_device = rng["device"] == self.device.type
            step = int(state["step"])
            for name, gen in self._streams().items():
                if same_device or name in self.cpu_streams:
                    gen.set_state(rng[name].cpu())
                else:  # a generator's state is device-specific: continue, but not bit for bit
                    gen.manual_seed(_derive_seed(self.seed, name, step))
            if not same_device:
                warnings.warn(
                    f"{source} comes from a {rng['device']} run, this trainer is on "
                    f"{self.device.type}: the random streams are re-seeded, so the run will not "
                    "repeat exactly.",
                    stacklevel=3,
                )
            torch.set_rng_state(rng["torch"].cpu())
            cuda_rng = rng.get("cuda") or []
            if cuda_rng and len(cuda_rng) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all([s.cpu() for s in cuda_rng])
            self._load_extra_state(state)
            self.step = step
            self.history = History.from_dict(state.get("history") or {"rows": []})
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"{source} could not be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); train a new run."
            ) from exc
        self._resumed_spec = state.get("fit")
        self._fit_spec = state.get("fit")

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Load what a subclass added to :meth:`state_dict` (called while loading)."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint of the whole run to ``path`` (atomically, see save_checkpoint).

        Refuses (NonFiniteLossError) if any weight is NaN/inf, so a diverged run never
        overwrites a good checkpoint.
        """
        for name, module in self._checkpointed().items():
            if not isinstance(module, nn.Module):
                continue
            tensors = [t for t in module.state_dict().values() if t.is_floating_point()]
            if tensors and not bool(torch.stack([t.isfinite().all() for t in tensors]).all()):
                raise NonFiniteLossError(self._nonfinite(f"{name}'s weights are not finite"))
        path = save_checkpoint(self.state_dict(), path)
        self._last_checkpoint = (path, self.step)
        return path

    def resume(self, path: str | os.PathLike[str]) -> None:
        """Continue the run saved at ``path``; prints ``resumed from <path> at step <k>``."""
        path = Path(path)
        self.load_state_dict(load_checkpoint(path, map_location="cpu"), f"checkpoint {path}")
        self._last_checkpoint = (path, self.step)
        print(f"resumed from {path} at step {self.step}")


class GANTrainer(BaseTrainer):
    """Trains a generator G and a discriminator D with Adam; see :meth:`fit` and :meth:`train_step`.

    Defaults follow DCGAN (Radford et al. 2016, arXiv:1511.06434, Section 4): Adam with lr 2e-4
    and betas (0.5, 0.999) for both players. ``loss`` is a name in :data:`course_lib.losses.LOSSES`
    or a :class:`~course_lib.losses.GANLoss`. ``device`` None picks one with
    :func:`course_lib.runtime.choose_device`; the models are moved there. ``amp`` None means on
    for CUDA (bf16 autocast where supported, else fp16 with a GradScaler) and off elsewhere.
    ``seed`` fixes the trainer's random streams (z, data order); it does not re-initialize G or D.

    Stabilization options (see :mod:`course_lib.tricks`): ``augment(x, step)`` transforms every
    input of D, real and fake, in both players' steps (DiffAugment, instance noise);
    ``ema_decay`` keeps an exponential moving average of G in :attr:`G_ema`
    (``generate(..., ema=True)`` samples from it); ``grad_clip`` rescales each player's
    gradient to a global L2 norm of at most this value before its optimizer step
    (Pascanu et al. 2013, arXiv:1211.5063, Section 3.2, Algorithm 1).
    """

    checkpoint_format = CHECKPOINT_FORMAT
    loss_keys = LOSS_KEYS
    progress_keys = ("d_loss", "g_loss")
    cpu_streams = ("data",)

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        *,
        loss: str | GANLoss = "nonsaturating",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        n_critic: int = 1,
        device: str | torch.device | None = None,
        amp: bool | None = None,
        seed: int = 0,
        augment: Augment | None = None,
        ema_decay: float | None = None,
        grad_clip: float | None = None,
    ):
        if not isinstance(G, nn.Module) or not isinstance(D, nn.Module):
            raise ValueError("G and D must be torch.nn.Module instances, e.g. DCGANGenerator().")
        latent_dim = getattr(G, "latent_dim", None)
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(
                f"G needs an int attribute latent_dim >= 1 (the width of z), got {latent_dim!r}; "
                "set G.latent_dim in its constructor."
            )
        for name, lr in (("lr_g", lr_g), ("lr_d", lr_d)):
            if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
                raise ValueError(f"{name} must be a finite number > 0, got {lr!r}; try 2e-4.")
        if (
            not isinstance(betas, Sequence)
            or len(betas) != 2
            or not all(isinstance(b, int | float) and 0.0 <= b < 1.0 for b in betas)
        ):
            raise ValueError(
                f"betas must be two numbers in [0, 1), got {betas!r}; try (0.5, 0.999)."
            )
        self.n_critic = _check_int("n_critic", n_critic, 1)
        if augment is not None and not callable(augment):
            raise ValueError(
                f"augment must be a function augment(x, step) -> x, got {type(augment).__name__}."
            )
        self.augment = augment
        if grad_clip is not None and (
            isinstance(grad_clip, bool)
            or not isinstance(grad_clip, int | float)
            or not 0 < grad_clip < math.inf
        ):
            raise ValueError(f"grad_clip must be None or a finite number > 0, got {grad_clip!r}.")
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.loss = get_loss(loss)
        self.lr_g, self.lr_d = float(lr_g), float(lr_d)
        self.betas = (float(betas[0]), float(betas[1]))
        super().__init__(device=device, amp=amp, seed=seed)

        self.G, self.D = G.to(self.device), D.to(self.device)
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.G_ema = None if ema_decay is None else tricks.ema_generator(self.G, ema_decay)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=self.lr_g, betas=self.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=self.lr_d, betas=self.betas)
        # With grad_clip: each player's gradient norm before clipping in its last update (the
        # .grad tensors then hold the clipped gradient); tricks.GradNorms logs these.
        self.grad_norms_before_clip: dict[str, Tensor | None] = {"G": None, "D": None}
        # Separate streams: z for training, z for sample_z/generate (so evaluating does not
        # change training), and the data stream of a sampler function.
        self._z_gen = torch.Generator(self.device).manual_seed(_derive_seed(seed, "z"))
        self._sample_gen = torch.Generator(self.device).manual_seed(_derive_seed(seed, "sample"))
        self._data_gen = torch.Generator().manual_seed(_derive_seed(seed, "data"))

    # ---------------------------------------------------------------------------- one step

    def _d_input(self, x: Tensor) -> Tensor:
        return x if self.augment is None else self.augment(x, self.step)

    def _update(self, reals: Sequence[Tensor]) -> Tensor:
        """n_critic D steps, one G step; returns a device tensor of :data:`LOSS_KEYS` (no sync)."""
        G, D, loss = self.G, self.D, self.loss
        for i, x_real in enumerate(reals):
            last = i == len(reals) - 1
            z = torch.randn(
                x_real.shape[0], G.latent_dim, device=self.device, generator=self._z_gen
            )
            with self._autocast():
                # Only the last fake batch is reused by the G step; earlier ones need no graph.
                with torch.set_grad_enabled(last):
                    x_fake = G(z)
                # D step with G fixed (the fake is detached): minimize loss.d_loss, for BCE
                # the ascent on log D(x) + log(1 - D(G(z))).
                x_real_d, x_fake_d = self._d_input(x_real), self._d_input(x_fake.detach())
                logits_real = D(x_real_d)
                logits_fake = D(x_fake_d)
                d_loss = loss.d_loss(logits_real, logits_fake)
                if loss.d_penalty is not None:
                    d_loss = d_loss + loss.d_penalty(D, x_real_d, x_fake_d)
            self.grad_norms_before_clip["D"] = self._optimize(d_loss, self.opt_d, self.grad_clip)
            if loss.after_d_step is not None:
                with torch.no_grad():
                    loss.after_d_step(D)

        # G step on the same fake batch, NOT detached: the gradient flows through D into G.
        # D's weights need no gradient here; switching them off skips their weight-grad kernels.
        d_params = [p for p in D.parameters() if p.requires_grad]
        for p in d_params:
            p.requires_grad_(False)
        try:
            with self._autocast():
                g_loss = loss.g_loss(D(self._d_input(x_fake)))
            self.grad_norms_before_clip["G"] = self._optimize(g_loss, self.opt_g, self.grad_clip)
        finally:
            for p in d_params:
                p.requires_grad_(True)
        if self.G_ema is not None:
            self.G_ema.update_parameters(self.G)
        return torch.stack(
            [
                d_loss.detach(),
                g_loss.detach(),
                logits_real.detach().mean(),
                logits_fake.detach().mean(),
            ]
        ).float()

    def train_step(self, x_real: Tensor | Sequence[Tensor]) -> dict[str, float]:
        """One training step: ``n_critic`` D updates, then one G update; returns the floats of
        :data:`LOSS_KEYS` (from the last D update: losses, mean D logit on real and on fake).

        ``x_real`` is one real batch (N, ...), reused by every D update, or a sequence of
        ``n_critic`` batches, one per D update as in Goodfellow et al. 2014 (arXiv:1406.2661),
        Algorithm 1. z is drawn fresh for each D update; the G update reuses the last fake batch
        (as pytorch/examples' DCGAN does), which saves one generator forward pass per step.
        """
        reals = [x_real] * self.n_critic if isinstance(x_real, Tensor) else list(x_real)
        if len(reals) != self.n_critic or not all(isinstance(x, Tensor) for x in reals):
            raise ValueError(
                f"x_real must be a tensor or a sequence of n_critic={self.n_critic} tensors, "
                f"got {type(x_real).__name__} of length {len(reals)}."
            )
        self.G.train()
        self.D.train()
        stats = self._update([x.to(self.device, non_blocking=True) for x in reals])
        self.step += 1
        return dict(zip(LOSS_KEYS, stats.tolist(), strict=True))

    # ---------------------------------------------------------------------------- sampling

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I) of shape (n, latent_dim) on the trainer's device.

        Draws from ``generator``, else from the trainer's sampling stream (saved in checkpoints,
        separate from the training stream: sampling never changes how training goes).
        """
        _check_int("n", n, 1)
        gen = self._sample_gen if generator is None else generator
        z = torch.randn(n, self.G.latent_dim, generator=gen, device=gen.device)
        return z.to(self.device)

    @torch.no_grad()
    def generate(self, n: int | None = None, z: Tensor | None = None, ema: bool = False) -> Tensor:
        """G(z) for a given ``z`` or ``n`` fresh draws of :meth:`sample_z`, on the trainer's device.

        Runs G (or, with ``ema=True``, the moving average :attr:`G_ema`) in eval mode (BatchNorm
        uses its running statistics) without gradients, then restores its previous mode.
        """
        if (n is None) == (z is None):
            raise ValueError("pass exactly one of n (a number of samples) or z (a latent batch).")
        if ema and self.G_ema is None:
            raise ValueError("ema=True needs a trainer built with ema_decay, e.g. 0.999.")
        G = self.G_ema.module if ema else self.G  # type: ignore[union-attr]
        z = self.sample_z(n) if z is None else z.to(self.device)
        was_training = G.training
        G.eval()
        try:
            return G(z)
        finally:
            G.train(was_training)

    # ---------------------------------------------------------------------------- fit

    def _batches(
        self, data: Tensor | TensorDataset | Sampler, batch_size: int
    ) -> tuple[Callable[[int], Tensor], dict[str, Any]]:
        """Validate ``data``; return (global batch index -> real batch on device, its spec)."""
        if isinstance(data, TensorDataset):
            data = data.tensors[0]
        if not isinstance(data, Tensor):
            if not callable(data):
                raise ValueError(
                    f"data must be a tensor (N, ...) or a function sample(n, generator), "
                    f"got {type(data).__name__}."
                )
            sample = data

            def sampled(_: int) -> Tensor:
                x = sample(batch_size, self._data_gen)
                if not isinstance(x, Tensor) or x.shape[0] != batch_size:
                    raise ValueError(
                        f"sample(n={batch_size}, generator) must return a tensor with "
                        f"{batch_size} rows, got {getattr(x, 'shape', type(x).__name__)}."
                    )
                return x.to(self.device, non_blocking=True)

            return sampled, {"batch_size": batch_size, "data": "sampler"}

        if not data.is_floating_point() or data.dim() < 2:
            raise ValueError(
                f"data must be a float tensor (N, ...), got dtype {data.dtype} and shape "
                f"{tuple(data.shape)}; convert images with x.float() / 127.5 - 1."
            )
        data = data.to(self.device)  # once: batches are then gathered on the device
        lo, hi = torch.aminmax(data)
        lo, hi = lo.item(), hi.item()
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("data contains NaN or inf; clean it before training.")
        if data.dim() == 4 and (lo < -1.001 or hi > 1.001):
            warnings.warn(
                f"image data lies in [{lo:.3g}, {hi:.3g}] but generators output [-1, 1] (tanh); "
                "rescale it, e.g. x / 127.5 - 1 for bytes or 2 * x - 1 for [0, 1].",
                stacklevel=3,
            )
        return self._epoch_batches(data, batch_size), {
            "batch_size": batch_size,
            "data": list(data.shape),
        }

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
        """Train until the trainer's step counter reaches ``steps``; return :attr:`history`.

        ``data``: a float tensor (N, ...) (or a TensorDataset, whose first tensor is used), moved
        to the device once and batched by a per-epoch permutation seeded from (seed, epoch),
        dropping the last partial batch; or a function ``sample(n, generator)`` for toy data.
        ``steps`` is the total to reach: after resuming at step 600, ``steps=1000`` runs 400.
        A history row is written every ``log_every`` steps (default ``steps // 100``, at least 1),
        at the last step, and where a callback or a checkpoint runs; losses stay on the device
        between rows, so the GPU never waits for Python.
        With ``checkpoint_path``: if the file exists and the trainer has not trained yet, it is
        resumed from; a checkpoint is written every ``checkpoint_every`` steps and at the end.
        Raises :class:`NonFiniteLossError` when a logged loss or the weights before a checkpoint
        are NaN/inf; the last good checkpoint is never overwritten.
        """
        log_every, callbacks = self._check_fit_options(
            steps, batch_size, log_every, checkpoint_path, checkpoint_every, callbacks
        )
        next_batch, spec = self._batches(data, batch_size)
        path = None if checkpoint_path is None else Path(checkpoint_path)
        resumed = self._begin_fit(spec, path)

        def one_step() -> Tensor:
            first = self.step * self.n_critic  # global index of this step's first real batch
            return self._update([next_batch(first + i) for i in range(self.n_critic)])

        self.G.train()
        self.D.train()
        return self._fit_loop(
            one_step,
            steps,
            resumed=resumed,
            callbacks=callbacks,
            log_every=log_every,
            path=path,
            checkpoint_every=checkpoint_every,
            progress=progress,
        )

    # ---------------------------------------------------------------------------- checkpoints

    def _retry_hint(self) -> str:
        return (
            f"Try a lower lr (now lr_g={self.lr_g:g}, lr_d={self.lr_d:g}), check that the data "
            "is finite and scaled to [-1, 1], or another seed."
        )

    def hparams(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        return {
            "loss": self.loss.name,
            "lr_g": self.lr_g,
            "lr_d": self.lr_d,
            "betas": list(self.betas),
            "n_critic": self.n_critic,
            "seed": self.seed,
            "latent_dim": self.G.latent_dim,
            "augment": None if self.augment is None else repr(self.augment),
            "ema_decay": self.ema_decay,
            "grad_clip": self.grad_clip,
        }

    def _stateful(self) -> dict[str, Any]:
        return {
            "G": self.G,
            "D": self.D,
            "G_ema": self.G_ema,
            "opt_g": self.opt_g,
            "opt_d": self.opt_d,
            "scaler": self.scaler,
        }

    def _streams(self) -> dict[str, torch.Generator]:
        return {"z": self._z_gen, "sample": self._sample_gen, "data": self._data_gen}


def _check_module_state(name: str, module: nn.Module, saved: Any, source: str) -> None:
    own = module.state_dict()
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"{source} has no weights for {name}; train a new run.")
    problems = [f"{k} missing" for k in own if k not in saved]
    problems += [f"unexpected {k}" for k in saved if k not in own]
    problems += [
        f"{k} has shape {tuple(saved[k].shape)} there but {tuple(v.shape)} here"
        for k, v in own.items()
        if k in saved and isinstance(saved[k], Tensor) and saved[k].shape != v.shape
    ]
    if problems:
        raise CheckpointError(
            f"{source} holds a different {name} ({problems[0]}); build the same {name} "
            "(class, sizes, width) as the run that wrote it."
        )
