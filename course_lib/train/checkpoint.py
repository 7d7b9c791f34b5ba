"""Checkpoint files: atomic ``torch.save``, safe ``torch.load``, and the checks run before loading.

A checkpoint is a plain dict of tensors, numbers, strings and lists, read back with
``weights_only=True`` (no pickled code runs), with a checksum of everything in it, so a bit
flipped on disk or in a copy is reported instead of loaded. :class:`course_lib.train.Trainer`
writes one with every piece of state of a run; everything in it is checked against the trainer
before anything is loaded, so a checkpoint loads all or nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from course_lib._io import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not match the trainer; the message says why."""


CHECKSUM_KEY = "checksum"
"""The entry of a checkpoint that holds :func:`checksum` of the rest."""


def checksum(state: Any) -> str:
    """A BLAKE2b digest of every tensor's bytes, dtype and shape and every other value in
    ``state`` (dicts in their order, lists, numbers, strings), e.g. ``"blake2b:3f0a..."``.

    ``torch.load`` does not verify what it reads: a bit flipped inside a weight tensor loads as
    a slightly different weight. The digest is computed when a checkpoint is written and again
    when it is read.
    """
    digest = hashlib.blake2b(digest_size=16)

    def walk(obj: Any) -> None:
        if isinstance(obj, Tensor):
            flat = obj.detach().cpu().contiguous().reshape(-1)
            digest.update(f"T{obj.dtype}{tuple(obj.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")
        elif isinstance(obj, Mapping):
            digest.update(f"D{len(obj)}".encode())
            for key, value in obj.items():
                digest.update(repr(key).encode())
                walk(value)
        elif isinstance(obj, list | tuple):
            digest.update(f"L{len(obj)}".encode())
            for value in obj:
                walk(value)
        else:
            digest.update(repr(obj).encode())

    walk(state)
    return "blake2b:" + digest.hexdigest()


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` with ``torch.save`` atomically: ``path`` holds the old file or the new one.

    The state goes to a temporary file in the same directory, is flushed and fsync'ed, then
    renamed over ``path`` with ``os.replace`` (atomic on POSIX and Windows), so a crash or a
    kill during the write never leaves a partial checkpoint. Creates missing parent folders.
    Adds the entry ``"checksum"`` (:func:`checksum` of the state). Returns the path.
    """
    body = {k: v for k, v in state.items() if k != CHECKSUM_KEY}
    return atomic_write(path, lambda f: torch.save(body | {CHECKSUM_KEY: checksum(body)}, f))


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device | None = None
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``torch.load(weights_only=True)``.

    ``weights_only=True`` refuses arbitrary pickled objects, so loading a file from elsewhere
    cannot run code. Raises :class:`CheckpointError` (one line: the path and what to do) when
    the file is missing, truncated, corrupt, does not hold a dict, or its content does not match
    its checksum. A file without a checksum (course_lib 0.2.0, or written by hand) loads with a
    warning that it could not be verified. The checksum entry is removed from the result.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; check the path, or train from scratch.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files; all mean the same here
        # torch's own text (chained below) is long and about pickling; the type is enough here
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}); "
            "delete it and train again, or restore an intact copy."
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} holds a {type(state).__name__}, not a checkpoint dict; "
            "pass a file written by save_checkpoint or a trainer."
        )
    expected = state.pop(CHECKSUM_KEY, None)
    if expected is None:
        warnings.warn(
            f"checkpoint {path} has no checksum (written by course_lib 0.2.0 or by hand), so "
            "its tensors cannot be verified; save it again to add one.",
            stacklevel=2,
        )
    elif checksum(state) != expected:
        raise CheckpointError(
            f"checkpoint {path} is damaged: its content does not match the checksum written "
            "with it (a flipped bit on disk or in a copy); restore an intact copy, or train again."
        )
    return state


def check_module_state(name: str, module: nn.Module, saved: Any, source: str) -> None:
    """Raise :class:`CheckpointError` unless ``saved`` holds weights of ``module``'s names and
    shapes (checked before anything loads: a mismatch names the first differing tensor)."""
    own = module.state_dict()
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"{source} has no weights for {name}; train a new run.")
    problems = [f"{k} missing" for k in own if k not in saved]
    problems += [f"unexpected {k}" for k in saved if k not in own]
    problems += [
        f"{k} has shape {tuple(saved[k].shape)} there but {tuple(v.shape)} here"
        for k, v in own.items()
        if k in saved and isinstance(saved[k], Tensor) and saved[k].shape != v.shape
    ]
    if problems:
        raise CheckpointError(
            f"{source} holds a different {name} ({problems[0]}); build the same {name} "
            "(class, sizes, width) as the run that wrote it."
        )


PARAMETER_SHAPED = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg")
"""Optimizer states with the shape of their parameter (Adam/AdamW, SGD, RMSprop); others, such
as Adafactor's factored moments, have shapes of their own and are not compared."""


def check_optimizer_state(
    name: str, optimizer: torch.optim.Optimizer, saved: Any, source: str
) -> None:
    """Raise :class:`CheckpointError` unless ``saved`` is the state of an optimizer over
    parameters of the same number and shapes as ``optimizer``'s (``load_state_dict`` itself
    compares only group sizes: moments of other shapes load, and the next step fails)."""
    groups = saved.get("param_groups") if isinstance(saved, Mapping) else None
    if not isinstance(groups, list) or not isinstance(saved.get("state"), Mapping):
        raise CheckpointError(f"{source} has no optimizer state for {name}; train a new run.")
    sizes = [len(g.get("params", ())) for g in groups]
    own_sizes = [len(g["params"]) for g in optimizer.param_groups]
    problem = None
    if sizes != own_sizes:
        problem = f"parameter groups of sizes {sizes}, here {own_sizes}"
    else:
        params = {
            i: p
            for group, own in zip(groups, optimizer.param_groups, strict=True)
            for i, p in zip(group["params"], own["params"], strict=True)
        }
        problem = next(
            (
                f"its {key} of parameter {i} has shape {tuple(v.shape)}, the parameter here "
                f"{tuple(params[i].shape)}"
                for i, entry in saved["state"].items()
                if i in params and isinstance(entry, Mapping)
                for key, v in entry.items()
                if key in PARAMETER_SHAPED and isinstance(v, Tensor) and v.shape != params[i].shape
            ),
            None,
        )
    if problem:
        raise CheckpointError(
            f"{source} holds an optimizer {name} over other parameters ({problem}); build "
            f"{name} over the same model's parameters, in the same order, as the run that wrote it."
        )


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def describe(obj: object) -> Any:
    """A stable, comparable text for a setting in a checkpoint's ``hparams``.

    Numbers, strings, bools and None stay; tuples become lists; other objects give their repr
    with every memory address taken out (``<function shift at 0x7f..>`` -> ``<function shift>``,
    also inside the repr of a dataclass or a ``functools.partial`` that holds a function), so
    the same setting is described the same way in every process and a killed run can resume.
    """
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, tuple | list):
        return [describe(v) for v in obj]
    return _ADDRESS.sub("", repr(obj))


def check_run_state(
    state: Any,
    *,
    source: str,
    trainer: str,
    fmt: str,
    version: int,
    stateful: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> None:
    """Raise :class:`CheckpointError` unless ``state`` is a complete checkpoint of this run: the
    same format (algorithm) and version, every part with state, the same settings, and models of
    the same architecture. Runs before anything loads, so a refused checkpoint changes nothing.
    """
    if not isinstance(state, Mapping) or state.get("format") != fmt:
        found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
        raise CheckpointError(
            f"{source} was not written by {trainer} (it holds {found!r}, expected {fmt!r}); "
            f"pass a file from {trainer}.save or fit."
        )
    if state.get("version") != version:
        raise CheckpointError(
            f"{source} is a version {state.get('version')} checkpoint, this course_lib "
            f"reads version {version}; train a new run (or use the course_lib "
            "release that wrote it)."
        )
    keys = ("step", "batches_drawn", "hparams", "state", "streams", "rng", "history")
    missing = [k for k in keys if k not in state]
    # a GradScaler's state is optional: a bf16 or CPU run has none to give to an fp16 run
    held = state.get("state") if isinstance(state.get("state"), Mapping) else {}
    missing += [f"state.{k}" for k in stateful if k != "scaler" and k not in held]
    if missing:
        raise CheckpointError(f"{source} is incomplete (missing {missing}); train a new run.")
    saved, own = state["hparams"], settings
    diffs = [f"{k}={saved.get(k)!r} (here {v!r})" for k, v in own.items() if saved.get(k) != v]
    if diffs:
        raise CheckpointError(
            f"{source} was written with other settings: {', '.join(diffs)}; create the trainer "
            "with the checkpoint's settings, or use a new checkpoint_path."
        )
    for name, obj in stateful.items():
        if isinstance(obj, nn.Module):
            check_module_state(name, obj, state["state"].get(name), source)
        elif isinstance(obj, torch.optim.Optimizer):
            check_optimizer_state(name, obj, state["state"].get(name), source)
