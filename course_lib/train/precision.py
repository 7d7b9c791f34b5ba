"""Mixed precision and the optimizer step: autocast, loss scaling, gradient clipping.

On CUDA, :class:`MixedPrecision` runs the forward passes under ``torch.autocast``: bf16 on GPUs
that have native bf16 (compute capability 8 and newer), else fp16 with a ``GradScaler`` that
scales the loss so that small gradients survive in half precision (Micikevicius et al. 2018,
arXiv:1710.03740). Elsewhere it does nothing. :meth:`MixedPrecision.optimize` is
the one optimizer step every training step of the course calls.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn


class MixedPrecision:
    """Autocast and loss scaling for one device; ``enabled=None`` means on for CUDA only."""

    def __init__(self, device: torch.device, enabled: bool | None = None):
        if enabled is None:
            enabled = device.type == "cuda"
        if enabled and device.type != "cuda":
            raise ValueError(
                f"amp=True needs a CUDA device, got device {device}; "
                "leave amp=None to use it automatically on CUDA."
            )
        self.device = device
        self.enabled = bool(enabled)
        self.dtype: torch.dtype | None = None
        self.scaler: torch.amp.GradScaler | None = None
        if self.enabled:
            # Native bf16 needs compute capability >= 8 (Ampere); is_bf16_supported() also says
            # yes for slow emulated bf16 on older GPUs such as Colab's T4, which get fp16 here.
            bf16 = torch.version.hip is not None or torch.cuda.get_device_capability(device)[0] >= 8
            self.dtype = torch.bfloat16 if bf16 else torch.float16
            self.scaler = None if bf16 else torch.amp.GradScaler("cuda")

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context for forward passes: ``torch.autocast`` when enabled, else nothing."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def optimize(
        self, loss: Tensor, opt: torch.optim.Optimizer, grad_clip: float | None = None
    ) -> Tensor | None:
        """Backward and one step of ``opt``; returns the gradient norm before clipping, or None.

        With ``grad_clip``, the gradient of ``opt``'s parameters is rescaled to a global L2 norm
        of at most ``grad_clip`` (Pascanu et al. 2013, arXiv:1211.5063), and the norm before
        clipping is returned as a device tensor (no sync).
        Under fp16 the loss is scaled, the gradient unscaled before clipping (so the true
        gradient is clipped), and a step with inf/NaN gradients is skipped by the scaler.
        """
        opt.zero_grad(set_to_none=True)
        params = [p for group in opt.param_groups for p in group["params"]]
        norm = None
        if self.scaler is None:
            loss.backward()
            if grad_clip is not None:
                norm = nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
            opt.step()
        else:
            self.scaler.scale(loss).backward()
            if grad_clip is not None:
                self.scaler.unscale_(opt)  # clip the true gradient, not the scaled one
                norm = nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
            self.scaler.step(opt)
            self.scaler.update()
        return norm
