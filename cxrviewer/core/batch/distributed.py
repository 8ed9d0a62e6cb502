"""``cxrviewer predict`` under ``torchrun``: ranks share the inputs, rank 0 writes the one CSV.

torchrun starts one process per rank and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE`` and the rendezvous address; :func:`join` turns that into a
:class:`Group` over ``torch.distributed`` with the gloo backend (CPU; it carries only
small Python objects). Rank 0 scans the inputs and broadcasts the list, so every
rank shards the same list: rank ``r`` of ``w`` takes batches ``r, r + w, r + 2w, ...``.
Each rank decodes, classifies and renders the overlays of its share; the results
(without CAMs) are gathered on rank 0, which writes them in input order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Group:
    """This process's place in a torchrun job."""

    rank: int
    world: int
    local_world: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, n: int, block: int = 1) -> list[int]:
        """Indices of the ``n`` inputs this rank owns: every ``world``-th run of ``block`` inputs, from run ``rank``.

        With ``block`` = the batch size, each rank's batches are batches of the
        single-process run, so the numbers are the same to the last bit.
        """
        starts = range(self.rank * block, n, self.world * block)
        return [i for s in starts for i in range(s, min(s + block, n))]


def join(timeout_minutes: float = 60.0) -> Group | None:
    """The :class:`Group` when started by torchrun with more than one rank (process group initialised), else None."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(minutes=timeout_minutes))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world) or world)
    return Group(dist.get_rank(), dist.get_world_size(), local)


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value: T | None) -> T:
    """Rank 0's ``value`` on every rank."""
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def everyone(ok: bool) -> bool:
    """True on every rank when ``ok`` is true on every rank."""
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1 if ok else 0], dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def gather(items: Sequence[Any], group: Group) -> list[Any] | None:
    """Every rank's ``items`` concatenated on rank 0 (rank order); None on the other ranks."""
    import torch.distributed as dist

    parts: list[Any] | None = [None] * group.world if group.main else None
    dist.gather_object(list(items), parts, dst=0)
    if parts is None:
        return None
    return [x for part in parts for x in part]
