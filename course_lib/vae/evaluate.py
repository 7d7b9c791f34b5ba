"""Evaluating a VAE honestly: importance-weighted bounds on log p(x) (Burda et al. 2016,
arXiv:1509.00519), encoder means, active units, and held-out metrics in one call."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from course_lib._checks import check_int, check_number
from course_lib._io import as_float32, eval_mode
from course_lib.vae.elbo import (
    LOG_2PI,
    check_unit_range,
    kl_to_standard_normal,
    log_likelihood,
)
from course_lib.vae.models import VAE

# ---------------------------------------------------------------------------------- evaluation


def as_images(x: Tensor | TensorDataset, name: str = "x") -> Tensor:
    """The images of ``x`` (a TensorDataset's first tensor): non-empty, float, (N, ...)."""
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
    device. Reference: Burda et al. 2016, arXiv:1509.00519 (the importance-weighted bound;
    NLL estimated by L_5000).
    Shapes: x (N, ...) -> (elbo (N,), iwae (N,)) on the CPU, in nats.
    """
    x = as_images(x)
    k = check_int("k", k, 1)
    device = _model_device(model)
    if model.likelihood == "bernoulli":
        check_unit_range(x)  # once, not per chunk
    chunk = max(1, max_rows // k)
    elbos, iwaes = [], []
    with eval_mode(model):
        for start in range(0, len(x), chunk):
            xb = x[start : start + chunk].to(device)
            n = xb.shape[0]
            mu, logvar = (as_float32(t) for t in model.encode(xb))
            eps = torch.randn((k, *mu.shape), generator=generator, device=device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps  # (k, n, d)
            decoded = as_float32(model.decode(z.reshape(k * n, -1)))
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
    x = as_images(x)
    check_int("batch_size", batch_size, 1)
    device = _model_device(model)
    with eval_mode(model):
        return torch.cat(
            [
                as_float32(model.encode(x[i : i + batch_size].to(device))[0]).cpu()
                for i in range(0, len(x), batch_size)
            ]
        )


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """The number of active latent units: dimensions u with Cov_x(E_q(z|x)[z_u]) > threshold.

    A unit is active when its posterior mean changes with the input: its variance over the data
    (population variance over the N examples) exceeds 0.01. An inactive unit has collapsed to
    the prior: the decoder ignores it. Reference: Burda et al. 2016, arXiv:1509.00519
    (A_u = Cov_x(E_u~q(u|x)[u]) > 10^-2).
    Shapes: mu (N, latent_dim), the encoder means (see :func:`encoder_means`) -> int.
    """
    if not isinstance(mu, Tensor) or mu.dim() != 2 or mu.shape[0] < 2:
        raise ValueError(
            f"mu must be the encoder means of shape (N >= 2, latent_dim), got "
            f"{tuple(getattr(mu, 'shape', ()))}; use encoder_means(model, x)."
        )
    check_number("threshold", threshold, 0.0)
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
    x = as_images(x)
    device = _model_device(model)
    gen = torch.Generator(device).manual_seed(check_int("seed", seed, 0))
    elbo_n, iwae_n = iwae_bounds(model, x, k=k, generator=gen, max_rows=max_rows)
    mu = encoder_means(model, x)
    with eval_mode(model):
        kl = torch.cat(
            [
                kl_to_standard_normal(
                    *(as_float32(t) for t in model.encode(x[i : i + 1000].to(device)))
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
