"""GAN objectives, computed from the discriminator's raw outputs (logits / critic values).

With D(x) = sigmoid(l(x)): log D(x) = -softplus(-l) and log(1 - D(x)) = -softplus(l). Writing the
BCE losses with softplus keeps them finite for confident discriminators, where log(sigmoid(l))
underflows to log(0) = -inf. The other objectives (WGAN, LSGAN, hinge) use the raw output
directly. All losses are batch means (scalars).

A :class:`GANLoss` bundles a D loss and a G loss, plus two optional hooks on the discriminator's
step: a penalty added to its loss (WGAN-GP's gradient penalty, R1) and a function run after its
optimizer step (WGAN's weight clipping). :data:`LOSSES` holds the objectives known by name;
:func:`wgan`, :func:`wgan_gp`, :func:`lsgan` and :func:`r1` build them with other weights.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._checks import check_number
from course_lib._io import as_float32


def _check_logits(name: str, logits: Tensor) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.numel() == 0:
        got = (
            f"dtype {logits.dtype} and shape {tuple(logits.shape)}"
            if isinstance(logits, Tensor)
            else type(logits).__name__
        )
        raise ValueError(
            f"{name} must be a non-empty float tensor of logits, got {got}; pass the "
            "discriminator's raw output (before sigmoid)."
        )


def _check_pair(names: tuple[str, str], real: Tensor, fake: Tensor) -> None:
    """Both outputs of one discriminator: float, non-empty, one layout per example.

    The batch sizes may differ (N real, M fake); the shape of each example's output may not:
    (8,) against (8, 10) means two different heads (or a missing ``.view(-1)``), and each mean
    would silently average something else.
    """
    _check_logits(names[0], real)
    _check_logits(names[1], fake)
    per_real = tuple(d for d in real.shape[1:] if d != 1)
    per_fake = tuple(d for d in fake.shape[1:] if d != 1)
    if per_real != per_fake:
        raise ValueError(
            f"{names[0]} has shape {tuple(real.shape)} but {names[1]} {tuple(fake.shape)}: "
            "the discriminator must give real and fake examples outputs of one shape; pass "
            "D(x_real) and D(x_fake) of the same D (e.g. one score each, shape (N,))."
        )


# ------------------------------------------------------------------- the original GAN (BCE)


def d_loss_bce(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator loss of the original GAN: -[log D(x) + log(1 - D(G(z)))], batch means.

    loss = mean(softplus(-logits_real)) + mean(softplus(logits_fake)); it equals 2 log 2 ~ 1.386
    when D cannot tell (all logits 0), and this is -V(D, G) of the minimax game, so minimizing it
    is D's ascent step.
    Reference: Goodfellow et al. 2014, arXiv:1406.2661, eq. 1 and Algorithm 1.
    Shapes: logits_real (N,), logits_fake (M,) -> scalar (N may differ from M; any per-example
    shape, the same for both; each is averaged).
    """
    _check_pair(("logits_real", "logits_fake"), logits_real, logits_fake)
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


# ------------------------------------------------------------------------------------ WGAN


def d_loss_wasserstein(critic_real: Tensor, critic_fake: Tensor) -> Tensor:
    """WGAN critic loss: mean(critic_fake) - mean(critic_real), batch means.

    The critic f maximizes E[f(x)] - E[f(G(z))], which over 1-Lipschitz f is the Wasserstein-1
    (earth mover's) distance by the Kantorovich-Rubinstein duality; minimizing this loss is that
    ascent, so ``-d_loss`` is the critic's estimate of the distance (up to the Lipschitz
    constant the clipping or penalty actually enforces). It is not a log-likelihood: the critic
    outputs unbounded scores, not logits of a probability. (WGAN does not minimize an MMD; that
    is MMD-GAN, Li et al. 2017.)
    Reference: Arjovsky et al. 2017, arXiv:1701.07875, Algorithm 1.
    Shapes: critic_real (N,), critic_fake (M,) -> scalar (N may differ from M; any per-example
    shape, the same for both; each is averaged).
    """
    _check_pair(("critic_real", "critic_fake"), critic_real, critic_fake)
    return as_float32(critic_fake).mean() - as_float32(critic_real).mean()


def g_loss_wasserstein(critic_fake: Tensor) -> Tensor:
    """WGAN generator loss: -mean(critic_fake); G moves its samples up the critic's slope.

    Its gradient with respect to each critic value is -1/N, whatever the value: no saturation.
    Reference: Arjovsky et al. 2017, arXiv:1701.07875, Algorithm 1 (generator update).
    Shapes: critic_fake (N,) -> scalar (batch mean).
    """
    _check_logits("critic_fake", critic_fake)
    return -as_float32(critic_fake).mean()


def clip_weights_(module: nn.Module, clip: float = 0.01) -> None:
    """Clamp every parameter of ``module`` to [-clip, clip], in place: WGAN's weight clipping.

    A crude way to keep the critic K-Lipschitz for some K (the parameters live in a compact
    set); Arjovsky et al. call it "a clearly terrible way to enforce a Lipschitz constraint".
    Reference: Arjovsky et al. 2017, arXiv:1701.07875, Algorithm 1 (c = 0.01).
    Returns None; runs under no_grad.
    """
    clip = check_number("clip", clip, 0.0, strict=True)
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-clip, clip)


# ---------------------------------------------------------------------------- penalties


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _input_gradient(D: nn.Module, x: Tensor, what: str) -> Tensor:
    """grad_x sum_i D(x)_i with a graph for double backprop: (N, ...) -> (N, ...).

    Computed in float32 with autocast off (a float16 input gradient can underflow to 0) and
    with grad mode on, so it works inside torch.no_grad too (e.g. to monitor a penalty).
    """
    if any(isinstance(m, _BATCH_NORMS) and m.training for m in D.modules()):
        warnings.warn(
            f"{what}: the discriminator has BatchNorm in training mode, which mixes the examples "
            "of a batch, so per-example input gradients are wrong; use a discriminator without "
            "BatchNorm (e.g. layer norm; Gulrajani et al. 2017, Section 4).",
            stacklevel=3,
        )
    x = as_float32(x.detach()).requires_grad_(True)
    no_autocast = (
        torch.autocast(x.device.type, enabled=False)
        if x.device.type in ("cuda", "cpu")
        else contextlib.nullcontext()
    )
    with torch.enable_grad(), no_autocast:
        out = D(x)
        if out.shape not in ((x.shape[0],), (x.shape[0], 1)):
            raise ValueError(
                f"{what}: the discriminator must map (N, ...) to (N,) or (N, 1), got "
                f"{tuple(out.shape)} for N = {x.shape[0]}; return one score per example."
            )
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad


def gradient_penalty(
    critic: nn.Module, real: Tensor, fake: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """WGAN-GP penalty: batch mean of (||grad_x D(x_hat)||_2 - 1)^2.

    x_hat = eps * real + (1 - eps) * fake, one eps ~ U[0, 1] per example (drawn from
    ``generator`` if given: N draws, in order); the norm runs over all non-batch dims. The critic
    must not mix examples (no BatchNorm) or the gradients are wrong: a warning says so.
    Computed in float32 with autocast off; fake (and real) are detached.
    Reference: Gulrajani et al. 2017, arXiv:1704.00028, eq. 3 and Algorithm 1 (caller applies
    lambda = 10; :func:`wgan_gp` does).
    Shapes: critic maps (N, ...) to (N,) or (N, 1); real, fake (N, ...) -> scalar.
    """
    if real.shape != fake.shape or real.dim() < 2:
        raise ValueError(
            f"real and fake must have the same shape (N, ...), got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}; pass one fake per real example."
        )
    real, fake = as_float32(real.detach()), as_float32(fake.detach())
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, generator=generator, dtype=real.dtype, device=real.device)
    x_hat = eps * real + (1 - eps) * fake
    grad = _input_gradient(critic, x_hat, "gradient_penalty")
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(D: nn.Module, real: Tensor) -> Tensor:
    """R1 penalty: batch mean of ||grad_x D(x)||_2^2 on real data only.

    A zero-centred penalty: it pushes D's gradient to 0 on the data, so that at the equilibrium
    D cannot keep a non-zero slope orthogonal to the data manifold. Unweighted: the objective
    adds gamma / 2 times it (:func:`r1` does). Computed in float32 with autocast off; ``real`` is
    detached; a warning says so if D has BatchNorm in training mode.
    Reference: Mescheder et al. 2018, arXiv:1801.04406: R1 = gamma/2 E[||grad D(x)||^2].
    Shapes: D maps (N, ...) to (N,) or (N, 1); real (N, ...) -> scalar.
    """
    if real.dim() < 2:
        raise ValueError(f"real must have shape (N, ...), got {tuple(real.shape)}.")
    grad = _input_gradient(D, real, "r1_penalty")
    return grad.flatten(1).pow(2).sum(dim=1).mean()


# ----------------------------------------------------------------------------------- LSGAN


def d_loss_lsgan(out_real: Tensor, out_fake: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """LSGAN discriminator loss: 0.5 mean((D(x) - b)^2) + 0.5 mean((D(G(z)) - a)^2).

    D regresses real outputs to the label b and fake outputs to a (least squares instead of
    a sigmoid cross-entropy). Defaults: the 0-1 coding a = 0, b = 1.
    Reference: Mao et al. 2017, arXiv:1611.04076.
    Shapes: out_real (N,), out_fake (M,) (D's raw outputs, no sigmoid) -> scalar.
    """
    _check_pair(("out_real", "out_fake"), out_real, out_fake)
    return (
        0.5 * ((as_float32(out_real) - b) ** 2).mean()
        + 0.5 * ((as_float32(out_fake) - a) ** 2).mean()
    )


def g_loss_lsgan(out_fake: Tensor, c: float = 1.0) -> Tensor:
    """LSGAN generator loss: 0.5 mean((D(G(z)) - c)^2), c = the value G wants D to give fakes.

    With the 0-1 coding (a = 0, b = 1) c must be 1 = b ("generate samples as real as possible");
    the other setting of the paper, a = -1, b = 1, c = 0, minimizes a Pearson chi^2 divergence.
    c = 0 together with a = 0 is wrong: G would aim for the fake label.
    Reference: Mao et al. 2017, arXiv:1611.04076, eq. 2 and Section 3.2.
    Shapes: out_fake (N,) -> scalar (batch mean).
    """
    _check_logits("out_fake", out_fake)
    return 0.5 * ((as_float32(out_fake) - c) ** 2).mean()


# ----------------------------------------------------------------------------------- hinge


def d_loss_hinge(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Hinge discriminator loss: mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))).

    A margin loss: real outputs above +1 and fake outputs below -1 cost nothing (and give no
    gradient), so D stops pushing examples it already separates by the margin.
    Reference: Lim & Ye 2017, arXiv:1705.02894 (Geometric GAN); Miyato et al. 2018,
    arXiv:1802.05957, eq. 16.
    Shapes: logits_real (N,), logits_fake (M,) (D's raw outputs) -> scalar.
    """
    _check_pair(("logits_real", "logits_fake"), logits_real, logits_fake)
    return F.relu(1 - as_float32(logits_real)).mean() + F.relu(1 + as_float32(logits_fake)).mean()


def g_loss_hinge(logits_fake: Tensor) -> Tensor:
    """Hinge generator loss: -mean(D(G(z))) (the same as WGAN's generator loss).

    Reference: Lim & Ye 2017, arXiv:1705.02894; Miyato et al. 2018, arXiv:1802.05957, eq. 17.
    Shapes: logits_fake (N,) -> scalar (batch mean).
    """
    _check_logits("logits_fake", logits_fake)
    return -as_float32(logits_fake).mean()


# ---------------------------------------------------------------------- the GANLoss bundle


@dataclass(frozen=True)
class GANLoss:
    """A GAN objective: ``d_loss(logits_real, logits_fake)`` and ``g_loss(logits_fake)``.

    Optional hooks on the discriminator's step:
    ``d_penalty(D, x_real, x_fake) -> scalar`` is added to D's loss (x_fake is detached), e.g. a
    weighted gradient penalty; ``after_d_step(D)`` runs after each D optimizer step, under
    no_grad, e.g. weight clipping. ``name`` identifies the loss in checkpoints and tables.
    """

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    d_penalty: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None
    after_d_step: Callable[[nn.Module], None] | None = None


def _name(base: str, **params: tuple[float, float]) -> str:
    """``base`` for default weights, else e.g. ``wgan-gp(gp_weight=5)``; params (value, default)."""
    changed = [f"{k}={v:g}" for k, (v, default) in params.items() if v != default]
    return f"{base}({', '.join(changed)})" if changed else base


def _weighted_gradient_penalty(
    D: nn.Module, x_real: Tensor, x_fake: Tensor, *, weight: float
) -> Tensor:
    return weight * gradient_penalty(D, x_real, x_fake)


def _weighted_r1_penalty(D: nn.Module, x_real: Tensor, x_fake: Tensor, *, gamma: float) -> Tensor:
    return 0.5 * gamma * r1_penalty(D, x_real)


def wgan(clip: float = 0.01) -> GANLoss:
    """WGAN with weight clipping: Wasserstein losses, every D parameter clamped after each step.

    Train it as the paper does: ``n_critic=5`` and RMSProp with lr 5e-5, i.e.
    ``Trainer(GANStep(G, D, RMSprop(G.parameters(), 5e-5), RMSprop(D.parameters(), 5e-5),
    wgan(), n_critic=5))``; the paper reports that momentum (Adam's beta1 > 0) made training
    unstable. ``GANTrainer`` (Adam only) comes nearest with beta1 = 0 and lr 5e-5.
    Reference: Arjovsky et al. 2017, arXiv:1701.07875, Algorithm 1 (c = 0.01, n_critic = 5).
    """
    clip = check_number("clip", clip, 0.0, strict=True)
    return GANLoss(
        _name("wgan", clip=(clip, 0.01)),
        d_loss_wasserstein,
        g_loss_wasserstein,
        after_d_step=functools.partial(clip_weights_, clip=clip),
    )


def wgan_gp(gp_weight: float = 10.0) -> GANLoss:
    """WGAN-GP: Wasserstein losses plus ``gp_weight`` * :func:`gradient_penalty` on D's loss.

    Paper settings: lambda = 10, ``n_critic=5``, Adam(lr 1e-4, betas (0.0, 0.9)); the critic must
    have no BatchNorm (use layer norm or none).
    Reference: Gulrajani et al. 2017, arXiv:1704.00028, eq. 3 and Algorithm 1.
    """
    gp_weight = check_number("gp_weight", gp_weight, 0.0, strict=True)
    return GANLoss(
        _name("wgan-gp", gp_weight=(gp_weight, 10.0)),
        d_loss_wasserstein,
        g_loss_wasserstein,
        d_penalty=functools.partial(_weighted_gradient_penalty, weight=gp_weight),
    )


def lsgan(a: float = 0.0, b: float = 1.0, c: float = 1.0) -> GANLoss:
    """LSGAN with labels a (fake), b (real) for D and target c for G.

    Defaults: the 0-1 coding with c = b = 1; ``lsgan(-1, 1, 0)`` is the Pearson chi^2 setting.
    Raises ValueError for a == b (D has nothing to separate) and for c == a (G would aim for
    the fake label, e.g. the wrong a = 0, b = 1, c = 0 of some tutorials).
    Reference: Mao et al. 2017, arXiv:1611.04076, eq. 2 and Section 3.2.
    """
    a, b, c = (check_number(k, v) for k, v in (("a", a), ("b", b), ("c", c)))
    if a == b:
        raise ValueError(f"a and b must differ (fake and real labels), got a = b = {a:g}.")
    if c == a:
        raise ValueError(
            f"c = {c:g} equals the fake label a: G would learn to look fake. Use c = b "
            f"(c = {b:g}) or the Pearson setting a = -1, b = 1, c = 0 (Mao et al. 2017)."
        )
    return GANLoss(
        _name("lsgan", a=(a, 0.0), b=(b, 1.0), c=(c, 1.0)),
        functools.partial(d_loss_lsgan, a=a, b=b),
        functools.partial(g_loss_lsgan, c=c),
    )


def r1(gamma: float = 10.0, base: str | GANLoss = "nonsaturating") -> GANLoss:
    """``base`` (default the non-saturating GAN) plus the R1 penalty gamma/2 * :func:`r1_penalty`.

    Reference: Mescheder et al. 2018, arXiv:1801.04406 (gamma = 10 here; the right
    value depends on the data).
    Raises ValueError if ``base`` already has a penalty.
    """
    gamma = check_number("gamma", gamma, 0.0, strict=True)
    base = get_loss(base)
    if base.d_penalty is not None:
        raise ValueError(f"base loss {base.name!r} already has a penalty; pass one without.")
    return GANLoss(
        _name(f"{base.name}-r1", gamma=(gamma, 10.0)),
        base.d_loss,
        base.g_loss,
        d_penalty=functools.partial(_weighted_r1_penalty, gamma=gamma),
        after_d_step=base.after_d_step,
    )


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


LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss("minimax", d_loss_bce, g_loss_saturating),
    "nonsaturating": GANLoss("nonsaturating", d_loss_bce, g_loss_nonsaturating),
}
LOSSES.update(
    {
        "wgan": wgan(clip=0.01),
        "wgan-gp": wgan_gp(gp_weight=10.0),
        "lsgan": lsgan(a=0.0, b=1.0, c=1.0),
        "hinge": GANLoss("hinge", d_loss_hinge, g_loss_hinge),
        "nonsaturating-r1": r1(gamma=10.0, base=LOSSES["nonsaturating"]),
    }
)
"""The objectives known by name: the original minimax game, its non-saturating variant, WGAN
(clip 0.01), WGAN-GP (lambda 10), LSGAN (a=0, b=1, c=1), hinge and non-saturating + R1 (gamma 10).
"""
