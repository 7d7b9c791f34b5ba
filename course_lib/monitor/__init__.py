"""Watch a GAN run: logs on disk, D's probabilities, sample diversity, a detector, early stopping.

Everything here plugs into :meth:`course_lib.train.Trainer.fit` as a callback (an object with
an int ``every`` and ``__call__(trainer) -> dict | None``; the dict goes into the history row of
that step), or reads a :class:`~course_lib.train.History` afterwards:

- :class:`JSONLLogger` (and, if the ``tensorboard`` package is installed,
  :class:`TensorBoardLogger`): the history rows written to disk as training goes, resume-safe;
  :func:`read_log` reads a log back into a History, even while the run is still writing it.
- :class:`DiscriminatorProbs`: D(x) and D(G(z)) as probabilities on fixed batches.
- :class:`Diversity` and :func:`mean_pairwise_distance`: how different G's samples are.
- :class:`SampleSaver`: PNG sample grids from a fixed z, one file per call.
- :func:`diagnose` and :class:`Watchdog`: a rule-based detector of divergence and mode collapse.
- :func:`should_stop` and :class:`EarlyStopping` (from :mod:`course_lib.train.early_stopping`,
  shared with the VAE trainer): patience-based early stopping on a metric, keeping the best G.

Files: :mod:`~course_lib.monitor.logs`, :mod:`~course_lib.monitor.probes`,
:mod:`~course_lib.monitor.detector`.

Gradient norms come from :class:`course_lib.gan.tricks.GradNorms`. Nothing happens at import time.

**Callbacks see the history one row late.** ``fit`` appends the row of step s after all
callbacks of step s have run, so a callback at step s sees rows up to the previous one. The
loggers therefore write each row at their next call; call ``logger.sync(trainer.history)``
after ``fit`` for the last rows. :class:`EarlyStopping` wraps the evaluation it watches, so it
decides on the value of the current step.
"""

from course_lib.monitor.detector import Finding, Watchdog, diagnose
from course_lib.monitor.logs import JSONLLogger, TensorBoardLogger, read_log
from course_lib.monitor.probes import (
    DiscriminatorProbs,
    Diversity,
    SampleSaver,
    mean_pairwise_distance,
)
from course_lib.train.early_stopping import EarlyStopping, should_stop

__all__ = [
    "DiscriminatorProbs",
    "Diversity",
    "EarlyStopping",
    "Finding",
    "JSONLLogger",
    "SampleSaver",
    "TensorBoardLogger",
    "Watchdog",
    "diagnose",
    "mean_pairwise_distance",
    "read_log",
    "should_stop",
]
