"""Stabilization tricks for GAN training, each a small function or a trainer option.

What each one changes, and where it plugs in:

- :func:`init_weights_` - the initial weights (DCGAN normal, Xavier, He, orthogonal, PyTorch's).
- :func:`spectral_norm_` - every layer of D divided by its largest singular value (Miyato 2018).
- :func:`one_sided_label_smoothing` - D's target for real data becomes 0.9 (Salimans 2016).
- :class:`InstanceNoise`, :class:`DiffAugment` - what D sees: ``GANTrainer(augment=...)``.
- :func:`ttur` - two time-scale learning rates: ``GANTrainer(**ttur())`` (Heusel 2017).
- EMA of G, gradient clipping, the D:G ratio - ``GANTrainer(ema_decay=..., grad_clip=...,
  n_critic=...)``; :func:`ema_generator` builds the averaged copy the trainer keeps.
- :func:`layer_grad_norms` and the :class:`GradNorms` callback - per-layer gradient norms.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from course_lib._checks import shown
from course_lib.data.augment import translate
from course_lib.gan import losses, models

INIT_SCHEMES = ("dcgan", "xavier", "kaiming", "orthogonal", "default")
"""Initialization schemes :func:`init_weights_` knows."""

# ------------------------------------------------------------------------------- initialization


def init_weights_(
    module: nn.Module, scheme: str, generator: torch.Generator | None = None
) -> nn.Module:
    """Re-initialize every Conv*, ConvTranspose* and Linear layer of ``module`` in place.

    - "dcgan": N(0, 0.02) weights, BatchNorm scale N(1, 0.02) (:func:`models.dcgan_init_`;
      Radford et al. 2016, arXiv:1511.06434, Section 4).
    - "xavier": U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010).
    - "kaiming": N(0, 2 / fan_in), the variance that keeps ReLU activations' scale
      (He et al. 2015, arXiv:1502.01852, Section 2.2).
    - "orthogonal": a (scaled-to-1) orthogonal matrix per flattened weight
      (Saxe et al. 2014, arXiv:1312.6120; BigGAN's choice, Brock et al. 2019).
    - "default": each layer's own ``reset_parameters`` (PyTorch's default, a Kaiming-uniform
      variant with a = sqrt(5)).
    Biases become 0 and normalization layers get scale 1 (except "dcgan" and "default", which
    keep their own rules). For ConvTranspose weights PyTorch's fan_in is out_channels * k * k
    (the weight is stored (in, out, k, k)); the same convention applies here.
    ``generator`` makes the draw reproducible without the global RNG. Returns ``module``.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(
            f"scheme must be one of {', '.join(map(repr, INIT_SCHEMES))}, got {scheme!r}."
        )
    if scheme == "dcgan":
        models.dcgan_init_(module, generator=generator)
        return module
    with torch.no_grad():
        for m in module.modules():
            if scheme == "default":
                if isinstance(m, models.WEIGHT_LAYERS):
                    with torch.random.fork_rng(devices=[]):  # reset_parameters draws globally
                        if generator is not None:
                            torch.manual_seed(int(torch.randint(2**62, (), generator=generator)))
                        m.reset_parameters()
                continue
            if isinstance(m, models.WEIGHT_LAYERS):
                if scheme == "xavier":
                    nn.init.xavier_uniform_(m.weight, generator=generator)
                elif scheme == "kaiming":
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=generator)
                else:
                    nn.init.orthogonal_(m.weight, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return module


# --------------------------------------------------------------------------- spectral norm


def spectral_norm_(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Spectral normalization of every Conv*, ConvTranspose* and Linear layer, in place.

    Each weight W is used as W / sigma(W), sigma = its largest singular value estimated by
    ``n_power_iterations`` of power iteration per training forward pass. A Linear layer is then
    1-Lipschitz; a convolution's kernel is normalized as an (out, in*k*k) matrix, and since each
    input pixel lies in up to ceil(k/s)^2 patches (kernel k, stride s) the convolution's
    Lipschitz constant is at most ceil(k/s) (2 for 4x4 stride-2 layers). With 1-Lipschitz
    activations such as LeakyReLU, D's Lipschitz constant is bounded by the architecture.
    Reference: Miyato et al. 2018, arXiv:1802.05957, eq. 8 (power iteration as in the paper);
    implemented with ``torch.nn.utils.parametrizations.spectral_norm``. Meant for D; BatchNorm
    layers are left as they are (the paper's SN-GANs use none in D: build D with
    ``norm="none"``).
    Returns ``module``. Raises ValueError if a layer is already spectrally normalized.
    """
    if (
        isinstance(n_power_iterations, bool)
        or not isinstance(n_power_iterations, int)
        or n_power_iterations < 1
    ):
        raise ValueError(f"n_power_iterations must be an int >= 1, got {n_power_iterations!r}.")
    layers = [m for m in module.modules() if isinstance(m, models.WEIGHT_LAYERS)]
    for m in layers:
        if parametrize.is_parametrized(m, "weight"):
            raise ValueError(f"{type(m).__name__} is already parametrized; apply this only once.")
    for m in layers:
        # ConvTranspose stores (in, out, k, k): its output dimension is dim 1.
        dim = 1 if isinstance(m, nn.modules.conv._ConvTransposeNd) else 0
        parametrizations.spectral_norm(m, n_power_iterations=n_power_iterations, dim=dim)
    return module


# ------------------------------------------------------------------------ label smoothing


def d_loss_bce_smoothed(logits_real: Tensor, logits_fake: Tensor, real_label: float) -> Tensor:
    """BCE discriminator loss with the target for real data set to ``real_label`` (< 1).

    loss = mean(BCE(logits_real, real_label)) + mean(softplus(logits_fake)), where
    BCE(l, t) = t * softplus(-l) + (1 - t) * softplus(l); fakes keep the target 0
    ("one-sided": smoothing the fake target too would reward G for staying where it is).
    Its minimum over l is at sigmoid(l) = real_label, so D stops pushing real logits to +inf.
    Reference: Salimans et al. 2016, arXiv:1606.03498 (one-sided label smoothing).
    Shapes: logits_real (N,), logits_fake (M,) -> scalar.
    """
    t = real_label
    return (t * F.softplus(-logits_real) + (1 - t) * F.softplus(logits_real)).mean() + F.softplus(
        logits_fake
    ).mean()


def one_sided_label_smoothing(
    loss: str | losses.GANLoss = "nonsaturating", real_label: float = 0.9
) -> losses.GANLoss:
    """``loss`` with one-sided label smoothing in D's loss (see :func:`d_loss_bce_smoothed`).

    Only for the BCE objectives (minimax, non-saturating, with or without a penalty): other
    objectives have no labels to smooth. The returned loss is named e.g.
    "nonsaturating+ls0.9", so a checkpoint records the trick.
    Reference: Salimans et al. 2016, arXiv:1606.03498 (one-sided label smoothing).
    """
    base = losses.get_loss(loss)
    if base.d_loss is not losses.d_loss_bce:
        raise ValueError(
            f"label smoothing needs a BCE discriminator loss; {base.name!r} has no real/fake "
            "labels. Use it with 'nonsaturating' or 'minimax'."
        )
    if isinstance(real_label, bool) or not isinstance(real_label, int | float):
        raise ValueError(f"real_label must be a number in (0.5, 1), got {real_label!r}.")
    if not 0.5 < real_label < 1.0:
        raise ValueError(f"real_label must be in (0.5, 1), got {real_label!r}; try 0.9.")
    t = float(real_label)
    return losses.GANLoss(
        name=f"{base.name}+ls{t:g}",
        d_loss=lambda logits_real, logits_fake: d_loss_bce_smoothed(logits_real, logits_fake, t),
        g_loss=base.g_loss,
        d_penalty=base.d_penalty,
        after_d_step=base.after_d_step,
    )


# --------------------------------------------------------------- what the discriminator sees


class InstanceNoise:
    """Add N(0, sigma_t^2) noise to every input of D, real and fake; sigma_t decays to 0.

    sigma_t = sigma * max(0, 1 - step / anneal_steps) (linear annealing). Noise makes the two
    distributions overlap, so D cannot separate them perfectly and its gradients stay useful
    early on; annealing removes the bias at the end.
    Reference: Sønderby et al. 2017, arXiv:1610.04490 ("instance noise");
    Arjovsky & Bottou 2017, arXiv:1701.04862.
    Use: ``GANTrainer(..., augment=InstanceNoise(0.1, anneal_steps=steps))``. Draws from the
    global RNG of x's device (saved in trainer checkpoints). Shapes: (N, ...) -> (N, ...).
    """

    def __init__(self, sigma: float = 0.1, anneal_steps: int | None = None):
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma >= 0:
            raise ValueError(f"sigma must be a number >= 0, got {sigma!r}; try 0.1.")
        if anneal_steps is not None and (
            isinstance(anneal_steps, bool) or not isinstance(anneal_steps, int) or anneal_steps < 1
        ):
            raise ValueError(
                f"anneal_steps must be None (constant noise) or an int >= 1, got {anneal_steps!r}."
            )
        self.sigma = float(sigma)
        self.anneal_steps = anneal_steps

    def sigma_at(self, step: int) -> float:
        """The noise std at training step ``step``."""
        if self.anneal_steps is None:
            return self.sigma
        return self.sigma * max(0.0, 1.0 - step / self.anneal_steps)

    def __call__(self, x: Tensor, step: int) -> Tensor:
        sigma = self.sigma_at(step)
        return x if sigma == 0.0 else x + sigma * torch.randn_like(x)

    def __repr__(self) -> str:
        return f"InstanceNoise(sigma={self.sigma:g}, anneal_steps={self.anneal_steps})"


DIFF_AUGMENT_POLICIES = ("color", "translation", "cutout")
"""The transformations :class:`DiffAugment` knows (Zhao et al. 2020's names)."""


def _brightness_saturation_contrast(x: Tensor) -> Tensor:
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)  # saturation: scale the distance to the channel mean
    x = (x - mean) * (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # contrast: scale the distance to the image mean
    return (x - mean) * (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + mean


def _cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of ``ratio`` times the image size per image, centred anywhere."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (
        (rows >= cy - ch // 2) & (rows < cy - ch // 2 + ch)
        & (cols >= cx - cw // 2) & (cols < cx - cw // 2 + cw)
    )  # fmt: skip
    return x * (~inside).unsqueeze(1).to(x.dtype)


class DiffAugment:
    """Differentiable augmentation of every input of D, real and fake, in both players' steps.

    Because the same random transformations are applied to real and generated images and they
    are differentiable, G still gets gradients through them and cannot learn the augmentation
    (augmenting only real images would teach G to produce augmented images).
    ``policy``: comma-separated subset of "color" (random brightness, saturation, contrast),
    "translation" (shift up to 1/8 of the size, zero fill), "cutout" (zero a square of half the
    size), applied in that order, each with its own draw per image.
    Reference: Zhao et al. 2020, arXiv:2006.10738, and their reference code
    (mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py), whose transformations these follow.
    Use: ``GANTrainer(..., augment=DiffAugment())``. Images (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, policy: str = "color,translation,cutout"):
        if not isinstance(policy, str):
            raise ValueError(
                f"policy must be a string such as 'color,translation,cutout', got {shown(policy)}."
            )
        names = [p.strip() for p in policy.split(",") if p.strip()]
        unknown = [p for p in names if p not in DIFF_AUGMENT_POLICIES]
        if not names or unknown:
            raise ValueError(
                f"policy must be a comma-separated subset of {', '.join(DIFF_AUGMENT_POLICIES)}, "
                f"got {policy!r}."
            )
        self.policy = ",".join(names)
        self._fns = [
            {
                "color": _brightness_saturation_contrast,
                "translation": translate,
                "cutout": _cutout,
            }[p]
            for p in names
        ]

    def __call__(self, x: Tensor, step: int) -> Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"DiffAugment needs images (N, C, H, W), got shape {tuple(x.shape)}; "
                "for vectors use InstanceNoise instead."
            )
        for fn in self._fns:
            x = fn(x)
        return x

    def __repr__(self) -> str:
        return f"DiffAugment(policy={self.policy!r})"


# -------------------------------------------------------------------------- optimizer settings


def ttur(lr_g: float = 1e-4, lr_d: float = 4e-4) -> dict[str, float]:
    """Two time-scale update rule: separate learning rates for G and D, D's the larger.

    Heusel et al. 2017 (arXiv:1706.08500) prove convergence to a local Nash
    equilibrium when the two players learn on different time scales; the defaults 1e-4 / 4e-4
    are SAGAN's (Zhang et al. 2019, arXiv:1805.08318), which uses TTUR instead of
    several D steps per G step, with Adam(beta1 = 0, beta2 = 0.9); only the rates are returned.
    Returns ``{"lr_g": ..., "lr_d": ...}`` for ``GANTrainer(**...)``.
    """
    for name, lr in (("lr_g", lr_g), ("lr_d", lr_d)):
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
            raise ValueError(f"{name} must be a finite number > 0, got {lr!r}.")
    return {"lr_g": float(lr_g), "lr_d": float(lr_d)}


def ema_generator(G: nn.Module, decay: float = 0.999) -> AveragedModel:
    """An exponential moving average of G: theta_ema <- decay * theta_ema + (1 - decay) * theta.

    Averaging the generator's iterates smooths out the oscillation of the adversarial game;
    samples from the average are usually better than from the last iterate.
    Reference: Yazıcı et al. 2019, arXiv:1806.04498 (EMA of G); Karras et al. 2018,
    arXiv:1710.10196, Section A.1 (decay 0.999). Built on ``torch.optim.swa_utils.AveragedModel``
    with ``get_ema_multi_avg_fn``; buffers (BatchNorm statistics) are averaged too. The first
    ``update_parameters`` call copies G. Call ``ema.module(z)`` to sample from it.
    """
    if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be a number in (0, 1), got {decay!r}; try 0.999.")
    ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(float(decay)), use_buffers=True)
    ema.decay = float(decay)  # recorded in checkpoints' settings
    return ema


# ----------------------------------------------------------------------------- gradient norms


def layer_grad_norms(module: nn.Module) -> dict[str, float]:
    """The L2 norm of the current gradient of each layer of ``module`` (one device sync).

    A layer's key is the name of the module that owns the parameters (e.g. "net.0"; a
    spectrally normalized weight counts for its layer, not for its parametrization), and its
    norm covers all its parameters (weight and bias together). Parameters without gradients
    (never trained, or frozen) are left out. Watching these per layer shows where gradients
    vanish or explode (Glorot & Bengio 2010; Arjovsky & Bottou 2017,
    arXiv:1701.04862).
    """
    squares: dict[str, list[Tensor]] = {}
    for name, p in module.named_parameters():
        if p.grad is not None:
            layer = re.sub(r"\.?parametrizations\.\w+\.original$", "", name)
            layer = layer.rsplit(".", 1)[0] if layer == name else layer
            squares.setdefault(layer or type(module).__name__, []).append(
                p.grad.float().pow(2).sum()
            )
    if not squares:
        return {}
    norms = torch.stack([torch.stack(v).sum() for v in squares.values()]).sqrt()
    return dict(zip(squares, norms.tolist(), strict=True))


class GradNorms:
    """Trainer callback: log per-layer and total gradient norms of G and D every ``every`` steps.

    Logs ``grad_norm/G`` and ``grad_norm/D`` (global L2 norms over all layers) and, with
    ``per_layer=True``, ``grad_norm/G/<layer>`` and ``grad_norm/D/<layer>``. The gradients are
    those of the last update of each player in the step just taken (D's last critic update, G's
    update), **before clipping**: with ``GANTrainer(grad_clip=c)`` the ``.grad`` tensors hold the
    clipped gradient, which is the unclipped one times min(1, c / norm) for every layer alike, so
    the norms are rescaled with the trainer's ``grad_norms_before_clip``. A clipped run then
    still shows an exploding gradient.
    """

    def __init__(self, every: int, per_layer: bool = True):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}.")
        self.every = every
        self.per_layer = per_layer

    def __call__(self, trainer: Any) -> dict[str, float]:
        row: dict[str, float] = {}
        before_clip = getattr(trainer, "grad_norms_before_clip", {})
        for player, module in (("G", trainer.G), ("D", trainer.D)):
            norms = layer_grad_norms(module)
            if not norms:
                continue
            total = math.sqrt(sum(v * v for v in norms.values()))
            unclipped = before_clip.get(player)
            if unclipped is not None and total > 0:
                scale = float(unclipped) / total  # 1 where the norm was below the threshold
                norms = {k: v * scale for k, v in norms.items()}
                total = float(unclipped)
            row[f"grad_norm/{player}"] = total
            if self.per_layer:
                row.update({f"grad_norm/{player}/{k}": v for k, v in norms.items()})
        return row
