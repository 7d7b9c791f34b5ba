"""GAN models: MLP G and D for 2-D toy data, and DCGAN's G and D (Radford et al. 2016,
arXiv:1511.06434, Section 3) with its N(0, 0.02) initialization."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from course_lib._checks import check_choice, check_int

DCGAN_IMAGE_SIZES = (28, 32, 64)
"""Image sizes the DCGAN models support: 28 (7 -> 14 -> 28) and 32, 64 (4 -> 8 -> ...)."""

DCGAN_CHANNELS = (1, 3)
"""Channel counts the DCGAN models support: grey-scale or RGB."""


WEIGHT_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
"""The layer types that weight initialization and spectral normalization act on."""

DISCRIMINATOR_NORMS = ("batch", "layer", "instance", "none")
"""Normalizations :class:`DCGANDiscriminator` supports in its hidden layers."""

_RESIZE = "resize the data or pick a supported size"


def _norm_layer(norm: str, channels: int) -> list[nn.Module]:
    """The normalization layer named ``norm`` for ``channels`` feature maps ([] for "none")."""
    if norm == "batch":
        return [nn.BatchNorm2d(channels)]
    if norm == "layer":  # per example over (C, H, W), with a per-channel affine
        return [nn.GroupNorm(1, channels)]
    if norm == "instance":
        return [nn.InstanceNorm2d(channels, affine=True)]
    return []


def _check_latent(z: Tensor, latent_dim: int) -> None:
    ok = z.dim() == 2 or (z.dim() == 4 and z.shape[2:] == (1, 1))
    if not ok or z.shape[1] != latent_dim:
        raise ValueError(
            f"z must have shape (N, {latent_dim}), got {tuple(z.shape)}; "
            f"sample it with torch.randn(N, {latent_dim}) or trainer.sample_z(N)."
        )


def dcgan_init_(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """DCGAN init, in place: weights ~ N(0, 0.02), BatchNorm scales ~ N(1, 0.02), biases 0.

    Applies to every Conv*, ConvTranspose* and Linear layer (weights N(0, 0.02)) and every
    BatchNorm layer (scale N(1, 0.02)) inside ``module``; all their biases are set to 0.
    Reference: Radford et al. 2016, arXiv:1511.06434, Section 4 ("All weights were initialized
    from a zero-centered Normal distribution with standard deviation 0.02"); the N(1, 0.02)
    BatchNorm scale follows pytorch/examples' DCGAN code.
    ``generator`` makes the draw reproducible without touching the global RNG. Returns None.
    """
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, WEIGHT_LAYERS):
                nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
            elif isinstance(m, norms) and m.affine:
                nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
            else:
                continue
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _mlp(
    in_dim: int, hidden: int, depth: int, out_dim: int, activation: Callable[[], nn.Module]
) -> nn.Sequential:
    """``depth`` hidden layers Linear(hidden) -> activation(), then a linear output layer."""
    check_int("hidden", hidden)
    check_int("depth", depth)
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), activation()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """MLP generator for 2-D toy data: ``depth`` hidden layers Linear -> ReLU, then a linear output.

    The output is unbounded (toy data such as a ring of radius 2 lies outside [-1, 1]).
    Reference: Goodfellow et al. 2014, arXiv:1406.2661, Section 3 (the framework "is most
    straightforward to apply when the models are both multilayer perceptrons").
    Shapes: z (N, latent_dim) -> (N, out_dim). PyTorch's default init.
    """

    def __init__(self, latent_dim: int = 2, out_dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        self.latent_dim = check_int("latent_dim", latent_dim)
        self.out_dim = check_int("out_dim", out_dim)
        self.net = _mlp(latent_dim, hidden, depth, out_dim, nn.ReLU)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"z must have shape (N, {self.latent_dim}), got {tuple(z.shape)}; "
                f"sample it with torch.randn(N, {self.latent_dim}) or trainer.sample_z(N)."
            )
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """MLP discriminator for 2-D toy data: ``depth`` hidden layers Linear -> LeakyReLU(0.2), logits.

    Reference: Goodfellow et al. 2014, arXiv:1406.2661, Section 3 (MLP players); the
    LeakyReLU(0.2) is Radford et al. 2016's choice for D (arXiv:1511.06434, Section 3).
    Shapes: x (N, in_dim) -> logits (N,). PyTorch's default init.
    """

    def __init__(self, in_dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        self.in_dim = check_int("in_dim", in_dim)
        self.net = _mlp(in_dim, hidden, depth, 1, lambda: nn.LeakyReLU(0.2))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(
                f"x must have shape (N, {self.in_dim}), got {tuple(x.shape)}; "
                "flatten the samples or set in_dim to their number of features."
            )
        return self.net(x).flatten()  # (N,)


def dcgan_plan(image_size: int, width: int) -> tuple[int, list[int]]:
    """Base resolution and channels per resolution, coarse to fine, e.g. 28 -> (7, [2w, w])."""
    base = 7 if image_size == 28 else 4
    n_levels = {28: 2, 32: 3, 64: 4}[image_size]
    return base, [width * 2 ** (n_levels - 1 - i) for i in range(n_levels)]


class DCGANGenerator(nn.Module):
    """DCGAN generator: z -> ConvTranspose stack with BatchNorm + ReLU -> Tanh image in [-1, 1].

    Radford et al. 2016 rules (arXiv:1511.06434, Section 3): fractionally-strided convolutions
    instead of upsampling/pooling, BatchNorm in every layer but the output, ReLU activations with
    Tanh at the output, no fully connected hidden layers (the projection of z is a 1x1 -> kxk
    transposed convolution, the paper's "matrix multiplication" reshaped to a 4-D tensor).
    Layout: (N, latent_dim, 1, 1) -> (8w, 4, 4) -> (4w, 8, 8) -> (2w, 16, 16) -> (w, 32, 32)
    -> (C, 64, 64) for 64 pixels, the last three steps for 32, and (2w, 7, 7) -> (w, 14, 14)
    -> (C, 28, 28) for 28. Convolutions followed by BatchNorm have no bias (it would be cancelled).
    Init: :func:`dcgan_init_`. Shapes: z (N, latent_dim) or (N, latent_dim, 1, 1) -> (N, C, S, S).
    """

    def __init__(
        self, latent_dim: int = 64, image_size: int = 28, channels: int = 1, width: int = 64
    ):
        super().__init__()
        self.latent_dim = check_int("latent_dim", latent_dim)
        self.image_size = check_choice(
            "image_size",
            image_size,
            DCGAN_IMAGE_SIZES,
            hint="resize the data or pick a supported image_size",
        )
        self.channels = check_choice(
            "channels",
            channels,
            DCGAN_CHANNELS,
            hint="resize the data or pick a supported channels",
        )
        self.width = check_int("width", width)
        base, widths = dcgan_plan(image_size, width)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], base, 1, 0, bias=False),  # (N, w0, b, b)
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),  # doubles H and W
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]  # (N, C, S, S)
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: Tensor) -> Tensor:
        _check_latent(z, self.latent_dim)
        return self.net(z.reshape(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: strided Conv stack with BatchNorm + LeakyReLU(0.2) -> one logit.

    Radford et al. 2016 rules (arXiv:1511.06434, Section 3): strided convolutions instead of
    pooling, BatchNorm in every layer but the input layer, LeakyReLU with slope 0.2, no fully
    connected hidden layers (the last layer is a convolution over the whole final feature map).
    Layout mirrors :class:`DCGANGenerator`: (C, 64, 64) -> (w, 32, 32) -> (2w, 16, 16)
    -> (4w, 8, 8) -> (8w, 4, 4) -> (1, 1, 1) for 64 pixels; 28 -> 14 -> 7 -> 1 for 28.
    ``norm`` replaces the hidden layers' BatchNorm: "batch" (DCGAN, the default), "layer"
    (GroupNorm with one group: normalizes each example on its own, the choice of Gulrajani et al.
    2017, arXiv:1704.00028, Section 4, for a WGAN-GP critic, whose per-example gradient penalty
    BatchNorm invalidates), "instance" (InstanceNorm with learned scale), or "none".
    Init: :func:`dcgan_init_`, for every ``norm``; with ``norm="none"`` nothing undoes its small
    scale and the signal shrinks layer by layer (notebook 04), so re-initialize such a D if it
    should start sensibly. Shapes: x (N, C, S, S) -> logits (N,).
    """

    def __init__(
        self, image_size: int = 28, channels: int = 1, width: int = 64, norm: str = "batch"
    ):
        super().__init__()
        self.image_size = check_choice(
            "image_size",
            image_size,
            DCGAN_IMAGE_SIZES,
            hint="resize the data or pick a supported image_size",
        )
        self.channels = check_choice(
            "channels",
            channels,
            DCGAN_CHANNELS,
            hint="resize the data or pick a supported channels",
        )
        self.width = check_int("width", width)
        if norm not in DISCRIMINATOR_NORMS:
            raise ValueError(
                f"norm must be one of {', '.join(map(repr, DISCRIMINATOR_NORMS))}, got {norm!r}; "
                "use 'layer' or 'none' for a WGAN-GP critic."
            )
        self.norm = norm
        base, widths = dcgan_plan(image_size, width)
        widths = widths[::-1]  # fine to coarse: w, 2w, ...
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 4, 2, 1),  # (N, w, S/2, S/2), no BatchNorm on input
            nn.LeakyReLU(0.2),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm == "none"),  # halves H and W
                *_norm_layer(norm, c_out),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, base, 1, 0))  # (N, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}; "
                "resize the images or build the discriminator with matching "
                "image_size/channels."
            )
        return self.net(x).flatten()  # (N,)
