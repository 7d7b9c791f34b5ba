"""VAE models: MLP and convolutional (DCGAN-shaped) encoders and decoders, and :class:`VAE`,
which holds both with the decoder's likelihood (Bernoulli or Gaussian)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib._checks import check_choice, check_int
from course_lib.gan.models import DCGAN_CHANNELS, DCGAN_IMAGE_SIZES, dcgan_plan

# ---------------------------------------------------------------------------------------- VAEs

VAE_LIKELIHOODS = ("bernoulli", "gaussian")
"""Decoder likelihoods p(x|z) that :class:`VAE` supports."""

_RESIZE = "resize the data or pick a supported size"


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
    check_int("hidden", hidden)
    check_int("depth", depth)
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
        self.latent_dim = check_int("latent_dim", latent_dim)
        check_int("channels", channels)
        self.image_shape = (channels, check_int("image_size", image_size), image_size)
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
        self.latent_dim = check_int("latent_dim", latent_dim)
        check_int("channels", channels)
        self.image_shape = (channels, check_int("image_size", image_size), image_size)
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
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Section 3 (a neural-network encoder;
    Section 7 names convolutional encoders and decoders as future work).
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
        self.latent_dim = check_int("latent_dim", latent_dim)
        check_choice(
            "image_size",
            image_size,
            DCGAN_IMAGE_SIZES,
            hint="resize the data or pick a supported image_size",
        )
        check_choice(
            "channels",
            channels,
            DCGAN_CHANNELS,
            hint="resize the data or pick a supported channels",
        )
        self.image_shape = (channels, image_size, image_size)
        base, widths = dcgan_plan(image_size, check_int("width", width))
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
    Reference: Kingma & Welling 2014, arXiv:1312.6114, Section 3 (a neural-network decoder;
    Section 7 names convolutional encoders and decoders as future work).
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
        self.latent_dim = check_int("latent_dim", latent_dim)
        check_choice(
            "image_size",
            image_size,
            DCGAN_IMAGE_SIZES,
            hint="resize the data or pick a supported image_size",
        )
        check_choice(
            "channels",
            channels,
            DCGAN_CHANNELS,
            hint="resize the data or pick a supported channels",
        )
        self.image_shape = (channels, image_size, image_size)
        base, widths = dcgan_plan(image_size, check_int("width", width))
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
