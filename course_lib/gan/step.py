"""The GAN training step: Goodfellow et al. 2014 (arXiv:1406.2661), Algorithm 1, in one screen.

Read :meth:`GANStep.update`: ``n_critic`` discriminator updates (each on a fresh real batch and
fresh z, G fixed), then one generator update through D. The objectives come from a
:class:`~course_lib.gan.losses.GANLoss` (the BCE game, WGAN, WGAN-GP, LSGAN, hinge, R1), and the
options are the stabilization tricks of :mod:`course_lib.gan.tricks`. Everything around the step
(device, AMP, batches, history, checkpoints) is :class:`course_lib.train.Trainer`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from course_lib.gan.losses import GANLoss, get_loss

if TYPE_CHECKING:
    from course_lib.train import Trainer
    from course_lib.train.batches import Batch

Augment = Callable[[Tensor, int], Tensor]
"""What D sees: ``augment(x, step) -> x'``, e.g. :class:`course_lib.gan.tricks.DiffAugment`."""

LOSS_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
"""What a step returns: both losses and the mean D logits on the real and the fake batch."""


@dataclass
class GANStep:
    """One GAN update: ``n_critic`` D steps, then one G step. Train it with a Trainer.

    ``G`` needs an int attribute ``latent_dim`` (the width of z). The optimizers are any
    ``torch.optim`` optimizers over G's and D's parameters (DCGAN: Adam(2e-4, (0.5, 0.999));
    the WGAN paper: RMSprop(5e-5)). ``augment(x, step)`` transforms every input of D, real and
    fake, in both players' steps (DiffAugment, instance noise). ``G_ema`` (an AveragedModel of
    G, see :func:`course_lib.gan.tricks.ema_generator`) is updated after each G step.
    ``grad_clip`` rescales each player's gradient to a global L2 norm of at most this value
    (Pascanu et al. 2013, arXiv:1211.5063); the norms before clipping
    of the last update are kept in :attr:`grad_norms` (:class:`~course_lib.gan.tricks.GradNorms`
    reads them).
    """

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: GANLoss = field(default_factory=lambda: get_loss("nonsaturating"))
    n_critic: int = 1
    augment: Augment | None = None
    G_ema: AveragedModel | None = None
    grad_clip: float | None = None
    progress_keys: ClassVar[tuple[str, ...]] = ("d_loss", "g_loss")

    def __post_init__(self) -> None:
        # each player's gradient norm before clipping in its last update (None without clipping)
        self.grad_norms: dict[str, Tensor | None] = {"G": None, "D": None}

    def hparams(self) -> dict[str, Any]:
        """What a checkpoint records besides the fields: loss and EMA by value, the latent size."""
        return {
            "loss": self.loss.name,
            "latent_dim": self.G.latent_dim,
            "G_ema": None if self.G_ema is None else getattr(self.G_ema, "decay", "EMA"),
        }

    def step(self, trainer: Trainer, batch: Batch) -> dict[str, Tensor]:
        """One training step in a fit: D sees ``n_critic`` consecutive real batches."""
        reals = [batch] + [trainer.next_batch() for _ in range(self.n_critic - 1)]
        # an unconditional GAN ignores labels: (images, labels) from a TensorDataset -> images
        return self.update(trainer, [x[0] if isinstance(x, tuple) else x for x in reals])

    def _d_input(self, x: Tensor, step: int) -> Tensor:
        return x if self.augment is None else self.augment(x, step)

    def update(self, trainer: Trainer, reals: Sequence[Tensor]) -> dict[str, Tensor]:
        """Algorithm 1 on the given real batches, one per D update; returns device tensors."""
        G, D, loss, s = self.G, self.D, self.loss, trainer.step
        z_stream = trainer.generator("z")
        for i, x_real in enumerate(reals):
            last = i == len(reals) - 1
            z = torch.randn(
                x_real.shape[0], G.latent_dim, device=trainer.device, generator=z_stream
            )
            with trainer.autocast():
                # Only the last fake batch is reused by the G step; earlier ones need no graph.
                with torch.set_grad_enabled(last):
                    x_fake = G(z)
                # (1) D step with G fixed (the fake is detached): minimize loss.d_loss, for BCE
                # the ascent on log D(x) + log(1 - D(G(z))).
                x_real_d, x_fake_d = self._d_input(x_real, s), self._d_input(x_fake.detach(), s)
                logits_real = D(x_real_d)
                logits_fake = D(x_fake_d)
                d_loss = loss.d_loss(logits_real, logits_fake)
                if loss.d_penalty is not None:
                    d_loss = d_loss + loss.d_penalty(D, x_real_d, x_fake_d)
            self.grad_norms["D"] = trainer.optimize(d_loss, self.opt_d, self.grad_clip)
            if loss.after_d_step is not None:
                with torch.no_grad():
                    loss.after_d_step(D)

        # (2) G step on the same fake batch, NOT detached: the gradient flows through D into G.
        # D's weights need no gradient here; switching them off skips their weight-grad kernels.
        d_params = [p for p in D.parameters() if p.requires_grad]
        for p in d_params:
            p.requires_grad_(False)
        try:
            with trainer.autocast():
                g_loss = loss.g_loss(D(self._d_input(x_fake, s)))
            self.grad_norms["G"] = trainer.optimize(g_loss, self.opt_g, self.grad_clip)
        finally:
            for p in d_params:
                p.requires_grad_(True)
        if self.G_ema is not None:
            self.G_ema.update_parameters(G)
        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": logits_real.detach().mean(),
            "d_fake": logits_fake.detach().mean(),
        }
