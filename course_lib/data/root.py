"""Where the course keeps datasets and caches: ``$COURSE_DATA`` or ``~/.cache/course_lib``."""

from __future__ import annotations

import os
from pathlib import Path

from course_lib._io import check_folder

DATA_ROOT_ENV = "COURSE_DATA"
"""Environment variable naming the folder for datasets and caches (default ~/.cache/course_lib)."""


class DatasetUnavailableError(RuntimeError):
    """A dataset could not be downloaded or read; the message names the offline alternative."""


def data_root() -> Path:
    """The folder for datasets and caches: ``$COURSE_DATA`` or ``~/.cache/course_lib`` (created).

    Raises :class:`DatasetUnavailableError` (one line: the path, what is wrong, what to do) when
    it is a file, cannot be created or is not writable, before any data is generated.
    """
    name = os.environ.get(DATA_ROOT_ENV)
    root = Path(name or "~/.cache/course_lib").expanduser()
    what = f"${DATA_ROOT_ENV}" if name else "the data folder"
    instead = f"set ${DATA_ROOT_ENV} to a folder you can write to"
    return check_folder(root, what, DatasetUnavailableError, instead)
