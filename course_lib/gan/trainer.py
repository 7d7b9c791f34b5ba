"""GANTrainer: a :class:`course_lib.train.Trainer` of a :class:`~course_lib.gan.step.GANStep`,
built from G and D with the DCGAN defaults, plus sampling.

``GANTrainer(G, D, loss="hinge", lr_g=1e-4)`` is the same as
``Trainer(GANStep(G, D, Adam(G.parameters(), 1e-4, (0.5, 0.999)), Adam(...), get_loss("hinge")))``
with the arguments checked; :meth:`generate` and :meth:`sample_z` draw from the run's own
sampling stream, so that looking at samples never changes how training goes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from course_lib import runtime
from course_lib._checks import check_int, check_number
from course_lib._io import eval_mode
from course_lib.gan import tricks
from course_lib.gan.losses import GANLoss, get_loss
from course_lib.gan.step import LOSS_KEYS, Augment, GANStep
from course_lib.train import Trainer


class GANTrainer(Trainer):
    """Trains a generator G and a discriminator D with Adam; see :meth:`fit` and :meth:`train_step`.

    Defaults follow DCGAN (Radford et al. 2016, arXiv:1511.06434, Section 4): Adam with lr 2e-4
    and betas (0.5, 0.999) for both players. ``loss`` is a name in :data:`course_lib.gan.LOSSES`
    or a :class:`~course_lib.gan.losses.GANLoss`. ``device`` None picks one with
    :func:`course_lib.runtime.choose_device`; the models are moved there. ``amp`` None means on
    for CUDA (bf16 autocast where supported, else fp16 with a GradScaler) and off elsewhere.
    ``seed`` fixes the trainer's random streams (z, data order); it does not re-initialize G or D.
    For another optimizer (e.g. the WGAN paper's RMSprop), build a
    :class:`~course_lib.gan.step.GANStep` and train it with :class:`course_lib.train.Trainer`.

    Stabilization options (see :mod:`course_lib.gan.tricks`): ``augment(x, step)`` transforms every
    input of D, real and fake, in both players' steps (DiffAugment, instance noise);
    ``ema_decay`` keeps an exponential moving average of G in :attr:`G_ema`
    (``generate(..., ema=True)`` samples from it); ``grad_clip`` rescales each player's
    gradient to a global L2 norm of at most this value before its optimizer step
    (Pascanu et al. 2013, arXiv:1211.5063).
    """

    algorithm: GANStep

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        *,
        loss: str | GANLoss = "nonsaturating",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        n_critic: int = 1,
        device: str | torch.device | None = None,
        amp: bool | None = None,
        seed: int = 0,
        augment: Augment | None = None,
        ema_decay: float | None = None,
        grad_clip: float | None = None,
    ):
        if not isinstance(G, nn.Module) or not isinstance(D, nn.Module):
            raise ValueError("G and D must be torch.nn.Module instances, e.g. DCGANGenerator().")
        latent_dim = getattr(G, "latent_dim", None)
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(
                f"G needs an int attribute latent_dim >= 1 (the width of z), got {latent_dim!r}; "
                "set G.latent_dim in its constructor."
            )
        for name, lr in (("lr_g", lr_g), ("lr_d", lr_d)):
            check_number(name, lr, 0.0, strict=True, hint="try 2e-4")
        if (
            not isinstance(betas, Sequence)
            or len(betas) != 2
            or not all(isinstance(b, int | float) and 0.0 <= b < 1.0 for b in betas)
        ):
            raise ValueError(
                f"betas must be two numbers in [0, 1), got {betas!r}; try (0.5, 0.999)."
            )
        check_int("n_critic", n_critic, 1)
        if augment is not None and not callable(augment):
            raise ValueError(
                f"augment must be a function augment(x, step) -> x, got {type(augment).__name__}."
            )
        if grad_clip is not None and (
            isinstance(grad_clip, bool)
            or not isinstance(grad_clip, int | float)
            or not 0 < grad_clip < math.inf
        ):
            raise ValueError(f"grad_clip must be None or a finite number > 0, got {grad_clip!r}.")
        loss = get_loss(loss)
        self.lr_g, self.lr_d = float(lr_g), float(lr_d)
        self.betas = (float(betas[0]), float(betas[1]))
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        where = runtime.choose_device(None if device is None else str(device))
        G, D = G.to(where), D.to(where)
        super().__init__(
            GANStep(
                G,
                D,
                opt_g=torch.optim.Adam(G.parameters(), lr=self.lr_g, betas=self.betas),
                opt_d=torch.optim.Adam(D.parameters(), lr=self.lr_d, betas=self.betas),
                loss=loss,
                n_critic=n_critic,
                augment=augment,
                G_ema=None if ema_decay is None else tricks.ema_generator(G, ema_decay),
                grad_clip=None if grad_clip is None else float(grad_clip),
            ),
            device=where,
            amp=amp,
            seed=seed,
        )

    # the step's parts, under the names the notebooks use
    G = property(lambda self: self.algorithm.G)
    D = property(lambda self: self.algorithm.D)
    G_ema = property(lambda self: self.algorithm.G_ema)
    opt_g = property(lambda self: self.algorithm.opt_g)
    opt_d = property(lambda self: self.algorithm.opt_d)
    loss = property(lambda self: self.algorithm.loss)
    n_critic = property(lambda self: self.algorithm.n_critic)
    augment = property(lambda self: self.algorithm.augment)
    grad_clip = property(lambda self: self.algorithm.grad_clip)
    grad_norms_before_clip = property(lambda self: self.algorithm.grad_norms)

    def train_step(self, x_real: Tensor | Sequence[Tensor]) -> dict[str, float]:
        """One training step: ``n_critic`` D updates, then one G update; returns the floats of
        :data:`LOSS_KEYS` (from the last D update: losses, mean D logit on real and on fake).

        ``x_real`` is one real batch (N, ...), reused by every D update, or a sequence of
        ``n_critic`` batches, one per D update as in Goodfellow et al. 2014 (arXiv:1406.2661),
        Algorithm 1. z is drawn fresh for each D update; the G update reuses the last fake batch
        (as pytorch/examples' DCGAN does), which saves one generator forward pass per step.
        """
        reals = [x_real] * self.n_critic if isinstance(x_real, Tensor) else list(x_real)
        if len(reals) != self.n_critic or not all(isinstance(x, Tensor) for x in reals):
            raise ValueError(
                f"x_real must be a tensor or a sequence of n_critic={self.n_critic} tensors, "
                f"got {type(x_real).__name__} of length {len(reals)}."
            )
        self.G.train()
        self.D.train()
        out = self.algorithm.update(self, [x.to(self.device, non_blocking=True) for x in reals])
        self.step += 1
        stats = torch.stack(list(out.values())).float().tolist()
        return dict(zip(LOSS_KEYS, stats, strict=True))

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I) of shape (n, latent_dim) on the trainer's device.

        Draws from ``generator``, else from the trainer's sampling stream (saved in checkpoints,
        separate from the training stream: sampling never changes how training goes).
        """
        check_int("n", n, 1)
        gen = self.generator("sample") if generator is None else generator
        z = torch.randn(n, self.G.latent_dim, generator=gen, device=gen.device)
        return z.to(self.device)

    def generate(self, n: int | None = None, z: Tensor | None = None, ema: bool = False) -> Tensor:
        """G(z) for a given ``z`` or ``n`` fresh draws of :meth:`sample_z`, on the trainer's device.

        Runs G (or, with ``ema=True``, the moving average :attr:`G_ema`) in eval mode (BatchNorm
        uses its running statistics) without gradients, then restores its previous mode.
        """
        if (n is None) == (z is None):
            raise ValueError("pass exactly one of n (a number of samples) or z (a latent batch).")
        if ema and self.G_ema is None:
            raise ValueError("ema=True needs a trainer built with ema_decay, e.g. 0.999.")
        G = self.G_ema.module if ema else self.G
        z = self.sample_z(n) if z is None else z.to(self.device)  # type: ignore[arg-type]
        with eval_mode(G):
            return G(z)
