"""One epoch of training and one evaluation pass (torchvision-reference style)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from .runtime import Runtime, all_gather, autocast


def train_one_epoch(model, criterion, optimizer, data_loader, epoch: int, rt: Runtime, *, scheduler=None,
                    scaler=None, augment: Callable | None = None, generator: torch.Generator | None = None,
                    mix: Callable | None = None, ema: AveragedModel | None = None, distill=None) -> float:
    """Train for one epoch; returns the mean training loss (averaged over all ranks).

    ``model`` may be wrapped in DistributedDataParallel; a frozen trunk (no parameter needs a
    gradient) stays in eval mode, so its batch-norm statistics do not move. ``augment(x, generator)``
    transforms each batch in [0, 1]; ``mix(x, y, generator=...)`` returns mixed images and soft targets
    (mixup, cutmix); ``ema`` is updated after every optimiser step; ``distill`` (a
    :class:`.distill.Teachers`) turns the loss into its distillation loss on the same batch.
    """
    model.train()
    net = _unwrap(model)
    if not any(p.requires_grad for p in net.features.parameters()):
        net.features.eval()
    total, count = torch.zeros((), dtype=torch.float64), 0
    bar = tqdm(data_loader, desc=f"epoch {epoch + 1}", leave=False, disable=not rt.is_main,
               mininterval=1.0 if sys.stderr.isatty() else 60.0, dynamic_ncols=True)
    for x, y in bar:
        x = x.to(rt.device, non_blocking=True).float().div_(255.0)
        y = y.to(rt.device, non_blocking=True)
        if augment is not None:
            x = augment(x, generator)
        if mix is not None:
            x, y = mix(x, y, generator=generator)
        grey, x = x, _to_input(net.normalize(x), rt)
        with autocast(rt.device, rt.amp):
            logits = model(x).float()
            loss = criterion(logits, y)
            if distill is not None:
                loss = distill.loss(loss, grey, logits)
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
        if ema is not None:
            ema.update_parameters(net)
        total += loss.detach().double().cpu() * len(y)
        count += len(y)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}", refresh=False)
    bar.close()
    stats = torch.tensor([total.item(), float(count)], dtype=torch.float64)
    if rt.distributed:
        dist.all_reduce(stats)
    return float(stats[0] / max(stats[1], 1.0))


@torch.inference_mode()
def evaluate(model, data_loader, rt: Runtime, *, criterion=None, transform=None) -> dict:
    """Logits and labels of a whole split (gathered from every rank), and the mean loss with ``criterion``.

    ``transform``: applied to each batch in [0, 1] before normalisation (see :mod:`.shift`).
    """
    model.eval()
    logits, labels = [], []
    for x, y in data_loader:
        x = x.to(rt.device, non_blocking=True).float().div_(255.0)
        x = _to_input(model.normalize(transform(x) if transform is not None else x), rt)
        with autocast(rt.device, rt.amp):
            out = model(x)
        logits.append(out.float().cpu())
        labels.append(y.cpu())
    logits_np = torch.cat(logits).numpy() if logits else np.zeros((0, 0), np.float32)
    labels_np = torch.cat(labels).numpy() if labels else np.zeros((0,), np.int64)
    if rt.distributed:
        gathered = [g for g in all_gather(rt, (logits_np, labels_np)) if len(g[1])]
        logits_np = np.concatenate([g[0] for g in gathered])
        labels_np = np.concatenate([g[1] for g in gathered])
    out = {"logits": logits_np, "labels": labels_np}
    if criterion is not None and len(labels_np):
        out["loss"] = float(criterion(torch.from_numpy(logits_np), torch.from_numpy(labels_np)))
    return out


def _to_input(x: torch.Tensor, rt: Runtime) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if rt.channels_last else x


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
