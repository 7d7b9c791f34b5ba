"""The course's search objectives: train a GAN on the ring with pruning and score its mode
coverage, and the command-line worker ``python -m course_lib.search``."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import torch
from optuna.trial import Trial

from course_lib import data, metrics, train
from course_lib._checks import check_int
from course_lib.gan import GANTrainer, models
from course_lib.search.hpo import (
    SAMPLERS,
    SearchSpace,
    count_finished,
    create_study,
    run_trials,
    suggest,
)

RING_SPACE: dict[str, tuple[Any, ...]] = {
    "lr_g": ("log", 1e-5, 1e-2),
    "lr_d": ("log", 1e-5, 1e-2),
    "beta1": ("float", 0.0, 0.9),
    "batch_size": ("choice", (64, 128, 256)),
}
"""The search space of :func:`ring_objective`: both learning rates, Adam's beta1, batch size."""

RING_STD = 0.1
"""Standard deviation of each mode of the ring that :func:`ring_objective` learns."""


# --------------------------------------------------------------------------- GAN objectives


def train_with_pruning(
    trial: Trial,
    trainer: GANTrainer,
    data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor],
    *,
    steps: int,
    batch_size: int,
    n_reports: int,
    score: Callable[[GANTrainer], float],
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
    check_int("steps", steps)
    check_int("n_reports", n_reports)
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
    Srivastava et al. 2017, arXiv:1705.07761). Real samples score about 0.97
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
    trainer = GANTrainer(
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


# ------------------------------------------- workers: another process, or the command line


def ring_search(
    name: str,
    storage_dir: str,
    *,
    n_trials: int,
    steps: int = 600,
    n_reports: int = 4,
    seed: int = 0,
    worker: int = 0,
    **study_options: Any,
) -> str:
    """Run one ring search until ``storage_dir/name.db`` holds ``n_trials`` finished trials.

    Opens the study with ``create_study(name, storage_dir, direction="maximize", seed=seed,
    worker=worker, **study_options)`` (sampler, grid, pruner, ...) and runs
    :func:`ring_objective` trials (``steps``, ``n_reports``, ``seed``) on one CPU thread; each
    trial records ``worker`` in ``trial.user_attrs["worker"]``. A plain module-level function, so
    that ``concurrent.futures.ProcessPoolExecutor`` can run several searches at once, one per
    core (notebook 09, section 3), and the command-line worker (:func:`main`) is this function
    with arguments; each search is seeded, so the result is the same in any process. Load the
    finished study with :func:`create_study` afterwards. Returns ``name``.
    """
    torch.set_num_threads(1)  # tiny MLPs: one thread each, so parallel searches do not compete
    study = create_study(
        name, storage_dir, direction="maximize", seed=seed, worker=worker, **study_options
    )

    def objective(trial: Trial) -> float:
        trial.set_user_attr("worker", worker)
        return ring_objective(trial, steps=steps, n_reports=n_reports, seed=seed)

    run_trials(study, objective, n_trials)
    return name


def main(argv: Sequence[str] | None = None) -> int:
    """Command line worker: run :func:`ring_objective` trials on a shared sqlite study.

    ``python -m course_lib.search --storage-dir DIR --study NAME --n-trials N --worker I`` joins
    (or creates) the study in ``DIR/NAME.db`` and runs trials until it has N finished ones;
    start it several times with different ``--worker`` numbers to search in parallel. Each
    trial records its worker in ``trial.user_attrs["worker"]``. Prints one summary line.
    """
    parser = argparse.ArgumentParser(prog="python -m course_lib.search", description=main.__doc__)
    parser.add_argument("--storage-dir", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--n-trials", type=int, required=True)
    parser.add_argument("--sampler", default="tpe", choices=SAMPLERS[1:])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--n-reports", type=int, default=4)
    args = parser.parse_args(argv)
    ring_search(
        args.study,
        args.storage_dir,
        n_trials=args.n_trials,
        steps=args.steps,
        n_reports=args.n_reports,
        seed=args.seed,
        worker=args.worker,
        sampler=args.sampler,
    )
    study = create_study(args.study, args.storage_dir, direction="maximize")
    total = count_finished(study)
    mine = sum(t.user_attrs.get("worker") == args.worker for t in study.get_trials(deepcopy=False))
    print(f"worker {args.worker}: ran {mine} trials; study {args.study!r} has {total} finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
