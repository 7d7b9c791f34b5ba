"""The training loop every model family shares, and what plugs into it.

- :mod:`~course_lib.train.loop`: :class:`Trainer` (fit, checkpoints, resume); an algorithm
  (e.g. :class:`course_lib.gan.GANStep`) brings the step.
- :mod:`~course_lib.train.batches`: seeded batches from tensors, TensorDatasets or samplers.
- :mod:`~course_lib.train.precision`: autocast, loss scaling and the optimizer step.
- :mod:`~course_lib.train.guard`: the divergence guard, :class:`NonFiniteLossError` and
  :class:`LossExplodedError`.
- :mod:`~course_lib.train.history`: :class:`History`, the log of a run.
- :mod:`~course_lib.train.checkpoint`: atomic ``save_checkpoint`` / safe ``load_checkpoint``.
- :mod:`~course_lib.train.callbacks`: :class:`Evaluate`, :class:`SampleGrid`.
- :mod:`~course_lib.train.early_stopping`: :func:`should_stop`, :class:`EarlyStopping`.
"""

from course_lib.train.batches import Batch, Sampler
from course_lib.train.callbacks import Callback, Evaluate, SampleGrid
from course_lib.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from course_lib.train.early_stopping import EarlyStopping, should_stop
from course_lib.train.guard import LossExplodedError, NonFiniteLossError
from course_lib.train.history import History
from course_lib.train.loop import Trainer
from course_lib.train.precision import MixedPrecision

__all__ = [
    "Batch",
    "Callback",
    "CheckpointError",
    "EarlyStopping",
    "Evaluate",
    "History",
    "LossExplodedError",
    "MixedPrecision",
    "NonFiniteLossError",
    "SampleGrid",
    "Sampler",
    "Trainer",
    "load_checkpoint",
    "save_checkpoint",
    "should_stop",
]
