"""Figures the notebooks share: image grids, training curves, 2-D scatter plots, point labels.

Every function draws on ``ax`` when given (else a new figure), sets a title and axis labels, and
returns the axes, so a notebook can combine them into subplots. Figures are sized to stay legible
on a classroom projector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from torchvision.utils import make_grid


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Map pixel values from [-1, 1] (the course's convention) to [0, 1] for display, clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def image_grid(images: torch.Tensor, nrow: int = 8) -> np.ndarray:
    """Tile images in [-1, 1] of shape (N, C, H, W) into one (H', W', 3) array in [0, 1]."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}; "
            "add a channel dimension with images.unsqueeze(1) for (N, H, W) input."
        )
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}.")
    images = to_unit_range(images.detach().float().cpu())
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def show_images(
    images: torch.Tensor, nrow: int = 8, title: str | None = None, ax: Axes | None = None
) -> Axes:
    """Show images in [-1, 1] of shape (N, C, H, W) as a grid (torchvision ``make_grid``)."""
    grid = image_grid(images, nrow=nrow)
    ax = _new_axes(ax, (6, 6))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_history(
    history: Mapping[str, Sequence[float]] | object,
    keys: Sequence[str],
    ax: Axes | None = None,
    title: str = "Training curves",
    ylabel: str = "value",
    smooth: int = 1,
) -> Axes:
    """Plot ``history[key]`` against ``history["step"]`` per key (moving average if ``smooth>1``).

    ``history`` is a :class:`course_lib.train.History` or any mapping of equal-length columns.
    Rows where a key is missing (NaN) are skipped, so columns logged at different intervals mix.
    """
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1, got {smooth}.")
    ax = _new_axes(ax, (8, 4))
    steps = np.asarray(history["step"], dtype=float)  # type: ignore[index]
    for key in keys:
        values = np.asarray(history[key], dtype=float)  # type: ignore[index]
        keep = ~np.isnan(values)
        x, y = steps[keep], values[keep]
        if smooth > 1 and len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            x = x[smooth - 1 :]
        ax.plot(x, y, label=key)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def scatter_2d(
    real: torch.Tensor | None = None,
    fake: torch.Tensor | None = None,
    ax: Axes | None = None,
    title: str = "Samples",
    limit: float | None = None,
    centers: torch.Tensor | None = None,
) -> Axes:
    """Scatter 2-D points: real data in grey, generated in orange, mode centres as black crosses."""
    ax = _new_axes(ax, (5, 5))
    for points, label, style in (
        (real, "real", dict(s=4, c="0.6", alpha=0.5)),
        (fake, "generated", dict(s=4, c="tab:orange", alpha=0.6)),
    ):
        if points is None:
            continue
        if points.dim() != 2 or points.shape[1] != 2:
            raise ValueError(f"{label} points must have shape (N, 2), got {tuple(points.shape)}.")
        xy = points.detach().float().cpu().numpy()
        ax.scatter(xy[:, 0], xy[:, 1], label=label, **style)
    if centers is not None:
        c = centers.detach().cpu().numpy()
        ax.scatter(c[:, 0], c[:, 1], marker="x", c="black", s=40, label="modes")
    if limit is not None:
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    ax.legend(loc="best", markerscale=2, framealpha=0.9)
    return ax


def label_points(
    ax: Axes,
    points: Mapping[str, tuple[float, float]],
    tolerance: float = 0.02,
    offset: tuple[float, float] = (6.0, 6.0),
) -> list[Text]:
    """Label each point with its name, so that no two labels overlap wherever the points land.

    Points closer than ``tolerance`` of the axes' span (in x and in y) share one label, a name
    per line; labels are kept inside the axes (clear of the title), and each label that would
    overlap one placed before it (from the top down) is moved down just below it. Call it after
    the axes' limits are set. Returns the labels.
    """
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    groups: list[tuple[tuple[float, float], list[str]]] = []
    for name, (x, y) in points.items():
        near = next(
            (
                names
                for (gx, gy), names in groups
                if abs(x - gx) <= tolerance * abs(x1 - x0)
                and abs(y - gy) <= tolerance * abs(y1 - y0)
            ),
            None,
        )
        if near is None:
            groups.append(((float(x), float(y)), [name]))
        else:
            near.append(name)
    texts = [
        ax.annotate("\n".join(names), xy, textcoords="offset points", xytext=offset, fontsize=9)
        for xy, names in groups
    ]
    renderer = ax.figure.canvas.get_renderer()
    points_per_pixel = 72.0 / ax.figure.dpi
    frame = ax.get_window_extent(renderer)
    for text in texts:  # inside the axes: a label above the top would cover the title
        box = text.get_window_extent(renderer)
        dx, dy = text.xyann
        dx -= max(0.0, box.x1 - frame.x1 + 2.0) * points_per_pixel
        dy -= max(0.0, box.y1 - frame.y1 + 2.0) * points_per_pixel
        text.xyann = (dx, dy)
    placed: list[Bbox] = []
    for text in sorted(texts, key=lambda t: -t.xy[1]):
        for _ in range(len(texts)):  # each move clears one placed label; the list is finite
            box = text.get_window_extent(renderer)
            hit = next((b for b in placed if box.overlaps(b)), None)
            if hit is None:
                break
            dx, dy = text.xyann
            text.xyann = (dx, dy - (box.y1 - hit.y0 + 2.0) * points_per_pixel)
        placed.append(text.get_window_extent(renderer))
    return texts
