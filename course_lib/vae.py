"""Variational autoencoders: the ELBO, its estimators, the training tips, and :class:`VAETrainer`.

A VAE is a :class:`course_lib.models.VAE`: an encoder giving the diagonal Gaussian
q(z|x) = N(mu, diag(exp(logvar))), a decoder giving p(x|z) (Bernoulli logits or Gaussian means)
and the prior p(z) = N(0, I). One reduction convention holds everywhere in this module: a
per-example quantity (log-likelihood, KL, ELBO, importance-weighted bound) is **summed over the
data dimensions (pixels) and the latent dimensions** and has shape (N,); a loss is the **batch
mean** of such per-example values. Reconstruction and KL are then both in nats per example, on
the same scale, and a KL weight ``beta`` means what it says. (Averaging the reconstruction over
the D pixels but summing the KL is the same as beta = D with the loss divided by D: the KL
dominates. Notebook 11 measures that mistake.)

The trainer builds on :class:`course_lib.train.BaseTrainer`, as the GAN trainer does: tqdm
progress, a :class:`~course_lib.train.History`, a NaN guard, AMP on CUDA only, seeded data order,
and atomic ``weights_only`` checkpoints that hold every piece of state, so a run stopped and resumed
ends with the same weights, bit for bit on CPU, as a run that never stopped.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from course_lib import tricks
from course_lib.models import VAE
from course_lib.train import (
    Augment,
    BaseTrainer,
    History,
    NonFiniteLossError,
    _check_int,
    _derive_seed,
)

LOG_2PI = math.log(2 * math.pi)
CHECKPOINT_FORMAT = "course_lib.VAETrainer"
CHECKPOINT_VERSION = 1
LOSS_KEYS = ("loss", "elbo", "recon", "kl")
"""Logged at every history row (means since the previous row, nats per example): the training
objective, the ELBO (beta = 1, no free bits), -log p(x|z) and KL(q(z|x) || p(z))."""

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
"""Optimizers :class:`VAETrainer` knows by name; extra settings go in ``optimizer_kwargs``."""


def _check_number(name: str, value: object, minimum: float = 0.0, strict: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= minimum if strict else value < minimum):  # type: ignore[operator]
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return float(value)  # type: ignore[arg-type]


def _at_least_f32(t: Tensor) -> Tensor:
    """float16/bfloat16 (autocast) -> float32; float32 and float64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


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
    elif eps.shape != mu.shape:
        raise ValueError(
            f"eps must have the shape of mu {tuple(mu.shape)}, got {tuple(eps.shape)}."
        )
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


def _check_unit_range(x: Tensor) -> None:
    if x.numel() and (bool(x.min() < 0) or bool(x.max() > 1)):
        raise ValueError(
            f"a Bernoulli likelihood needs x in [0, 1], got values in [{x.min().item():.3g}, "
            f"{x.max().item():.3g}]; the course's images are in [-1, 1]: use (x + 1) / 2, or "
            "binarize them with (x > 0).float()."
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
        _check_unit_range(x)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return -bce.flatten(1).sum(dim=1)


def gaussian_log_likelihood(x: Tensor, mean: Tensor, log_sigma: Tensor | float) -> Tensor:
    """log N(x; mean, sigma^2 I) summed over all data dimensions, constants included.

    log p = -sum_i [(x_i - mean_i)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2]. With sigma fixed
    this is -||x - mean||^2 / (2 sigma^2) plus a constant: MSE summed over pixels is this
    likelihood with sigma^2 = 1/2, and MSE *averaged* over D pixels is sigma^2 = D / 2.
    Densities of continuous x are not probabilities: these nats are comparable only with other
    Gaussian (continuous) models of the same data in the same range.
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Appendix C.2.
    Shapes: x, mean (N, ...); log_sigma a scalar or broadcastable to x -> (N,).
    """
    if x.shape != mean.shape:
        raise ValueError(
            f"x and mean must have the same shape, got {tuple(x.shape)} and {tuple(mean.shape)}."
        )
    log_sigma = torch.as_tensor(log_sigma, dtype=mean.dtype, device=mean.device)
    z2 = ((x - mean) * torch.exp(-log_sigma)) ** 2
    return -(0.5 * z2 + log_sigma + 0.5 * LOG_2PI).flatten(1).sum(dim=1)


def log_likelihood(model: VAE, x: Tensor, decoded: Tensor, validate: bool = True) -> Tensor:
    """log p(x|z) under ``model``'s likelihood, from the decoder's output; (N, ...) -> (N,)."""
    if model.likelihood == "bernoulli":
        return bernoulli_log_likelihood(x, decoded, validate=validate)
    return gaussian_log_likelihood(x, decoded, model.log_sigma)


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
    Reference: Kingma & Welling 2014, arXiv:1312.6114, eq. 3 (bound) and eq. 10 (estimator B).
    Shapes: x (N, ...) -> ELBOTerms of (N,) tensors (and kl_per_dim (N, d)), in float32 under
    autocast too (float64 for a float64 model).
    """
    mu, logvar = (_at_least_f32(t) for t in model.encode(x))
    z = reparameterize(mu, logvar, generator=generator)
    decoded = _at_least_f32(model.decode(z))
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
    if kl_per_dim.dim() != 2:
        raise ValueError(
            f"kl_per_dim must have shape (N, latent_dim), got {tuple(kl_per_dim.shape)}; "
            "use kl_gaussians(mu, logvar) or elbo(...).kl_per_dim."
        )
    lam = _check_number("free_bits", free_bits, 0.0)
    d = kl_per_dim.shape[1]
    groups = d if groups is None else _check_int("groups", groups, 1)
    if d % groups:
        raise ValueError(f"groups={groups} must divide latent_dim={d}.")
    per_group = kl_per_dim.reshape(kl_per_dim.shape[0], groups, d // groups).sum(dim=2)
    return per_group.mean(dim=0).clamp(min=lam).sum()


def vae_loss(terms: ELBOTerms, beta: float = 1.0, free_bits: float | None = None) -> Tensor:
    """The training objective: batch mean of -log p(x|z) plus beta times the (free-bits) KL.

    loss = mean_n(-log p(x_n|z_n)) + beta * mean_n(KL_n); with ``free_bits`` the KL term is
    :func:`free_bits_kl`. beta = 1 and no free bits: the negative ELBO (Kingma & Welling 2014,
    eq. 10); beta != 1: the beta-VAE (Higgins et al. 2017, ICLR, eq. 4; beta > 1 favours a
    simpler posterior, beta < 1 reconstructions). Returns a scalar (nats per example).
    """
    _check_number("beta", beta, 0.0)
    if free_bits is None:
        kl_term = terms.kl.mean()
    else:
        kl_term = free_bits_kl(terms.kl_per_dim, free_bits)
    return -terms.log_px_z.mean() + beta * kl_term


# -------------------------------------------------------------------- KL annealing schedules


@dataclass(frozen=True)
class LinearAnnealing:
    """KL weight rising linearly from ``start`` to 1 over ``warmup_steps`` steps, then 1.

    weight(step) = start + (1 - start) * min(1, step / warmup_steps), step counted from 0 (the
    first update). KL cost annealing: start with (almost) no KL pressure so the decoder learns
    to use z before the KL term can switch it off.
    Reference: Bowman et al. 2016, arXiv:1511.06349, Section 3.1 ("KL cost annealing"; they
    use a sigmoid-shaped ramp, see :class:`LogisticAnnealing`).
    """

    warmup_steps: int
    start: float = 0.0

    def __post_init__(self) -> None:
        _check_int("warmup_steps", self.warmup_steps, 1)
        if not 0.0 <= _check_number("start", self.start) <= 1.0:
            raise ValueError(f"start must lie in [0, 1], got {self.start!r}.")

    def __call__(self, step: int) -> float:
        return self.start + (1.0 - self.start) * min(1.0, max(step, 0) / self.warmup_steps)


@dataclass(frozen=True)
class LogisticAnnealing:
    """KL weight following a logistic curve: 1 / (1 + exp(-rate * (step - midpoint))).

    The sigmoid-shaped ramp of Bowman et al. 2016 (arXiv:1511.06349, Section 3.1 and Fig. 2):
    near 0 early, 0.5 at ``midpoint``, near 1 after about midpoint + 5 / rate.
    """

    midpoint: int
    rate: float = 0.01

    def __post_init__(self) -> None:
        _check_int("midpoint", self.midpoint, 0)
        _check_number("rate", self.rate, 0.0, strict=True)

    def __call__(self, step: int) -> float:
        return 1.0 / (1.0 + math.exp(-min(self.rate * (step - self.midpoint), 700.0)))


@dataclass(frozen=True)
class CyclicalAnnealing:
    """KL weight repeating a linear ramp: in each ``period``, 0 -> 1 over its first ``ratio``.

    tau = (step mod period) / period; weight = min(1, tau / ratio). Re-opening the KL pressure
    every cycle lets later cycles reuse the latent codes learned in earlier ones.
    Reference: Fu et al. 2019, arXiv:1903.10145, Section 4 (a linear f and proportion R = ratio;
    their period is T / M for M cycles in T steps; their t - 1 is this step).
    """

    period: int
    ratio: float = 0.5

    def __post_init__(self) -> None:
        _check_int("period", self.period, 1)
        if not 0.0 < _check_number("ratio", self.ratio) <= 1.0:
            raise ValueError(f"ratio must lie in (0, 1], got {self.ratio!r}.")

    def __call__(self, step: int) -> float:
        tau = (max(step, 0) % self.period) / self.period
        return min(1.0, tau / self.ratio)


# ---------------------------------------------------------------------------------- evaluation


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluation mode (BatchNorm uses its running statistics) and no gradients; restores."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _as_images(x: Tensor | TensorDataset, name: str = "x") -> Tensor:
    if isinstance(x, TensorDataset):
        x = x.tensors[0]
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2 or len(x) == 0:
        raise ValueError(
            f"{name} must be a non-empty float tensor (N, ...) or a TensorDataset, got "
            f"{getattr(x, 'dtype', type(x).__name__)} of shape {tuple(getattr(x, 'shape', ()))}."
        )
    return x


def _model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def iwae_bounds(
    model: VAE,
    x: Tensor | TensorDataset,
    k: int = 100,
    generator: torch.Generator | None = None,
    max_rows: int = 16384,
) -> tuple[Tensor, Tensor]:
    """The ELBO and the importance-weighted bound L_k, per example, from the same k samples.

    With z_1..z_k ~ q(z|x) and log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x):
    ELBO ~ (1/k) sum_i log w_i, and L_k = log (1/k) sum_i w_i (computed with logsumexp).
    ELBO = L_1 <= L_k <= L_{k+1} <= log p(x) in expectation, and L_k -> log p(x) as k grows, so
    -L_k for large k estimates the negative log-likelihood (an upper bound on it on average).
    Runs in eval mode without gradients, ``max_rows`` decoder rows at a time, on the model's
    device. Reference: Burda et al. 2016, arXiv:1509.00519, eq. 8 and Theorem 1 (bound),
    Section 5.1 (NLL estimated by L_5000).
    Shapes: x (N, ...) -> (elbo (N,), iwae (N,)) on the CPU, in nats.
    """
    x = _as_images(x)
    k = _check_int("k", k, 1)
    device = _model_device(model)
    if model.likelihood == "bernoulli":
        _check_unit_range(x)  # once, not per chunk
    chunk = max(1, max_rows // k)
    elbos, iwaes = [], []
    with _eval_mode(model):
        for start in range(0, len(x), chunk):
            xb = x[start : start + chunk].to(device)
            n = xb.shape[0]
            mu, logvar = (_at_least_f32(t) for t in model.encode(xb))
            eps = torch.randn((k, *mu.shape), generator=generator, device=device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps  # (k, n, d)
            decoded = _at_least_f32(model.decode(z.reshape(k * n, -1)))
            x_rep = xb.to(decoded.dtype).expand(k, *xb.shape).reshape(k * n, *xb.shape[1:])
            log_px_z = log_likelihood(model, x_rep, decoded, validate=False).reshape(k, n)
            log_pz = -0.5 * (z**2 + LOG_2PI).sum(dim=2)
            log_qz = -0.5 * (eps**2 + logvar + LOG_2PI).sum(dim=2)  # (z - mu) / sigma = eps
            log_w = log_px_z + log_pz - log_qz  # (k, n)
            elbos.append(log_w.mean(dim=0).cpu())
            iwaes.append((torch.logsumexp(log_w, dim=0) - math.log(k)).cpu())
    return torch.cat(elbos), torch.cat(iwaes)


def encoder_means(model: VAE, x: Tensor | TensorDataset, batch_size: int = 1000) -> Tensor:
    """E_q(z|x)[z] = mu(x) for every example, in eval mode: (N, ...) -> (N, latent_dim) on CPU."""
    x = _as_images(x)
    _check_int("batch_size", batch_size, 1)
    device = _model_device(model)
    with _eval_mode(model):
        return torch.cat(
            [
                _at_least_f32(model.encode(x[i : i + batch_size].to(device))[0]).cpu()
                for i in range(0, len(x), batch_size)
            ]
        )


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """The number of active latent units: dimensions u with Cov_x(E_q(z|x)[z_u]) > threshold.

    A unit is active when its posterior mean changes with the input: its variance over the data
    (population variance over the N examples) exceeds 0.01. An inactive unit has collapsed to
    the prior: the decoder ignores it. Reference: Burda et al. 2016, arXiv:1509.00519,
    Section 5.2 (A_u = Cov_x(E_u~q(u|x)[u]) > 10^-2).
    Shapes: mu (N, latent_dim), the encoder means (see :func:`encoder_means`) -> int.
    """
    if not isinstance(mu, Tensor) or mu.dim() != 2 or mu.shape[0] < 2:
        raise ValueError(
            f"mu must be the encoder means of shape (N >= 2, latent_dim), got "
            f"{tuple(getattr(mu, 'shape', ()))}; use encoder_means(model, x)."
        )
    _check_number("threshold", threshold, 0.0)
    return int((mu.double().var(dim=0, unbiased=False) > threshold).sum().item())


def evaluate(
    model: VAE,
    x: Tensor | TensorDataset,
    k: int = 100,
    seed: int = 0,
    max_rows: int = 16384,
) -> dict[str, float]:
    """Held-out summary of a VAE, means over the examples of ``x`` (nats per example).

    Returns ``{"elbo", "nll", "kl", "active_units"}``: the ELBO and the importance-weighted NLL
    -L_k from :func:`iwae_bounds` (k samples each, drawn from a generator seeded with ``seed``,
    so two models are compared on the same noise), the closed-form KL(q(z|x) || p(z)) and the
    number of active units (:func:`active_units`).
    """
    x = _as_images(x)
    device = _model_device(model)
    gen = torch.Generator(device).manual_seed(_check_int("seed", seed, 0))
    elbo_n, iwae_n = iwae_bounds(model, x, k=k, generator=gen, max_rows=max_rows)
    mu = encoder_means(model, x)
    with _eval_mode(model):
        kl = torch.cat(
            [
                kl_to_standard_normal(
                    *(_at_least_f32(t) for t in model.encode(x[i : i + 1000].to(device)))
                )
                for i in range(0, len(x), 1000)
            ]
        )
    return {
        "elbo": elbo_n.mean().item(),
        "nll": -iwae_n.mean().item(),
        "kl": kl.mean().item(),
        "active_units": float(active_units(mu)),
    }


# ------------------------------------------------------------------------------------ trainer


def _describe(obj: object) -> str | None:
    """A stable text for a setting in a checkpoint: repr, or the name for plain functions."""
    if obj is None:
        return None
    text = repr(obj)
    if " at 0x" in text:  # default reprs hold a memory address that changes from run to run
        return getattr(obj, "__qualname__", type(obj).__name__)
    return text


class VAETrainer(BaseTrainer):
    """Trains a :class:`course_lib.models.VAE` by minimizing :func:`vae_loss`; see :meth:`fit`.

    Defaults: Adam, lr 1e-3 (Kingma & Welling 2014 used Adagrad; Adam, Kingma & Ba 2015,
    arXiv:1412.6980, is today's default). ``optimizer`` is a name in :data:`OPTIMIZERS` with
    ``optimizer_kwargs`` (e.g. ``{"momentum": 0.9}`` for SGD). ``lr_schedule`` builds a
    ``torch.optim.lr_scheduler`` from the optimizer, stepped once per training step, e.g.
    ``lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)``.
    The KL weight at step s is ``beta * kl_schedule(s)`` (``kl_schedule`` None: 1), e.g.
    :class:`LinearAnnealing`; ``free_bits`` (nats per latent dimension) switches the KL term to
    :func:`free_bits_kl`. ``augment(x, step) -> x`` transforms each training batch (target and
    encoder input alike), drawing from torch's global RNG (saved in checkpoints), e.g.
    ``tricks.DiffAugment("translation")``. ``device`` None picks one with
    :func:`course_lib.runtime.choose_device`; ``amp`` None means on for CUDA only. ``seed``
    fixes the data order and the noise of the reparameterization; it does not initialize the
    model. Device, mixed precision, the fit loop and checkpoints are those of
    :class:`course_lib.train.BaseTrainer`, shared with the GAN trainer.
    """

    checkpoint_format = CHECKPOINT_FORMAT
    loss_keys = LOSS_KEYS
    progress_keys = ("elbo", "kl")
    extra_state_keys = ("best",)

    def __init__(
        self,
        model: VAE,
        *,
        lr: float = 1e-3,
        optimizer: str = "adam",
        optimizer_kwargs: Mapping[str, Any] | None = None,
        lr_schedule: Callable[[torch.optim.Optimizer], Any] | None = None,
        beta: float = 1.0,
        kl_schedule: Callable[[int], float] | None = None,
        free_bits: float | None = None,
        augment: Augment | None = None,
        device: str | torch.device | None = None,
        amp: bool | None = None,
        seed: int = 0,
    ):
        if not isinstance(model, VAE):
            raise ValueError(
                f"model must be a course_lib.models.VAE, got {type(model).__name__}; "
                "wrap your encoder and decoder: models.VAE(encoder, decoder)."
            )
        self.lr = _check_number("lr", lr, 0.0, strict=True)
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}."
            )
        self.optimizer_name = optimizer
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        self.beta = _check_number("beta", beta, 0.0)
        for name, fn in (("kl_schedule", kl_schedule), ("augment", augment)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be None or callable, got {type(fn).__name__}.")
        self.kl_schedule, self.augment = kl_schedule, augment
        self.free_bits = None if free_bits is None else _check_number("free_bits", free_bits)
        super().__init__(device=device, amp=amp, seed=seed)

        self.model = model.to(self.device)
        try:
            self.opt = OPTIMIZERS[optimizer](
                self.model.parameters(), lr=self.lr, **self.optimizer_kwargs
            )
        except TypeError as exc:
            raise ValueError(f"optimizer_kwargs {self.optimizer_kwargs} do not fit: {exc}") from exc
        self.scheduler = None if lr_schedule is None else lr_schedule(self.opt)
        if self.scheduler is not None and (
            isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
            or not hasattr(self.scheduler, "state_dict")
        ):
            raise ValueError(
                "lr_schedule must build a per-step scheduler of torch.optim.lr_scheduler (e.g. "
                "CosineAnnealingLR, StepLR, LambdaLR); ReduceLROnPlateau needs a metric and is "
                "not supported."
            )
        self.early_stopped_at: int | None = None
        self.best_step: int | None = None
        self.best_val_loss = math.inf
        self._best_state: dict[str, Tensor] | None = None
        self._bad_evals = 0
        self._eps_gen = torch.Generator(self.device).manual_seed(_derive_seed(seed, "eps"))
        self._sample_gen = torch.Generator(self.device).manual_seed(_derive_seed(seed, "sample"))
        self._last_lr = self.lr

    # ---------------------------------------------------------------------------- one step

    def kl_weight(self, step: int | None = None) -> float:
        """The KL weight used at ``step`` (default: the next step): beta * kl_schedule(step)."""
        step = self.step if step is None else step
        return self.beta * (1.0 if self.kl_schedule is None else float(self.kl_schedule(step)))

    def _update(self, x: Tensor) -> Tensor:
        """One optimizer step on batch x; returns a device tensor of :data:`LOSS_KEYS` (no sync)."""
        if self.augment is not None:
            x = self.augment(x, self.step)
        weight = self.kl_weight()
        with self._autocast():
            terms = elbo(self.model, x, generator=self._eps_gen, validate=False)
        loss = vae_loss(terms, beta=weight, free_bits=self.free_bits)
        self._last_lr = float(self.opt.param_groups[0]["lr"])  # the lr of this step
        self._optimize(loss, self.opt)
        if self.scheduler is not None:
            self.scheduler.step()
        recon, kl = -terms.log_px_z.mean(), terms.kl.mean()
        return torch.stack([loss, -(recon + kl), recon, kl]).detach().float()

    def train_step(self, x: Tensor) -> dict[str, float]:
        """One training step on the batch ``x``; returns the floats of :data:`LOSS_KEYS`."""
        x = _as_images(x)
        self._check_range(x, "x")
        self.model.train()
        stats = self._update(x.to(self.device, non_blocking=True))
        self.step += 1
        return dict(zip(LOSS_KEYS, stats.tolist(), strict=True))

    # ---------------------------------------------------------------------------- sampling

    def sample_z(self, n: int) -> Tensor:
        """z ~ N(0, I), (n, latent_dim), from the trainer's sampling stream (not training's)."""
        _check_int("n", n, 1)
        return torch.randn(n, self.model.latent_dim, generator=self._sample_gen, device=self.device)

    def sample(self, n: int | None = None, z: Tensor | None = None) -> Tensor:
        """E[x|z] for given ``z`` or ``n`` draws from the prior, in eval mode: (n, ...) on device.

        The decoder's mean (Bernoulli: probabilities in [0, 1]), not a noisy sample of p(x|z).
        """
        if (n is None) == (z is None):
            raise ValueError("pass exactly one of n (a number of samples) or z (a latent batch).")
        z = self.sample_z(n) if z is None else z.to(self.device)  # type: ignore[arg-type]
        with _eval_mode(self.model):
            return self.model.decoder_mean(self.model.decode(z).float())

    def reconstruct(self, x: Tensor) -> Tensor:
        """E[x|z = mu(x)]: the decoder's mean at the encoder's mean, in eval mode."""
        x = _as_images(x)
        with _eval_mode(self.model):
            mu, _ = self.model.encode(x.to(self.device))
            return self.model.decoder_mean(self.model.decode(mu).float())

    def evaluate(self, x: Tensor | TensorDataset, k: int = 100) -> dict[str, float]:
        """:func:`evaluate` on held-out ``x`` with the trainer's model, noise seeded by ``seed``."""
        return evaluate(self.model, x, k=k, seed=_derive_seed(self.seed, "evaluate"))

    # ---------------------------------------------------------------------------- fit

    def _check_range(self, x: Tensor, name: str) -> None:
        lo, hi = (v.item() for v in torch.aminmax(x))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or inf; clean it before training.")
        if self.model.likelihood == "bernoulli" and (lo < 0 or hi > 1):
            raise ValueError(
                f"{name} lies in [{lo:.3g}, {hi:.3g}] but the model's Bernoulli likelihood needs "
                "[0, 1]; the course's images are in [-1, 1]: use (x + 1) / 2, or binarize them "
                "with (x > 0).float()."
            )

    @torch.no_grad()
    def _val_loss(self, x_val: Tensor) -> float:
        """Held-out negative ELBO (nats per example, beta = 1), with the same noise every time."""
        gen = torch.Generator(self.device).manual_seed(_derive_seed(self.seed, "val"))
        total = 0.0
        with _eval_mode(self.model):
            for i in range(0, len(x_val), 1000):
                terms = elbo(self.model, x_val[i : i + 1000], generator=gen, validate=False)
                total += -terms.elbo.sum().item()
        return total / len(x_val)

    def fit(
        self,
        data: Tensor | TensorDataset,
        *,
        steps: int,
        batch_size: int = 64,
        val_data: Tensor | TensorDataset | None = None,
        eval_every: int | None = None,
        patience: int | None = None,
        min_delta: float = 0.0,
        callbacks: Iterable[Any] = (),
        log_every: int | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        progress: bool = True,
    ) -> History:
        """Train until the step counter reaches ``steps``, or early stopping; return the history.

        ``data`` (N, ...) (or a TensorDataset, whose first tensor is used) is moved to the device
        once and batched by a per-epoch permutation seeded from (seed, epoch), dropping the last
        partial batch; it must suit the likelihood (Bernoulli: [0, 1], else ValueError).
        ``steps`` is the total to reach: after resuming at step 600, ``steps=1000`` runs 400.
        With ``val_data``, the held-out negative ELBO (``val_loss``, beta = 1, same noise each
        time) is logged every ``eval_every`` steps (default steps // 20) and at the end; the
        best weights are kept (:meth:`restore_best` loads them), and with ``patience`` the run
        stops after that many evaluations without an improvement larger than ``min_delta``
        (Prechelt 1998, "Early stopping - but when?"; the run remembers it stopped).
        History rows every ``log_every`` steps (default steps // 100) hold the means of
        :data:`LOSS_KEYS` since the previous row, the KL weight and the learning rate.
        Callbacks (e.g. :class:`course_lib.train.Evaluate`) run every ``cb.every`` steps and add
        to the row. With ``checkpoint_path``: an existing file is resumed from when the trainer
        has not trained yet; a checkpoint is written every ``checkpoint_every`` steps and at the
        end. Raises :class:`~course_lib.train.NonFiniteLossError` when a logged loss or the
        weights before a checkpoint are NaN/inf; the last good checkpoint is never overwritten.
        """
        log_every, callbacks = self._check_fit_options(
            steps, batch_size, log_every, checkpoint_path, checkpoint_every, callbacks
        )
        min_delta = _check_number("min_delta", min_delta)
        if val_data is None and (patience is not None or eval_every is not None):
            raise ValueError("eval_every and patience need val_data (held-out examples).")
        if eval_every is None and val_data is not None:
            eval_every = max(1, steps // 20)
        if eval_every is not None:
            _check_int("eval_every", eval_every, 1)
        if patience is not None:
            _check_int("patience", patience, 1)
        x = _as_images(data, "data").to(self.device)
        self._check_range(x, "data")
        x_val = None
        if val_data is not None:
            x_val = _as_images(val_data, "val_data").to(self.device)
            self._check_range(x_val, "val_data")
            if tuple(x_val.shape[1:]) != tuple(x.shape[1:]):
                raise ValueError(
                    f"val_data examples have shape {tuple(x_val.shape[1:])}, data examples "
                    f"{tuple(x.shape[1:])}; they must match."
                )
        next_batch = self._epoch_batches(x, batch_size)
        spec = {
            "batch_size": batch_size,
            "data": list(x.shape),
            "val_data": None if x_val is None else list(x_val.shape),
        }
        path = None if checkpoint_path is None else Path(checkpoint_path)
        resumed = self._begin_fit(spec, path)
        if self.early_stopped_at is not None:
            print(
                f"this run stopped early at step {self.early_stopped_at} (best held-out loss "
                f"{self.best_val_loss:.2f} at step {self.best_step}); nothing to do."
            )
            return self.history

        def validate_now(s: int) -> bool:
            return x_val is not None and (s % eval_every == 0 or s == steps)  # type: ignore[operator]

        def extend_row(row: dict[str, float]) -> None:
            row["kl_weight"] = self.kl_weight(self.step - 1)
            row["lr"] = self._last_lr
            if validate_now(self.step):
                row["val_loss"] = self._validate(x_val, min_delta, patience)  # type: ignore[arg-type]

        self.model.train()
        return self._fit_loop(
            lambda: self._update(next_batch(self.step)),
            steps,
            resumed=resumed,
            callbacks=callbacks,
            log_every=log_every,
            path=path,
            checkpoint_every=checkpoint_every,
            progress=progress,
            row_due=validate_now,
            extend_row=extend_row,
        )

    def _validate(self, x_val: Tensor, min_delta: float, patience: int | None) -> float:
        """Held-out loss; keeps the best weights; requests a stop when patience runs out."""
        val = self._val_loss(x_val)
        if not math.isfinite(val):
            raise NonFiniteLossError(self._nonfinite(f"the held-out loss is {val}"))
        if val < self.best_val_loss - min_delta:
            self.best_val_loss, self.best_step, self._bad_evals = val, self.step, 0
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self._bad_evals += 1
            if patience is not None and self._bad_evals >= patience:
                self.early_stopped_at = self.step
                self.stop_reason = (
                    f"early stopping: no improvement of the held-out loss in {patience} "
                    f"evaluations (best {self.best_val_loss:.2f} at step {self.best_step})"
                )
        return val

    def restore_best(self) -> int:
        """Load the weights with the best held-out loss into the model; returns their step.

        Training on from here continues from these weights (resume from the checkpoint to
        continue the original run exactly).
        """
        if self._best_state is None:
            raise ValueError("no best weights yet: fit with val_data= to track them.")
        self.model.load_state_dict(self._best_state)
        return self.best_step  # type: ignore[return-value]

    # ---------------------------------------------------------------------------- checkpoints

    def _retry_hint(self) -> str:
        return (
            f"Try a lower lr (now {self.lr:g}), check that the data is finite and in the "
            "likelihood's range, or another seed."
        )

    def hparams(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        return {
            "optimizer": self.optimizer_name,
            "optimizer_kwargs": {k: _describe(v) for k, v in self.optimizer_kwargs.items()},
            "lr": self.lr,
            "lr_schedule": None if self.scheduler is None else type(self.scheduler).__name__,
            "beta": self.beta,
            "kl_schedule": _describe(self.kl_schedule),
            "free_bits": self.free_bits,
            "augment": _describe(self.augment),
            "seed": self.seed,
            "latent_dim": self.model.latent_dim,
            "likelihood": self.model.likelihood,
        }

    def _stateful(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "opt": self.opt,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
        }

    def _streams(self) -> dict[str, torch.Generator]:
        return {"eps": self._eps_gen, "sample": self._sample_gen}

    def state_dict(self) -> dict[str, Any]:
        """The shared checkpoint state plus the early-stopping record and the best weights."""
        return super().state_dict() | {
            "best": {
                "step": self.best_step,
                "val_loss": self.best_val_loss,
                "state": self._best_state,
                "bad_evals": self._bad_evals,
                "early_stopped_at": self.early_stopped_at,
            }
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        best = state["best"]
        self.best_step = best["step"]
        self.best_val_loss = float(best["val_loss"])
        self._best_state = (
            None
            if best["state"] is None
            else {k: v.to(self.device) for k, v in best["state"].items()}
        )
        self._bad_evals = int(best["bad_evals"])
        self.early_stopped_at = best["early_stopped_at"]


# ------------------------------------------------------------------------------ augmentations


@dataclass(frozen=True)
class RandomShift:
    """Shift each image by a random whole number of pixels in [-max_shift, max_shift] per axis.

    Zero fill, so the data's background must be 0 (images in [0, 1], e.g. binarized digits).
    Keeps labels and, with whole pixels, keeps binary images binary. The transformation of
    :class:`course_lib.tricks.DiffAugment`'s "translation" with a chosen size.
    Draws from torch's global RNG. Use: ``VAETrainer(..., augment=RandomShift(2))``.
    Shapes: x (N, C, H, W), step (unused) -> (N, C, H, W).
    """

    max_shift: int = 2

    def __post_init__(self) -> None:
        _check_int("max_shift", self.max_shift, 0)

    def __call__(self, x: Tensor, step: int) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"RandomShift needs images (N, C, H, W), got {tuple(x.shape)}.")
        return tricks._translation(x, ratio=self.max_shift / max(x.shape[2:]))


@dataclass(frozen=True)
class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``.

    Fine for photographs of scenes; wrong for digits and text, where a mirrored 2, 3, 5, 6 or 9
    is no longer that digit (often no digit at all): the augmented data set is then a different
    distribution with changed labels. Notebook 11 measures what it costs.
    Draws from torch's global RNG. Shapes: x (N, C, H, W), step (unused) -> (N, C, H, W).
    """

    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= _check_number("p", self.p) <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {self.p!r}.")

    def __call__(self, x: Tensor, step: int) -> Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"RandomHorizontalFlip needs images (N, C, H, W), got {tuple(x.shape)}."
            )
        flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.p
        return torch.where(flip, x.flip(-1), x)
