"""Watch a GAN run: logs on disk, D's probabilities, sample diversity, a detector, early stopping.

Everything here plugs into :meth:`course_lib.train.GANTrainer.fit` as a callback (an object with
an int ``every`` and ``__call__(trainer) -> dict | None``; the dict goes into the history row of
that step), or reads a :class:`~course_lib.train.History` afterwards:

- :class:`JSONLLogger` (and, if the ``tensorboard`` package is installed,
  :class:`TensorBoardLogger`): the history rows written to disk as training goes, resume-safe;
  :func:`read_log` reads a log back into a History, even while the run is still writing it.
- :class:`DiscriminatorProbs`: D(x) and D(G(z)) as probabilities on fixed batches.
- :class:`Diversity` and :func:`mean_pairwise_distance`: how different G's samples are.
- :class:`SampleSaver`: PNG sample grids from a fixed z, one file per call.
- :func:`diagnose` and :class:`Watchdog`: a rule-based detector of divergence and mode collapse.
- :func:`should_stop` and :class:`EarlyStopping`: patience-based early stopping on a metric,
  keeping the best generator.

Gradient norms come from :class:`course_lib.tricks.GradNorms`. Nothing happens at import time.

**Callbacks see the history one row late.** ``fit`` appends the row of step s after all
callbacks of step s have run, so a callback at step s sees rows up to the previous one. The
loggers therefore write each row at their next call; call ``logger.sync(trainer.history)``
after ``fit`` for the last rows. :class:`EarlyStopping` wraps the evaluation it watches, so it
decides on the value of the current step.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from course_lib import train, viz

if TYPE_CHECKING:
    from course_lib.train import GANTrainer, History

MODES = ("min", "max")
"""Directions of a metric for :func:`should_stop`: lower is better, or higher is better."""


def _check_every(every: object) -> int:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}; e.g. every=100.")
    return every


def _check_mode(mode: object) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be 'min' (lower is better, e.g. FID) or 'max', got {mode!r}.")
    return str(mode)


# ------------------------------------------------------------------------------------ logs


class _HistorySink:
    """Mirror a trainer's history rows to some storage; resume-safe (see :meth:`sync`)."""

    every: int

    def __init__(self, every: int):
        self.every = _check_every(every)
        self._last_step: int | None = None  # None: nothing written by this object yet

    def __call__(self, trainer: GANTrainer) -> None:
        self.sync(trainer.history)

    def sync(self, history: History) -> None:
        """Write the rows of ``history`` not written yet.

        The first sync (and any sync after the history went back in steps, e.g. a resume in
        the same process) rewrites the storage from the whole history, so rows that a killed
        run wrote after its last checkpoint are replaced by those of the resumed run: no step
        appears twice and the log always matches the history that produced the weights.
        """
        rows = history.rows
        last = int(rows[-1]["step"]) if rows else 0
        if self._last_step is None or last < self._last_step:
            self._rewrite(rows)
        else:
            new = [row for row in rows if int(row["step"]) > self._last_step]
            if new:
                self._append(new)
        self._last_step = last

    def _rewrite(self, rows: Sequence[Mapping[str, float]]) -> None:
        raise NotImplementedError

    def _append(self, rows: Sequence[Mapping[str, float]]) -> None:
        raise NotImplementedError


def _json_line(row: Mapping[str, float]) -> str:
    # NaN and inf are written as NaN / Infinity (Python's json reads them back): a diverged
    # row is kept as it was, not dropped.
    return json.dumps({k: (int(v) if k == "step" else float(v)) for k, v in row.items()}) + "\n"


class JSONLLogger(_HistorySink):
    """Write the trainer's history to ``path`` as JSON Lines, one row per line, as it trains.

    Use as a callback: ``fit(..., callbacks=[JSONLLogger(run / "log.jsonl", every=50)])``, then
    ``logger.sync(trainer.history)`` after fit for the rows since its last call. Each call
    appends the rows not written yet (opened, appended and closed every time, so another process
    can read the file while the run goes, see :func:`read_log`). The first call of a logger
    object rewrites the file, atomically, from the trainer's whole history: a resumed run
    continues the file with no duplicated steps, and a new run replaces an old file.
    JSON Lines rather than CSV because rows have different keys (evaluations, gradient norms).
    """

    def __init__(self, path: str | os.PathLike[str], every: int):
        super().__init__(every)
        self.path = Path(path)

    def _rewrite(self, rows: Sequence[Mapping[str, float]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w") as f:
                f.writelines(_json_line(row) for row in rows)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _append(self, rows: Sequence[Mapping[str, float]]) -> None:
        with self.path.open("a") as f:
            f.writelines(_json_line(row) for row in rows)

    def __repr__(self) -> str:
        return f"JSONLLogger({str(self.path)!r}, every={self.every})"


def read_log(path: str | os.PathLike[str]) -> History:
    """Read a :class:`JSONLLogger` file into a :class:`~course_lib.train.History`.

    Safe on the file of a run that is still writing (or was killed while writing): a last line
    without its newline is an unfinished write and is skipped. Raises FileNotFoundError if there
    is no file, ValueError naming the line if a complete line is not a JSON row with a step.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no log at {path}; pass the path given to JSONLLogger.")
    rows = []
    text = path.read_text()
    lines = text.split("\n")
    complete = lines[:-1]  # the part after the last newline is empty or an unfinished write
    for i, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {i} is not JSON ({exc.msg}): {line[:80]!r}") from exc
        if not isinstance(row, dict) or "step" not in row:
            raise ValueError(f"{path}, line {i} is not a history row with a 'step': {line[:80]!r}")
        rows.append(row)
    return train.History(rows)


class TensorBoardLogger(_HistorySink):
    """Write the trainer's history as TensorBoard scalars (and optional sample grids).

    Needs the ``tensorboard`` package (``pip install tensorboard``); without it the constructor
    raises ImportError saying so. Every numeric key of a row becomes a scalar tag at its step
    (e.g. ``d_loss``, ``grad_norm/G``; the slash groups tags in TensorBoard's UI). With ``z``,
    each call also adds the image grid of ``G(z)`` under ``samples``. Resume-safe: the writer is
    opened with ``purge_step`` at the first row it writes, so TensorBoard hides events a killed
    run wrote after that step (see :meth:`_HistorySink.sync`). Look at it with
    ``tensorboard --logdir <log_dir>``; call :meth:`close` at the end.
    """

    def __init__(self, log_dir: str | os.PathLike[str], every: int, z: Tensor | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package: pip install tensorboard "
                "(or use JSONLLogger, which needs nothing)."
            ) from exc
        super().__init__(every)
        self.log_dir = Path(log_dir)
        self.z = z
        self._writer_cls = SummaryWriter
        self._writer: Any = None

    def __call__(self, trainer: GANTrainer) -> None:
        self.sync(trainer.history)
        if self.z is not None and self._writer is not None:
            grid = viz.image_grid(trainer.generate(z=self.z))  # (H, W, 3) in [0, 1]
            self._writer.add_image("samples", grid, trainer.step, dataformats="HWC")
            self._writer.flush()

    def _scalars(self, rows: Sequence[Mapping[str, float]]) -> None:
        for row in rows:
            step = int(row["step"])
            for key, value in row.items():
                if key != "step":
                    self._writer.add_scalar(key, float(value), step)
        self._writer.flush()

    def _rewrite(self, rows: Sequence[Mapping[str, float]]) -> None:
        if self._writer is not None:
            self._writer.close()
        first = int(rows[0]["step"]) if rows else 1
        self._writer = self._writer_cls(log_dir=str(self.log_dir), purge_step=first)
        self._scalars(rows)

    def _append(self, rows: Sequence[Mapping[str, float]]) -> None:
        self._scalars(rows)

    def close(self) -> None:
        """Flush and close the event file (a later call opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._last_step = None


# ------------------------------------------------------------------------- what D says


@contextlib.contextmanager
def _untouched(*modules: nn.Module) -> Iterator[None]:
    """Run modules and restore their train/eval modes, buffers (BatchNorm running statistics)
    and the global RNG afterwards, so a measurement leaves no trace in the run."""
    modes = [{m: m.training for m in module.modules()} for module in modules]
    buffers = [{k: b.clone() for k, b in module.named_buffers()} for module in modules]
    devices = sorted(
        {b.device.index or 0 for module in modules for b in module.parameters() if b.is_cuda}
    )
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            yield
    finally:
        with torch.no_grad():
            for module, saved, mode in zip(modules, buffers, modes, strict=True):
                for k, b in module.named_buffers():
                    b.copy_(saved[k])
                for m, training in mode.items():
                    m.training = training


@dataclass
class DiscriminatorProbs:
    """Log D(x) and D(G(z)) as probabilities: mean sigmoid of D's logits on fixed batches.

    The history's ``d_real`` / ``d_fake`` are mean *logits* of the training batches, and
    sigmoid(mean logit) is not the mean probability. This callback computes
    ``D(x) = mean_i sigmoid(D(x_i))`` on the fixed real batch ``x_real`` and
    ``D(G(z)) = mean_i sigmoid(D(G(z_i)))`` on the fixed latent batch ``z``, both networks in
    train mode as in the training step (BatchNorm normalizes each batch with its own
    statistics; use batches of the training batch size), without gradients; BatchNorm running
    statistics, train/eval modes and the RNG are restored afterwards, so the run is unchanged.
    With a trainer ``augment``, D here sees the images without augmentation.
    Only meaningful for BCE-type losses (non-saturating, minimax, label smoothing, R1), whose D
    outputs the logit of a probability; a WGAN critic or a hinge D outputs scores.
    At D's optimum D*(x) = p_data / (p_data + p_g), so both approach 1/2 if G matches the data
    (Goodfellow et al. 2014, arXiv:1406.2661, Proposition 1); Goodfellow 2016 (NIPS tutorial,
    arXiv:1701.00160) discusses reading them.
    Logs ``{"D(x)": float, "D(G(z))": float}``.
    """

    x_real: Tensor
    z: Tensor
    every: int

    def __post_init__(self) -> None:
        _check_every(self.every)
        if self.x_real.dim() < 2 or self.z.dim() != 2:
            raise ValueError(
                f"x_real must be a batch (N, ...) and z a latent batch (M, latent_dim), got "
                f"shapes {tuple(self.x_real.shape)} and {tuple(self.z.shape)}."
            )

    def __call__(self, trainer: GANTrainer) -> dict[str, float]:
        G, D = trainer.G, trainer.D
        with _untouched(G, D):
            G.train()
            D.train()
            x_fake = G(self.z.to(trainer.device))
            p_real = torch.sigmoid(D(self.x_real.to(trainer.device)).float()).mean()
            p_fake = torch.sigmoid(D(x_fake).float()).mean()
            values = torch.stack([p_real, p_fake]).tolist()
        return {"D(x)": values[0], "D(G(z))": values[1]}


# ------------------------------------------------------------------------------ diversity


def mean_pairwise_distance(x: Tensor) -> float:
    """Mean Euclidean distance between all pairs of distinct rows of ``x``: a diversity score.

    d = 2 / (N (N - 1)) * sum_{i < j} ||x_i - x_j||_2, each x_i flattened (pixels or features),
    computed in float64. It is 0 when all samples are the same (total mode collapse) and drops
    when G's samples become more alike; the same score on real data gives its scale.
    Reference: an average pairwise distance between samples is the diversity score of
    BicycleGAN (Zhu et al. 2017, arXiv:1711.11586, Section 4.1, with LPIPS distances); AC-GAN
    (Odena et al. 2017, arXiv:1610.09585, Section 4.2) uses mean pairwise MS-SSIM to spot
    collapsed classes. Here the distance is Euclidean, on pixels or on classifier features.
    Shapes: x (N, ...) with N >= 2 -> float (mean over the N (N - 1) / 2 pairs).
    """
    if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[0] < 2:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor (N, ...) with N >= 2 samples, got {got}.")
    flat = x.detach().reshape(x.shape[0], -1).double()
    return float(torch.pdist(flat).mean())


@dataclass
class Diversity:
    """Log :func:`mean_pairwise_distance` of ``G(z)`` for a fixed ``z`` every ``every`` steps.

    ``extractor`` None measures in pixel space; a module (e.g.
    :func:`course_lib.metrics.load_digit_classifier`) or function measures in its features
    (:func:`course_lib.metrics.extract_features`), where "the same digit drawn slightly
    differently" is close and "another digit" is far. G runs in eval mode
    (:meth:`GANTrainer.generate`). Logs ``{name: float}``, default name ``"diversity"``, the key
    :func:`diagnose` watches for collapse.
    """

    z: Tensor
    every: int
    extractor: nn.Module | Callable[[Tensor], Tensor] | None = None
    name: str = "diversity"

    def __post_init__(self) -> None:
        _check_every(self.every)
        if self.z.dim() != 2 or self.z.shape[0] < 2:
            raise ValueError(f"z must be (N, latent_dim) with N >= 2, got {tuple(self.z.shape)}.")

    def __call__(self, trainer: GANTrainer) -> dict[str, float]:
        x_fake = trainer.generate(z=self.z)
        if self.extractor is not None:
            from course_lib import metrics

            x_fake = metrics.extract_features(x_fake, self.extractor)
        return {self.name: mean_pairwise_distance(x_fake)}


# ------------------------------------------------------------------------------ samples


@dataclass
class SampleSaver:
    """Save a PNG grid of ``G(z)`` for a fixed ``z`` to ``folder/samples_<step>.png``.

    The same z every time, so the files show the same "pens" learning to draw (pytorch/examples'
    DCGAN keeps a ``fixed_noise`` the same way); step numbers are zero-padded to 6 digits so the
    files sort in training order. Written with ``torchvision.utils.save_image`` after mapping
    [-1, 1] to [0, 1]; G runs in eval mode. Logs nothing; ``paths`` lists the files written.
    """

    z: Tensor
    folder: str | os.PathLike[str]
    every: int
    nrow: int = 8

    def __post_init__(self) -> None:
        _check_every(self.every)
        self.folder = Path(self.folder)
        self.paths: list[Path] = []

    def __call__(self, trainer: GANTrainer) -> None:
        from torchvision.utils import save_image

        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"samples_{trainer.step:06d}.png"
        images = viz.to_unit_range(trainer.generate(z=self.z).float().cpu())
        save_image(images, path, nrow=self.nrow, padding=2, pad_value=1.0)
        self.paths.append(path)


# ------------------------------------------------------------------------------ detector


@dataclass(frozen=True)
class Finding:
    """One problem :func:`diagnose` found: ``kind`` "divergence" or "collapse", the ``rule``
    that fired, the ``step`` where it was confirmed, the step ``since`` when its condition held
    without a break, and a one-line ``message`` with the evidence."""

    kind: str
    rule: str
    step: int
    since: int
    message: str

    def __str__(self) -> str:
        return f"step {self.step}: {self.kind} ({self.rule}) - {self.message}"


def _column(history: History | Mapping[str, Any], key: str) -> np.ndarray | None:
    try:
        return np.asarray(history[key], dtype=np.float64)  # type: ignore[index]
    except KeyError:
        return None


def _first_run(condition: np.ndarray, length: int) -> tuple[int, int] | None:
    """(start, end) indices of the first run of ``length`` consecutive True values, else None."""
    count = 0
    for i, c in enumerate(condition):
        count = count + 1 if c else 0
        if count >= length:
            return i - length + 1, i
    return None


def diagnose(
    history: History | Mapping[str, Any],
    *,
    patience: int = 3,
    d_loss_floor: float = 0.01,
    logit_gap: float = 10.0,
    explode_factor: float = 10.0,
    explode_floor: float = 10.0,
    diversity_key: str = "diversity",
    diversity_drop: float = 0.3,
    diversity_reference: float | None = None,
) -> list[Finding]:
    """Find divergence and mode collapse in a training history; one finding per rule, by step.

    ``history``: a :class:`~course_lib.train.History` (or a mapping of equal-length columns)
    with ``step``, ``d_loss``, ``g_loss``, ``d_real``, ``d_fake`` (mean D logits) and optionally
    ``diversity_key``; columns with NaN where a row lacks the key are fine. A condition must
    hold on ``patience`` consecutive rows that have the key (default 3) to count, so one noisy
    row never raises an alarm; the finding's ``step`` is where it was confirmed and ``since``
    where it began. The rules, from the sure to the rule of thumb:

    1. **non-finite** (divergence): a loss or a mean logit is NaN or inf, in a single row.
       A fact, not a heuristic (the trainer raises NonFiniteLossError right after that row).
    2. **discriminator wins** (divergence): ``d_loss < d_loss_floor`` (default 0.01) and the
       logit gap ``d_real - d_fake > logit_gap`` (default 10: sigmoid(5) = 0.993 against
       sigmoid(-5) = 0.007 at the two means) for ``patience`` rows. D separates real from fake
       almost perfectly, so G's gradient vanishes (minimax loss) or becomes noisy and
       unstable (non-saturating loss): Arjovsky & Bottou 2017, arXiv:1701.04862, Section 2
       (Theorems 2.4 and 2.6). Only for BCE-type losses (D's output is a logit). The
       thresholds are rules of thumb, set well past what healthy runs show: in the course's
       DCGAN runs on digits28 D wins for a few hundred steps at the start, with D loss down to
       ~0.04 and a gap up to ~9 (notebook 08).
    3. **exploding loss** (divergence): ``|g_loss|`` or ``|d_loss|`` above both
       ``explode_floor`` (default 10 nats) and ``explode_factor`` (default 10) times the median
       of its absolute value over the history up to that row, for ``patience`` rows. A rule of
       thumb for losses that grow without bound (too high a learning rate, exploding logits).
    4. **diversity drop** (collapse): ``history[diversity_key]`` (e.g. from :class:`Diversity`)
       below ``(1 - diversity_drop)`` times its reference for ``patience`` evaluations; the
       reference is ``diversity_reference`` (e.g. the same score on real data) or, if None,
       the best value so far. Default drop 0.3: a third of the diversity is gone. When G
       collapses its samples become near copies (Goodfellow 2016, arXiv:1701.00160, Section
       5.1.1; Salimans et al. 2016, arXiv:1606.03498, Section 3.2 (minibatch discrimination);
       Odena et al. 2017, arXiv:1610.09585, Section 4.2, who measure it with MS-SSIM).
       The 30 % is a rule of thumb: in the course's healthy DCGAN runs the feature diversity
       stays within ~10 % of its best once the digits have formed, while unstable runs that
       recover dip by more for a single evaluation, which ``patience`` tolerates.

    Losses alone do not reveal collapse: D and G can look balanced while G draws one digit.
    Brock et al. 2019 (BigGAN, arXiv:1809.11096, Section 4.1) also saw the top singular values
    of G's weights explode just before collapse, a signal one could add here.
    Returns a list of :class:`Finding` sorted by step (empty: nothing found).
    """
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be an int >= 1 (rows), got {patience!r}.")
    for name, value in (
        ("d_loss_floor", d_loss_floor),
        ("logit_gap", logit_gap),
        ("explode_factor", explode_factor),
        ("explode_floor", explode_floor),
    ):
        if not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value!r}.")
    if not 0 < diversity_drop < 1:
        raise ValueError(f"diversity_drop must be in (0, 1), got {diversity_drop!r}; try 0.3.")
    columns = {k: _column(history, k) for k in ("step", *train.LOSS_KEYS)}
    missing = [k for k, v in columns.items() if v is None]
    if missing:
        raise ValueError(
            f"history lacks {missing}; pass GANTrainer.history or a mapping with columns "
            f"step, {', '.join(train.LOSS_KEYS)}."
        )
    steps = columns["step"].astype(np.int64)  # type: ignore[union-attr]
    d_loss, g_loss = columns["d_loss"], columns["g_loss"]
    d_real, d_fake = columns["d_real"], columns["d_fake"]
    findings: list[Finding] = []

    def add(kind: str, rule: str, run: tuple[int, int] | None, rows: np.ndarray, msg: str) -> None:
        if run is not None:
            start, end = int(rows[run[0]]), int(rows[run[1]])
            findings.append(Finding(kind, rule, int(steps[end]), int(steps[start]), msg))

    # 1. non-finite: NaN in a column that this row logged is a divergence (a missing key is NaN
    # too, but every row has the loss keys).
    bad = ~np.isfinite(np.stack([d_loss, g_loss, d_real, d_fake]))  # type: ignore[list-item]
    every_row = np.arange(len(steps))
    if bad.any():
        i = int(np.argmax(bad.any(axis=0)))
        what = [k for k, b in zip(train.LOSS_KEYS, bad[:, i], strict=True) if b]
        add("divergence", "non-finite", (i, i), every_row, f"{', '.join(what)} not finite")
    finite = ~bad.any(axis=0)

    # 2. D wins: near-zero D loss and a large logit gap, sustained.
    gap = d_real - d_fake  # type: ignore[operator]
    wins = finite & (d_loss < d_loss_floor) & (gap > logit_gap)  # type: ignore[operator]
    run = _first_run(wins, patience)
    if run is not None:
        i = run[1]
        add(
            "divergence",
            "discriminator wins",
            run,
            every_row,
            f"d_loss {d_loss[i]:.3g} < {d_loss_floor:g} and logit gap {gap[i]:.3g} > "  # type: ignore[index]
            f"{logit_gap:g} for {patience} rows: D tells real from fake almost perfectly",
        )

    # 3. exploding loss, relative to the running median of the history so far.
    for key, values in (("g_loss", g_loss), ("d_loss", d_loss)):
        size = np.abs(values)  # type: ignore[arg-type]
        median = np.array(
            [
                np.nanmedian(np.where(finite[: i + 1], size[: i + 1], np.nan))
                if finite[: i + 1].any()
                else np.nan
                for i in range(len(size))
            ]
        )
        big = finite & (size > explode_floor) & (size > explode_factor * median)
        run = _first_run(big, patience)
        if run is not None:
            i = run[1]
            add(
                "divergence",
                "exploding loss",
                run,
                every_row,
                f"|{key}| = {size[i]:.3g} > {explode_factor:g} x its median {median[i]:.3g}",
            )
            break

    # 4. diversity drop, on the rows that logged it.
    div = _column(history, diversity_key)
    if div is not None:
        logged = np.flatnonzero(~np.isnan(div))
        values = div[logged]
        if diversity_reference is not None:
            ref = np.full(len(values), float(diversity_reference))
        else:
            ref = np.maximum.accumulate(values) if len(values) else values
        low = values < (1 - diversity_drop) * ref
        run = _first_run(low, patience)
        if run is not None:
            i = run[1]
            what = "the reference" if diversity_reference is not None else "its best"
            add(
                "collapse",
                "diversity drop",
                run,
                logged,
                f"{diversity_key} {values[i]:.3g} < {1 - diversity_drop:g} x {what} "
                f"{ref[i]:.3g} for {patience} evaluations: G's samples are becoming alike",
            )
    return sorted(findings, key=lambda f: f.step)


class Watchdog:
    """Run :func:`diagnose` on the trainer's history every ``every`` steps; report new findings.

    Prints each finding the first time it appears; with ``stop_on`` (kinds, e.g.
    ``("divergence",)``) it calls ``trainer.request_stop`` so that fit ends after the current
    step (with a checkpoint if fit has a checkpoint_path). It sees the history up to the
    previous row (see the module docstring), so it reacts one row after the evidence.
    ``kwargs`` go to :func:`diagnose`. ``findings`` holds everything found so far. Logs nothing.
    """

    def __init__(self, every: int, stop_on: Sequence[str] = (), **kwargs: Any):
        self.every = _check_every(every)
        unknown = [k for k in stop_on if k not in ("divergence", "collapse")]
        if isinstance(stop_on, str) or unknown:
            raise ValueError(
                f"stop_on must be a sequence of kinds 'divergence', 'collapse', got {stop_on!r}."
            )
        self.stop_on = tuple(stop_on)
        self.kwargs = kwargs
        diagnose(train.History([{"step": 0, **dict.fromkeys(train.LOSS_KEYS, 0.0)}]), **kwargs)
        self.findings: list[Finding] = []

    def __call__(self, trainer: GANTrainer) -> None:
        if not len(trainer.history):
            return
        seen = {(f.rule, f.step) for f in self.findings}
        for finding in diagnose(trainer.history, **self.kwargs):
            if (finding.rule, finding.step) in seen:
                continue
            self.findings.append(finding)
            print(f"watchdog: {finding}")
            if finding.kind in self.stop_on:
                trainer.request_stop(f"watchdog found {finding.kind} ({finding.rule})")


# ------------------------------------------------------------------------- early stopping


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
    """Evaluate a metric, keep the best generator, and stop the run when it stops improving.

    Wraps a :class:`course_lib.train.Evaluate` (same ``every``; pass the EarlyStopping to fit
    instead of the Evaluate): each call runs the evaluation, logs its values as usual, and
    applies :func:`should_stop` to all values of ``key`` in the history plus the new one, so the
    rule picks up where it was after a resume (the history is in the checkpoint). When the new
    value is the best, G's weights (and ``G_ema``'s, if the trainer keeps one) are copied to
    :attr:`best_state` and, with ``best_path``, written with
    :func:`course_lib.train.save_checkpoint` as ``{"step", "key", "value", "mode", "G",
    ["G_ema"]}``. When patience runs out it calls ``trainer.request_stop``. ``key`` defaults to
    the evaluation's only key.
    After fit: :attr:`best_step`, :attr:`best_value`, :meth:`restore_best` (load the best
    weights into a G). Reference: see :func:`should_stop`.
    """

    def __init__(
        self,
        evaluate: train.Evaluate,
        patience: int,
        min_delta: float = 0.0,
        mode: str = "min",
        key: str | None = None,
        best_path: str | os.PathLike[str] | None = None,
    ):
        if not isinstance(evaluate, train.Evaluate):
            raise ValueError(
                f"evaluate must be a train.Evaluate, got {type(evaluate).__name__}; wrap your "
                "function: EarlyStopping(train.Evaluate(fid_fn, every=100), patience=3)."
            )
        should_stop([], patience, min_delta, mode)  # validates the arguments
        self.evaluate = evaluate
        self.every = evaluate.every
        self.patience, self.min_delta, self.mode = patience, float(min_delta), mode
        self.key = key
        self.best_path = None if best_path is None else Path(best_path)
        self.best_step: int | None = None
        self.best_value: float | None = None
        self.best_state: dict[str, Tensor] | None = None

    def __call__(self, trainer: GANTrainer) -> dict[str, float]:
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
        if wait >= self.patience:
            trainer.request_stop(
                f"{key} has not improved for {wait} evaluations (best {scores[best_i]:.4g}"
                + (f" at step {self.best_step})" if self.best_step is not None else ")")
            )
        return out

    def _keep(self, trainer: GANTrainer, key: str, value: float) -> None:
        self.best_step, self.best_value = trainer.step, float(value)
        self.best_state = {k: v.detach().cpu().clone() for k, v in trainer.G.state_dict().items()}
        if self.best_path is not None:
            state: dict[str, Any] = {
                "step": trainer.step,
                "key": key,
                "value": float(value),
                "mode": self.mode,
                "G": self.best_state,
            }
            G_ema = getattr(trainer, "G_ema", None)
            if G_ema is not None:
                state["G_ema"] = G_ema.state_dict()
            train.save_checkpoint(state, self.best_path)

    def restore_best(self, G: nn.Module) -> nn.Module:
        """Load the best weights into ``G``: those kept in memory, else those in best_path."""
        state = self.best_state
        if state is None and self.best_path is not None and self.best_path.is_file():
            state = train.load_checkpoint(self.best_path)["G"]
        if state is None:
            raise ValueError("no best weights yet: run fit with this callback first.")
        G.load_state_dict(state)
        return G


__all__ = [
    "DiscriminatorProbs",
    "Diversity",
    "EarlyStopping",
    "Finding",
    "JSONLLogger",
    "SampleSaver",
    "TensorBoardLogger",
    "Watchdog",
    "diagnose",
    "mean_pairwise_distance",
    "read_log",
    "should_stop",
]
