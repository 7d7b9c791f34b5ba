"""2-D toy distributions: Gaussian mixtures on a ring, a grid or a spiral, sampled with a seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from course_lib._checks import check_int, check_number

TOY_DISTRIBUTIONS = ("ring", "grid", "spiral")
"""Names accepted by :func:`toy_distribution`."""


# ---------------------------------------------------------------------------------------------
# 2-D toy distributions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GaussianMixture2D:
    """Equal-weight mixture of K isotropic 2-D Gaussians: p(x) = (1/K) sum_k N(x; c_k, std^2 I).

    The standard test bed for mode collapse: a generator that covers all K modes with samples
    within a few ``std`` of a centre has learned the distribution; one that covers few has
    collapsed. ``centers`` is a (K, 2) float32 tensor; compared by identity (``eq=False``).
    Reference: Metz et al. 2017, arXiv:1611.02163, Section 3.1 (ring of 8);
    Srivastava et al. 2017 (VEEGAN), arXiv:1705.07761 (ring and 5x5 grid).
    """

    name: str
    centers: Tensor
    std: float

    def __post_init__(self) -> None:
        centers = torch.as_tensor(self.centers, dtype=torch.float32)
        if centers.dim() != 2 or centers.shape[1] != 2 or centers.shape[0] < 1:
            raise ValueError(
                f"centers=<tensor of shape {tuple(centers.shape)}> is not (K, 2); "
                "pass one (x, y) centre per row."
            )
        check_number("std", self.std, 0.0, strict=True, hint="e.g. std=1.0")
        object.__setattr__(self, "centers", centers)
        object.__setattr__(self, "std", float(self.std))

    @property
    def n_modes(self) -> int:
        """K, the number of mixture components."""
        return int(self.centers.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw n points: k ~ Uniform{0..K-1}, x = c_k + std * eps, eps ~ N(0, I).

        Shapes: -> (n, 2) float32 on the device of ``centers`` (the generator must live there).
        """
        check_int("n", n)
        device = self.centers.device
        k = torch.randint(self.n_modes, (n,), generator=generator, device=device)
        eps = torch.randn(n, 2, generator=generator, device=device)
        return self.centers[k] + self.std * eps


def ring(n_modes: int = 8, radius: float = 2.0, std: float = 0.02) -> GaussianMixture2D:
    """K Gaussians evenly spaced on a circle: c_k = radius * (cos 2 pi k / K, sin 2 pi k / K).

    Defaults: 8 modes, radius 2, std 0.02 (the ring of the unrolled-GAN experiment).
    Reference: Metz et al. 2017, arXiv:1611.02163, Section 3.1; VEEGAN, arXiv:1705.07761.
    Shapes: centers (n_modes, 2).
    """
    check_int("n_modes", n_modes)
    check_number("radius", radius, 0.0, strict=True, hint="e.g. radius=1.0")
    check_number("std", std, 0.0, strict=True, hint="e.g. std=1.0")
    angle = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    centers = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return GaussianMixture2D("ring", centers.float(), std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture2D:
    """side x side Gaussians on a square grid centred at 0 (default 25 modes at -4, -2, 0, 2, 4).

    Reference: Srivastava et al. 2017 (VEEGAN), arXiv:1705.07761;
    Lin et al. 2018 (PacGAN), arXiv:1712.04086.
    Shapes: centers (side**2, 2), row-major in (x, y).
    """
    check_int("side", side)
    check_number("spacing", spacing, 0.0, strict=True, hint="e.g. spacing=1.0")
    check_number("std", std, 0.0, strict=True, hint="e.g. std=1.0")
    axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    centers = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    return GaussianMixture2D("grid", centers.float(), std)


def spiral(
    n_modes: int = 20, turns: float = 2.0, radius: float = 2.0, std: float = 0.05
) -> GaussianMixture2D:
    """K Gaussians at equal arc length along an Archimedean spiral r = radius * theta / theta_max.

    theta runs from pi/2 to theta_max = pi/2 + 2 pi turns: modes sit on nested arms, so a
    generator must bend one sheet of mass around the centre. A discrete version of the Swiss
    roll of Gulrajani et al. 2017. With the defaults, neighbouring modes are 0.6-0.75 apart and
    the arms 0.9 apart, i.e. at least 12 std.
    Reference: course-made; cf. Gulrajani et al. 2017 (WGAN-GP), arXiv:1704.00028, Sec. 3.1, Fig. 1.
    Shapes: centers (n_modes, 2), ordered from the inside out.
    """
    check_int("n_modes", n_modes)
    check_number("turns", turns, 0.0, strict=True, hint="e.g. turns=1.0")
    check_number("radius", radius, 0.0, strict=True, hint="e.g. radius=1.0")
    check_number("std", std, 0.0, strict=True, hint="e.g. std=1.0")
    theta_max = math.pi / 2 + 2 * math.pi * turns
    theta = torch.linspace(math.pi / 2, theta_max, 4096, dtype=torch.float64)
    r = radius * theta / theta_max
    curve = torch.stack([r * theta.cos(), r * theta.sin()], dim=1)
    step = curve.diff(dim=0).norm(dim=1)
    arc = torch.cat([step.new_zeros(1), step.cumsum(0)])  # arc length at each theta
    targets = torch.linspace(0, float(arc[-1]), n_modes, dtype=torch.float64)
    idx = torch.searchsorted(arc, targets).clamp(max=len(arc) - 1)
    return GaussianMixture2D("spiral", curve[idx].float(), std)


def toy_distribution(name: str) -> GaussianMixture2D:
    """The default mixture called ``name``: "ring" (8 modes), "grid" (25) or "spiral" (20)."""
    factories = {"ring": ring, "grid": grid, "spiral": spiral}
    if name not in factories:
        raise ValueError(f"name={name!r} is not a toy distribution; use one of {TOY_DISTRIBUTIONS}")
    return factories[name]()
