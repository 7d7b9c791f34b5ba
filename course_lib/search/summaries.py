"""Reading a finished search: summaries, trial tables, fANOVA importances and three plots
(best score so far, intermediate values, importances)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import TrialState

if TYPE_CHECKING:
    from matplotlib.axes import Axes
from course_lib.search.hpo import FINISHED, best_so_far

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
