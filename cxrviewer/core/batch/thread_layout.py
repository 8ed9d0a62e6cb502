"""How the batch engine shares the CPU: lanes, each decoding a batch and running its forward pass on few threads.

On a small CPU two concurrent lanes with one torch thread each beat one model pass on every
core plus separate decoding threads: no OpenMP team has to wait at a barrier for a core that a
decoding thread holds, and a one-thread convolution does more work per core-second (ResNet-18,
bfloat16, 224 px, batch 16 on the 2-core benchmark machine: 126 images/s on 1 thread, 204 on 2,
not 252). :func:`default_lanes` picks the layout, :func:`intra_op_threads` applies it for a run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

MAX_LANES = 4
_lock = threading.Lock()
_users = 0
_saved = 0


def thread_budget() -> int:
    """The threads a run may use: torch's thread count (the cores, ``OMP_NUM_THREADS`` or ``torch.set_num_threads``),
    as it was before any run now going changed it."""
    with _lock:
        return _saved if _users else torch.get_num_threads()


def default_lanes(budget: int) -> int:
    """Lanes for ``budget`` threads (torch's thread count: the cores, or what the user set): one per thread, at most 4."""
    return max(1, min(MAX_LANES, int(budget)))


def threads_per_lane(budget: int, lanes: int) -> int:
    """Torch threads each of ``lanes`` lanes gets out of ``budget``."""
    return max(1, int(budget) // max(1, int(lanes)))


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count is ``n`` inside the block (process-wide; restored when the last
    overlapping block ends). Threads started inside the block use ``n`` threads for their own ops."""
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = torch.get_num_threads()
        _users += 1
        torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                torch.set_num_threads(_saved)
