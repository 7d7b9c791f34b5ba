"""Plumbing shared by the package: atomic writes (and their leftovers), folder checks, seed
derivation, eval mode, float32 upcast."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import torch
from torch import Tensor, nn


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], mode: int | None = None
) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``.

    The file is flushed and fsync'ed before ``os.replace`` (atomic on POSIX and Windows), so a
    crash or a kill during the write leaves the old file or the new one, never a partial one.
    Creates missing parent folders; ``mode`` sets the file's permissions (the temporary file is
    private to the user, which suits checkpoints; a shared cache wants 0o644). Returns the path.
    A kill cannot run cleanup code, so temporary files of ``path`` left by dead processes are
    removed first (see :func:`remove_leftovers`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX only)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def _host_tag() -> str:
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def _temp_prefix(path: Path, pid: int | None = None) -> str:
    """``.<name>.<host>.<pid>.``: who writes a temporary file is in its name."""
    return f".{path.name}.{_host_tag()}.{os.getpid() if pid is None else pid}."


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there; assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, under another user
        return True
    return True


STALE_SECONDS = 24 * 3600
"""A temporary file untouched this long is left over, whoever wrote it (e.g. another host)."""


def remove_leftovers(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of earlier :func:`atomic_write` calls to ``path`` whose
    writer is gone: a process of this host that no longer runs, or any file untouched for
    :data:`STALE_SECONDS`. Files of writes still running are kept. Returns what was deleted."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        host, pid, *_ = tmp.name[len(path.name) + 2 :].split(".") + ["", ""]
        here = host == _host_tag() and pid.isdigit()
        if here and int(pid) == os.getpid():
            continue  # this process's own write, in progress
        try:
            if (here and not _alive(int(pid))) or time.time() - tmp.stat().st_mtime > STALE_SECONDS:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone already, or not ours to delete
            continue
    return removed


def check_folder(
    folder: str | os.PathLike[str],
    argument: str,
    error: type[Exception] = ValueError,
    instead: str = "pass a folder you can write to (e.g. under runs/)",
) -> Path:
    """Make sure ``folder`` is, or can be made, a folder this process can write to; create it.

    Raises ``error`` with one line naming ``argument``, the path, what is wrong and what to do:
    a file where the folder (or one above it) should be, a folder that cannot be created, or one
    that is not writable; ``instead`` says what else to do. Call it before work starts, so a bad
    path never costs a run.
    """
    folder = Path(folder)
    above = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if above is not None and not above.is_dir():
        raise error(
            f"{argument} {folder}: {above} is a file, not a folder; move that file away, or "
            f"{instead}."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(
            f"{argument} {folder} does not exist and cannot be created ({exc.strerror}); create "
            f"it yourself, or {instead}."
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error(
            f"{argument} {folder} is not writable; make it writable (chmod u+w), or {instead}."
        )
    return folder


def check_file_path(
    path: str | os.PathLike[str], argument: str, example: str = "checkpoint.pt"
) -> Path:
    """Make sure ``path`` can be written as a file: not a folder, in a folder that is (or can
    be made) writable (see :func:`check_folder`).

    ValueError with one line naming ``argument`` otherwise. For the paths a run writes later
    (checkpoints, the best weights, logs): call it before the first step.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{argument} {path} is a folder; pass a file path, e.g. {path / example}.")
    check_folder(path.parent, f"the folder of {argument}")
    return path


def derive_seed(*keys: object, bits: int = 63) -> int:
    """A seed of ``bits`` bits for one named random stream, e.g. ``derive_seed(seed, "epoch", 3)``.

    A hash (BLAKE2b) of the keys' repr: the same keys give the same seed in every process and on
    every platform, and streams with different names are independent for practical purposes.
    """
    size = (bits + 7) // 8  # BLAKE2b's output depends on its size: 8 bytes for 63 bits, 4 for 32
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=size).digest()
    return int.from_bytes(digest, "little") >> (8 * size - bits)


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode (BatchNorm uses running statistics, no dropout), without
    gradients; restore every submodule's previous mode afterwards, also after an error."""
    modes = {m: m.training for module in modules for m in module.modules()}  # submodules too
    for module in modules:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in modes.items():
            m.training = training


def as_float32(x: Tensor) -> Tensor:
    """Half-precision tensors (from autocast) upcast to float32; float32 and float64 stay."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
