"""Where and how a training run executes: device, mixed precision, memory format, ranks.

:func:`init_runtime` derives these from the parsed arguments and the environment (``torchrun``
sets ``WORLD_SIZE``) into a frozen :class:`Runtime`; the arguments themselves stay as parsed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Runtime:
    """Settings derived from the arguments and the environment, fixed for the whole run."""

    device: torch.device
    amp: bool                 # autocast: fp16 on CUDA, bf16 on CPU
    channels_last: bool       # model and batches in channels_last memory format
    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes files (rank 0)."""
        return self.rank == 0


def init_runtime(args: argparse.Namespace) -> Runtime:
    """Pick the device and precision; join the process group when started by ``torchrun``."""
    from ..batch.inference import pick_device

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        device = pick_device(args.device)
        return Runtime(device, amp_enabled(args.amp, device), device.type != "mps")
    want_cuda = torch.cuda.is_available() and (args.device is None or str(args.device).startswith("cuda"))
    if want_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device(f"cuda:{local}")
    else:
        device = pick_device(args.device)
    dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    return Runtime(device, amp_enabled(args.amp, device), device.type != "mps", dist.get_rank(), dist.get_world_size())


def close_runtime(rt: Runtime) -> None:
    """Leave the process group, if the run joined one."""
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def amp_enabled(mode: str, device: torch.device) -> bool:
    """``--amp`` resolved: ``auto`` is on for CUDA and for CPUs with native bf16, off elsewhere."""
    if mode == "off":
        return False
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        supported = bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
        return supported or mode == "on"
    return mode == "on"


def autocast(device: torch.device, enabled: bool):
    """fp16 autocast on CUDA, bf16 on CPU (when enabled), else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (model initialisation draws from torch's)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def all_gather(rt: Runtime, obj) -> list:
    """``obj`` from every rank, in rank order (``[obj]`` when not distributed)."""
    if not rt.distributed:
        return [obj]
    gathered = [None] * rt.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
