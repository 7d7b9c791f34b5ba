"""Exercises of notebook 04, gradients and initialization: init stds, clipping, layer norms."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from course_lib.check import Exercise, as_float
from course_lib.gan import losses, models, tricks


def weight_shapes() -> list[tuple[tuple[int, ...], str]]:
    """(stored weight shape, scheme) pairs for every scheme with a closed-form std.

    Linear (out, in), Conv2d (out, in, k, k) and a ConvTranspose2d weight, stored (in, out, k, k).
    """
    shapes = [(256, 128), (1, 512), (64, 3, 4, 4), (128, 64, 4, 4), (64, 128, 7, 7)]
    return [(shape, s) for shape in shapes for s in ("dcgan", "xavier", "kaiming", "default")]


def init_std(shape: tuple[int, ...], scheme: str) -> float:
    """The std that ``tricks.init_weights_(layer, scheme)`` gives a weight of this stored shape.

    fan_in = shape[1] * k * k, fan_out = shape[0] * k * k (PyTorch's convention for the stored
    weight, ConvTranspose included). dcgan: 0.02 (Radford et al. 2016, arXiv:1511.06434,
    Section 4); xavier: sqrt(2 / (fan_in + fan_out)), the std of U(-a, a) with
    a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010); kaiming: sqrt(2 / fan_in)
    (He et al. 2015, arXiv:1502.01852, Section 2.2); default: 1 / sqrt(3 fan_in), the std of
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


def gradient_sets() -> list[tuple[list[torch.Tensor], float]]:
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


def clip_grad_norm(parameters: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """The rule ``GANTrainer(grad_clip=max_norm)`` applies: ``torch.nn.utils.clip_grad_norm_``.

    total = sqrt(sum over parameters of ||grad||^2); every gradient is multiplied by
    min(1, max_norm / (total + 1e-6)). Returns the total norm before clipping.
    Reference: Pascanu et al. 2013, arXiv:1211.5063.
    """
    return nn.utils.clip_grad_norm_(parameters, max_norm)


def clipped_gradients(fn: Callable[..., Any], case: tuple[Any, ...]) -> tuple[Any, ...]:
    """Give fresh parameters the case's gradients and call ``fn(parameters, max_norm)``.

    Returns the total norm it reports (as a float) and the gradients it leaves behind.
    """
    grads, max_norm = case
    params = [torch.zeros_like(t, requires_grad=True) for t in grads]
    for p, t in zip(params, grads, strict=True):
        p.grad = t.clone()
    total = fn(params, max_norm)
    return float(total), tuple(p.grad for p in params)


def modules_with_gradients() -> list[tuple[nn.Module]]:
    """Modules holding gradients of a fixed loss.

    An MLP, a small DCGAN discriminator (BatchNorm, a bias-free conv) and an MLP whose first
    layer is frozen (no gradient).
    """
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


def norms_by_layer(fn: Callable[..., Any], case: tuple[Any, ...]) -> tuple[Any, ...]:
    """``fn(module)`` as (sorted layer names, their norms as floats), comparable entry by entry."""
    norms = fn(*case)
    names = tuple(sorted(norms))
    return names, tuple(float(norms[name]) for name in names)


EXERCISES: dict[str, Exercise] = {
    "init_std": Exercise(reference=init_std, cases=weight_shapes, evaluate=as_float, rtol=1e-6),
    "clip_grad_norm": Exercise(
        reference=clip_grad_norm, cases=gradient_sets, evaluate=clipped_gradients
    ),
    "layer_grad_norms": Exercise(
        reference=tricks.layer_grad_norms, cases=modules_with_gradients, evaluate=norms_by_layer
    ),
}
