"""Optuna studies: search spaces, samplers, pruners, studies kept in a sqlite file, trials run
to a target count (so re-running resumes). See :mod:`course_lib.search` for the references."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import optuna
import sqlalchemy.exc
import torch
from optuna.trial import Trial, TrialState

from course_lib._checks import check_int
from course_lib._io import check_folder, derive_seed

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


# ------------------------------------------------------------------------------- small pieces


def log_uniform(u: float | torch.Tensor, low: float, high: float) -> float | torch.Tensor:
    """Map a uniform draw u in [0, 1] to a log-uniform value in [low, high].

    x = exp(log low + u (log high - log low)) = low * (high / low) ** u, so that every decade
    between low and high is drawn equally often: how random search samples learning rates.
    Reference: Bergstra & Bengio 2012, JMLR 13, "Random search for hyper-parameter
    optimization" (log-uniform draws for scale parameters such as learning rates).
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
    Reference: Golovin et al. 2017 (Google Vizier), KDD; Optuna's
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
        k = check_int(f"points[{name!r}]", counts.get(name))
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
    and proposes where their density ratio is best (Bergstra et al. 2011).
    """
    check_int("seed", seed, 0)
    if name == "grid":
        if grid is None:
            raise ValueError("sampler='grid' needs grid=..., e.g. grid=hpo.grid_points(space, 2).")
        return optuna.samplers.GridSampler({k: list(v) for k, v in grid.items()}, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        check_int("n_startup_trials", n_startup_trials, 0)
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
    check_int("n_startup_trials", n_startup_trials, 0)
    check_int("n_warmup_steps", n_warmup_steps, 0)
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
        )
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner={name!r} is not one of {PRUNERS}; pass one of these names.")


class StudyStorageError(ValueError):
    """The folder or the sqlite file that holds a study cannot be used.

    The message is one line: the path, what is wrong with it and what to do.
    """


SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every sqlite database file (https://www.sqlite.org/fileformat.html)."""


def _check_storage(folder: Path, db: Path) -> None:
    """Raise :class:`StudyStorageError` unless ``folder`` is (or can be made) a writable folder
    and ``db``, if it exists, is a writable sqlite file. Touches nothing but the folder."""
    # sqlite writes a journal next to the study file, so the folder itself must be writable.
    check_folder(folder, "storage_dir", StudyStorageError)
    if not db.exists():
        return
    if not db.is_file():
        raise StudyStorageError(
            f"study file {db} is not a file; move it away, or pass another study name."
        )
    if not os.access(db, os.R_OK | os.W_OK):
        raise StudyStorageError(
            f"study file {db} is not readable and writable; make it so (chmod u+rw), or copy "
            "it to a folder you can write to and pass that folder."
        )
    with db.open("rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:  # sqlite treats an empty file as an empty database
        raise _corrupt_study(db, "not a sqlite database")


def _corrupt_study(db: Path, reason: str) -> StudyStorageError:
    return StudyStorageError(
        f"study file {db} is corrupt ({reason}); delete it to start the study again, or "
        "restore a copy."
    )


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
    direction; :class:`StudyStorageError` (a ValueError) when ``storage_dir`` is a file,
    cannot be created or is not writable (checked before Optuna opens anything), and when
    ``<name>.db`` is not a readable sqlite study. Returns an ``optuna.Study`` backed by the
    sqlite file (storage: see :func:`storage_url`; a 60 s lock timeout lets workers wait for
    each other).
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.=-]+", name):
        raise ValueError(
            f"name must be a plain file name (letters, digits, _ . = -), got {name!r}."
        )
    _check_direction(direction)
    check_int("worker", worker, 0)
    if isinstance(sampler, str) and sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not one of {SAMPLERS}; pass one of these names.")
    pruner_obj = make_pruner(pruner) if isinstance(pruner, str) else pruner
    if quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = Path(storage_dir)
    db = folder / f"{name}.db"
    _check_storage(folder, db)
    try:
        # Optuna's "join or create" is not safe for workers that start together on a new file
        # (both create the tables: "table studies already exists"); one at a time it is.
        with filelock.FileLock(f"{db}.lock", timeout=120):
            storage = optuna.storages.RDBStorage(
                storage_url(db), engine_kwargs={"connect_args": {"timeout": 60}}
            )
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                direction=direction,
                pruner=pruner_obj,
                sampler=optuna.samplers.RandomSampler(),  # replaced below, once we know the trials
                load_if_exists=True,
            )
        stored = study.direction.name.lower()
    except filelock.Timeout:
        raise StudyStorageError(
            f"study file {db} stayed locked for 120 s by another worker ({db}.lock); wait for "
            "it, or delete the .lock file if no worker runs."
        ) from None
    except sqlalchemy.exc.DatabaseError as error:
        # sqlite3.DatabaseError proper ("file is not a database", "database disk image is
        # malformed") means a damaged file; its subclasses OperationalError ("database is
        # locked") and IntegrityError (a constraint) do not, and propagate unchanged.
        damaged = type(error.orig) is sqlite3.DatabaseError
        if not damaged:
            raise
        raise _corrupt_study(db, str(error.orig)) from error
    if stored != direction:
        raise ValueError(
            f"study {name!r} in {folder} was created to {stored}, not to {direction}; "
            "pass the same direction, or use another name (or delete the .db file)."
        )
    if isinstance(sampler, str):
        n_existing = len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(
            sampler, derive_seed(seed, worker, n_existing, bits=32), grid, n_startup_trials
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
    check_int("n_trials", n_trials)
    missing = n_trials - count_finished(study)
    if missing > 0:
        stop = optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)
        study.optimize(objective, n_trials=missing, catch=catch, callbacks=[stop])
    return count_finished(study)
