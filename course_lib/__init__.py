"""course_lib: the shared library of the GAN and VAE course.

A map of the package (a folder per family, a short file per idea; import what you need, nothing
runs at import time):

- ``train/``: the one training loop, :class:`course_lib.train.Trainer` (``loop.py``), with its
  batches, mixed precision, history, checkpoints, callbacks and early stopping.
- ``gan/``: the GAN step, Goodfellow et al.'s Algorithm 1 (``step.py``), ``GANTrainer``
  (``trainer.py``), the objectives (``losses.py``), MLP and DCGAN models (``models.py``) and the
  stabilization tricks (``tricks.py``).
- ``vae/``: the ELBO (``elbo.py``), KL schedules, evaluation (IWAE, active units), models, the
  VAE step and ``VAETrainer``.
- ``metrics/``: FID and KID (``distances.py``), the shipped feature extractor (``features.py``),
  Inception Score, precision/recall, SSIM diversity (``quality.py``), coverage, Inception-v3.
- ``monitor/``: logs on disk, probes of D and of diversity, a collapse/divergence detector.
- ``search/``: hyperparameter search with Optuna.
- ``data/``: toy mixtures, the offline ``digits28`` set, loaders, augmentations.
- ``exercises/``: each notebook's exercise cases; ``check``: the exercise mechanism.
- ``report``: the measurement method (mean ± std over seeds, the one paired verdict rule and its
  false-positive rate, tables, a settings x seeds runner, a stopwatch).
- ``runtime`` (device, seeds, run profile), ``viz`` (figures); ``_checks`` and ``_io`` hold what
  the families share (argument checks, atomic writes, seeds, eval mode).
"""

__version__ = "0.6.0"
