"""Generators and discriminators: MLPs for 2-D toy data and DCGAN for 28/32/64-pixel images.

Every generator maps z of shape (N, latent_dim) to samples and has the attribute ``latent_dim``;
every discriminator maps samples to logits of shape (N,) (no sigmoid: the losses take logits).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

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


def _norm_layer(norm: str, channels: int) -> list[nn.Module]:
    """The normalization layer named ``norm`` for ``channels`` feature maps ([] for "none")."""
    if norm == "batch":
        return [nn.BatchNorm2d(channels)]
    if norm == "layer":  # per example over (C, H, W), with a per-channel affine
        return [nn.GroupNorm(1, channels)]
    if norm == "instance":
        return [nn.InstanceNorm2d(channels, affine=True)]
    return []


def _check_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


def _check_choice(name: str, value: object, choices: tuple[int, ...]) -> int:
    if isinstance(value, bool) or value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}; "
            f"resize the data or pick a supported {name}."
        )
    return value  # type: ignore[return-value]


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
    _check_int("hidden", hidden)
    _check_int("depth", depth)
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
    Reference: Goodfellow et al. 2014, arXiv:1406.2661, Section 5 (both players are MLPs there).
    Shapes: z (N, latent_dim) -> (N, out_dim). PyTorch's default init.
    """

    def __init__(self, latent_dim: int = 2, out_dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        self.latent_dim = _check_int("latent_dim", latent_dim)
        self.out_dim = _check_int("out_dim", out_dim)
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

    Reference: Goodfellow et al. 2014, arXiv:1406.2661, Section 5 (MLP players); the
    LeakyReLU(0.2) is Radford et al. 2016's choice for D (arXiv:1511.06434, Section 3).
    Shapes: x (N, in_dim) -> logits (N,). PyTorch's default init.
    """

    def __init__(self, in_dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        self.in_dim = _check_int("in_dim", in_dim)
        self.net = _mlp(in_dim, hidden, depth, 1, lambda: nn.LeakyReLU(0.2))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(
                f"x must have shape (N, {self.in_dim}), got {tuple(x.shape)}; "
                "flatten the samples or set in_dim to their number of features."
            )
        return self.net(x).flatten()  # (N,)


def _dcgan_plan(image_size: int, width: int) -> tuple[int, list[int]]:
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
        self.latent_dim = _check_int("latent_dim", latent_dim)
        self.image_size = _check_choice("image_size", image_size, DCGAN_IMAGE_SIZES)
        self.channels = _check_choice("channels", channels, DCGAN_CHANNELS)
        self.width = _check_int("width", width)
        base, widths = _dcgan_plan(image_size, width)
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
    Init: :func:`dcgan_init_`. Shapes: x (N, C, S, S) -> logits (N,).
    """

    def __init__(
        self, image_size: int = 28, channels: int = 1, width: int = 64, norm: str = "batch"
    ):
        super().__init__()
        self.image_size = _check_choice("image_size", image_size, DCGAN_IMAGE_SIZES)
        self.channels = _check_choice("channels", channels, DCGAN_CHANNELS)
        self.width = _check_int("width", width)
        if norm not in DISCRIMINATOR_NORMS:
            raise ValueError(
                f"norm must be one of {', '.join(map(repr, DISCRIMINATOR_NORMS))}, got {norm!r}; "
                "use 'layer' or 'none' for a WGAN-GP critic."
            )
        self.norm = norm
        base, widths = _dcgan_plan(image_size, width)
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


# ---------------------------------------------------------------------------------------- VAEs

VAE_LIKELIHOODS = ("bernoulli", "gaussian")
"""Decoder likelihoods p(x|z) that :class:`VAE` supports."""


def _check_image(x: Tensor, shape: tuple[int, int, int], who: str) -> None:
    if x.dim() != 4 or tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"x must have shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}; "
            f"resize the images or build the {who} with matching image_size/channels."
        )


def _check_z(z: Tensor, latent_dim: int) -> None:
    if z.dim() != 2 or z.shape[1] != latent_dim:
        raise ValueError(
            f"z must have shape (N, {latent_dim}), got {tuple(z.shape)}; "
            f"sample it with torch.randn(N, {latent_dim}) or take mu from the encoder."
        )


def _vae_mlp(in_dim: int, hidden: int, depth: int, out_dim: int, batch_norm: bool) -> nn.Sequential:
    """``depth`` blocks Linear -> [BatchNorm1d] -> ReLU, then a linear output layer."""
    _check_int("hidden", hidden)
    _check_int("depth", depth)
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        # BatchNorm subtracts the batch mean, which would cancel a bias: none before it
        layers += [nn.Linear(width, hidden, bias=not batch_norm)]
        layers += [nn.BatchNorm1d(hidden)] if batch_norm else []
        layers.append(nn.ReLU())
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """VAE encoder q(z|x) as an MLP: flattened image -> (mu, logvar) of a diagonal Gaussian.

    ``depth`` hidden blocks Linear -> (BatchNorm1d if ``batch_norm``) -> ReLU, then one linear
    layer whose 2 * latent_dim outputs are split into the mean and the log-variance.
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Appendix C.2 (Gaussian MLP encoder).
    Shapes: x (N, channels, image_size, image_size) -> mu, logvar, each (N, latent_dim).
    """

    def __init__(
        self,
        latent_dim: int = 16,
        image_size: int = 28,
        channels: int = 1,
        hidden: int = 256,
        depth: int = 2,
        batch_norm: bool = False,
    ):
        super().__init__()
        self.latent_dim = _check_int("latent_dim", latent_dim)
        _check_int("channels", channels)
        self.image_shape = (channels, _check_int("image_size", image_size), image_size)
        self.net = _vae_mlp(channels * image_size**2, hidden, depth, 2 * latent_dim, batch_norm)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_image(x, self.image_shape, "encoder")
        mu, logvar = self.net(x.flatten(1)).chunk(2, dim=1)  # (N, d) each
        return mu, logvar


class MLPDecoder(nn.Module):
    """VAE decoder p(x|z) as an MLP: z -> one parameter per pixel (Bernoulli logits or means).

    ``depth`` hidden blocks Linear -> (BatchNorm1d if ``batch_norm``) -> ReLU, then a linear
    output reshaped to an image. No output activation: for a Bernoulli likelihood the output is
    the logits (the losses take logits), for a Gaussian one the mean, unbounded.
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Appendix C.1 (Bernoulli MLP decoder).
    Shapes: z (N, latent_dim) -> (N, channels, image_size, image_size).
    """

    def __init__(
        self,
        latent_dim: int = 16,
        image_size: int = 28,
        channels: int = 1,
        hidden: int = 256,
        depth: int = 2,
        batch_norm: bool = False,
    ):
        super().__init__()
        self.latent_dim = _check_int("latent_dim", latent_dim)
        _check_int("channels", channels)
        self.image_shape = (channels, _check_int("image_size", image_size), image_size)
        self.net = _vae_mlp(latent_dim, hidden, depth, channels * image_size**2, batch_norm)

    def forward(self, z: Tensor) -> Tensor:
        _check_z(z, self.latent_dim)
        return self.net(z).reshape(z.shape[0], *self.image_shape)


class ConvEncoder(nn.Module):
    """VAE encoder q(z|x) as a CNN: strided convolutions -> linear -> (mu, logvar).

    The DCGAN discriminator's layout (Radford et al. 2016, arXiv:1511.06434, Section 3) with ReLU
    and a linear head: (C, 28, 28) -> (w, 14, 14) -> (2w, 7, 7) -> 2 * latent_dim for 28 pixels,
    one more halving per level for 32 and 64. BatchNorm after every convolution but the first
    when ``batch_norm``. Shapes: x (N, C, S, S) -> mu, logvar, each (N, latent_dim).
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Section 3 (any differentiable encoder).
    """

    def __init__(
        self,
        latent_dim: int = 16,
        image_size: int = 28,
        channels: int = 1,
        width: int = 32,
        batch_norm: bool = False,
    ):
        super().__init__()
        self.latent_dim = _check_int("latent_dim", latent_dim)
        _check_choice("image_size", image_size, DCGAN_IMAGE_SIZES)
        _check_choice("channels", channels, DCGAN_CHANNELS)
        self.image_shape = (channels, image_size, image_size)
        base, widths = _dcgan_plan(image_size, _check_int("width", width))
        widths = widths[::-1]  # fine to coarse: w, 2w, ...
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.ReLU()]  # S/2
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm)]  # halves H and W
            layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
            layers.append(nn.ReLU())
        layers += [nn.Flatten(), nn.Linear(widths[-1] * base * base, 2 * latent_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_image(x, self.image_shape, "encoder")
        mu, logvar = self.net(x).chunk(2, dim=1)  # (N, d) each
        return mu, logvar


class ConvDecoder(nn.Module):
    """VAE decoder p(x|z) as a CNN: linear -> transposed convolutions -> one parameter per pixel.

    The DCGAN generator's layout (Radford et al. 2016, arXiv:1511.06434, Section 3) with a linear
    first layer: latent_dim -> (2w, 7, 7) -> (w, 14, 14) -> (C, 28, 28) for 28 pixels. No output
    activation (Bernoulli logits or Gaussian means). BatchNorm after every hidden layer when
    ``batch_norm``. Shapes: z (N, latent_dim) -> (N, C, S, S).
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Section 3 (any differentiable decoder).
    """

    def __init__(
        self,
        latent_dim: int = 16,
        image_size: int = 28,
        channels: int = 1,
        width: int = 32,
        batch_norm: bool = False,
    ):
        super().__init__()
        self.latent_dim = _check_int("latent_dim", latent_dim)
        _check_choice("image_size", image_size, DCGAN_IMAGE_SIZES)
        _check_choice("channels", channels, DCGAN_CHANNELS)
        self.image_shape = (channels, image_size, image_size)
        base, widths = _dcgan_plan(image_size, _check_int("width", width))
        layers: list[nn.Module] = [nn.Linear(latent_dim, widths[0] * base * base)]
        layers += [nn.BatchNorm1d(widths[0] * base * base)] if batch_norm else []
        layers += [nn.ReLU(), nn.Unflatten(1, (widths[0], base, base))]  # (N, w0, b, b)
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not batch_norm)]  # doubles
            layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
            layers.append(nn.ReLU())
        layers.append(nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1))  # (N, C, S, S)
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        _check_z(z, self.latent_dim)
        return self.net(z)


class VAE(nn.Module):
    """A variational autoencoder: encoder q(z|x), decoder p(x|z) and prior p(z) = N(0, I).

    ``likelihood`` names p(x|z):
    - "bernoulli": the decoder outputs logits; x must lie in [0, 1] (binary pixels give a true
      probability; grey values in [0, 1] the usual cross-entropy). The course's images are in
      [-1, 1]: pass (x + 1) / 2, or binarize them with (x > 0).float().
    - "gaussian": the decoder outputs the mean, for x in any real range (e.g. the course's
      [-1, 1]); one standard deviation sigma shared by all pixels, fixed (``learn_sigma=False``)
      or learned as a parameter log_sigma (the calibrated decoder of Rybkin et al. 2021,
      arXiv:2006.13202).
    The encoder sees (x - input_shift) / input_scale (input normalization inside the model, saved
    with it); the decoder models x itself. The ELBO, the importance-weighted bound and the
    likelihoods are computed in :mod:`course_lib.vae`.
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Section 3 and Appendix C.
    Shapes: encode x (N, ...) -> mu, logvar (N, latent_dim); decode z (N, latent_dim) -> (N, ...).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        *,
        likelihood: str = "bernoulli",
        sigma: float = 1.0,
        learn_sigma: bool = False,
        input_shift: float | Tensor = 0.0,
        input_scale: float | Tensor = 1.0,
    ):
        super().__init__()
        latent_dims = (getattr(encoder, "latent_dim", None), getattr(decoder, "latent_dim", None))
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in latent_dims) or (
            latent_dims[0] != latent_dims[1]
        ):
            raise ValueError(
                f"encoder and decoder need the same int attribute latent_dim, got {latent_dims}; "
                "build both with the same latent_dim."
            )
        if likelihood not in VAE_LIKELIHOODS:
            raise ValueError(
                f"likelihood must be one of {', '.join(VAE_LIKELIHOODS)}, got {likelihood!r}."
            )
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not 0 < sigma < 1e6:
            raise ValueError(f"sigma must be a number > 0, got {sigma!r}; try 1.0 or 0.1.")
        if learn_sigma and likelihood != "gaussian":
            raise ValueError("learn_sigma=True needs likelihood='gaussian' (Bernoulli has none).")
        scale = torch.as_tensor(input_scale, dtype=torch.float32)
        if not bool((scale > 0).all()):
            raise ValueError(f"input_scale must be > 0, got {input_scale!r}.")
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim: int = latent_dims[0]  # type: ignore[assignment]
        self.likelihood = likelihood
        self.learn_sigma = bool(learn_sigma)
        log_sigma = torch.tensor(float(sigma)).log()
        if self.learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)
        self.register_buffer("input_shift", torch.as_tensor(input_shift, dtype=torch.float32))
        self.register_buffer("input_scale", scale)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of q(z|x), each (N, latent_dim)."""
        return self.encoder((x - self.input_shift) / self.input_scale)

    def decode(self, z: Tensor) -> Tensor:
        """The decoder's output for z: Bernoulli logits or Gaussian means, shaped like x."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Same as :meth:`encode`: (mu, logvar)."""
        return self.encode(x)

    def decoder_mean(self, decoded: Tensor) -> Tensor:
        """E[x|z] from the decoder's output: sigmoid(logits) (in [0, 1]) or the Gaussian mean."""
        return torch.sigmoid(decoded) if self.likelihood == "bernoulli" else decoded
