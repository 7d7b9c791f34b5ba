"""Instant feedback on exercises: compare a learner's function with the course's reference.

In a notebook, the cell after an exercise runs ``f = check.exercise("gan.d_loss_bce", f)``. It calls
the learner's ``f`` and the reference on fixed inputs and prints ``"gan.d_loss_bce: 5/5 cases
match"`` or the first failing case (input, expected, got). If the exercise is still a stub (raises
``NotImplementedError``), or fails, it says so and returns the reference, so that the rest of the
notebook still runs. The learner's code is never shown.

With the environment variable ``COURSE_CHECK_STRICT=1`` (set by the test suite) a mismatch raises
``AssertionError`` instead, so that the solution notebooks are tested against ``course_lib``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from course_lib import metrics, monitor, vae, viz
from course_lib import search as hpo
from course_lib.gan import losses, models, tricks

STRICT_ENV = "COURSE_CHECK_STRICT"


@dataclass(frozen=True)
class Exercise:
    """A reference solution, fixed inputs, and how to turn a candidate into comparable outputs.

    ``evaluate(candidate, case)`` returns what is compared (tensors, numbers, tuples of them);
    the default calls ``candidate(*case)``.
    """

    reference: Callable[..., Any]
    cases: Callable[[], Sequence[tuple[Any, ...]]]
    evaluate: Callable[[Callable[..., Any], tuple[Any, ...]], Any] = lambda fn, case: fn(*case)
    rtol: float = 1e-5
    atol: float = 1e-6


@dataclass(frozen=True)
class CheckResult:
    """The outcome of :func:`verify`: ``status`` is "pass", "fail" or "not implemented"."""

    name: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def _logit_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.zeros(4), torch.zeros(4)),
        (torch.randn(16, generator=g), torch.randn(16, generator=g)),
        (3 * torch.randn(64, generator=g), 3 * torch.randn(64, generator=g) - 2),
        # confident discriminators: a naive log(sigmoid(.)) overflows to inf here
        (torch.tensor([40.0, -40.0, 0.5]), torch.tensor([-40.0, 40.0, -0.5])),
    ]
    return cases


def _fake_logits() -> list[tuple[torch.Tensor]]:
    return [(real,) for real, _ in _logit_pairs()] + [(torch.tensor([-60.0, 60.0]),)]


def _init_statistics(init_fn: Callable[[nn.Module], None], case: tuple[int]) -> tuple[float, ...]:
    """Apply ``init_fn`` to a fresh DCGAN discriminator and summarize the weights it set.

    Per conv layer: weight mean and std; over all BatchNorm layers: weight mean and std; the
    largest absolute bias. Two correct inits agree on these to within sampling noise (< 0.006).
    """
    (seed,) = case
    torch.manual_seed(seed)
    module = models.DCGANDiscriminator(image_size=32, channels=3, width=32)
    with torch.no_grad():  # scramble, so that an init that does nothing fails
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    init_fn(module)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    stats: list[float] = []
    for conv in convs:
        stats += [conv.weight.mean().item(), conv.weight.std().item()]
    bn_weight = torch.cat([m.weight.flatten() for m in norms])
    stats += [bn_weight.mean().item(), bn_weight.std().item()]
    biases = [m.bias.flatten() for m in convs + norms if m.bias is not None]
    stats.append(torch.cat(biases).abs().max().item() if biases else 0.0)
    return tuple(stats)


def _module_signature(cls: Callable[..., nn.Module], case: tuple[int, int]) -> tuple[Any, ...]:
    """Build ``cls(image_size, channels, width=8)``; return its output shape, size and layers."""
    image_size, channels = case
    torch.manual_seed(0)
    module = cls(image_size=image_size, channels=channels, width=8)
    x = torch.randn(5, channels, image_size, image_size)
    out = module(x)
    layer_types = tuple(type(m).__name__ for m in module.modules() if not list(m.children()))
    n_params = sum(p.numel() for p in module.parameters())
    return tuple(out.shape), n_params, layer_types


def _pixel_batches() -> list[tuple[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.tensor([-1.0, 0.0, 1.0]),),
        (torch.rand(2, 1, 4, 4, generator=g) * 2 - 1,),
        (torch.tensor([-1.5, 1.2, 0.5]),),  # out of range: clamped
    ]


def _feature_sets() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed float64 feature pairs for the 07 metric exercises (FID)."""
    g = torch.Generator().manual_seed(7)
    mix = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = torch.randn(200, 6, generator=g, dtype=torch.float64)
    b = torch.randn(150, 6, generator=g, dtype=torch.float64) @ mix * 0.5 + 0.3
    c = torch.randn(120, 16, generator=g, dtype=torch.float64)
    d = torch.randn(100, 16, generator=g, dtype=torch.float64) * 1.5 - 1.0
    return [(a, b), (b, a), (a, a.clone()), (c, d)]


def _equal_size_sets() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed float64 feature pairs with equal row counts (one KID subset)."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = torch.randn(12, 5, generator=g, dtype=torch.float64) + 0.5
    u = torch.randn(40, 8, generator=g, dtype=torch.float64)
    v = torch.randn(40, 8, generator=g, dtype=torch.float64)
    return [(x, y), (y, x), (u, v), (u, u.clone())]


def _class_logits() -> list[tuple[torch.Tensor, int]]:
    """Logits and numbers of splits for the Inception Score exercise."""
    g = torch.Generator().manual_seed(9)
    noisy = 2 * torch.randn(103, 7, generator=g, dtype=torch.float64)
    confident = 30.0 * torch.eye(10, dtype=torch.float64).repeat(5, 1)
    two_classes = torch.tensor([[9.0, 0.0, 0.0]] * 6 + [[0.0, 9.0, 0.0]] * 6, dtype=torch.float64)
    return [(noisy, 1), (noisy, 3), (noisy, 10), (confident, 5), (two_classes, 1), (two_classes, 2)]


def _real_fake_k() -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """Real and fake features and k for the precision/recall exercise."""
    g = torch.Generator().manual_seed(10)
    real = torch.randn(40, 3, generator=g, dtype=torch.float64)
    fake = torch.randn(33, 3, generator=g, dtype=torch.float64) * 0.6 + 0.8
    collapsed = real[:1] + 1e-3 * torch.randn(20, 3, generator=g, dtype=torch.float64)
    return [(real, fake, 3), (real, fake, 1), (fake, real, 5), (real, real[::2], 3),
            (real, collapsed, 3)]  # fmt: skip


def _as_float(fn: Callable[..., Any], case: tuple[Any, ...]) -> float:
    return float(fn(*case))


def _as_floats(fn: Callable[..., Any], case: tuple[Any, ...]) -> tuple[float, ...]:
    return tuple(float(v) for v in fn(*case))


# Part IV helpers: fixed inputs for the VAE exercises of 10-11


def _reparameterize_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(mu, logvar, eps) triples; the last one has z = eps exactly."""
    g = torch.Generator().manual_seed(11)
    cases = []
    for n, d, scale in ((1, 1, 1.0), (4, 3, 1.0), (16, 8, 3.0)):
        mu = scale * torch.randn(n, d, generator=g)
        logvar = scale * torch.randn(n, d, generator=g)
        cases.append((mu, logvar, torch.randn(n, d, generator=g)))
    cases.append((torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2, 2)))
    return cases


def _sample_and_gradients(fn: Callable[..., Any], case: tuple[torch.Tensor, ...]) -> tuple:
    """z = fn(mu, logvar, eps) and the gradients of a weighted sum of z with respect to mu and
    logvar (None where no gradient arrives, as with sampling that is not reparameterized)."""
    mu, logvar = (t.clone().requires_grad_(True) for t in case[:2])
    z = fn(mu, logvar, case[2].clone())
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return (z.detach() if isinstance(z, torch.Tensor) else z, None, None)
    weights = torch.linspace(-1.0, 1.0, z.numel()).reshape(z.shape)
    grads = torch.autograd.grad((z * weights).sum(), (mu, logvar), allow_unused=True)
    return (z.detach(), *grads)


def _gaussian_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mu, logvar) pairs of encoder outputs (N, d) for the KL exercise."""
    g = torch.Generator().manual_seed(12)
    return [
        (torch.zeros(3, 4), torch.zeros(3, 4)),  # q = prior: KL = 0
        (torch.ones(1, 2), torch.zeros(1, 2)),  # unit mean shift: 0.5 per dimension
        (torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)),
        (3 * torch.randn(16, 2, generator=g), 2 * torch.randn(16, 2, generator=g) - 1),
    ]


def _schedule_values(cls: Callable[..., Any], case: tuple[int, float]) -> list[float]:
    """The KL weights of ``cls(period, ratio)`` at steps 0, period/10, ... up to 3 periods."""
    period, ratio = case
    schedule = cls(period, ratio)
    return [float(schedule(step)) for step in range(0, 3 * period + 1, max(1, period // 10))]


def _kl_per_dim_cases() -> list[tuple[torch.Tensor, float]]:
    """(kl_per_dim (N, d), free_bits) pairs; in the last two, some examples are below lambda
    while their dimension's batch mean is above it (clamping per example then differs)."""
    g = torch.Generator().manual_seed(13)
    small = torch.tensor([[0.1, 2.0], [0.3, 1.0]])
    return [
        (small, 0.5),
        (small, 0.0),
        (small, 3.0),
        (0.6 * torch.rand(32, 8, generator=g), 0.25),
        (2.0 * torch.rand(64, 16, generator=g), 0.5),
    ]


def _encoder_mean_cases() -> list[tuple[Any, ...]]:
    """Encoder means (N, d) whose columns have variances 0, ~0.001, ~0.005, ~0.017, 0.25, 4."""
    g = torch.Generator().manual_seed(14)
    stds = torch.tensor([0.0, 0.03, 0.07, 0.13, 0.5, 2.0])
    mu = torch.randn(400, 6, generator=g) * stds + torch.randn(6, generator=g)
    wide = 10 * torch.randn(50, 4, generator=g) + 3
    return [(mu,), (mu[:, :3],), (wide,), (0.1 * mu,), (mu, 0.1)]


# Part II helpers: fixed inputs for the loss exercises of 03


class _HalfSquaredNorm(nn.Module):
    """A critic x -> 0.5 ||x||^2 per example: its input gradient at x is x itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(dim=1)


def _critic_batches() -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """(critic, real, fake) for the gradient-penalty exercise: a linear critic (penalty
    (||w|| - 1)^2 wherever x_hat lies), a quadratic one (the penalty depends on x_hat, on points
    and on images) and a small conv critic with (N, 1) outputs."""
    g = torch.Generator().manual_seed(15)
    with torch.random.fork_rng(devices=[]):  # building layers draws from the global RNG
        linear = nn.Linear(2, 1)
        conv = nn.Sequential(
            nn.Conv2d(1, 4, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64, 1)
        )  # (N, 1, 8, 8) -> (N, 4, 4, 4) -> (N, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[3.0, 4.0]]))
        linear.bias.fill_(0.5)
        for p in conv.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    images = [torch.rand(6, 1, 8, 8, generator=g) * 2 - 1 for _ in range(4)]
    return [
        (linear, torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)),
        (_HalfSquaredNorm(), torch.randn(16, 2, generator=g), 3 * torch.randn(16, 2, generator=g)),
        (_HalfSquaredNorm(), images[0], images[1]),
        (conv, images[2], images[3]),
    ]


def _seeded_penalty(fn: Callable[..., Any], case: tuple[Any, ...]) -> Any:
    """``fn(critic, real, fake)`` with the global RNG seeded (eps comes from it), then restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return fn(*case)


# Part II helpers: fixed inputs for the gradient and initialization exercises of 04


def _weight_shapes() -> list[tuple[tuple[int, ...], str]]:
    """(stored weight shape, scheme) pairs: Linear (out, in), Conv2d (out, in, k, k) and a
    ConvTranspose2d weight, stored (in, out, k, k), for every scheme with a closed-form std."""
    shapes = [(256, 128), (1, 512), (64, 3, 4, 4), (128, 64, 4, 4), (64, 128, 7, 7)]
    return [(shape, s) for shape in shapes for s in ("dcgan", "xavier", "kaiming", "default")]


def _init_std(shape: tuple[int, ...], scheme: str) -> float:
    """The std that ``tricks.init_weights_(layer, scheme)`` gives a weight of this stored shape.

    fan_in = shape[1] * k * k, fan_out = shape[0] * k * k (PyTorch's convention for the stored
    weight, ConvTranspose included). dcgan: 0.02 (Radford et al. 2016, arXiv:1511.06434,
    Section 4); xavier: sqrt(2 / (fan_in + fan_out)), the std of U(-a, a) with
    a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010, eq. 16); kaiming: sqrt(2 / fan_in)
    (He et al. 2015, arXiv:1502.01852, eq. 10); default: 1 / sqrt(3 fan_in), the std of
    PyTorch's kaiming_uniform_(a=sqrt(5)), whose bound is 1 / sqrt(fan_in).
    """
    receptive = math.prod(shape[2:])
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    return {
        "dcgan": 0.02,
        "xavier": math.sqrt(2.0 / (fan_in + fan_out)),
        "kaiming": math.sqrt(2.0 / fan_in),
        "default": 1.0 / math.sqrt(3.0 * fan_in),
    }[scheme]


def _gradient_sets() -> list[tuple[list[torch.Tensor], float]]:
    """(gradients of several parameters, max_norm) for the clipping exercise."""
    g = torch.Generator().manual_seed(17)
    big = [3 * torch.randn(4, 3, generator=g), torch.randn(3, generator=g),
           10 * torch.randn(2, 2, 2, generator=g)]  # fmt: skip
    return [
        ([torch.tensor([3.0, 4.0])], 1.0),  # norm 5 -> rescaled to norm 1: (0.6, 0.8)
        ([torch.tensor([3.0]), torch.tensor([4.0])], 10.0),  # global norm 5 <= 10: unchanged
        ([torch.tensor([3.0]), torch.tensor([4.0])], 2.5),  # global, not per tensor: halved
        (big, 1.0),
        ([0.01 * t for t in big], 1.0),  # below max_norm: untouched
        (big, 30.0),
    ]


def _clip_grad_norm(parameters: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """The rule ``GANTrainer(grad_clip=max_norm)`` applies: ``torch.nn.utils.clip_grad_norm_``.

    total = sqrt(sum over parameters of ||grad||^2); every gradient is multiplied by
    min(1, max_norm / (total + 1e-6)). Returns the total norm before clipping.
    Reference: Pascanu et al. 2013, arXiv:1211.5063, Section 3.2.
    """
    return nn.utils.clip_grad_norm_(parameters, max_norm)


def _clipped_gradients(fn: Callable[..., Any], case: tuple[Any, ...]) -> tuple[Any, ...]:
    """Give fresh parameters the case's gradients, call ``fn(parameters, max_norm)``; return the
    total norm it reports (as a float) and the gradients it leaves behind."""
    grads, max_norm = case
    params = [torch.zeros_like(t, requires_grad=True) for t in grads]
    for p, t in zip(params, grads, strict=True):
        p.grad = t.clone()
    total = fn(params, max_norm)
    return float(total), tuple(p.grad for p in params)


def _modules_with_gradients() -> list[tuple[nn.Module]]:
    """Modules holding gradients of a fixed loss: an MLP, a small DCGAN discriminator
    (BatchNorm, a bias-free conv) and an MLP whose first layer is frozen (no gradient)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(18)
        mlp = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
        disc = models.DCGANDiscriminator(image_size=28, channels=1, width=4)
        frozen = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
        frozen[0].requires_grad_(False)
        (10 * mlp(torch.randn(16, 3))).pow(2).mean().backward()
        x_real, x_fake = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)
        losses.d_loss_bce(disc(x_real), disc(x_fake)).backward()
        frozen(torch.randn(5, 4)).sum().backward()
    return [(mlp,), (disc,), (frozen,)]


def _norms_by_layer(fn: Callable[..., Any], case: tuple[Any, ...]) -> tuple[Any, ...]:
    """``fn(module)`` as (sorted layer names, their norms as floats), comparable entry by entry."""
    norms = fn(*case)
    names = tuple(sorted(norms))
    return names, tuple(float(norms[name]) for name in names)


# Part II helpers: fixed inputs for the stabilization-trick exercises of 05


def _smoothing_cases() -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """(logits_real, logits_fake, real_label): the logit pairs of 01 with labels 0.9 and 0.8."""
    pairs = _logit_pairs()
    return [(real, fake, 0.9) for real, fake in pairs] + [(pairs[2][0], pairs[2][1], 0.8)]


def _instance_noise_sigma(sigma: float, anneal_steps: int | None, step: int) -> float:
    """The std ``tricks.InstanceNoise(sigma, anneal_steps)`` adds at ``step``:
    sigma * max(0, 1 - step / anneal_steps), or sigma when anneal_steps is None.
    Reference: Sønderby et al. 2017, arXiv:1610.04490 (instance noise, annealed)."""
    return tricks.InstanceNoise(sigma, anneal_steps).sigma_at(step)


def _noise_schedule_cases() -> list[tuple[float, int | None, int]]:
    """(sigma, anneal_steps, step): start, middle, the end, past the end, constant noise."""
    return [(0.1, 100, 0), (0.1, 100, 25), (0.2, 1000, 999), (0.1, 100, 100), (0.1, 100, 150),
            (0.3, None, 5000), (0.5, 7, 3)]  # fmt: skip


def _ema_update(theta_ema: torch.Tensor, theta: torch.Tensor, decay: float) -> torch.Tensor:
    """One EMA step on a tensor, computed by the trainer's EMA (:func:`tricks.ema_generator`):
    decay * theta_ema + (1 - decay) * theta. Reference: Yazıcı et al. 2019, arXiv:1806.04498,
    eq. 2."""
    holder = nn.Module()
    holder.weight = nn.Parameter(theta_ema.detach().clone())
    ema = tricks.ema_generator(holder, decay)
    ema.update_parameters(holder)  # the first update copies: the average is theta_ema
    with torch.no_grad():
        holder.weight.copy_(theta)
    ema.update_parameters(holder)
    return ema.module.weight.detach().clone()


def _ema_cases() -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """(theta_ema, theta, decay) for the EMA exercise."""
    g = torch.Generator().manual_seed(19)
    a, b = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    return [(torch.zeros(2), torch.ones(2), 0.9), (a, b, 0.999), (a, b, 0.5), (b, 3 * a, 0.95)]


def _on_copies(fn: Callable[..., Any], case: tuple[Any, ...]) -> Any:
    """``fn(*case)`` on clones of the tensors, so an in-place answer cannot change the case."""
    return fn(*(c.clone() if isinstance(c, torch.Tensor) else c for c in case))


# Part II helpers: the training-step exercise of the bugs clinic, 06


def _clinic_train_step(
    G: nn.Module,
    D: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    x_real: torch.Tensor,
    z: torch.Tensor,
) -> tuple[float, float]:
    """Reference for "clinic.train_step": one D update, then one G update on the fake batch G(z).

    D minimizes losses.d_loss_bce with the fakes detached; G minimizes
    losses.g_loss_nonsaturating through D; each optimizer's gradients are zeroed before its
    backward. Reference: Goodfellow et al. 2014, arXiv:1406.2661, Algorithm 1.
    Returns (d_loss, g_loss) as floats.
    """
    x_fake = G(z)
    d_loss = losses.d_loss_bce(D(x_real), D(x_fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = losses.g_loss_nonsaturating(D(x_fake))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


def _train_step_outcome(step_fn: Callable[..., Any], case: tuple[int]) -> tuple[Any, ...]:
    """Run ``step_fn(G, D, opt_g, opt_d, x_real, z)`` three times on small 2-D MLPs seeded by
    ``case``; return the losses of each step and all weights of G and D afterwards."""
    (seed,) = case
    torch.manual_seed(seed)
    G = models.MLPGenerator(latent_dim=2, hidden=16, depth=2)
    D = models.MLPDiscriminator(in_dim=2, hidden=16, depth=2)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-2, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(seed)
    step_losses = []
    for _ in range(3):
        x_real = 2.0 * torch.randn(32, 2, generator=g)
        z = torch.randn(32, 2, generator=g)
        step_losses.append(tuple(float(v) for v in step_fn(G, D, opt_g, opt_d, x_real, z)))
    weights = torch.cat([p.detach().flatten() for p in [*G.parameters(), *D.parameters()]])
    return tuple(step_losses), weights


# Part III helpers: fixed inputs for the monitoring exercises of 08


def _sample_batches() -> list[tuple[torch.Tensor]]:
    """Batches (N, ...) for the diversity exercise: points, images, a collapsed batch, N = 2."""
    g = torch.Generator().manual_seed(16)
    return [
        (torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]),),  # distances 5, 0, 5: mean 10/3
        (torch.rand(9, 1, 4, 4, generator=g) * 2 - 1,),  # images: flatten each one
        (torch.ones(5, 3).repeat(1, 2),),  # total collapse: 0
        (torch.randn(2, 7, generator=g),),
        (torch.randn(40, 128, generator=g, dtype=torch.float64),),
    ]


def _score_sequences() -> list[tuple[list[float], int, float, str]]:
    """(scores, patience, min_delta, mode) for the early-stopping exercise."""
    return [
        ([], 1, 0.0, "min"),
        ([5.0, 4.0, 3.0], 1, 0.0, "min"),
        ([5.0, 5.0], 1, 0.0, "min"),  # a tie is no improvement
        ([5.0, 6.0, 4.0, 4.5], 2, 0.0, "min"),  # the count starts again after 4.0
        ([5.0, 6.0, 7.0, 3.0], 2, 0.0, "min"),  # patience ran out before the late 3.0
        ([5.0, 4.95, 4.9], 2, 0.1, "min"),  # steps smaller than min_delta do not count
        ([5.0, 4.85, 4.9], 2, 0.1, "min"),
        ([0.1, 0.2, 0.3], 1, 0.0, "max"),
        ([0.3, 0.2, 0.25, 0.1], 3, 0.0, "max"),
        ([0.3, 0.2, 0.25, 0.1], 4, 0.0, "max"),
    ]


EXERCISES: dict[str, Exercise] = {
    "tour.to_unit_range": Exercise(reference=viz.to_unit_range, cases=_pixel_batches),
    "gan.d_loss_bce": Exercise(reference=losses.d_loss_bce, cases=_logit_pairs),
    "gan.g_loss_nonsaturating": Exercise(reference=losses.g_loss_nonsaturating, cases=_fake_logits),
    "dcgan.init": Exercise(
        reference=models.dcgan_init_,
        cases=lambda: [(0,), (1,)],
        evaluate=_init_statistics,
        rtol=0.0,
        atol=0.006,
    ),
    "dcgan.discriminator": Exercise(
        reference=models.DCGANDiscriminator,
        cases=lambda: [(28, 1), (32, 1), (32, 3), (64, 3)],
        evaluate=_module_signature,
    ),
    # Part II: losses, gradients, tricks, bugs clinic (03-06)
    "losses.d_loss_hinge": Exercise(reference=losses.d_loss_hinge, cases=_logit_pairs),
    "losses.g_loss_lsgan": Exercise(reference=losses.g_loss_lsgan, cases=_fake_logits),
    "losses.gradient_penalty": Exercise(
        reference=losses.gradient_penalty, cases=_critic_batches, evaluate=_seeded_penalty
    ),
    "grads.init_std": Exercise(
        reference=_init_std, cases=_weight_shapes, evaluate=_as_float, rtol=1e-6
    ),
    "grads.clip_grad_norm": Exercise(
        reference=_clip_grad_norm, cases=_gradient_sets, evaluate=_clipped_gradients
    ),
    "grads.layer_grad_norms": Exercise(
        reference=tricks.layer_grad_norms, cases=_modules_with_gradients, evaluate=_norms_by_layer
    ),
    "tricks.label_smoothing": Exercise(
        reference=tricks.d_loss_bce_smoothed, cases=_smoothing_cases
    ),
    "tricks.instance_noise_sigma": Exercise(
        reference=_instance_noise_sigma, cases=_noise_schedule_cases, evaluate=_as_float
    ),
    "tricks.ema_update": Exercise(reference=_ema_update, cases=_ema_cases, evaluate=_on_copies),
    "clinic.train_step": Exercise(
        reference=_clinic_train_step, cases=lambda: [(0,), (1,)], evaluate=_train_step_outcome
    ),
    # Part III: metrics, monitoring, hyperparameter search (07-09)
    "eval.fid": Exercise(
        reference=metrics.fid_from_features, cases=_feature_sets, evaluate=_as_float
    ),
    "eval.kid": Exercise(
        reference=metrics.mmd2_unbiased, cases=_equal_size_sets, evaluate=_as_float
    ),
    "eval.inception_score": Exercise(
        reference=metrics.inception_score_from_logits, cases=_class_logits, evaluate=_as_floats
    ),
    "eval.precision_recall": Exercise(
        reference=metrics.precision_recall_from_features, cases=_real_fake_k, evaluate=_as_floats
    ),
    "monitor.mean_pairwise_distance": Exercise(
        reference=monitor.mean_pairwise_distance, cases=_sample_batches, evaluate=_as_float
    ),
    "monitor.should_stop": Exercise(reference=monitor.should_stop, cases=_score_sequences),
    "hpo.log_uniform": Exercise(
        reference=hpo.log_uniform,
        cases=lambda: [
            (0.0, 1e-5, 1e-1),
            (1.0, 1e-5, 1e-1),
            (0.5, 1e-4, 1e-2),
            (0.25, 1e-4, 1.0),
            (torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]), 1e-5, 1e-2),
        ],
    ),
    "hpo.median_rule": Exercise(
        reference=hpo.median_rule,
        cases=lambda: [  # (this trial's values so far, others at this step, direction)
            ([0.5], [0.4, 0.6, 0.7], "minimize"),
            ([0.9, 0.8], [0.4, 0.6, 0.7], "minimize"),
            ([0.5, 0.9], [0.4, 0.6, 0.7], "minimize"),  # the best so far counts, not the last
            ([0.5], [0.1, 0.6, 0.7], "minimize"),  # the median, not the mean
            ([0.55], [0.4, 0.5, 0.6, 0.7], "minimize"),  # a tie with the median is kept
            ([0.5], [0.4, 0.6, 0.7], "maximize"),
            ([0.65, 0.2], [0.4, 0.6, 0.7], "maximize"),
            ([3.0], [], "minimize"),  # nobody to compare with: keep it
        ],
    ),
    # Part IV: VAEs (10-11)
    "vae.reparameterize": Exercise(
        reference=vae.reparameterize, cases=_reparameterize_cases, evaluate=_sample_and_gradients
    ),
    "vae.kl": Exercise(reference=vae.kl_to_standard_normal, cases=_gaussian_pairs),
    "vae.cyclical_annealing": Exercise(
        reference=vae.CyclicalAnnealing,
        cases=lambda: [(100, 0.5), (10, 1.0), (40, 0.25), (7, 0.3)],
        evaluate=_schedule_values,
    ),
    "vae.free_bits": Exercise(reference=vae.free_bits_kl, cases=_kl_per_dim_cases),
    "vae.active_units": Exercise(reference=vae.active_units, cases=_encoder_mean_cases),
}


def _same(got: Any, expected: Any, rtol: float, atol: float) -> bool:
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return False
        return bool(torch.allclose(got.detach().double(), expected.detach().double(), rtol, atol))
    if isinstance(expected, float):
        return isinstance(got, int | float) and abs(got - expected) <= atol + rtol * abs(expected)
    if isinstance(expected, tuple | list):
        return (
            isinstance(got, tuple | list)
            and len(got) == len(expected)
            and all(_same(g, e, rtol, atol) for g, e in zip(got, expected, strict=True))
        )
    return bool(got == expected)


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        text = f"tensor{tuple(value.shape)} {value.detach().flatten()[:6].tolist()}"
        return text + (" ..." if value.numel() > 6 else "")
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return repr(value)


def verify(name: str, candidate: Callable[..., Any]) -> CheckResult:
    """Run exercise ``name``'s cases on ``candidate`` and the reference; catch its errors."""
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; known: {', '.join(sorted(EXERCISES))}.")
    ex = EXERCISES[name]
    cases = ex.cases()
    for i, case in enumerate(cases, start=1):
        expected = ex.evaluate(ex.reference, case)
        try:
            got = ex.evaluate(candidate, case)
        except NotImplementedError:
            return CheckResult(name, "not implemented", f"{name}: not implemented yet.")
        except Exception as exc:  # the learner's code failed: report it, do not crash the notebook
            return CheckResult(
                name, "fail", f"{name}: case {i}/{len(cases)} raised {type(exc).__name__}: {exc}"
            )
        if not _same(got, expected, ex.rtol, ex.atol):
            message = (
                f"{name}: case {i}/{len(cases)} differs\n  input:    {_show(case)}\n"
                f"  expected: {_show(expected)}\n  got:      {_show(got)}"
            )
            return CheckResult(name, "fail", message)
    return CheckResult(name, "pass", f"{name}: {len(cases)}/{len(cases)} cases match")


def exercise(name: str, candidate: Callable[..., Any]) -> Callable[..., Any]:
    """Check ``candidate`` against the reference of exercise ``name`` and print the verdict.

    Returns ``candidate`` when it passes, else the reference, so later cells keep working.
    Under ``COURSE_CHECK_STRICT=1`` a failing (not a stub) candidate raises AssertionError.
    """
    result = verify(name, candidate)
    if result.passed:
        print("✅ " + result.message)
        return candidate
    if result.status == "not implemented":
        print(f"✏️  {result.message} Using the reference solution so the notebook keeps running.")
    else:
        if os.environ.get(STRICT_ENV) == "1":
            raise AssertionError(result.message)
        print(f"❌ {result.message}\nUsing the reference solution for the rest of the notebook.")
    return EXERCISES[name].reference
