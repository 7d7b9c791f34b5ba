"""The ELBO of a VAE: reparameterization, KL terms, decoder likelihoods, free bits, the loss.

A VAE is a :class:`course_lib.vae.models.VAE`: an encoder giving the diagonal Gaussian
q(z|x) = N(mu, diag(exp(logvar))), a decoder giving p(x|z) (Bernoulli logits or Gaussian means)
and the prior p(z) = N(0, I). One reduction convention holds everywhere in this module: a
per-example quantity (log-likelihood, KL, ELBO, importance-weighted bound) is **summed over the
data dimensions (pixels) and the latent dimensions** and has shape (N,); a loss is the **batch
mean** of such per-example values. Reconstruction and KL are then both in nats per example, on
the same scale, and a KL weight ``beta`` means what it says. (Averaging the reconstruction over
the D pixels but summing the KL is the same as beta = D with the loss divided by D: the KL
dominates.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib._checks import check_int, check_number, shown
from course_lib._io import as_float32
from course_lib.vae.models import VAE

LOG_2PI = math.log(2 * math.pi)


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
"""Optimizers :class:`VAETrainer` knows by name; extra settings go in ``optimizer_kwargs``."""


def _check_pair(mu: Tensor, logvar: Tensor) -> None:
    if not isinstance(mu, Tensor) or not isinstance(logvar, Tensor) or mu.shape != logvar.shape:
        raise ValueError(
            "mu and logvar must be tensors of the same shape (N, latent_dim), got "
            f"{tuple(getattr(mu, 'shape', ()))} and {tuple(getattr(logvar, 'shape', ()))}; "
            "take both from the encoder: mu, logvar = model.encode(x)."
        )


# ------------------------------------------------------------------- sampling and divergences


def reparameterize(
    mu: Tensor,
    logvar: Tensor,
    eps: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A sample z ~ N(mu, diag(exp(logvar))) written as a differentiable function of (mu, logvar).

    z = mu + exp(logvar / 2) * eps with eps ~ N(0, I): the randomness sits in eps, so gradients
    flow to mu and logvar (the "reparameterization trick").
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Section 2.4 (and eq. 10's sampling step).
    Shapes: mu, logvar (N, d); eps (N, d) or None (then drawn from ``generator``) -> z (N, d).
    """
    _check_pair(mu, logvar)
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    elif not isinstance(eps, Tensor) or eps.shape != mu.shape:
        got = tuple(eps.shape) if isinstance(eps, Tensor) else shown(eps)
        raise ValueError(f"eps must be a tensor of the shape of mu {tuple(mu.shape)}, got {got}.")
    return mu + torch.exp(0.5 * logvar) * eps


def kl_gaussians(
    mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor | float = 0.0, logvar_p: Tensor | float = 0.0
) -> Tensor:
    """KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) of univariate Gaussians, elementwise.

    KL = (logvar_p - logvar_q) / 2 + (exp(logvar_q) + (mu_q - mu_p)^2) / (2 exp(logvar_p)) - 1/2.
    Summed over the dimensions it is the KL of diagonal Gaussians.
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Appendix B (the case p = N(0, I)).
    Shapes: broadcastable tensors -> their broadcast shape, not reduced.
    """
    _check_pair(mu_q, logvar_q)
    mu_p = torch.as_tensor(mu_p, dtype=mu_q.dtype, device=mu_q.device)
    logvar_p = torch.as_tensor(logvar_p, dtype=mu_q.dtype, device=mu_q.device)
    return 0.5 * (
        logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0
    )


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per example, summed over latent dimensions.

    KL = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j).
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Appendix B (the -KL term of eq. 10).
    Shapes: mu, logvar (N, d) -> (N,).
    """
    _check_pair(mu, logvar)
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


# ------------------------------------------------------------------------------- likelihoods


def check_unit_range(x: Tensor) -> None:
    """ValueError unless every value of ``x`` lies in [0, 1] (NaN does not: one device sync)."""
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        check_finite(x)
        raise ValueError(
            f"a Bernoulli likelihood needs x in [0, 1], got values in [{x.min().item():.3g}, "
            f"{x.max().item():.3g}]; the course's images are in [-1, 1]: use (x + 1) / 2, or "
            "binarize them with (x > 0).float()."
        )


def check_finite(x: Tensor) -> None:
    """ValueError unless every value of ``x`` is finite (one device sync)."""
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(
            "x contains NaN or inf; a likelihood of it would be NaN: check the data (or what "
            "produced it) before training."
        )


def bernoulli_log_likelihood(x: Tensor, logits: Tensor, validate: bool = True) -> Tensor:
    """log p(x|z) of independent Bernoulli pixels, from logits, summed over all pixels.

    log p = sum_i [x_i log sigmoid(l_i) + (1 - x_i) log(1 - sigmoid(l_i))] = -BCE-with-logits,
    computed stably. x must lie in [0, 1]: binary x gives a true log-probability (nats); grey
    values give the cross-entropy that most VAE code optimizes (not a normalized likelihood,
    see Loaiza-Ganem & Cunningham 2019, arXiv:1907.06845). ``validate=False`` skips the range
    check (one device sync), for callers that checked the data once.
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Appendix C.1.
    Shapes: x, logits (N, ...) -> (N,).
    """
    if x.shape != logits.shape:
        raise ValueError(
            f"x and logits must have the same shape, got {tuple(x.shape)} and "
            f"{tuple(logits.shape)}; pass the decoder's output for this batch."
        )
    if validate:
        check_unit_range(x)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return -bce.flatten(1).sum(dim=1)


def gaussian_log_likelihood(
    x: Tensor, mean: Tensor, log_sigma: Tensor | float, validate: bool = True
) -> Tensor:
    """log N(x; mean, sigma^2 I) summed over all data dimensions, constants included.

    log p = -sum_i [(x_i - mean_i)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2]. With sigma fixed
    this is -||x - mean||^2 / (2 sigma^2) plus a constant: MSE summed over pixels is this
    likelihood with sigma^2 = 1/2, and MSE *averaged* over D pixels is sigma^2 = D / 2.
    Densities of continuous x are not probabilities: these nats are comparable only with other
    Gaussian (continuous) models of the same data in the same range. ``validate=False`` skips
    the check that x is finite (one device sync).
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Appendix C.2.
    Shapes: x, mean (N, ...); log_sigma a scalar or broadcastable to x -> (N,).
    """
    if x.shape != mean.shape:
        raise ValueError(
            f"x and mean must have the same shape, got {tuple(x.shape)} and {tuple(mean.shape)}."
        )
    if validate:
        check_finite(x)
    log_sigma = torch.as_tensor(log_sigma, dtype=mean.dtype, device=mean.device)
    z2 = ((x - mean) * torch.exp(-log_sigma)) ** 2
    return -(0.5 * z2 + log_sigma + 0.5 * LOG_2PI).flatten(1).sum(dim=1)


def log_likelihood(model: VAE, x: Tensor, decoded: Tensor, validate: bool = True) -> Tensor:
    """log p(x|z) under ``model``'s likelihood, from the decoder's output; (N, ...) -> (N,)."""
    if model.likelihood == "bernoulli":
        return bernoulli_log_likelihood(x, decoded, validate=validate)
    return gaussian_log_likelihood(x, decoded, model.log_sigma, validate=validate)


# ----------------------------------------------------------------------------------- the ELBO


class ELBOTerms(NamedTuple):
    """The parts of a one-sample ELBO estimate, per example (nats)."""

    elbo: Tensor
    """(N,) log p(x|z) - KL(q(z|x) || p(z))."""
    log_px_z: Tensor
    """(N,) log p(x|z) at the sampled z, summed over data dimensions."""
    kl: Tensor
    """(N,) KL(q(z|x) || p(z)) in closed form, summed over latent dimensions."""
    kl_per_dim: Tensor
    """(N, d) the KL of each latent dimension."""
    mu: Tensor
    logvar: Tensor
    decoded: Tensor
    """The decoder's output at z (logits or means), shaped like x."""


def elbo(
    model: VAE, x: Tensor, generator: torch.Generator | None = None, validate: bool = True
) -> ELBOTerms:
    """One-sample estimate of the evidence lower bound, per example.

    ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x), with the expectation
    estimated by one reparameterized sample and the KL in closed form (the estimator B).
    Reference: Kingma & Welling 2014, arXiv:1312.6114, eq. 3 (bound) and eq. 7 (estimator B; eq. 10
    is its Gaussian form).
    Shapes: x (N, ...) -> ELBOTerms of (N,) tensors (and kl_per_dim (N, d)), in float32 under
    autocast too (float64 for a float64 model).
    """
    mu, logvar = (as_float32(t) for t in model.encode(x))
    z = reparameterize(mu, logvar, generator=generator)
    decoded = as_float32(model.decode(z))
    log_px_z = log_likelihood(model, x.to(decoded.dtype), decoded, validate=validate)
    kl_per_dim = kl_gaussians(mu, logvar)
    kl = kl_per_dim.sum(dim=1)
    return ELBOTerms(log_px_z - kl, log_px_z, kl, kl_per_dim, mu, logvar, decoded)


def free_bits_kl(kl_per_dim: Tensor, free_bits: float, groups: int | None = None) -> Tensor:
    """The KL term with "free bits": sum over groups j of max(lambda, E_batch[KL_j]).

    The latent dimensions are split into ``groups`` equal groups (default: one per dimension);
    each group's KL is averaged over the minibatch *first*, then clamped from below at
    lambda = ``free_bits`` nats, so a group whose average KL is under lambda gets no gradient
    pushing it further down. (Clamping each example's KL before averaging is a different,
    weaker objective.) Use in place of the batch mean of the KL; with free_bits = 0 it equals it.
    Reference: Kingma et al. 2016, arXiv:1606.04934, Appendix C.8 ("free bits", the objective
    L~_lambda with the max over each group's minibatch-averaged KL).
    Shapes: kl_per_dim (N, d) -> scalar.
    """
    if not isinstance(kl_per_dim, Tensor) or kl_per_dim.dim() != 2:
        got = tuple(kl_per_dim.shape) if isinstance(kl_per_dim, Tensor) else shown(kl_per_dim)
        raise ValueError(
            f"kl_per_dim must be a tensor (N, latent_dim), got {got}; pass ELBOTerms.kl_per_dim."
        )
    if kl_per_dim.dim() != 2:
        raise ValueError(
            f"kl_per_dim must have shape (N, latent_dim), got {tuple(kl_per_dim.shape)}; "
            "use kl_gaussians(mu, logvar) or elbo(...).kl_per_dim."
        )
    lam = check_number("free_bits", free_bits, 0.0)
    d = kl_per_dim.shape[1]
    groups = d if groups is None else check_int("groups", groups, 1)
    if d % groups:
        raise ValueError(f"groups={groups} must divide latent_dim={d}.")
    per_group = kl_per_dim.reshape(kl_per_dim.shape[0], groups, d // groups).sum(dim=2)
    return per_group.mean(dim=0).clamp(min=lam).sum()


def vae_loss(terms: ELBOTerms, beta: float = 1.0, free_bits: float | None = None) -> Tensor:
    """The training objective: batch mean of -log p(x|z) plus beta times the (free-bits) KL.

    loss = mean_n(-log p(x_n|z_n)) + beta * mean_n(KL_n); with ``free_bits`` the KL term is
    :func:`free_bits_kl`. beta = 1 and no free bits: the negative ELBO (Kingma & Welling 2014,
    eq. 10); beta != 1: the beta-VAE (Higgins et al. 2017, ICLR; beta > 1 favours a
    simpler posterior, beta < 1 reconstructions). Returns a scalar (nats per example).
    """
    check_number("beta", beta, 0.0)
    if free_bits is None:
        kl_term = terms.kl.mean()
    else:
        kl_term = free_bits_kl(terms.kl_per_dim, free_bits)
    return -terms.log_px_z.mean() + beta * kl_term
