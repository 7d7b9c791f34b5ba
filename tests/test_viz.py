import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import viz  # noqa: E402


def test_to_unit_range_maps_and_clamps():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])
    assert torch.equal(viz.to_unit_range(x), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_image_grid_shape_and_range():
    images = torch.linspace(-1, 1, 16 * 28 * 28).reshape(16, 1, 28, 28)
    grid = viz.image_grid(images, nrow=4)
    assert grid.shape == (4 * 30 + 2, 4 * 30 + 2, 3)
    assert grid.min() >= 0 and grid.max() <= 1
    assert np.isclose(grid[2, 2, 0], 0.0)  # the first pixel, -1, is black


@pytest.mark.parametrize("shape", [(16, 28, 28), (4, 2, 8, 8)])
def test_image_grid_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="images must have shape"):
        viz.image_grid(torch.zeros(shape))


def test_show_images_titles_the_axes():
    ax = viz.show_images(torch.zeros(4, 3, 8, 8), nrow=2, title="samples")
    assert ax.get_title() == "samples"
    plt.close("all")


def test_plot_history_skips_missing_values_and_smooths():
    history = {"step": [1, 2, 3, 4], "d_loss": [1.0, 2.0, 3.0, 4.0], "fid": [np.nan, 5, np.nan, 3]}
    ax = viz.plot_history(history, ["d_loss", "fid"], smooth=1)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["fid"].get_xdata()) == [2.0, 4.0]
    ax = viz.plot_history(history, ["d_loss"], smooth=2)
    assert list(ax.get_lines()[0].get_ydata()) == [1.5, 2.5, 3.5]
    assert ax.get_xlabel() == "training step"
    plt.close("all")


def test_scatter_2d_draws_both_sets_and_rejects_bad_points():
    ax = viz.scatter_2d(torch.randn(10, 2), torch.randn(5, 2), limit=3, centers=torch.zeros(1, 2))
    assert len(ax.collections) == 3
    assert ax.get_xlim() == (-3, 3)
    with pytest.raises(ValueError, match=r"generated points must have shape \(N, 2\)"):
        viz.scatter_2d(fake=torch.randn(10, 3))
    plt.close("all")


def test_label_points_keeps_every_label_readable():
    """07's precision-recall plot: candidates at the same point, others close by."""
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05))
    points = {
        "one digit, repeated": (0.0, 1.0),
        "ten digits, repeated": (0.0, 1.0),
        "two classes": (0.18, 0.89),
        "DCGAN": (0.03, 0.01),  # close to noise, beyond the tolerance: its own label
        "uniform noise": (0.0, 0.0),
        "real": (0.9, 0.9),
        "half real, half noise": (0.89, 0.45),
    }
    texts = viz.label_points(ax, points)
    shown = [t.get_text() for t in texts]
    assert "one digit, repeated\nten digits, repeated" in shown  # coincident points: one label
    assert sorted(n for t in shown for n in t.split("\n")) == sorted(points)  # every name once
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    overlapping = [
        (shown[i], shown[j])
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]
    assert not overlapping
    frame = ax.get_window_extent(renderer)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and b.y1 <= frame.y1 for b in boxes)
    plt.close(fig)
