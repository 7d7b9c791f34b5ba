"""Tests of course_lib._io: leftovers of killed writes are removed, running writes are kept;
settings records hold no memory address."""

import dataclasses
import functools
import os
import subprocess
import sys
from pathlib import Path

from course_lib import _io
from course_lib.train.checkpoint import describe


def temp_of(path: Path, pid: int) -> Path:
    tmp = path.parent / f"{_io._temp_prefix(path, pid)}abc123.tmp"
    tmp.write_bytes(b"partial")
    return tmp


def test_leftovers_of_dead_writers_are_removed_and_running_writes_kept(tmp_path):
    path = tmp_path / "run.pt"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid no longer runs
    gone = temp_of(path, dead.pid)
    running = temp_of(path, os.getppid())  # a live process: its write may be in progress
    mine = temp_of(path, os.getpid())
    other_file = temp_of(tmp_path / "other.pt", dead.pid)
    old = tmp_path / ".run.pt.deadbeef.12.xyz.tmp"  # another host's, untouched for two days
    old.write_bytes(b"partial")
    os.utime(old, (0, os.path.getmtime(old) - 2 * _io.STALE_SECONDS))

    assert sorted(_io.remove_leftovers(path)) == sorted([gone, old])
    assert running.exists() and mine.exists() and other_file.exists()
    _io.atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and running.exists()


def shift(x, step):
    return x


@dataclasses.dataclass
class Pipeline:
    steps: list


class Plain:
    pass


def test_settings_records_hold_no_memory_address():
    for setting, text in [
        (shift, "<function shift>"),
        (Pipeline([shift, functools.partial(shift, step=1)]), "Pipeline(steps=[<function shift>, "),
        (Plain(), "<test_io.Plain object>"),
        (lambda x, step: x, "<function test_settings_records_hold_no_memory_address.<locals>"),
    ]:
        described = describe(setting)
        assert described.startswith(text) and "0x" not in described, described
    assert describe((1, 2.5, None, "a")) == [1, 2.5, None, "a"]
