"""GAN objectives, computed from discriminator logits (never from probabilities).

With D(x) = sigmoid(l(x)): log D(x) = -softplus(-l) and log(1 - D(x)) = -softplus(l). Writing the
losses with softplus keeps them finite for confident discriminators, where log(sigmoid(l))
underflows to log(0) = -inf. All losses are batch means (scalars).

A :class:`GANLoss` bundles a D loss and a G loss, plus two optional hooks on the discriminator's
step (a penalty added to its loss, a function run after its optimizer step), which is what later
objectives need: a gradient penalty (WGAN-GP, R1) or weight clipping (WGAN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn


def _check_logits(name: str, logits: Tensor) -> None:
    if not logits.is_floating_point() or logits.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty float tensor of logits, got dtype {logits.dtype} and "
            f"shape {tuple(logits.shape)}; pass the discriminator's raw output (before sigmoid)."
        )


def d_loss_bce(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator loss of the original GAN: -[log D(x) + log(1 - D(G(z)))], batch means.

    loss = mean(softplus(-logits_real)) + mean(softplus(logits_fake)); it equals 2 log 2 ~ 1.386
    when D cannot tell (all logits 0), and this is -V(D, G) of the minimax game, so minimizing it
    is D's ascent step.
    Reference: Goodfellow et al. 2014, arXiv:1406.2661, eq. 1 and Algorithm 1.
    Shapes: logits_real (N,), logits_fake (M,) (any shapes; each is averaged) -> scalar.
    """
    _check_logits("logits_real", logits_real)
    _check_logits("logits_fake", logits_fake)
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()


def g_loss_saturating(logits_fake: Tensor) -> Tensor:
    """Generator loss of the minimax game: mean log(1 - D(G(z))) = -mean(softplus(logits_fake)).

    Its gradient with respect to a logit is -sigmoid(l): it vanishes when D confidently rejects
    the fakes (l << 0), which is why it "saturates" early in training. Equals -log 2 at logits 0.
    Reference: Goodfellow et al. 2014, arXiv:1406.2661, eq. 1 and Section 3.
    Shapes: logits_fake (N,) -> scalar (batch mean).
    """
    _check_logits("logits_fake", logits_fake)
    return -F.softplus(logits_fake).mean()


def g_loss_nonsaturating(logits_fake: Tensor) -> Tensor:
    """Non-saturating generator loss: -mean log D(G(z)) = mean(softplus(-logits_fake)).

    Same fixed point as the minimax loss but a gradient of -sigmoid(-l) ~ -1 where D confidently
    rejects the fakes: "strong gradients early in learning". Equals log 2 ~ 0.693 at logits 0.
    Reference: Goodfellow et al. 2014, arXiv:1406.2661, Section 3 (the heuristic after eq. 1).
    Shapes: logits_fake (N,) -> scalar (batch mean).
    """
    _check_logits("logits_fake", logits_fake)
    return F.softplus(-logits_fake).mean()


@dataclass(frozen=True)
class GANLoss:
    """A GAN objective: ``d_loss(logits_real, logits_fake)`` and ``g_loss(logits_fake)``.

    Optional hooks on the discriminator's step (both None for the losses here):
    ``d_penalty(D, x_real, x_fake) -> scalar`` is added to D's loss (x_fake is detached), e.g. a
    weighted gradient penalty; ``after_d_step(D)`` runs after each D optimizer step, under
    no_grad, e.g. weight clipping. ``name`` identifies the loss in checkpoints and tables.
    """

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    d_penalty: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None
    after_d_step: Callable[[nn.Module], None] | None = None


LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss("minimax", d_loss_bce, g_loss_saturating),
    "nonsaturating": GANLoss("nonsaturating", d_loss_bce, g_loss_nonsaturating),
}
"""The objectives known by name: the original minimax game and its non-saturating variant."""


def get_loss(loss: str | GANLoss) -> GANLoss:
    """Return ``LOSSES[loss]`` for a name, or ``loss`` itself if it is already a :class:`GANLoss`.

    Raises ValueError for an unknown name (listing the known ones) and TypeError for other types.
    """
    if isinstance(loss, GANLoss):
        return loss
    if not isinstance(loss, str):
        raise TypeError(
            f"loss must be a name or a GANLoss, got {type(loss).__name__}; "
            f"use one of {', '.join(map(repr, LOSSES))}."
        )
    if loss not in LOSSES:
        raise ValueError(
            f"unknown loss {loss!r}; use one of {', '.join(map(repr, LOSSES))} "
            "or pass a GANLoss(name, d_loss, g_loss)."
        )
    return LOSSES[loss]
