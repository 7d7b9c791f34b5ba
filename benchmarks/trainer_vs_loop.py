"""Speed of course_lib's GANTrainer.fit() against a plain hand-written PyTorch training loop.

Both train the same DCGAN (28x28, 1 channel, width 64, latent 64) with the same batch size,
Adam(2e-4, betas=(0.5, 0.999)), the same data on the device, and the same mixed precision
(on CUDA only). Warm-up steps are excluded; the two are timed in interleaved repeats (alternating
which goes first) and the medians compared. The trainer should reach >= 0.95x the loop's speed.

    python benchmarks/trainer_vs_loop.py --steps 10 --repeats 10
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from course_lib import runtime
from course_lib.gan import GANTrainer
from course_lib.gan.models import DCGANDiscriminator, DCGANGenerator


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainLoop:
    """The loop a PyTorch user writes by hand (pytorch/examples' DCGAN, one backward per loss)."""

    def __init__(
        self,
        G: torch.nn.Module,
        D: torch.nn.Module,
        data: torch.Tensor,
        batch_size: int,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
    ):
        self.G, self.D, self.data, self.batch_size, self.device = G, D, data, batch_size, device
        self.opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.amp, self.dtype = amp_dtype is not None, amp_dtype
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        self.ones = torch.ones(batch_size, device=device)
        self.zeros = torch.zeros(batch_size, device=device)
        self.perm = torch.randperm(len(data), device=device)
        self.i = 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)

    def run(self, steps: int) -> None:
        G, D, bs = self.G, self.D, self.batch_size
        for _ in range(steps):
            if (self.i + 1) * bs > len(self.data):
                self.perm, self.i = torch.randperm(len(self.data), device=self.device), 0
            x_real = self.data[self.perm[self.i * bs : (self.i + 1) * bs]]
            self.i += 1
            z = torch.randn(bs, G.latent_dim, device=self.device)
            with self.autocast():
                x_fake = G(z)
                d_loss = F.binary_cross_entropy_with_logits(D(x_real), self.ones) + (
                    F.binary_cross_entropy_with_logits(D(x_fake.detach()), self.zeros)
                )
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler.scale(d_loss).backward()
            self.scaler.step(self.opt_d)
            self.scaler.update()
            with self.autocast():
                g_loss = F.binary_cross_entropy_with_logits(D(x_fake), self.ones)
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler.scale(g_loss).backward()
            self.scaler.step(self.opt_g)
            self.scaler.update()
        sync(self.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=10, help="interleaved repeats")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--log-every", type=int, default=10, help="trainer history interval")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: best available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time, steadier on a busy machine "
        "(use with --threads 1 and on CPU only)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = runtime.choose_device(args.device)
    runtime.seed_everything(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    G = DCGANGenerator(latent_dim=64, image_size=28, channels=1, width=args.width)
    D = DCGANDiscriminator(image_size=28, channels=1, width=args.width)
    data = (torch.rand(4096, 1, 28, 28) * 2 - 1).to(device)
    trainer = GANTrainer(copy.deepcopy(G), copy.deepcopy(D), device=device)
    amp_dtype = trainer.precision.dtype
    loop = PlainLoop(G.to(device), D.to(device), data, args.batch_size, device, amp_dtype)

    def run_trainer(steps: int) -> None:
        trainer.fit(
            data,
            steps=trainer.step + steps,
            batch_size=args.batch_size,
            log_every=args.log_every,
            progress=False,
        )
        sync(device)

    runners = {"trainer": run_trainer, "loop": loop.run}
    for run in runners.values():  # warm-up: allocator, cuDNN autotuning, lazy init
        run(args.warmup)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.repeats):
        order = list(runners) if r % 2 == 0 else list(runners)[::-1]
        for name in order:
            start = clock()
            runners[name](args.steps)
            rates[name].append(args.steps / (clock() - start))

    print(
        f"device={device} threads={torch.get_num_threads()} amp={trainer.amp} "
        f"batch={args.batch_size} width={args.width} steps={args.steps} repeats={args.repeats} "
        f"clock={args.clock}"
    )
    for name, values in rates.items():
        print(
            f"{name:8s} median {statistics.median(values):8.3f} steps/s   "
            f"runs: {' '.join(f'{v:.3f}' for v in values)}"
        )
    ratio = statistics.median(rates["trainer"]) / statistics.median(rates["loop"])
    # Each repeat times both back to back, so the paired ratio cancels slow drifts in machine load.
    paired = statistics.median(t / p for t, p in zip(rates["trainer"], rates["loop"], strict=True))
    print(
        f"ratio trainer/loop = {ratio:.3f} (median of paired ratios {paired:.3f}; target >= 0.95)"
    )


if __name__ == "__main__":
    main()
