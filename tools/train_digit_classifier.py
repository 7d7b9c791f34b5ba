"""Train the course's digit classifier and write course_lib/weights/digit_classifier.pt.

The classifier is the offline feature extractor of ``course_lib.metrics`` (FID, KID, class
coverage). It trains on ``data.digits28("train")`` (20,000 images) on the CPU in about two
minutes on two cores, reports held-out accuracy on ``data.digits28("test")`` and, for
information only, on scikit-learn's 8x8 digits upsampled to 28x28, and writes the weights
atomically (temporary file in the same folder, fsync, rename) as a dict that
``torch.load(weights_only=True)`` reads: ``{"state_dict": ..., "meta": {...}}``.

Usage (from the repository root):  python tools/train_digit_classifier.py [--epochs 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from course_lib import data, metrics  # noqa: E402
from course_lib._io import atomic_write  # noqa: E402

DEFAULT_OUT = REPO / "course_lib" / "weights" / metrics.WEIGHTS_FILE
MAX_BYTES = 2 * 1024 * 1024


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random zoom (x0.85..1.25) and shift (up to 2 px); a third of the batch is also blurred.

    The blur (down to a random 8..20 px and back up, antialiased bilinear) keeps the features
    meaningful for low-resolution or blurry inputs such as VAE samples or upsampled 8x8 digits.
    Background -1 fills the border.
    """
    n, size = x.shape[0], x.shape[-1]
    zoom = torch.empty(n).uniform_(0.85, 1.25, generator=generator)
    shift = torch.empty(n, 2).uniform_(-2.0, 2.0, generator=generator)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / zoom
    theta[:, :, 2] = -2.0 * shift / size  # affine_grid works in [-1, 1] coordinates
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x + 1.0, grid, mode="bilinear", align_corners=False) - 1.0
    blur = torch.rand(n, generator=generator) < 1 / 3
    if blur.any():
        low = int(torch.randint(8, 21, (1,), generator=generator))
        small = F.interpolate(x[blur], size=(low, low), mode="bilinear", antialias=True)
        x[blur] = F.interpolate(small, size=(size, size), mode="bilinear", antialias=True)
    return x


@torch.no_grad()
def accuracy(model: metrics.DigitClassifier, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on images ``x`` with labels ``y``."""
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=None, help="default: the whole train split")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    x_train, y_train = data.digits28("train", n=args.n_train, seed=0).tensors
    x_test, y_test = data.digits28("test", seed=0).tensors
    print(f"digits28 v{data.DIGITS28_VERSION}: {len(x_train)} train, {len(x_test)} test images")

    arch = {"width": 16, "feature_dim": 128, "n_classes": 10}
    model = metrics.DigitClassifier(**arch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch
    )
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            x = augment(x_train[idx], generator)
            loss = F.cross_entropy(model(x), y_train[idx])  # the classification objective
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        print(
            f"epoch {epoch + 1}/{args.epochs}: train loss {total / len(x_train):.4f}, "
            f"test accuracy {accuracy(model, x_test, y_test):.4f} "
            f"({time.perf_counter() - start:.0f} s)"
        )

    test_acc = accuracy(model, x_test, y_test)
    x_sk, y_sk = data.sklearn_digits().tensors  # 8x8; the classifier resizes them to 28x28
    sklearn_acc = accuracy(model, x_sk, y_sk)
    print(f"held-out digits28 test accuracy: {test_acc:.4f} ({len(x_test)} images)")
    print(f"scikit-learn 8x8 digits upsampled to 28x28 (report only): {sklearn_acc:.4f}")

    meta = {
        "arch": arch,
        "test_accuracy": test_acc,
        "sklearn_digits_accuracy": sklearn_acc,
        "data": "digits28",
        "data_version": str(data.DIGITS28_VERSION),
        "n_train": len(x_train),
        "epochs": args.epochs,
        "seed": args.seed,
        "torch_version": str(torch.__version__),
    }
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    weights = {"state_dict": state, "meta": meta}  # package data: readable by everyone
    atomic_write(args.out, lambda f: torch.save(weights, f), mode=0o644)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KiB)")
    if size >= MAX_BYTES:
        print(f"error: {args.out} is {size} bytes, over the 2 MiB limit", file=sys.stderr)
        return 1
    reloaded = metrics.load_digit_classifier(path=args.out)
    if accuracy(reloaded, x_test, y_test) != test_acc:
        print("error: the reloaded weights do not reproduce the accuracy", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
