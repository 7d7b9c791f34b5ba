"""Hyperparameter search with Optuna: studies in a sqlite file, pruning, resuming, plots.

Files: :mod:`~course_lib.search.hpo` (spaces, samplers, pruners, studies),
:mod:`~course_lib.search.objectives` (the course's objectives and the worker CLI),
:mod:`~course_lib.search.summaries` (summaries, importances, plots).

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
et al. 2011, NeurIPS, "Algorithms for hyper-parameter optimization"). Pruners:
``"median"`` (Optuna's MedianPruner, the median stopping rule of Golovin et al. 2017, Google
Vizier, KDD), ``"halving"`` (asynchronous successive halving; Li et al. 2020,
arXiv:1810.05934) or ``"none"``. Reference for Optuna itself: Akiba et al. 2019,
arXiv:1907.10902.

Optuna's per-trial log lines are switched off by default (``quiet=True``). Nothing happens at
import time.
"""

from course_lib.search.hpo import (
    DIRECTIONS,
    FINISHED,
    PRUNERS,
    SAMPLERS,
    StudyStorageError,
    best_so_far,
    count_finished,
    create_study,
    grid_points,
    log_uniform,
    make_pruner,
    make_sampler,
    median_rule,
    run_trials,
    storage_url,
    suggest,
)
from course_lib.search.objectives import (
    RING_SPACE,
    RING_STD,
    coverage_score,
    ring_objective,
    ring_search,
    train_with_pruning,
)
from course_lib.search.summaries import (
    StudySummary,
    param_importances,
    plot_best_so_far,
    plot_importances,
    plot_intermediate,
    summarize,
    trial_values,
)

__all__ = [
    "StudyStorageError",
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
    "grid_points",
    "log_uniform",
    "make_pruner",
    "make_sampler",
    "median_rule",
    "param_importances",
    "plot_best_so_far",
    "plot_importances",
    "plot_intermediate",
    "ring_objective",
    "ring_search",
    "run_trials",
    "storage_url",
    "suggest",
    "summarize",
    "train_with_pruning",
    "trial_values",
]
