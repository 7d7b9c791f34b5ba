"""Callbacks: small objects that :meth:`course_lib.train.Trainer.fit` calls every ``every`` steps.

A callback is any callable with an int attribute ``every``; ``cb(trainer)`` may return a dict
of floats, which goes into the history row of that step. Optional: ``at_end = True`` (also run at
the last step of a fit), and ``state_dict()`` / ``load_state_dict()`` (then its state is saved
in the trainer's checkpoints and restored on resume, e.g. :class:`EarlyStopping`'s best weights).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor

from course_lib._checks import check_every

if TYPE_CHECKING:
    from course_lib.train.loop import Trainer


class Callback(Protocol):
    """Runs every ``every`` steps during a trainer's ``fit``; returned values go into history."""

    every: int

    def __call__(self, trainer: Any) -> Mapping[str, float] | None: ...


def callback_keys(callbacks: Iterable[Callback]) -> dict[str, Callback]:
    """Stable names for a fit's callbacks in checkpoints: the class name, ``.1``, ``.2`` for
    repeats (so a resumed fit with the same callbacks gets each one's state back)."""
    named: dict[str, Callback] = {}
    for cb in callbacks:
        base = key = type(cb).__name__
        i = 0
        while key in named:
            i += 1
            key = f"{base}.{i}"
        named[key] = cb
    return named


def check_callbacks(callbacks: Iterable[Callback]) -> tuple[Callback, ...]:
    """The callbacks as a tuple; a ValueError names one that is not callable or lacks ``every``."""
    callbacks = tuple(callbacks)
    for cb in callbacks:
        every = getattr(cb, "every", None)
        if not callable(cb) or type(every) is not int or every < 1:
            raise ValueError(
                f"callback {cb!r} must be callable with an int attribute every >= 1, "
                "e.g. train.Evaluate(fn, every=100)."
            )
    return callbacks


@dataclass
class SampleGrid:
    """Generate images from a fixed batch ``z`` every ``every`` steps and keep them.

    ``images`` is a list of (step, CPU tensor (n, C, H, W)); a fixed z makes progress visible
    (pytorch/examples' DCGAN keeps a ``fixed_noise`` the same way). Logs nothing in the history.
    Needs a trainer with ``generate(z=...)``, e.g. :class:`course_lib.gan.GANTrainer`.
    """

    z: Tensor
    every: int
    images: list[tuple[int, Tensor]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        check_every(self.every)

    def __call__(self, trainer: Any) -> None:
        self.images.append((trainer.step, trainer.generate(z=self.z).cpu()))


@dataclass
class Evaluate:
    """Call ``fn(trainer)`` every ``every`` steps and log its result in the history.

    ``fn`` returns a float (logged under ``name``, default ``fn.__name__``) or a dict of floats
    (logged under its own keys), e.g. ``Evaluate(lambda t: {"coverage": ...}, every=500)``.
    With ``at_end=True`` it also runs at the last step of a fit.
    """

    fn: Callable[[Trainer], Mapping[str, float] | float]
    every: int
    name: str | None = None
    at_end: bool = False

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ValueError(
                f"fn must be a function fn(trainer) -> float or dict, got {self.fn!r}; e.g. "
                "Evaluate(lambda t: metrics.fid(real, t.generate(1000)), every=500, name='fid')."
            )
        check_every(self.every)

    def __call__(self, trainer: Trainer) -> dict[str, float]:
        out = self.fn(trainer)
        if isinstance(out, Mapping):
            return {str(k): float(v) for k, v in out.items()}
        return {self.name or getattr(self.fn, "__name__", "eval"): float(out)}
