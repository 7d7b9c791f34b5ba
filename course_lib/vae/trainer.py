"""VAETrainer: a :class:`course_lib.train.Trainer` of a :class:`~course_lib.vae.step.VAEStep`,
built from a VAE with Adam, plus sampling, reconstruction, and validation with early stopping.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from course_lib import runtime
from course_lib._checks import check_int, check_number
from course_lib._io import derive_seed, eval_mode
from course_lib.train import EarlyStopping, Evaluate, History, NonFiniteLossError, Trainer
from course_lib.vae.elbo import elbo
from course_lib.vae.evaluate import as_images, evaluate
from course_lib.vae.models import VAE
from course_lib.vae.step import Augment, VAEStep

LOSS_KEYS = ("loss", "elbo", "recon", "kl")
"""Logged at every history row (means since the previous row, nats per example): the training
objective, the ELBO (beta = 1, no free bits), -log p(x|z) and KL(q(z|x) || p(z)); the rows also
hold the step's ``kl_weight`` and ``lr``."""

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
"""Optimizers :class:`VAETrainer` knows by name; extra settings go in ``optimizer_kwargs``."""


class VAETrainer(Trainer):
    """Trains a :class:`course_lib.vae.models.VAE` by minimizing :func:`vae_loss`; see :meth:`fit`.

    Defaults: Adam, lr 1e-3 (Kingma & Welling 2014 used Adagrad; Adam, Kingma & Ba 2015,
    arXiv:1412.6980, is today's default). ``optimizer`` is a name in :data:`OPTIMIZERS` with
    ``optimizer_kwargs`` (e.g. ``{"momentum": 0.9}`` for SGD). ``lr_schedule`` builds a
    ``torch.optim.lr_scheduler`` from the optimizer, stepped once per training step, e.g.
    ``lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)``.
    The KL weight at step s is ``beta * kl_schedule(s)`` (``kl_schedule`` None: 1), e.g.
    :class:`LinearAnnealing`; ``free_bits`` (nats per latent dimension) switches the KL term to
    :func:`free_bits_kl`. ``augment(x, step) -> x`` transforms each training batch (target and
    encoder input alike), drawing from torch's global RNG (saved in checkpoints), e.g.
    ``augment.RandomShift(2)``. ``device`` None picks one with
    :func:`course_lib.runtime.choose_device`; ``amp`` None means on for CUDA only. ``seed``
    fixes the data order and the noise of the reparameterization; it does not initialize the
    model. It is a :class:`course_lib.train.Trainer` of a :class:`~course_lib.vae.step.VAEStep`:
    device, mixed precision, the fit loop and checkpoints are those every family shares.
    """

    algorithm: VAEStep

    def __init__(
        self,
        model: VAE,
        *,
        lr: float = 1e-3,
        optimizer: str = "adam",
        optimizer_kwargs: Mapping[str, Any] | None = None,
        lr_schedule: Callable[[torch.optim.Optimizer], Any] | None = None,
        beta: float = 1.0,
        kl_schedule: Callable[[int], float] | None = None,
        free_bits: float | None = None,
        augment: Augment | None = None,
        device: str | torch.device | None = None,
        amp: bool | None = None,
        seed: int = 0,
    ):
        if not isinstance(model, VAE):
            raise ValueError(
                f"model must be a course_lib.vae.models.VAE, got {type(model).__name__}; "
                "wrap your encoder and decoder: models.VAE(encoder, decoder)."
            )
        self.lr = check_number("lr", lr, 0.0, strict=True)
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}."
            )
        self.optimizer_name = optimizer
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        check_number("beta", beta, 0.0)
        for name, fn in (("kl_schedule", kl_schedule), ("augment", augment)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be None or callable, got {type(fn).__name__}.")
        if free_bits is not None:
            check_number("free_bits", free_bits, 0.0)
        where = runtime.choose_device(None if device is None else str(device))
        model = model.to(where)
        try:
            opt = OPTIMIZERS[optimizer](model.parameters(), lr=self.lr, **self.optimizer_kwargs)
        except TypeError as exc:
            raise ValueError(f"optimizer_kwargs {self.optimizer_kwargs} do not fit: {exc}") from exc
        scheduler = None if lr_schedule is None else lr_schedule(opt)
        if scheduler is not None and (
            isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
            or not hasattr(scheduler, "state_dict")
        ):
            raise ValueError(
                "lr_schedule must build a per-step scheduler of torch.optim.lr_scheduler (e.g. "
                "CosineAnnealingLR, StepLR, LambdaLR); ReduceLROnPlateau needs a metric and is "
                "not supported."
            )
        super().__init__(
            VAEStep(model, opt, scheduler, float(beta), kl_schedule, free_bits, augment),
            device=where,
            amp=amp,
            seed=seed,
        )
        self.early: EarlyStopping | None = None  # the held-out loss record, once fit has val_data

    # the step's parts, under the names the notebooks use
    model = property(lambda self: self.algorithm.model)
    opt = property(lambda self: self.algorithm.opt)
    scheduler = property(lambda self: self.algorithm.scheduler)
    beta = property(lambda self: self.algorithm.beta)
    kl_schedule = property(lambda self: self.algorithm.kl_schedule)
    free_bits = property(lambda self: self.algorithm.free_bits)
    augment = property(lambda self: self.algorithm.augment)
    best_step = property(lambda self: None if self.early is None else self.early.best_step)
    early_stopped_at = property(lambda self: None if self.early is None else self.early.stopped_at)

    @property
    def best_val_loss(self) -> float:
        """The best held-out loss so far (inf before the first validation)."""
        best = None if self.early is None else self.early.best_value
        return math.inf if best is None else best

    def kl_weight(self, step: int | None = None) -> float:
        """The KL weight used at ``step`` (default: the next step): beta * kl_schedule(step)."""
        return self.algorithm.kl_weight(self.step if step is None else step)

    def train_step(self, x: Tensor) -> dict[str, float]:
        """One training step on the batch ``x``; returns the floats of :data:`LOSS_KEYS`."""
        x = as_images(x)
        self._check_range(x, "x")
        self.model.train()
        out = self.algorithm.step(self, x.to(self.device, non_blocking=True))
        self.step += 1
        return {k: float(out[k]) for k in LOSS_KEYS}

    def sample_z(self, n: int) -> Tensor:
        """z ~ N(0, I), (n, latent_dim), from the trainer's sampling stream (not training's)."""
        check_int("n", n, 1)
        gen = self.generator("sample")
        return torch.randn(n, self.model.latent_dim, generator=gen, device=self.device)

    def sample(self, n: int | None = None, z: Tensor | None = None) -> Tensor:
        """E[x|z] for given ``z`` or ``n`` draws from the prior, in eval mode: (n, ...) on device.

        The decoder's mean (Bernoulli: probabilities in [0, 1]), not a noisy sample of p(x|z).
        """
        if (n is None) == (z is None):
            raise ValueError("pass exactly one of n (a number of samples) or z (a latent batch).")
        z = self.sample_z(n) if z is None else z.to(self.device)  # type: ignore[arg-type]
        with eval_mode(self.model):
            return self.model.decoder_mean(self.model.decode(z).float())

    def reconstruct(self, x: Tensor) -> Tensor:
        """E[x|z = mu(x)]: the decoder's mean at the encoder's mean, in eval mode."""
        x = as_images(x)
        with eval_mode(self.model):
            mu, _ = self.model.encode(x.to(self.device))
            return self.model.decoder_mean(self.model.decode(mu).float())

    def evaluate(self, x: Tensor | TensorDataset, k: int = 100) -> dict[str, float]:
        """:func:`evaluate` on held-out ``x`` with the trainer's model, noise seeded by ``seed``."""
        return evaluate(self.model, x, k=k, seed=derive_seed(self.seed, "evaluate"))

    def _check_range(self, x: Tensor, name: str) -> None:
        lo, hi = (v.item() for v in torch.aminmax(x))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or inf; clean it before training.")
        if self.model.likelihood == "bernoulli" and (lo < 0 or hi > 1):
            raise ValueError(
                f"{name} lies in [{lo:.3g}, {hi:.3g}] but the model's Bernoulli likelihood needs "
                "[0, 1]; the course's images are in [-1, 1]: use (x + 1) / 2, or binarize them "
                "with (x > 0).float()."
            )

    @torch.no_grad()
    def _val_loss(self, x_val: Tensor) -> float:
        """Held-out negative ELBO (nats per example, beta = 1), with the same noise every time."""
        gen = torch.Generator(self.device).manual_seed(derive_seed(self.seed, "val"))
        total = 0.0
        with eval_mode(self.model):
            for i in range(0, len(x_val), 1000):
                terms = elbo(self.model, x_val[i : i + 1000], generator=gen, validate=False)
                total += -terms.elbo.sum().item()
        val = total / len(x_val)
        if not math.isfinite(val):
            raise NonFiniteLossError(self.nonfinite(f"the held-out loss is {val}"))
        return val

    def fit(
        self,
        data: Tensor | TensorDataset,
        *,
        steps: int,
        batch_size: int = 64,
        val_data: Tensor | TensorDataset | None = None,
        eval_every: int | None = None,
        patience: int | None = None,
        min_delta: float = 0.0,
        callbacks: Iterable[Any] = (),
        log_every: int | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        progress: bool = True,
    ) -> History:
        """Train until the step counter reaches ``steps``, or early stopping; return the history.

        ``data`` (N, ...) (or a TensorDataset, whose first tensor is used) is moved to the device
        once and batched by a per-epoch permutation seeded from (seed, epoch), dropping the last
        partial batch; it must suit the likelihood (Bernoulli: [0, 1], else ValueError).
        ``steps`` is the total to reach: after resuming at step 600, ``steps=1000`` runs 400.
        With ``val_data``, the held-out negative ELBO (``val_loss``, beta = 1, same noise each
        time) is logged every ``eval_every`` steps (default steps // 20) and at the end; the
        best weights are kept (:meth:`restore_best` loads them), and with ``patience`` the run
        stops after that many evaluations without an improvement larger than ``min_delta``
        (Prechelt 1998, "Early stopping - but when?"; the run remembers it stopped), with
        :class:`course_lib.train.EarlyStopping`, the callback the GAN notebooks use too.
        History rows every ``log_every`` steps (default steps // 100) hold the means of
        :data:`LOSS_KEYS` since the previous row, the KL weight and the learning rate.
        Callbacks (e.g. :class:`course_lib.train.Evaluate`) run every ``cb.every`` steps and add
        to the row. With ``checkpoint_path``: an existing file is resumed from when the trainer
        has not trained yet; a checkpoint is written every ``checkpoint_every`` steps and at the
        end. Raises :class:`~course_lib.train.NonFiniteLossError` when a logged loss or the
        weights before a checkpoint are NaN/inf; the last good checkpoint is never overwritten.
        """
        min_delta = check_number("min_delta", min_delta, 0.0)
        if val_data is None and (patience is not None or eval_every is not None):
            raise ValueError("eval_every and patience need val_data (held-out examples).")
        if eval_every is None and val_data is not None:
            eval_every = max(1, steps // 20)
        if eval_every is not None:
            check_int("eval_every", eval_every, 1)
        if patience is not None:
            check_int("patience", patience, 1)
        x = as_images(data, "data").to(self.device)
        self._check_range(x, "data")
        callbacks = tuple(callbacks)
        if val_data is not None:
            x_val = as_images(val_data, "val_data").to(self.device)
            self._check_range(x_val, "val_data")
            if tuple(x_val.shape[1:]) != tuple(x.shape[1:]):
                raise ValueError(
                    f"val_data examples have shape {tuple(x_val.shape[1:])}, data examples "
                    f"{tuple(x.shape[1:])}; they must match."
                )
            validate = Evaluate(
                lambda _: self._val_loss(x_val), eval_every, "val_loss", at_end=True
            )  # type: ignore[arg-type]
            early = EarlyStopping(validate, patience, min_delta, "min", "val_loss", keep="model")
            if self.early is not None:  # the record goes on from an earlier fit of this run
                early.load_state_dict(self.early.state_dict())
            self.early = early
            callbacks = (early, *callbacks)
        return super().fit(
            x,
            steps=steps,
            batch_size=batch_size,
            callbacks=callbacks,
            log_every=log_every,
            checkpoint_path=checkpoint_path,
            checkpoint_every=checkpoint_every,
            progress=progress,
        )

    def restore_best(self) -> int:
        """Load the weights with the best held-out loss into the model; returns their step.

        Training on from here continues from these weights (resume from the checkpoint to
        continue the original run exactly).
        """
        if self.early is None or self.early.best_state is None:
            raise ValueError("no best weights yet: fit with val_data= to track them.")
        self.early.restore_best(self.model)
        return self.early.best_step  # type: ignore[return-value]
