"""The training log: :class:`History`, a list of rows of floats keyed by step."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


class History:
    """The training log: a list of rows, each a dict with ``step`` and float values.

    Every row has ``step`` and the values the training step returns (means over the steps since
    the previous row, e.g. ``d_loss``); callbacks add their own keys to the rows they run at.
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
