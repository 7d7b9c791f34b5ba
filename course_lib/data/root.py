"""Where the course keeps datasets and caches: ``$COURSE_DATA`` or ``~/.cache/course_lib``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "COURSE_DATA"
"""Environment variable naming the folder for datasets and caches (default ~/.cache/course_lib)."""


class DatasetUnavailableError(RuntimeError):
    """A dataset could not be downloaded or read; the message names the offline alternative."""


def data_root() -> Path:
    """The folder for datasets and caches: ``$COURSE_DATA`` or ``~/.cache/course_lib`` (created)."""
    root = Path(os.environ.get(DATA_ROOT_ENV) or "~/.cache/course_lib").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
