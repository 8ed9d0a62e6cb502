"""The precision names and the parity bar, without torch: what the settings, the menus and the CLI's help need.

:mod:`.precision` resolves a policy against a device and a model file's parity record.
"""

from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")
REDUCED = ("bfloat16", "float16")
MIN_AGREEMENT = 0.995
"""Fraction of validation images whose label must agree with float32's for ``auto`` to pick a precision."""
MIN_CAM_CORRELATION = 0.98
"""Correlation with float32's CAMs on validation that int8 must reach for ``auto`` to pick it."""
PARITY_KEY = "precision_parity"
"""Model-file metadata key: ``{precision: {"agreement", "max_prob_diff", "cam_correlation", "n", "split"}}``."""
CPU_ENV = "CXRVIEWER_CPU_FEATURES"
"""Environment variable that replaces the detected CPU features: a comma-separated subset of
``bf16,vnni,avx2`` (``none``: none of them), e.g. to try the policy of another CPU."""


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision to run (``name``) and why (``reason``, one line for the user)."""

    name: str
    reason: str

    @property
    def dtype(self):
        """The torch dtype of the trunk's input (float32 for int8: it is quantised inside the engine)."""
        import torch

        return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(self.name, torch.float32)


def check_policy(policy: str) -> str:
    """``policy`` lower-cased, or :class:`ValueError` naming the valid ones."""
    p = str(policy).strip().lower()
    if p not in PRECISIONS:
        raise ValueError(f"unknown precision {policy!r}; choose one of {', '.join(PRECISIONS)}")
    return p
