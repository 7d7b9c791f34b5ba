"""Training logs on disk: JSONL and TensorBoard loggers that survive a resume, and read_log."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from course_lib import viz
from course_lib._checks import check_every
from course_lib._io import atomic_write, check_file_path
from course_lib.train import History

# ------------------------------------------------------------------------------------ logs


class _HistorySink:
    """Mirror a trainer's history rows to some storage; resume-safe (see :meth:`sync`)."""

    every: int

    def __init__(self, every: int):
        self.every = check_every(every)
        self._last_step: int | None = None  # None: nothing written by this object yet

    def __call__(self, trainer: Any) -> None:
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
        # checked now: the first write may come minutes into a run
        self.path = check_file_path(path, "path", "log.jsonl")

    def _rewrite(self, rows: Sequence[Mapping[str, float]]) -> None:
        text = "".join(_json_line(row) for row in rows).encode()
        atomic_write(self.path, lambda f: f.write(text), mode=0o644)

    def _append(self, rows: Sequence[Mapping[str, float]]) -> None:
        with self.path.open("a") as f:
            f.writelines(_json_line(row) for row in rows)

    def __repr__(self) -> str:
        return f"JSONLLogger({str(self.path)!r}, every={self.every})"


def read_log(path: str | os.PathLike[str]) -> History:
    """Read a :class:`JSONLLogger` file into a :class:`~course_lib.History`.

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
    return History(rows)


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

    def __call__(self, trainer: Any) -> None:
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
