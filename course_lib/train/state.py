"""What a checkpoint holds of a run besides the history: the algorithm's parts, its settings,
its random streams.

An algorithm is a dataclass (or any object) whose fields are its parts: the fields with a
``state_dict`` (models, optimizers, schedulers, EMA copies) are saved; the other fields are
settings, recorded so that a resumed run is refused other settings. Random streams are
``torch.Generator`` objects by name; a generator's state only fits a generator of the same device
type, so a stream saved on another device is re-seeded from (seed, name, step) instead.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from torch import nn

from course_lib._io import derive_seed
from course_lib.train.checkpoint import describe


def parts(algorithm: object) -> dict[str, Any]:
    """An algorithm's parts by name: a dataclass's fields, else its instance attributes."""
    if dataclasses.is_dataclass(algorithm):
        return {f.name: getattr(algorithm, f.name) for f in dataclasses.fields(algorithm)}
    return dict(vars(algorithm))


def has_state(obj: object) -> bool:
    return callable(getattr(obj, "state_dict", None)) and callable(
        getattr(obj, "load_state_dict", None)
    )


def settings(algorithm: object, seed: int) -> dict[str, Any]:
    """The settings a resumed run must share with the run that wrote the checkpoint.

    The seed, and each part of the algorithm: optimizers by class and hyperparameters (one key
    each, e.g. ``opt_d.lr``, so that a mismatch names the setting), schedulers by class, other
    fields through :func:`describe`; models are compared by their weights' names and shapes
    instead. An algorithm may define ``hparams()`` to add entries (e.g. the latent size).
    """
    found: dict[str, Any] = {"seed": seed}
    for name, obj in parts(algorithm).items():
        if isinstance(obj, nn.Module):
            continue
        if isinstance(obj, torch.optim.Optimizer):
            found[name] = type(obj).__name__
            found.update({f"{name}.{k}": describe(v) for k, v in obj.defaults.items()})
        elif has_state(obj):
            found[name] = type(obj).__name__
        else:
            found[name] = describe(obj)
    extra = getattr(algorithm, "hparams", None)
    return found | (extra() if callable(extra) else {})


def save_streams(streams: dict[str, torch.Generator]) -> dict[str, Any]:
    """Each stream's device type and state."""
    return {name: {"device": g.device.type, "state": g.get_state()} for name, g in streams.items()}


def restore_streams(
    streams: dict[str, torch.Generator],
    saved: dict[str, Any],
    *,
    seed: int,
    step: int,
    device: torch.device,
) -> list[str]:
    """Load ``saved`` into ``streams`` (creating missing ones); returns the re-seeded names.

    A stream saved on the CPU goes on exactly on any device; one saved on another device type
    than this run's is re-seeded from (seed, name, step): it goes on, but not bit for bit.
    """
    moved = []
    for name, entry in saved.items():
        on_cpu = entry["device"] == "cpu"
        gen = streams.get(name) or torch.Generator("cpu" if on_cpu else device)
        streams[name] = gen
        if entry["device"] == gen.device.type:
            gen.set_state(entry["state"].cpu())
        else:
            gen.manual_seed(derive_seed(seed, name, step))
            moved.append(name)
    return moved


def snapshot(stateful: dict[str, Any], streams: dict[str, torch.Generator]) -> dict[str, Any]:
    """Copies of every part's state, the streams and torch's RNG, for :func:`restore`."""
    return {
        "state": {name: copy.deepcopy(obj.state_dict()) for name, obj in stateful.items()},
        "streams": {name: gen.get_state() for name, gen in streams.items()},
        "torch": torch.get_rng_state(),
    }


def restore(
    stateful: dict[str, Any], streams: dict[str, torch.Generator], saved: dict[str, Any]
) -> None:
    """Put back what :func:`snapshot` copied; streams created since are dropped."""
    for name, obj in stateful.items():
        obj.load_state_dict(saved["state"][name])
    for name in list(streams):
        if name in saved["streams"]:
            streams[name].set_state(saved["streams"][name])
        else:
            del streams[name]
    torch.set_rng_state(saved["torch"])
