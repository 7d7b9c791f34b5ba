"""Hyperparameter search with Optuna: studies in a sqlite file, pruning, resuming, plots.

A *study* is a search: a sampler proposes hyperparameters, the objective trains and returns a
score, a pruner stops runs whose intermediate scores are poor. :func:`create_study` keeps each
study in a sqlite file (``<storage_dir>/<name>.db``), so that

* re-running the same code resumes the study: :func:`run_trials` counts the trials already
  finished and runs only the missing ones;
* several worker processes can work on one study at the same time (sqlite locks the file);
  this suits a few processes on one machine. For many workers or several machines the usual
  choice is a database server such as PostgreSQL (``storage="postgresql://..."`` in Optuna).

Samplers by name: ``"grid"`` (every point of a grid, in a seeded random order), ``"random"``
(independent draws; Bergstra & Bengio 2012, JMLR 13, "Random search for hyper-parameter
optimization") and ``"tpe"`` (Tree-structured Parzen Estimator, a Bayesian optimizer; Bergstra
et al. 2011, NeurIPS, "Algorithms for hyper-parameter optimization", Section 4). Pruners:
``"median"`` (Optuna's MedianPruner, the median stopping rule of Golovin et al. 2017, Google
Vizier, KDD, Section 3.2.2), ``"halving"`` (asynchronous successive halving; Li et al. 2020,
arXiv:1810.05934) or ``"none"``. Reference for Optuna itself: Akiba et al. 2019,
arXiv:1907.10902.

Optuna's per-trial log lines are switched off by default (``quiet=True``). Nothing happens at
import time.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import torch
from optuna.trial import Trial, TrialState

from course_lib import data, metrics, models, train

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SAMPLERS = ("grid", "random", "tpe")
"""Sampler names accepted by :func:`make_sampler` and :func:`create_study`."""

PRUNERS = ("median", "halving", "none")
"""Pruner names accepted by :func:`make_pruner` and :func:`create_study`."""

DIRECTIONS = ("minimize", "maximize")

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
"""Trial states that count towards a study's budget in :func:`run_trials`."""

SearchSpace = Mapping[str, tuple[Any, ...]]
"""``{name: spec}``, spec one of ``("log", low, high)`` (float, log-uniform), ``("float", low,
high)`` (uniform), ``("int", low, high)`` (integers, both ends included) or ``("choice",
(v1, v2, ...))`` (categorical)."""

RING_SPACE: dict[str, tuple[Any, ...]] = {
    "lr_g": ("log", 1e-5, 1e-2),
    "lr_d": ("log", 1e-5, 1e-2),
    "beta1": ("float", 0.0, 0.9),
    "batch_size": ("choice", (64, 128, 256)),
}
"""The search space of :func:`ring_objective`: both learning rates, Adam's beta1, batch size."""

RING_STD = 0.1
"""Standard deviation of each mode of the ring that :func:`ring_objective` learns."""


# ------------------------------------------------------------------------------- small pieces


def log_uniform(u: float | torch.Tensor, low: float, high: float) -> float | torch.Tensor:
    """Map a uniform draw u in [0, 1] to a log-uniform value in [low, high].

    x = exp(log low + u (log high - log low)) = low * (high / low) ** u, so that every decade
    between low and high is drawn equally often: how random search samples learning rates.
    Reference: Bergstra & Bengio 2012, JMLR 13, "Random search for hyper-parameter
    optimization", Section 2 (log-uniform draws for scale parameters such as learning rates).
    Shapes: u a float or a tensor of any shape -> the same type and shape.
    """
    if not (isinstance(low, int | float) and isinstance(high, int | float) and 0 < low < high):
        raise ValueError(
            f"low and high must be numbers with 0 < low < high, got low={low!r}, high={high!r}; "
            "a log-uniform range needs a positive lower end, e.g. low=1e-5, high=1e-1."
        )
    values = u if isinstance(u, torch.Tensor) else torch.tensor(float(u))
    if not bool(((values >= 0) & (values <= 1)).all()):
        raise ValueError(f"u must lie in [0, 1] (a uniform draw), got {u!r}.")
    return low * (high / low) ** u


def median_rule(values: Sequence[float], others: Sequence[float], direction: str) -> bool:
    """Whether the median stopping rule prunes a trial at its latest step.

    Prune when the trial's best intermediate value so far is strictly worse than the median of
    the other (completed) trials' values at the same step: best = min(values) for "minimize"
    (max for "maximize"); prune if best > median(others) (best < median(others) when
    maximizing). NaNs are ignored; a trial with only NaN values is pruned; with no other
    trials to compare with, nothing is pruned. This is Optuna's MedianPruner without its
    warm-up settings (n_startup_trials, n_warmup_steps, interval_steps). Google Vizier's
    original rule compares with the median of the completed trials' *running averages* up to
    this step instead of their values at it.
    Reference: Golovin et al. 2017 (Google Vizier), KDD, Section 3.2.2; Optuna's
    ``PercentilePruner(50)`` (Akiba et al. 2019, arXiv:1907.10902).
    Shapes: values (this trial's values at its steps so far), others (the other trials'
    values at the current step) -> bool.
    """
    _check_direction(direction)
    own = np.asarray(values, dtype=float)
    if own.size == 0:
        raise ValueError("values is empty; report at least one intermediate value first.")
    rest = np.asarray(others, dtype=float)
    rest = rest[~np.isnan(rest)]
    if np.isnan(own).all():
        return True
    if rest.size == 0:
        return False
    median = float(np.median(rest))
    if direction == "minimize":
        return bool(np.nanmin(own) > median)
    return bool(np.nanmax(own) < median)


def best_so_far(values: Sequence[float], direction: str) -> np.ndarray:
    """The running best of a sequence: out[i] = min(values[:i+1]) ("minimize") or max.

    NaNs (failed or pruned trials) keep the previous best; positions before the first
    finite value are NaN. Shapes: (T,) -> (T,) float64.
    """
    _check_direction(direction)
    arr = np.asarray(values, dtype=float)
    filled = np.where(np.isnan(arr), np.inf if direction == "minimize" else -np.inf, arr)
    running = (np.minimum if direction == "minimize" else np.maximum).accumulate(filled)
    return np.where(np.isinf(running), np.nan, running)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} is not one of {DIRECTIONS}.")


def _check_count(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


def _derive_seed(*keys: object) -> int:
    """A 32-bit seed from any tuple of keys (numpy's RandomState, used by Optuna, takes < 2**32)."""
    return int.from_bytes(hashlib.blake2b(repr(keys).encode(), digest_size=4).digest(), "little")


# ------------------------------------------------------------------------------ search spaces


def _check_space(space: SearchSpace) -> None:
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"space must be a non-empty dict of name -> spec, got {space!r}.")
    for name, spec in space.items():
        kind = spec[0] if isinstance(spec, tuple) and spec else None
        ok = False
        if kind in ("log", "float", "int") and len(spec) == 3:
            low, high = spec[1], spec[2]
            ok = isinstance(low, int | float) and isinstance(high, int | float) and low < high
            ok = ok and (kind != "log" or low > 0)
            ok = ok and (kind != "int" or (isinstance(low, int) and isinstance(high, int)))
        elif kind == "choice" and len(spec) == 2:
            ok = isinstance(spec[1], Sequence) and len(spec[1]) > 0
        if not ok:
            raise ValueError(
                f"space[{name!r}] = {spec!r} is not a valid spec; use ('log', low, high) with "
                "0 < low < high, ('float', low, high), ('int', low, high) or ('choice', values)."
            )


def suggest(trial: Trial, space: SearchSpace) -> dict[str, Any]:
    """Ask ``trial`` for one value per entry of ``space`` (see :data:`SearchSpace`); a dict.

    ``("log", low, high)`` calls ``trial.suggest_float(name, low, high, log=True)``,
    ``("float", ...)`` ``suggest_float``, ``("int", ...)`` ``suggest_int`` and
    ``("choice", values)`` ``suggest_categorical``. The sampler decides the values.
    """
    _check_space(space)
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "log":
            params[name] = trial.suggest_float(name, spec[1], spec[2], log=True)
        elif kind == "float":
            params[name] = trial.suggest_float(name, spec[1], spec[2])
        elif kind == "int":
            params[name] = trial.suggest_int(name, spec[1], spec[2])
        else:
            params[name] = trial.suggest_categorical(name, list(spec[1]))
    return params


def grid_points(space: SearchSpace, points: int | Mapping[str, int]) -> dict[str, list[Any]]:
    """A grid over ``space`` for the grid sampler: ``points`` values per dimension.

    Each range is cut into k equal cells (equal in log scale for "log") and the grid takes the
    cell centres, low * (high / low) ** ((i + 0.5) / k), i = 0..k-1 for "log": a space-filling
    grid that never sits on the edges of the range. "int" rounds the centres (duplicates
    dropped); "choice" takes k of its values evenly spread (all of them if k >= their number).
    ``points`` is one k for every dimension or a dict {name: k}. The grid has prod(k) points.
    """
    _check_space(space)
    counts = {name: points for name in space} if isinstance(points, int) else dict(points)
    grid: dict[str, list[Any]] = {}
    for name, spec in space.items():
        k = _check_count(f"points[{name!r}]", counts.get(name))
        centres = (np.arange(k) + 0.5) / k
        kind = spec[0]
        if kind == "log":
            grid[name] = [float(spec[1] * (spec[2] / spec[1]) ** c) for c in centres]
        elif kind == "float":
            grid[name] = [float(spec[1] + c * (spec[2] - spec[1])) for c in centres]
        elif kind == "int":
            grid[name] = sorted({int(round(spec[1] + c * (spec[2] - spec[1]))) for c in centres})
        else:
            values = list(spec[1])
            idx = np.linspace(0, len(values) - 1, min(k, len(values))).round().astype(int)
            grid[name] = [values[i] for i in dict.fromkeys(idx.tolist())]
    return grid


# ------------------------------------------------------------------------------------ studies


def make_sampler(
    name: str,
    seed: int = 0,
    grid: Mapping[str, Sequence[Any]] | None = None,
    n_startup_trials: int = 10,
) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name (one of :data:`SAMPLERS`), seeded for reproducibility.

    ``"grid"`` needs ``grid`` (e.g. from :func:`grid_points`) and visits its points in an order
    shuffled with ``seed``; ``"random"`` draws each parameter independently; ``"tpe"`` draws
    ``n_startup_trials`` random trials, then models good and bad trials with Parzen estimators
    and proposes where their density ratio is best (Bergstra et al. 2011, Section 4).
    """
    _check_count("seed", seed, 0)
    if name == "grid":
        if grid is None:
            raise ValueError("sampler='grid' needs grid=..., e.g. grid=hpo.grid_points(space, 2).")
        return optuna.samplers.GridSampler({k: list(v) for k, v in grid.items()}, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        _check_count("n_startup_trials", n_startup_trials, 0)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
    raise ValueError(f"sampler={name!r} is not one of {SAMPLERS}; pass one of these names.")


def make_pruner(
    name: str = "median", n_startup_trials: int = 5, n_warmup_steps: int = 0
) -> optuna.pruners.BasePruner:
    """An Optuna pruner by name (one of :data:`PRUNERS`).

    ``"median"``: prune a trial whose best intermediate value is worse than the median of the
    completed trials at the same step (:func:`median_rule`), once ``n_startup_trials`` trials
    have completed and from step ``n_warmup_steps`` on. ``"halving"``: asynchronous successive
    halving (keeps the top 1/3 at each rung; Li et al. 2020, arXiv:1810.05934). ``"none"``:
    never prune.
    """
    _check_count("n_startup_trials", n_startup_trials, 0)
    _check_count("n_warmup_steps", n_warmup_steps, 0)
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
        )
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner={name!r} is not one of {PRUNERS}; pass one of these names.")


def storage_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a sqlite file: ``sqlite:///<absolute path>``."""
    return f"sqlite:///{Path(path).resolve()}"


def create_study(
    name: str,
    storage_dir: str | Path,
    *,
    direction: str = "minimize",
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    pruner: str | optuna.pruners.BasePruner = "median",
    seed: int = 0,
    grid: Mapping[str, Sequence[Any]] | None = None,
    n_startup_trials: int = 10,
    worker: int = 0,
    quiet: bool = True,
) -> optuna.Study:
    """Create the study ``name`` in ``<storage_dir>/<name>.db``, or load it if it exists.

    ``sampler`` and ``pruner`` are names (see :func:`make_sampler`, :func:`make_pruner`) or
    Optuna objects. A named sampler is seeded from (``seed``, ``worker``, number of trials
    already in the study): a fresh study repeats exactly with the same seed; a resumed one
    continues with new draws instead of repeating its first trials; two workers started on
    the same study need different ``worker`` numbers, or they propose the same points.
    ``quiet`` sets Optuna's logging to warnings only (no line per trial).
    Raises ValueError for an unknown name, or when the stored study was made for the other
    direction. Returns an ``optuna.Study`` backed by the sqlite file (storage: see
    :func:`storage_url`; a 60 s lock timeout lets workers wait for each other).
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.=-]+", name):
        raise ValueError(
            f"name must be a plain file name (letters, digits, _ . = -), got {name!r}."
        )
    _check_direction(direction)
    _check_count("worker", worker, 0)
    if isinstance(sampler, str) and sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not one of {SAMPLERS}; pass one of these names.")
    pruner_obj = make_pruner(pruner) if isinstance(pruner, str) else pruner
    if quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = Path(storage_dir)
    folder.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(
        storage_url(folder / f"{name}.db"), engine_kwargs={"connect_args": {"timeout": 60}}
    )
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction=direction,
        pruner=pruner_obj,
        sampler=optuna.samplers.RandomSampler(),  # replaced below, once we know the trial count
        load_if_exists=True,
    )
    stored = study.direction.name.lower()
    if stored != direction:
        raise ValueError(
            f"study {name!r} in {folder} was created to {stored}, not to {direction}; "
            "pass the same direction, or use another name (or delete the .db file)."
        )
    if isinstance(sampler, str):
        n_existing = len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(
            sampler, _derive_seed(seed, worker, n_existing), grid, n_startup_trials
        )
    else:
        study.sampler = sampler
    return study


def count_finished(study: optuna.Study) -> int:
    """The number of trials of ``study`` that count for its budget: completed plus pruned."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_trials(
    study: optuna.Study,
    objective: Callable[[Trial], float],
    n_trials: int,
    catch: tuple[type[Exception], ...] = (),
) -> int:
    """Run ``objective`` until ``study`` holds ``n_trials`` finished trials; return that count.

    Finished means completed or pruned (:data:`FINISHED`): a resumed study does not redo the
    trials it already has, and a study that is complete runs nothing. With several workers on
    one study, each stops once the shared count reaches ``n_trials`` (trials already running
    then still finish, so the total can exceed ``n_trials`` by up to one per other worker).
    A trial interrupted by a crash stays "RUNNING" in the file and does not count. Exceptions
    of the objective propagate, except those in ``catch``: such a trial is marked failed,
    does not count, and the call ends after at most ``n_trials`` attempts.
    """
    _check_count("n_trials", n_trials)
    missing = n_trials - count_finished(study)
    if missing > 0:
        stop = optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)
        study.optimize(objective, n_trials=missing, catch=catch, callbacks=[stop])
    return count_finished(study)


# --------------------------------------------------------------------------- GAN objectives


def train_with_pruning(
    trial: Trial,
    trainer: train.GANTrainer,
    data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor],
    *,
    steps: int,
    batch_size: int,
    n_reports: int,
    score: Callable[[train.GANTrainer], float],
) -> float:
    """Train ``trainer`` for ``steps`` steps, reporting ``score(trainer)`` ``n_reports`` times.

    The run is cut into ``n_reports`` equal pieces (``fit`` continues from the trainer's step
    each time); after piece k the score is reported with ``trial.report(value, step=k)``, so
    trials of different lengths (e.g. a fixed number of images at different batch sizes) are
    compared at the same fraction of their budget. If the pruner says so after report
    k < n_reports, raises ``optuna.TrialPruned``; after the last report the run is complete
    and is never pruned (stopping it would save nothing). A run that diverges
    (:class:`course_lib.train.NonFiniteLossError` or a non-finite score) reports NaN, which
    ranks it worst, and is pruned too; the reason is kept in ``trial.user_attrs["diverged"]``.
    Returns the last score.
    """
    _check_count("steps", steps)
    _check_count("n_reports", n_reports)
    if n_reports > steps:
        raise ValueError(f"n_reports={n_reports} must be <= steps={steps}.")
    value = math.nan
    for k in range(1, n_reports + 1):
        target = round(steps * k / n_reports)
        try:
            trainer.fit(data, steps=target, batch_size=batch_size, progress=False)
            value = float(score(trainer))
        except train.NonFiniteLossError as error:
            value, reason = math.nan, str(error).split(";")[0]
        else:
            reason = f"score {value} at step {trainer.step}"
        if not math.isfinite(value):
            trial.set_user_attr("diverged", reason)
            trial.report(math.nan, step=k)
            raise optuna.TrialPruned(f"diverged: {reason}")
        trial.report(value, step=k)
        if k < n_reports and trial.should_prune():  # after the last report there is nothing to save
            raise optuna.TrialPruned(f"pruned after report {k} of {n_reports}: {value:.4g}")
    return value


def coverage_score(samples: torch.Tensor, mixture: data.GaussianMixture2D) -> float:
    """One number for a 2-D mixture: the fraction of samples that are high quality, counting
    each mode only up to its fair share N / K.

    score = sum_k min(c_k, N / K) / N, where c_k is the number of samples within 3 std of
    centre k that have it as nearest centre (:func:`course_lib.metrics.mode_coverage`;
    Srivastava et al. 2017, arXiv:1705.07761, Section 5.1). Real samples score about 0.97
    (P(r <= 3 std) = 0.989, less the mode-count fluctuations), a generator collapsed onto one
    mode at most 1/K, one spread between the modes near 0. Unlike "modes covered" it has no
    threshold, so it also ranks mediocre runs, which a pruner needs. Higher is better.
    Shapes: samples (N, 2) -> float in [0, 1].
    """
    c = metrics.mode_coverage(samples, mixture)
    n = samples.shape[0]
    return float(sum(min(count, n / c.n_modes) for count in c.counts) / n)


def ring_objective(
    trial: Trial,
    *,
    steps: int = 600,
    n_reports: int = 4,
    seed: int = 0,
    space: SearchSpace = RING_SPACE,
    n_eval: int = 2500,
    device: str | torch.device = "cpu",
) -> float:
    """A cheap GAN objective: train MLP G and D on a ring of 8 Gaussians, return its score.

    Draws the parameters of ``space`` (default :data:`RING_SPACE`: lr_g, lr_d, beta1,
    batch_size; missing ones take the DCGAN values 2e-4, 0.5 and 128), builds
    ``MLPGenerator(latent_dim=2, hidden=64)`` and ``MLPDiscriminator(hidden=64)`` with weights
    from ``torch.manual_seed(seed)``, trains ``steps`` steps with the non-saturating loss on
    ``data.ring(std=RING_STD)`` and reports :func:`coverage_score` of ``n_eval`` samples
    ``n_reports`` times (:func:`train_with_pruning`). Every trial uses the same ``seed``, so
    trials differ only in their hyperparameters. ``device``: where to train (default the CPU,
    where such small MLPs run faster than on a GPU). Returns the final score (maximize it).
    """
    params = suggest(trial, space)
    ring = data.ring(std=RING_STD)
    torch.manual_seed(seed)
    G = models.MLPGenerator(latent_dim=2, hidden=64)
    D = models.MLPDiscriminator(in_dim=2, hidden=64)
    trainer = train.GANTrainer(
        G,
        D,
        lr_g=params.get("lr_g", 2e-4),
        lr_d=params.get("lr_d", 2e-4),
        betas=(params.get("beta1", 0.5), 0.999),
        device=device,
        seed=seed,
    )
    return train_with_pruning(
        trial,
        trainer,
        ring.sample,
        steps=steps,
        batch_size=params.get("batch_size", 128),
        n_reports=n_reports,
        score=lambda t: coverage_score(t.generate(n_eval).cpu(), ring),
    )


# ---------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class StudySummary:
    """What a study found: counts of finished trials, the best value and its parameters.

    ``seconds`` is the sum of the durations of the completed and pruned trials: the compute
    the search spent, whether it ran in one go, resumed, or in parallel workers.
    """

    name: str
    n_complete: int
    n_pruned: int
    n_failed: int
    best_value: float
    best_params: dict[str, Any]
    seconds: float


def summarize(study: optuna.Study) -> StudySummary:
    """A :class:`StudySummary` of ``study`` (best_value NaN and {} if no trial completed)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    best = None
    if complete:
        pick = min if study.direction.name == "MINIMIZE" else max
        best = pick(complete, key=lambda t: t.value)
    seconds = sum(t.duration.total_seconds() for t in trials if t.state in FINISHED and t.duration)
    return StudySummary(
        name=study.study_name,
        n_complete=count[TrialState.COMPLETE],
        n_pruned=count[TrialState.PRUNED],
        n_failed=count[TrialState.FAIL],
        best_value=math.nan if best is None else float(best.value),
        best_params={} if best is None else dict(best.params),
        seconds=seconds,
    )


def trial_values(study: optuna.Study) -> np.ndarray:
    """Each finished trial's value in trial order, NaN for pruned/failed: (n_trials,) float64."""
    return np.array(
        [
            t.value if t.state == TrialState.COMPLETE else math.nan
            for t in study.get_trials(deepcopy=False)
            if t.state.is_finished()
        ],
        dtype=np.float64,
    )


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned.

    Cells are shown with ``str``; format numbers before (e.g. ``f"{x:.3f}"``). Returns the
    table as one string (header, a rule of dashes, one line per row), ready to ``print``.
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if any(len(row) != len(header) for row in cells):
        raise ValueError(f"every row must have {len(header)} cells like the header.")
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def param_importances(
    studies: optuna.Study | Sequence[optuna.Study], seed: int = 0
) -> dict[str, float]:
    """fANOVA importances of the parameters (they sum to 1), most important first.

    The share of the variance of the objective, over the completed trials, that each
    parameter explains on its own, estimated with a random forest fitted to (params, value)
    (Hutter, Hoos & Leyton-Brown 2014, ICML, "An efficient approach for assessing
    hyperparameter importance"; Optuna's ``FanovaImportanceEvaluator``, seeded with ``seed``).
    A list of studies (e.g. repeats of one search) is pooled into one set of trials; they must
    share their direction and parameters. Pruned trials are left out (so a parameter whose bad
    values get pruned early looks less important than it is), and with a few dozen trials the
    numbers are noisy: compare repeats. Raises ValueError with fewer than 2 completed trials.
    """
    group = [studies] if isinstance(studies, optuna.Study) else list(studies)
    if not group:
        raise ValueError("studies is empty; pass a study or a list of studies.")
    directions = {s.direction for s in group}
    if len(directions) != 1:
        raise ValueError("the studies must all minimize or all maximize to be pooled.")
    complete = [t for s in group for t in s.get_trials(states=(TrialState.COMPLETE,))]
    if len(complete) < 2:
        raise ValueError(
            f"the studies have {len(complete)} completed trial(s); importances need >= 2."
        )
    pooled = optuna.create_study(direction=group[0].direction)  # in memory, nothing written
    pooled.add_trials(complete)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    importances = optuna.importance.get_param_importances(pooled, evaluator=evaluator)
    return {name: float(value) for name, value in importances.items()}


# ------------------------------------------------------------------------------------ plots


def plot_best_so_far(
    studies: Mapping[str, optuna.Study | Sequence[optuna.Study]],
    ax: Axes | None = None,
    title: str = "Best value found so far",
    ylabel: str = "best value so far",
) -> Axes:
    """Best value so far against trial number, one line per label (mean over its studies).

    ``studies`` maps a label (e.g. a sampler name) to a study or a list of repeats of it; the
    line is the mean of the repeats' best-so-far curves and the band their min..max. Pruned
    trials carry the previous best. Returns the axes.
    """
    import matplotlib.pyplot as plt  # here, not at the top: workers never plot
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    for label, group in studies.items():
        group = [group] if isinstance(group, optuna.Study) else list(group)
        direction = group[0].direction.name.lower()
        curves = [best_so_far(trial_values(s), direction) for s in group]
        length = min(len(c) for c in curves)
        if length == 0:
            continue
        stack = np.stack([c[:length] for c in curves])
        x = np.arange(1, length + 1)
        with warnings.catch_warnings():  # an all-NaN column (no trial completed yet) is fine
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(stack, axis=0)
            lo, hi = np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)
        (line,) = ax.plot(x, mean, marker="o", ms=3, label=f"{label} (n={len(group)})")
        if len(group) > 1:
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_intermediate(
    study: optuna.Study, ax: Axes | None = None, title: str | None = None, ylabel: str = "score"
) -> Axes:
    """Every trial's intermediate values against report step: completed in blue, pruned grey.

    A pruned trial's line ends with a cross where the pruner stopped it. Returns the axes.
    """
    import matplotlib.pyplot as plt  # here, not at the top: workers never plot
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    labelled: set[str] = set()
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        if not t.intermediate_values:
            continue
        steps, values = zip(*sorted(t.intermediate_values.items()), strict=True)
        pruned = t.state == TrialState.PRUNED
        label = "pruned" if pruned else "completed"
        ax.plot(
            steps,
            values,
            color="0.6" if pruned else "tab:blue",
            alpha=0.8,
            lw=1,
            marker="x" if pruned else "o",
            ms=3,
            label=None if label in labelled else label,
        )
        labelled.add(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("report number (reports are evenly spaced over each trial)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"Intermediate values of {study.study_name}")
    ax.grid(alpha=0.3)
    if labelled:
        ax.legend()
    return ax


def plot_importances(
    importances: Mapping[str, Mapping[str, float]],
    ax: Axes | None = None,
    title: str = "Hyperparameter importance (fANOVA)",
) -> Axes:
    """Grouped horizontal bars: ``importances`` maps a label (a study) to {param: importance}.

    Parameters are ordered by their mean importance over the labels. Returns the axes.
    """
    import matplotlib.pyplot as plt  # here, not at the top: workers never plot

    if not importances:
        raise ValueError("importances is empty; pass {label: hpo.param_importances(study)}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    names = sorted(
        {p for imp in importances.values() for p in imp},
        key=lambda p: -np.mean([imp.get(p, 0.0) for imp in importances.values()]),
    )
    y = np.arange(len(names))
    height = 0.8 / len(importances)
    for i, (label, imp) in enumerate(importances.items()):
        ax.barh(y + i * height, [imp.get(p, 0.0) for p in names], height=height, label=label)
    ax.set_yticks(y + 0.4 - height / 2, names)
    ax.invert_yaxis()
    ax.set_xlabel("importance (share of the objective's variance)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    ax.legend()
    return ax


__all__ = [
    "DIRECTIONS",
    "FINISHED",
    "PRUNERS",
    "RING_SPACE",
    "RING_STD",
    "SAMPLERS",
    "StudySummary",
    "best_so_far",
    "count_finished",
    "coverage_score",
    "create_study",
    "format_table",
    "grid_points",
    "log_uniform",
    "main",
    "make_pruner",
    "make_sampler",
    "median_rule",
    "param_importances",
    "plot_best_so_far",
    "plot_importances",
    "plot_intermediate",
    "ring_objective",
    "run_trials",
    "storage_url",
    "suggest",
    "summarize",
    "train_with_pruning",
    "trial_values",
]


# ---------------------------------------------------------------------------- worker CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Command line worker: run :func:`ring_objective` trials on a shared sqlite study.

    ``python -m course_lib.hpo --storage-dir DIR --study NAME --n-trials N --worker I`` joins
    (or creates) the study in ``DIR/NAME.db`` and runs trials until it has N finished ones;
    start it several times with different ``--worker`` numbers to search in parallel. Each
    trial records its worker in ``trial.user_attrs["worker"]``. Prints one summary line.
    """
    parser = argparse.ArgumentParser(prog="python -m course_lib.hpo", description=main.__doc__)
    parser.add_argument("--storage-dir", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--n-trials", type=int, required=True)
    parser.add_argument("--sampler", default="tpe", choices=SAMPLERS[1:])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--n-reports", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny MLPs: one thread each, so parallel workers do not compete
    study = create_study(
        args.study,
        args.storage_dir,
        direction="maximize",
        sampler=args.sampler,
        seed=args.seed,
        worker=args.worker,
    )

    def objective(trial: Trial) -> float:
        trial.set_user_attr("worker", args.worker)
        return ring_objective(trial, steps=args.steps, n_reports=args.n_reports, seed=args.seed)

    total = run_trials(study, objective, args.n_trials)
    mine = sum(t.user_attrs.get("worker") == args.worker for t in study.get_trials(deepcopy=False))
    print(f"worker {args.worker}: ran {mine} trials; study {args.study!r} has {total} finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
