"""Training checkpoints: what ``--resume`` restores so that a resumed run continues the interrupted one.

A checkpoint holds the model, optimiser, scheduler and gradient-scaler states, the epoch history, the
best epoch's weights, every rank's random streams and the arguments, as plain tensors and strings
(it loads with ``weights_only=True``). It is written by rank 0 only, atomically.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import atomic
from . import TrainingError, metrics
from .data import TrainingData
from .runtime import Runtime, all_gather

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """What the epochs so far produced: one history row per epoch and the best epoch's weights."""

    history: list[dict] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None

    @property
    def next_epoch(self) -> int:
        return len(self.history)

    @property
    def best_epoch(self) -> int | None:
        """0-based index of the best epoch by :func:`.metrics.best_epoch`."""
        return metrics.best_epoch(self.history)

    @property
    def chosen_epoch(self) -> int:
        """The epoch whose weights the model file gets: the best, or the last when none has a finite AUROC."""
        best = self.best_epoch
        return len(self.history) - 1 if best is None else best

    def restore_best(self, model: nn.Module) -> None:
        """Load the best epoch's weights into ``model`` (the last epoch's stay when there is no best)."""
        if self.best_state is None:
            log.warning("no epoch has a finite validation AUROC: the model file gets the last epoch's weights")
            return
        model.load_state_dict(self.best_state)

    def add(self, row: dict, model: nn.Module) -> bool:
        """Record an epoch; keep a copy of ``model``'s weights when it is the best so far (returns that)."""
        self.history.append(row)
        improved = self.best_epoch == len(self.history) - 1
        if improved:
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return improved


def rng_state(data: TrainingData) -> dict[str, torch.Tensor]:
    """The random streams the next epoch draws from: torch's global generator (data-loader seeds),
    the augmentation generator and the shuffling sampler's generator."""
    state = {"torch": torch.get_rng_state(), "augment": data.generator.get_state()}
    sampler_generator = getattr(data.train_loader.sampler, "generator", None)
    if sampler_generator is not None:
        state["sampler"] = sampler_generator.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(data: TrainingData, state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    data.generator.set_state(state["augment"])
    if "sampler" in state:
        data.train_loader.sampler.generator.set_state(state["sampler"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def checkpoint_state(learners: dict, progress: Progress, data: TrainingData, rt: Runtime, args: dict) -> dict:
    """Everything a checkpoint holds: ``learners``' states (name -> object with ``state_dict``), the progress,
    every rank's random streams (so call it on every rank) and the plain arguments ``args``."""
    state = {name: obj.state_dict() for name, obj in learners.items() if obj is not None}
    return {**state, "epoch": progress.next_epoch - 1, "history": json.dumps(progress.history),
            "best_state": progress.best_state, "rng": all_gather(rt, rng_state(data)), "args": json.dumps(args)}


def save_checkpoint(state: dict, path: Path, rt: Runtime) -> None:
    """Write ``state`` to ``path`` atomically, on rank 0 only."""
    if not rt.is_main:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, learners: dict, data: TrainingData, rt: Runtime) -> Progress:
    """Restore ``learners`` (name -> object with ``load_state_dict``) and the random streams from ``path``;
    returns the progress so far. A checkpoint without this rank's random streams restarts them from ``--seed``."""
    if not Path(path).is_file():
        raise TrainingError(f"--resume {path}: file not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        for name, obj in learners.items():
            if obj is not None and ck.get(name):
                obj.load_state_dict(ck[name])
    except pickle.UnpicklingError:
        raise TrainingError(f"--resume {path}: not a training checkpoint (only plain tensors and data are loaded)") from None
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise TrainingError(f"--resume {path}: not a checkpoint of this run ({detail})") from None
    rng = ck.get("rng") or []
    if len(rng) == rt.world_size:
        set_rng_state(data, rng[rt.rank])
    elif rt.is_main:
        log.warning("%s: no random state for %d process(es); augmentation and shuffling restart from --seed",
                    path, rt.world_size)
    progress = Progress(json.loads(ck["history"]), ck.get("best_state"))
    if rt.is_main:
        log.info("resumed from %s at epoch %d", path, progress.next_epoch + 1)
    return progress
