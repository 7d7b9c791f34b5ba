"""Exercises of notebook 02, DCGAN: the discriminator's architecture and the DCGAN init."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from course_lib.check import Exercise
from course_lib.gan import models


def init_statistics(init_fn: Callable[[nn.Module], None], case: tuple[int]) -> tuple[float, ...]:
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


def module_signature(cls: Callable[..., nn.Module], case: tuple[int, int]) -> tuple[Any, ...]:
    """Build ``cls(image_size, channels, width=8)``; return its output shape, size and layers.

    Layers are compared by their repr without ``inplace``: kernel, stride, padding, bias and
    LeakyReLU's slope count (0.01, PyTorch's default, instead of DCGAN's 0.2 is a mistake).
    """
    image_size, channels = case
    torch.manual_seed(0)
    module = cls(image_size=image_size, channels=channels, width=8)
    x = torch.randn(5, channels, image_size, image_size)
    out = module(x)
    layers = tuple(
        re.sub(r",? ?inplace=True", "", repr(m)) for m in module.modules() if not list(m.children())
    )
    n_params = sum(p.numel() for p in module.parameters())
    return tuple(out.shape), n_params, layers


EXERCISES: dict[str, Exercise] = {
    "init": Exercise(
        reference=models.dcgan_init_,
        cases=lambda: [(0,), (1,)],
        evaluate=init_statistics,
        rtol=0.0,
        atol=0.006,
    ),
    "discriminator": Exercise(
        reference=models.DCGANDiscriminator,
        cases=lambda: [(28, 1), (32, 1), (32, 3), (64, 3)],
        evaluate=module_signature,
    ),
}
