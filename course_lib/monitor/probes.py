"""What D says and how diverse G's samples are: DiscriminatorProbs, Diversity, SampleSaver."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from course_lib import viz
from course_lib._checks import check_every

# ------------------------------------------------------------------------- what D says


@contextlib.contextmanager
def _untouched(*modules: nn.Module) -> Iterator[None]:
    """Run modules and restore their train/eval modes, buffers (BatchNorm running statistics)
    and the global RNG afterwards, so a measurement leaves no trace in the run."""
    modes = [{m: m.training for m in module.modules()} for module in modules]
    buffers = [{k: b.clone() for k, b in module.named_buffers()} for module in modules]
    devices = sorted(
        {b.device.index or 0 for module in modules for b in module.parameters() if b.is_cuda}
    )
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            yield
    finally:
        with torch.no_grad():
            for module, saved, mode in zip(modules, buffers, modes, strict=True):
                for k, b in module.named_buffers():
                    b.copy_(saved[k])
                for m, training in mode.items():
                    m.training = training


@dataclass
class DiscriminatorProbs:
    """Log D(x) and D(G(z)) as probabilities: mean sigmoid of D's logits on fixed batches.

    The history's ``d_real`` / ``d_fake`` are mean *logits* of the training batches, and
    sigmoid(mean logit) is not the mean probability. This callback computes
    ``D(x) = mean_i sigmoid(D(x_i))`` on the fixed real batch ``x_real`` and
    ``D(G(z)) = mean_i sigmoid(D(G(z_i)))`` on the fixed latent batch ``z``, both networks in
    train mode as in the training step (BatchNorm normalizes each batch with its own
    statistics; use batches of the training batch size), without gradients; BatchNorm running
    statistics, train/eval modes and the RNG are restored afterwards, so the run is unchanged.
    With a trainer ``augment``, D here sees the images without augmentation.
    Only meaningful for BCE-type losses (non-saturating, minimax, label smoothing, R1), whose D
    outputs the logit of a probability; a WGAN critic or a hinge D outputs scores.
    At D's optimum D*(x) = p_data / (p_data + p_g), so both approach 1/2 if G matches the data
    (Goodfellow et al. 2014, arXiv:1406.2661, Proposition 1); Goodfellow 2016 (NIPS tutorial,
    arXiv:1701.00160) discusses reading them.
    Logs ``{"D(x)": float, "D(G(z))": float}``.
    """

    x_real: Tensor
    z: Tensor
    every: int

    def __post_init__(self) -> None:
        check_every(self.every)
        if self.x_real.dim() < 2 or self.z.dim() != 2:
            raise ValueError(
                f"x_real must be a batch (N, ...) and z a latent batch (M, latent_dim), got "
                f"shapes {tuple(self.x_real.shape)} and {tuple(self.z.shape)}."
            )

    def __call__(self, trainer: Any) -> dict[str, float]:
        G, D = trainer.G, trainer.D
        with _untouched(G, D):
            G.train()
            D.train()
            x_fake = G(self.z.to(trainer.device))
            p_real = torch.sigmoid(D(self.x_real.to(trainer.device)).float()).mean()
            p_fake = torch.sigmoid(D(x_fake).float()).mean()
            values = torch.stack([p_real, p_fake]).tolist()
        return {"D(x)": values[0], "D(G(z))": values[1]}


# ------------------------------------------------------------------------------ diversity


def mean_pairwise_distance(x: Tensor) -> float:
    """Mean Euclidean distance between all pairs of distinct rows of ``x``: a diversity score.

    d = 2 / (N (N - 1)) * sum_{i < j} ||x_i - x_j||_2, each x_i flattened (pixels or features),
    computed in float64. It is 0 when all samples are the same (total mode collapse) and drops
    when G's samples become more alike; the same score on real data gives its scale.
    Reference: an average pairwise distance between samples is the diversity score of
    BicycleGAN (Zhu et al. 2017, arXiv:1711.11586, with LPIPS distances); AC-GAN
    (Odena et al. 2017, arXiv:1610.09585) uses mean pairwise MS-SSIM to spot
    collapsed classes. Here the distance is Euclidean, on pixels or on classifier features.
    Shapes: x (N, ...) with N >= 2 -> float (mean over the N (N - 1) / 2 pairs).
    """
    if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[0] < 2:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor (N, ...) with N >= 2 samples, got {got}.")
    flat = x.detach().reshape(x.shape[0], -1).double()
    return float(torch.pdist(flat).mean())


@dataclass
class Diversity:
    """Log :func:`mean_pairwise_distance` of ``G(z)`` for a fixed ``z`` every ``every`` steps.

    ``extractor`` None measures in pixel space; a module (e.g.
    :func:`course_lib.metrics.load_digit_classifier`) or function measures in its features
    (:func:`course_lib.metrics.extract_features`), where "the same digit drawn slightly
    differently" is close and "another digit" is far. G runs in eval mode
    (:meth:`GANTrainer.generate`). Logs ``{name: float}``, default name ``"diversity"``, the key
    :func:`diagnose` watches for collapse.
    """

    z: Tensor
    every: int
    extractor: nn.Module | Callable[[Tensor], Tensor] | None = None
    name: str = "diversity"

    def __post_init__(self) -> None:
        check_every(self.every)
        if self.z.dim() != 2 or self.z.shape[0] < 2:
            raise ValueError(f"z must be (N, latent_dim) with N >= 2, got {tuple(self.z.shape)}.")

    def __call__(self, trainer: Any) -> dict[str, float]:
        x_fake = trainer.generate(z=self.z)
        if self.extractor is not None:
            from course_lib import metrics

            x_fake = metrics.extract_features(x_fake, self.extractor)
        return {self.name: mean_pairwise_distance(x_fake)}


# ------------------------------------------------------------------------------ samples


@dataclass
class SampleSaver:
    """Save a PNG grid of ``G(z)`` for a fixed ``z`` to ``folder/samples_<step>.png``.

    The same z every time, so the files show the same "pens" learning to draw (pytorch/examples'
    DCGAN keeps a ``fixed_noise`` the same way); step numbers are zero-padded to 6 digits so the
    files sort in training order. Written with ``torchvision.utils.save_image`` after mapping
    [-1, 1] to [0, 1]; G runs in eval mode. Logs nothing; ``paths`` lists the files written.
    """

    z: Tensor
    folder: str | os.PathLike[str]
    every: int
    nrow: int = 8

    def __post_init__(self) -> None:
        check_every(self.every)
        self.folder = Path(self.folder)
        self.paths: list[Path] = []

    def __call__(self, trainer: Any) -> None:
        from torchvision.utils import save_image

        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"samples_{trainer.step:06d}.png"
        images = viz.to_unit_range(trainer.generate(z=self.z).float().cpu())
        save_image(images, path, nrow=self.nrow, padding=2, pad_value=1.0)
        self.paths.append(path)
