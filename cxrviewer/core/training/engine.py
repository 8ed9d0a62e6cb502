"""One epoch of training and one evaluation pass (torchvision-reference style)."""

from __future__ import annotations

import contextlib
import math
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from .data import Augment


def autocast(device: torch.device, enabled: bool):
    """fp16 autocast on CUDA, bf16 on CPU (when enabled), else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def train_one_epoch(model, criterion, optimizer, data_loader, device, epoch, args, *, scheduler=None,
                    scaler=None, augment: Augment | None = None, normalize=None, generator=None) -> float:
    """Train for one epoch; returns the mean training loss (averaged over all ranks)."""
    model.train()
    if getattr(args, "freeze_backbone", False):
        _unwrap(model).features.eval()
    total, count = torch.zeros((), dtype=torch.float64), 0
    bar = tqdm(data_loader, desc=f"epoch {epoch + 1}", leave=False, disable=not is_main_process(),
               mininterval=1.0 if sys.stderr.isatty() else 60.0, dynamic_ncols=True)
    for x, y in bar:
        x = x.to(device, non_blocking=True).float().div_(255.0)
        y = y.to(device, non_blocking=True)
        if augment is not None:
            x = augment(x, generator)
        x = normalize(x)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, args.amp):
            loss = criterion(model(x).float(), y)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.detach().double().cpu() * len(y)
        count += len(y)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}", refresh=False)
    bar.close()
    stats = torch.tensor([total.item(), float(count)], dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(stats)
    return float(stats[0] / max(stats[1], 1.0))


@torch.inference_mode()
def evaluate(model, data_loader, device, args, *, normalize, criterion=None, transform=None) -> dict:
    """Logits and labels of a whole split (gathered from every rank), and the mean loss.

    ``transform``: applied to each batch in [0, 1] before normalisation (see :mod:`.shift`).
    """
    model.eval()
    logits, labels = [], []
    for x, y in data_loader:
        x = x.to(device, non_blocking=True).float().div_(255.0)
        x = normalize(transform(x) if transform is not None else x)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, args.amp):
            out = model(x)
        logits.append(out.float().cpu())
        labels.append(y.cpu())
    logits_np = torch.cat(logits).numpy() if logits else np.zeros((0, 0), np.float32)
    labels_np = torch.cat(labels).numpy() if labels else np.zeros((0,), np.int64)
    if dist.is_available() and dist.is_initialized():
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (logits_np, labels_np))
        logits_np = np.concatenate([g[0] for g in gathered if len(g[1])])
        labels_np = np.concatenate([g[1] for g in gathered if len(g[1])])
    out = {"logits": logits_np, "labels": labels_np}
    if criterion is not None and len(labels_np):
        out["loss"] = float(criterion(torch.from_numpy(logits_np), torch.from_numpy(labels_np)))
    return out


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model
