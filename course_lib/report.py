"""The course's measurement method: run a grid of settings x seeds, summarize, compare, print.

Every comparison in the course is **paired by seed**: seed ``s`` fixes the initial weights, the
data order and the noise of every setting, so a setting and its reference on the same seed start
identically and most run-to-run noise cancels in their difference.

One verdict rule for the whole course (:func:`paired_verdict`): a setting is *better* (or
*worse*) than its reference only when **every** seed's paired difference points the same way and
their mean moves by more than ``min_effect``. Under no effect at all, each difference is as
likely to be positive as negative, so all ``n`` agree by chance with probability
``2 * (1/2) ** n`` (a two-sided sign test at its most extreme outcome): 1/4 with 3 seeds, 1/8 with
4, 1/16 with 5 (:func:`false_positive_rate`). A table of ``k`` such comparisons expects about
``k`` times that many false verdicts, which is why its note says so.

- :func:`run_grid` runs ``run(setting, seed)`` for every pair under one progress bar;
- :func:`summary_table` turns its results into a :class:`Table` with mean ± std over seeds, the
  paired difference to a reference and the verdict;
- :class:`Stopwatch` times a block without the evaluation callbacks inside it.
"""

from __future__ import annotations

import functools
import html
import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from course_lib._checks import check_number

S = TypeVar("S", bound=Hashable)
R = TypeVar("R")


def mean_std(values: Iterable[float], fmt: str = ".2f") -> str:
    """``"mean ± std"`` over seeds (population std, 0 for one seed), formatted with ``fmt``.

    NaN marks a run that diverged: those are left out and counted, e.g. ``"3.1 ± 0.2 (1 of 3
    diverged)"``; ``"diverged"`` when every run did.
    """
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        raise ValueError("mean_std needs at least one value, got none.")
    finite = v[~np.isnan(v)]
    if finite.size == 0:
        return "diverged"
    text = f"{finite.mean():{fmt}} ± {finite.std():{fmt.lstrip('+')}}"  # a spread has no sign
    return (
        text if finite.size == v.size else f"{text} ({v.size - finite.size} of {v.size} diverged)"
    )


def false_positive_rate(n_seeds: int) -> float:
    """Probability that :func:`paired_verdict` calls a setting better or worse when it changes
    nothing: ``2 * (1/2) ** n_seeds`` (1 for a single seed, which the rule never judges)."""
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds must be an int >= 1, got {n_seeds!r}.")
    return 1.0 if n_seeds == 1 else 2.0 * 0.5**n_seeds


def paired_verdict(
    values: Sequence[float],
    reference: Sequence[float],
    *,
    lower_is_better: bool = True,
    min_effect: float = 0.0,
) -> str:
    """The course's verdict on ``values`` against ``reference``, the same seeds in the same order.

    ``"better (4 of 4 seeds)"`` or ``"worse (...)"`` when every paired difference points the same
    way and ``|mean difference| > min_effect`` (in the metric's units); ``"no clear difference
    (2 of 4 seeds better)"`` otherwise; ``"identical"`` when no seed moved; ``"diverged"`` when a
    run of ``values`` is NaN; ``"n/a (1 seed)"`` for a single seed.
    """
    v, ref = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    if v.ndim != 1 or v.shape != ref.shape or v.size == 0:
        raise ValueError(
            f"values and reference must be two equally long lists, one number per seed, got "
            f"shapes {v.shape} and {ref.shape}."
        )
    min_effect = check_number("min_effect", min_effect, 0.0)
    if np.isnan(v).any():
        return "diverged"
    if np.isnan(ref).any():
        return "n/a (reference diverged)"
    if v.size == 1:
        return "n/a (1 seed)"
    gain = (ref - v) if lower_is_better else (v - ref)  # > 0: this seed improved
    if not gain.any():
        return "identical"
    wins, n = int((gain > 0).sum()), v.size
    if abs(gain.mean()) > min_effect and (wins == n or (gain < 0).all()):
        return f"{'better' if wins == n else 'worse'} ({n} of {n} seeds)"
    return f"no clear difference ({wins} of {n} seeds better)"


def rule_note(n_seeds: int, comparisons: int = 1, min_effect: float = 0.0, unit: str = "") -> str:
    """One sentence that states the verdict rule and its false-positive rate for this table."""
    rate = false_positive_rate(n_seeds)
    effect = f" and the mean moves by more than {min_effect:g}{' ' + unit if unit else ''}"
    text = (
        f"verdict: better/worse only if all {n_seeds} paired differences agree"
        f"{effect if min_effect else ''}; with no real effect that happens with probability "
        f"{rate:.3g} per comparison"
    )
    if comparisons > 1:
        text += f", so about {comparisons * rate:.1f} of these {comparisons} verdicts can be chance"
    return text + "."


class Table:
    """A small results table: text in a terminal or a test, an HTML table in Jupyter.

    ``Table(["row", "FID"], title=...)``, then ``table.add("baseline", "950 ± 40")``; ``note``
    is printed under it (e.g. :func:`rule_note`).
    """

    def __init__(self, columns: Sequence[str], title: str = "", note: str = "") -> None:
        if not columns:
            raise ValueError("a Table needs at least one column name, e.g. Table(['row', 'FID']).")
        self.columns = [str(c) for c in columns]
        self.title, self.note = title, note
        self.rows: list[list[str]] = []

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(
                f"a row of this table has {len(self.columns)} cells ({', '.join(self.columns)}), "
                f"got {len(cells)}."
            )
        self.rows.append([str(c) for c in cells])

    def column(self, name: str) -> list[str]:
        """The cells of column ``name``, top to bottom."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; the columns are {self.columns}.")
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def __str__(self) -> str:
        widths = [
            max(len(r[i]) for r in [self.columns, *self.rows]) for i in range(len(self.columns))
        ]

        text_columns = {  # words are left-aligned; a column with any number, right-aligned
            i
            for i in range(len(self.columns))
            if not any(r[i][:1] in "0123456789+-−." for r in self.rows)
        }

        def line(cells: list[str]) -> str:
            aligned = [
                c.ljust(w) if i == 0 or i in text_columns else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(aligned).rstrip()

        lines = ([self.title] if self.title else []) + [line(self.columns)]
        lines += [line(r) for r in self.rows] + ([self.note] if self.note else [])
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in self.rows
        )
        caption = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        note = f"<p><small>{esc(self.note)}</small></p>" if self.note else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def run_grid(
    run: Callable[[S, int], R],
    settings: Iterable[S],
    seeds: Iterable[int],
    *,
    desc: str = "runs",
    progress: bool = True,
) -> dict[tuple[S, int], R]:
    """``{(setting, seed): run(setting, seed)}`` for every setting and seed, under one progress
    bar over the whole grid (each ``run`` should train with ``progress=False``)."""
    settings, seeds = list(settings), list(seeds)
    if not settings or not seeds:
        raise ValueError(f"run_grid needs settings and seeds, got {settings!r} and {seeds!r}.")
    if len(set(settings)) != len(settings) or len(set(seeds)) != len(seeds):
        raise ValueError("run_grid: each setting and each seed must appear once.")
    results: dict[tuple[S, int], R] = {}
    with tqdm(total=len(settings) * len(seeds), desc=desc, disable=not progress) as bar:
        for setting in settings:
            for seed in seeds:
                bar.set_postfix_str(f"{setting}, seed {seed}")
                results[setting, seed] = run(setting, seed)
                bar.update()
    return results


def per_seed(results: Mapping[tuple[Any, int], Any], setting: Any, key: str) -> np.ndarray:
    """The values of ``key`` for ``setting`` over its seeds, in the order they were run."""
    values = [r[key] for (s, _), r in results.items() if s == setting]
    if not values:
        raise KeyError(f"no results for setting {setting!r}.")
    return np.asarray(values, dtype=float)


def summary_table(
    results: Mapping[tuple[Any, int], Mapping[str, float]],
    columns: Mapping[str, str],
    *,
    reference: Any = None,
    compare_on: str | None = None,
    lower_is_better: bool = True,
    min_effect: float = 0.0,
    unit: str = "",
    title: str = "",
    names: Mapping[Any, str] | None = None,
) -> Table:
    """A :class:`Table` of :func:`run_grid` results: a row per setting, ``mean ± std`` over seeds
    for each ``columns`` key (its value is the number format, e.g. ``{"fid": ".0f"}``).

    With ``reference``, two more columns compare ``compare_on`` (default: the first column) with
    that setting on the same seeds: the paired difference and :func:`paired_verdict`; the note
    states the rule and how many of the verdicts chance alone would give.
    """
    settings = list(dict.fromkeys(s for s, _ in results))
    seeds = [seed for s, seed in results if s == settings[0]]
    if any([seed for s2, seed in results if s2 == s] != seeds for s in settings):
        raise ValueError("summary_table: every setting must have been run on the same seeds.")
    if reference is not None and reference not in settings:
        raise ValueError(f"reference {reference!r} is not one of the settings {settings}.")
    key = compare_on or next(iter(columns))
    fmt = columns.get(key, ".2f")
    header = ["setting", *columns]
    if reference is not None:
        header += [f"Δ {key} (paired)", "verdict"]
    note = (
        rule_note(len(seeds), len(settings) - 1, min_effect, unit) if reference is not None else ""
    )
    table = Table(header, title=title or f"mean ± std over {len(seeds)} seeds", note=note)
    for s in settings:
        cells = [(names or {}).get(s, str(s))]
        cells += [mean_std(per_seed(results, s, k), f) for k, f in columns.items()]
        if reference is not None:
            if s == reference:
                cells += ["", "(reference)"]
            else:
                v, ref = per_seed(results, s, key), per_seed(results, reference, key)
                cells += [
                    mean_std(v - ref, fmt),
                    paired_verdict(v, ref, lower_is_better=lower_is_better, min_effect=min_effect),
                ]
        table.add(*cells)
    return table


class Stopwatch:
    """Wall time of a ``with`` block minus the time spent in the functions it ``exclude``s.

    >>> watch = Stopwatch()
    >>> with watch:
    ...     history = trainer.fit(x, steps=500, callbacks=[Evaluate(watch.exclude(fid), every=50)])
    >>> watch.seconds  # training only, without the FID evaluations

    On CUDA it waits for the GPU at each boundary, so queued kernels count where they ran.
    """

    def __init__(self) -> None:
        self.seconds = math.nan
        self.excluded_seconds = 0.0
        self._start: float | None = None

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return time.perf_counter()

    def __enter__(self) -> Stopwatch:
        self.excluded_seconds = 0.0
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._start is not None
        self.seconds = self._now() - self._start - self.excluded_seconds
        self._start = None

    def exclude(self, fn: Callable[..., R]) -> Callable[..., R]:
        """``fn`` with its running time left out of this stopwatch (same name, same result)."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> R:
            start = self._now()
            try:
                return fn(*args, **kwargs)
            finally:
                self.excluded_seconds += self._now() - start

        return timed
