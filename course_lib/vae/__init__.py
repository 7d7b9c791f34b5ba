"""Variational autoencoders: the ELBO and its estimators, KL schedules, evaluation, the step.

- :mod:`~course_lib.vae.elbo`: reparameterization, KL, decoder likelihoods, the ELBO, free bits,
  the loss. One reduction convention: per-example quantities are summed over pixels and latent
  dimensions, shape (N,); a loss is the batch mean of such values (nats per example).
- :mod:`~course_lib.vae.schedules`: linear, logistic and cyclical KL annealing.
- :mod:`~course_lib.vae.evaluate`: IWAE bounds, encoder means, active units, held-out metrics.
- :mod:`~course_lib.vae.models`: MLP and convolutional encoders and decoders, :class:`VAE`.
- :mod:`~course_lib.vae.step`: :class:`VAEStep`, one gradient step on the negative ELBO.
- :mod:`~course_lib.vae.trainer`: :class:`VAETrainer`, a Trainer of a VAEStep with validation.

Notebooks write ``from course_lib import vae`` (the functions below) and
``from course_lib.vae import models``.
"""

from course_lib.vae.elbo import (
    LOG_2PI,
    ELBOTerms,
    bernoulli_log_likelihood,
    elbo,
    free_bits_kl,
    gaussian_log_likelihood,
    kl_gaussians,
    kl_to_standard_normal,
    log_likelihood,
    reparameterize,
    vae_loss,
)
from course_lib.vae.evaluate import active_units, encoder_means, evaluate, iwae_bounds
from course_lib.vae.schedules import CyclicalAnnealing, LinearAnnealing, LogisticAnnealing
from course_lib.vae.step import VAEStep
from course_lib.vae.trainer import LOSS_KEYS, OPTIMIZERS, VAETrainer

__all__ = [
    "LOG_2PI",
    "LOSS_KEYS",
    "OPTIMIZERS",
    "CyclicalAnnealing",
    "ELBOTerms",
    "LinearAnnealing",
    "LogisticAnnealing",
    "VAEStep",
    "VAETrainer",
    "active_units",
    "bernoulli_log_likelihood",
    "elbo",
    "encoder_means",
    "evaluate",
    "free_bits_kl",
    "gaussian_log_likelihood",
    "iwae_bounds",
    "kl_gaussians",
    "kl_to_standard_normal",
    "log_likelihood",
    "reparameterize",
    "vae_loss",
]
