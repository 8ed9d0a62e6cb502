"""Inference precision: which floating-point type the model's trunk runs in, and whether it is safe.

Policy (``auto``, the default, or an explicit ``float32`` / ``bfloat16`` / ``float16``):

- ``auto`` picks a reduced precision only where the hardware runs it natively
  (bfloat16 on CPUs with AVX-512 BF16 or AMX; float16, else bfloat16, on CUDA)
  *and* the model file records that, on validation, the labels in that precision
  agreed with float32 on at least :data:`MIN_AGREEMENT` of the images. Otherwise float32.
- An explicit precision is used as asked (float16 on a CPU is exact enough but slow).

:func:`prepare_model` makes a private copy of a model for inference: the trunk in
the chosen precision and channels_last, the linear head in float32, so logits and
CAMs keep the CAM identity in float32. :func:`measure_parity` measures label
agreement and the largest probability difference against float32; the trainer
stores the result in the model file under :data:`PARITY_KEY`.
"""

from __future__ import annotations

import copy
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from .classifier import CamClassifier

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
REDUCED = ("bfloat16", "float16")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MIN_AGREEMENT = 0.995
PARITY_KEY = "precision_parity"
"""Model-file metadata key: ``{precision: {"agreement", "max_prob_diff", "n", "split"}}``."""


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision to run (``name``) and why (``reason``, one line for the user)."""

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]


def check_policy(policy: str) -> str:
    """``policy`` lower-cased, or :class:`ValueError` naming the valid ones."""
    p = str(policy).strip().lower()
    if p not in PRECISIONS:
        raise ValueError(f"unknown precision {policy!r}; choose one of {', '.join(PRECISIONS)}")
    return p


@lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True if this CPU computes bfloat16 in hardware (x86 AVX-512 BF16 or AMX-BF16; Linux aarch64 BF16).

    Without it torch emulates bfloat16 and runs slower than float32. Reads the
    capabilities torch detects (``torch.cpu.get_capabilities``), else ``/proc/cpuinfo``.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        try:
            caps = get()
            if caps.get("avx512_bf16") or caps.get("amx_bf16"):
                return True
            return bool(caps.get("bf16")) and platform.system() == "Linux"
        except Exception:  # noqa: BLE001 - fall back to the kernel's view
            pass
    return bool(_cpuinfo_flags() & {"avx512_bf16", "amx_bf16", "bf16"})


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def native_precisions(device: torch.device) -> tuple[str, ...]:
    """Reduced precisions this device runs natively, best first."""
    if device.type == "cuda":
        try:
            bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.3
            bf16 = torch.cuda.is_bf16_supported()
        return ("float16", "bfloat16") if bf16 else ("float16",)
    if device.type == "cpu" and cpu_has_native_bf16():
        return ("bfloat16",)
    return ()


def resolve_precision(policy: str, device: torch.device | str, parity: Mapping[str, Any] | None) -> PrecisionChoice:
    """The precision ``policy`` means for a model with recorded ``parity`` (the model file's :data:`PARITY_KEY`) on ``device``."""
    policy = check_policy(policy)
    device = torch.device(device)
    if policy != "auto":
        return PrecisionChoice(policy, "chosen")
    native = native_precisions(device)
    if not native:
        return PrecisionChoice("float32", f"auto: no native reduced precision on {device.type}")
    for name in native:
        record = (parity or {}).get(name) or {}
        agreement = record.get("agreement")
        if isinstance(agreement, (int, float)) and agreement >= MIN_AGREEMENT:
            return PrecisionChoice(name, f"auto: native on {device.type}, labels agree with float32 on "
                                         f"{_percent(agreement)} of validation")
    if not parity:
        return PrecisionChoice("float32", "auto: the model file records no reduced-precision parity")
    return PrecisionChoice("float32", f"auto: {'/'.join(native)} agreement with float32 below "
                                      f"{_percent(MIN_AGREEMENT)} on validation")


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


class _TrunkIn(nn.Module):
    """Runs ``trunk`` on its input cast to ``dtype`` in channels_last; returns float32 features."""

    def __init__(self, trunk: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.trunk = trunk
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(dtype=self.dtype, memory_format=torch.channels_last)
        return self.trunk(x).float()


def fold_batchnorm(trunk: nn.Module) -> nn.Module:
    """Fold each eval-mode BatchNorm2d that directly follows a Conv2d into it, in place; returns ``trunk``.

    Pairs: consecutive children of a Sequential (``conv1, bn1`` of the stem, ``downsample``)
    and ResNet blocks' ``convN`` / ``bnN`` (torchvision applies ``bnN`` right after
    ``convN``). DenseNet's norm-before-conv layers are left as they are.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    def fold(parent: nn.Module, conv_name: str, bn_name: str) -> None:
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
            with torch.no_grad():
                conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                              bn.eps, bn.weight, bn.bias)
            setattr(parent, bn_name, nn.Identity())

    for module in list(trunk.modules()):
        names = [n for n, _ in module.named_children()]
        if isinstance(module, nn.Sequential):
            for a, b in zip(names, names[1:]):
                fold(module, a, b)
        for n in names:
            if n.startswith("conv") and f"bn{n[4:]}" in names:
                fold(module, n, f"bn{n[4:]}")
    return trunk


def prepare_model(model: CamClassifier, precision: str, device: torch.device | str = "cpu") -> CamClassifier:
    """A private eval-mode copy of ``model`` on ``device`` for inference in ``precision`` (not "auto").

    The trunk's batch norms are folded into their convolutions (:func:`fold_batchnorm`),
    then it is converted to ``precision`` and channels_last (faster on CPU even in
    float32); the head stays float32, so logits and CAMs are float32 and a CAM's
    spatial mean plus the bias is still the logit. ``model`` itself is not touched.
    """
    precision = check_policy(precision)
    if precision == "auto":
        raise ValueError("resolve 'auto' first (resolve_precision)")
    dtype = DTYPES[precision]
    clone = copy.deepcopy(model).to(torch.device(device)).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    trunk = fold_batchnorm(clone.features).to(dtype=dtype, memory_format=torch.channels_last)
    clone.features = _TrunkIn(trunk, dtype)
    clone.meta = dict(clone.meta, precision=precision)
    return clone


@torch.inference_mode()
def _outputs(model: CamClassifier, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits, _ = model.logits_and_cams(model.normalize(x))
    probs = model.probabilities(logits)
    return probs, model.decide(probs)


def measure_parity(model: CamClassifier, batches: Iterable[torch.Tensor], precisions: Iterable[str] = REDUCED,
                   device: torch.device | str = "cpu", split: str = "validation",
                   allow_empty: bool = False) -> dict[str, dict[str, Any]]:
    """Compare each reduced precision with float32 on ``batches`` of ``N x 1 x H x W`` grey images.

    Images are float in [0, 1] or uint8 (divided by 255). Returns, per precision,
    ``agreement`` (fraction of images whose label is the same as in float32, by the
    model's decision rule), ``max_prob_diff`` (largest absolute difference of any
    class probability), ``n`` and ``split``: the record :func:`resolve_precision` reads.
    No images raise :class:`ValueError` unless ``allow_empty`` (a rank with an empty shard).
    """
    device = torch.device(device)
    names = [check_policy(p) for p in precisions]
    reference = prepare_model(model, "float32", device)
    reduced = {name: prepare_model(model, name, device) for name in names}
    same = dict.fromkeys(names, 0)
    worst = dict.fromkeys(names, 0.0)
    n = 0
    for x in batches:
        x = x.to(device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        probs, labels = _outputs(reference, x)
        for name, clone in reduced.items():
            p, lab = _outputs(clone, x)
            same[name] += int((lab == labels).sum())
            worst[name] = max(worst[name], float((p - probs).abs().max()))
        n += len(x)
    if n == 0 and not allow_empty:
        raise ValueError("no images to measure parity on")
    return {name: {"agreement": same[name] / max(n, 1), "max_prob_diff": round(worst[name], 6), "n": n, "split": split}
            for name in names}
