"""The VAE training step: one gradient step on the negative ELBO (Kingma & Welling 2014,
arXiv:1312.6114, Algorithm 1), with the training tips (KL annealing, beta, free bits,
augmentation) as options.

Read :meth:`VAEStep.step`: draw eps, compute the ELBO's terms with the reparameterization, weight
the KL (annealing, beta, free bits), take one optimizer step. Everything around the step (device,
AMP, batches, history, checkpoints) is :class:`course_lib.train.Trainer`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from course_lib.vae.elbo import elbo, vae_loss
from course_lib.vae.models import VAE

if TYPE_CHECKING:
    from course_lib.train import Trainer
    from course_lib.train.batches import Batch

Augment = Callable[[Tensor, int], Tensor]
"""A label-preserving augmentation ``augment(x, step) -> x'``, e.g. ``augment.RandomShift(2)``."""


@dataclass
class VAEStep:
    """One VAE update: minimize :func:`~course_lib.vae.elbo.vae_loss` on a batch.

    The KL weight at step s is ``beta * kl_schedule(s)`` (``kl_schedule`` None: 1), e.g.
    :class:`~course_lib.vae.schedules.LinearAnnealing`; ``free_bits`` (nats per latent dimension)
    switches the KL term to :func:`~course_lib.vae.elbo.free_bits_kl`. ``augment(x, step)``
    transforms each training batch (target and encoder input alike). ``scheduler`` (a
    ``torch.optim.lr_scheduler`` of ``opt``) is stepped once per training step.
    """

    model: VAE
    opt: torch.optim.Optimizer
    scheduler: Any = None
    beta: float = 1.0
    kl_schedule: Callable[[int], float] | None = None
    free_bits: float | None = None
    augment: Augment | None = None
    progress_keys: ClassVar[tuple[str, ...]] = ("elbo", "kl")

    def hparams(self) -> dict[str, Any]:
        """What a checkpoint records besides the fields: the latent size and the likelihood."""
        return {"latent_dim": self.model.latent_dim, "likelihood": self.model.likelihood}

    def kl_weight(self, step: int) -> float:
        """The KL weight at ``step``: beta * kl_schedule(step)."""
        return self.beta * (1.0 if self.kl_schedule is None else float(self.kl_schedule(step)))

    def step(self, trainer: Trainer, batch: Batch) -> dict[str, Tensor | float]:
        """One optimizer step on ``batch`` (images, or (images, labels) from a TensorDataset).

        Returns the means of this batch, in nats per example: the loss minimized, the ELBO
        (beta = 1, no free bits), -log p(x|z) and the KL; and the KL weight and lr of this step.
        """
        x = batch[0] if isinstance(batch, tuple) else batch
        if self.augment is not None:
            x = self.augment(x, trainer.step)
        weight = self.kl_weight(trainer.step)
        with trainer.autocast():
            terms = elbo(self.model, x, generator=trainer.generator("eps"), validate=False)
        loss = vae_loss(terms, beta=weight, free_bits=self.free_bits)
        lr = float(self.opt.param_groups[0]["lr"])  # the lr of this step
        trainer.optimize(loss, self.opt)
        if self.scheduler is not None:
            self.scheduler.step()
        recon, kl = -terms.log_px_z.mean(), terms.kl.mean()
        return {
            "loss": loss.detach(),
            "elbo": -(recon + kl).detach(),
            "recon": recon.detach(),
            "kl": kl.detach(),
            "kl_weight": weight,
            "lr": lr,
        }
