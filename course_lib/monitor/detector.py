"""A rule-based detector of divergence and mode collapse: diagnose a history, or watch a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from course_lib._checks import check_every
from course_lib.gan.step import LOSS_KEYS
from course_lib.train import History

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

    ``history``: a :class:`~course_lib.History` (or a mapping of equal-length columns)
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
       unstable (non-saturating loss): Arjovsky & Bottou 2017, arXiv:1701.04862.
       Only for BCE-type losses (D's output is a logit). The thresholds are rules of thumb,
       set well past what healthy runs show: in the course's DCGAN runs on digits28 D wins
       for a few hundred steps at the start, with a D loss far below log 4 and a logit gap of
       several units, still clear of these thresholds (notebook 08 prints the values).
    3. **exploding loss** (divergence): ``|g_loss|`` or ``|d_loss|`` above both
       ``explode_floor`` (default 10 nats) and ``explode_factor`` (default 10) times the median
       of its absolute value over the history up to that row, for ``patience`` rows. A rule of
       thumb for losses that grow without bound (too high a learning rate, exploding logits).
    4. **diversity drop** (collapse): ``history[diversity_key]`` (e.g. from :class:`Diversity`)
       below ``(1 - diversity_drop)`` times its reference for ``patience`` evaluations; the
       reference is ``diversity_reference`` (e.g. the same score on real data) or, if None,
       the best value so far. Default drop 0.3: a third of the diversity is gone. When G
       collapses its samples become near copies (Goodfellow 2016, arXiv:1701.00160;
       Salimans et al. 2016, arXiv:1606.03498 (minibatch discrimination);
       Odena et al. 2017, arXiv:1610.09585, who measure it with MS-SSIM).
       The 30 % is a rule of thumb: in the course's healthy DCGAN runs the feature diversity
       stays within ~10 % of its best once the digits have formed, while unstable runs that
       recover dip by more for a single evaluation, which ``patience`` tolerates.

    Losses alone do not reveal collapse: D and G can look balanced while G draws one digit.
    Brock et al. 2019 (BigGAN, arXiv:1809.11096) also saw the top singular values
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
    columns = {k: _column(history, k) for k in ("step", *LOSS_KEYS)}
    missing = [k for k, v in columns.items() if v is None]
    if missing:
        raise ValueError(
            f"history lacks {missing}; pass GANTrainer.history or a mapping with columns "
            f"step, {', '.join(LOSS_KEYS)}."
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
        what = [k for k, b in zip(LOSS_KEYS, bad[:, i], strict=True) if b]
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
        self.every = check_every(every)
        unknown = [k for k in stop_on if k not in ("divergence", "collapse")]
        if isinstance(stop_on, str) or unknown:
            raise ValueError(
                f"stop_on must be a sequence of kinds 'divergence', 'collapse', got {stop_on!r}."
            )
        self.stop_on = tuple(stop_on)
        self.kwargs = kwargs
        diagnose(History([{"step": 0, **dict.fromkeys(LOSS_KEYS, 0.0)}]), **kwargs)
        self.findings: list[Finding] = []

    def __call__(self, trainer: Any) -> None:
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
