"""course_lib: the shared library of the GAN and VAE course.

Modules (import the ones you need; nothing runs at import time):
``runtime`` (device, seeds, run profile), ``data`` (offline datasets, downloads with clear errors),
``models`` (MLP, DCGAN, VAE encoders/decoders), ``losses`` (GAN objectives and penalties),
``tricks`` (stabilization tricks), ``train`` (GAN trainer with checkpoint/resume), ``vae`` (ELBO,
IWAE, VAE trainer), ``metrics`` (FID, KID, IS, precision/recall, coverage), ``monitor`` (logs,
sample grids, collapse/divergence detector, early stopping), ``hpo`` (Optuna searches),
``viz`` (figures), ``check`` (exercise feedback).
"""

__version__ = "0.1.0"
