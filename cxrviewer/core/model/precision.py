"""Inference precision: which number type the model's trunk runs in, and whether it is safe.

Policy (``auto``, the default, or an explicit ``float32`` / ``bfloat16`` / ``float16`` / ``int8``):

- ``auto`` picks the fastest precision this hardware runs natively (:func:`native_precisions`:
  int8 on CPUs with VNNI or AVX2 dot products, then bfloat16 on CPUs with AVX-512 BF16 or AMX;
  float16, else bfloat16, on CUDA) *whose parity the model file records*: labels in that precision
  agreed with float32 on at least :data:`MIN_AGREEMENT` of the validation images, and for int8 its
  CAMs correlate with float32's at least :data:`MIN_CAM_CORRELATION`. Otherwise float32.
- An explicit precision is used as asked (float16 on a CPU is exact enough but slow); int8
  without its engine or calibration falls back to float32, with the reason.

:func:`prepare_model` makes a private copy of a model for inference: the trunk in
the chosen precision and channels_last (int8: a quantised graph on ONNX Runtime, :mod:`.int8`),
the linear head in float32, so logits and CAMs keep the CAM identity in float32.
:func:`measure_parity` measures label agreement, the largest probability difference and the
CAMs' correlation against float32; the trainer (or ``python -m cxrviewer.core.training.parity``)
stores the result in the model file under :data:`PARITY_KEY`. The detected CPU features can be
replaced with the :data:`CPU_ENV` environment variable (``bf16,vnni,avx2`` or ``none``).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import platform
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from .classifier import CamClassifier
from .precision_policy import (CPU_ENV, MIN_AGREEMENT, MIN_CAM_CORRELATION, PARITY_KEY, PRECISIONS, REDUCED,
                               PrecisionChoice, check_policy)

__all__ = ["CPU_ENV", "MIN_AGREEMENT", "MIN_CAM_CORRELATION", "PARITY_KEY", "PRECISIONS", "REDUCED", "PrecisionChoice",
           "check_policy", "choose_precision", "cpu_features", "measure_parity", "native_precisions",
           "prepare_for", "prepare_model", "resolve_precision"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FEATURES = ("bf16", "vnni", "avx2")


def forced_cpu_features() -> frozenset[str] | None:
    """The CPU features :data:`CPU_ENV` forces (``none`` or empty: none), or None when it is not set."""
    value = os.environ.get(CPU_ENV)
    if value is None:
        return None
    names = {v.strip().lower() for v in value.split(",") if v.strip()} - {"none"}
    unknown = names - set(FEATURES)
    if unknown:
        raise ValueError(f"{CPU_ENV}: unknown feature(s) {', '.join(sorted(unknown))}; use {', '.join(FEATURES)} or none")
    return frozenset(names)


def cpu_features() -> frozenset[str]:
    """This CPU's features that the policy reads: ``bf16`` (native bfloat16), ``vnni`` and ``avx2`` (int8 dot products).

    :data:`CPU_ENV` replaces the detection (for tests, and to try another CPU's policy).
    """
    forced = forced_cpu_features()
    if forced is not None:
        return forced
    found = set()
    if _detected_bf16():
        found.add("bf16")
    found |= _detected_int8()
    return frozenset(found)


def cpu_has_native_bf16() -> bool:
    """True if this CPU computes bfloat16 in hardware (x86 AVX-512 BF16 or AMX-BF16; Linux aarch64 BF16)."""
    return "bf16" in cpu_features()


def cpu_has_int8_dot() -> bool:
    """True if this CPU has int8 dot-product instructions (x86 VNNI or AVX2; aarch64 dot product)."""
    return bool(cpu_features() & {"vnni", "avx2"})


@lru_cache(maxsize=None)
def _detected_bf16() -> bool:
    """Native bfloat16, as torch detects it (``torch.cpu.get_capabilities``), else ``/proc/cpuinfo``.

    Without it torch emulates bfloat16 and runs slower than float32.
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


@lru_cache(maxsize=None)
def _detected_int8() -> frozenset[str]:
    """``vnni`` and/or ``avx2`` as the CPU reports them (aarch64's dot product counts as ``vnni``)."""
    flags = set(_cpuinfo_flags())
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        try:
            flags |= {k for k, v in get().items() if v is True}
        except Exception:  # noqa: BLE001
            pass
    found = set()
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"}:
        found.add("vnni")
    if "avx2" in flags:
        found.add("avx2")
    return frozenset(found)


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
    """Reduced precisions this device runs natively, fastest first."""
    if device.type == "cuda":
        try:
            bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.3
            bf16 = torch.cuda.is_bf16_supported()
        return ("float16", "bfloat16") if bf16 else ("float16",)
    if device.type != "cpu":
        return ()
    return (("int8",) if cpu_has_int8_dot() else ()) + (("bfloat16",) if cpu_has_native_bf16() else ())


def _units(name: str) -> str:
    if name == "int8":
        f = cpu_features()
        return "VNNI" if "vnni" in f else "AVX2"
    return "bf16 units" if name == "bfloat16" else "the GPU"


def parity_ok(name: str, record: Mapping[str, Any] | None) -> str | None:
    """Why ``record`` (a model file's parity for precision ``name``) does not meet the bar, or None when it does."""
    record = record or {}
    agreement = record.get("agreement")
    if not isinstance(agreement, (int, float)):
        return f"the model file records no {name} parity"
    if agreement < MIN_AGREEMENT:
        return f"{name} labels agree with float32 on {_percent(agreement)} of validation, below {_percent(MIN_AGREEMENT)}"
    if name == "int8":
        corr = record.get("cam_correlation")
        if not isinstance(corr, (int, float)):
            return "the model file records no int8 CAM correlation"
        if corr < MIN_CAM_CORRELATION:
            return f"int8 CAMs correlate {corr:.3f} with float32's, below {MIN_CAM_CORRELATION}"
    scope = record.get("scope_agreement")
    if isinstance(scope, (int, float)) and scope < MIN_AGREEMENT:
        return f"{name} scope decisions agree with float32 on {_percent(scope)} of validation, below {_percent(MIN_AGREEMENT)}"
    return None


def resolve_precision(policy: str, device: torch.device | str, parity: Mapping[str, Any] | None,
                      int8_blocker: str | None = None) -> PrecisionChoice:
    """The precision ``policy`` means for a model with recorded ``parity`` (the model file's :data:`PARITY_KEY`) on ``device``.

    ``int8_blocker``: why this model cannot run in int8 here (:func:`int8_blocker`), or None.
    """
    policy = check_policy(policy)
    device = torch.device(device)
    if policy == "int8":
        if device.type != "cpu":
            return PrecisionChoice("float32", f"int8 runs on the CPU only; float32 on {device.type}")
        if int8_blocker:
            return PrecisionChoice("float32", f"int8 unavailable ({int8_blocker}); float32")
    if policy != "auto":
        return PrecisionChoice(policy, "chosen")
    native = native_precisions(device)
    if not native:
        return PrecisionChoice("float32", f"auto: no native reduced precision on {device.type}")
    skipped = []
    for name in native:
        if name == "int8" and int8_blocker:
            skipped.append(f"int8 unavailable ({int8_blocker})")
            continue
        why_not = parity_ok(name, (parity or {}).get(name))
        if why_not is None:
            record = parity[name]
            extra = f", CAM correlation {record['cam_correlation']:.3f}" if "cam_correlation" in record else ""
            passed = "".join(f"; not {why}" for why in skipped)  # a faster precision passed over: say why
            return PrecisionChoice(name, f"auto: native on {device.type} ({_units(name)}), labels agree with float32 "
                                         f"on {_percent(record['agreement'])} of validation{extra}{passed}")
        skipped.append(why_not)
    if not parity:
        return PrecisionChoice("float32", "auto: the model file records no reduced-precision parity")
    return PrecisionChoice("float32", "auto: " + "; ".join(skipped))


def int8_blocker(model: CamClassifier) -> str | None:
    """Why ``model`` cannot run in int8 here (not a ResNet, no calibration, no engine installed), or None. Cheap."""
    from .int8 import CALIBRATION_KEY, check_calibration, unsupported

    reason = unsupported(model) or check_calibration(model.meta.get(CALIBRATION_KEY), model)
    if reason:
        return reason
    for name in ("onnxruntime", "onnx"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed"
    return None


def choose_precision(policy: str, device: torch.device | str, model: CamClassifier) -> PrecisionChoice:
    """:func:`resolve_precision` for ``model``: its parity record and whether it can run in int8."""
    return resolve_precision(policy, device, model.meta.get(PARITY_KEY), int8_blocker(model))


def prepare_for(model: CamClassifier, policy: str, device: torch.device | str = "cpu"
                ) -> tuple[CamClassifier, PrecisionChoice]:
    """The private copy for ``policy`` (:func:`prepare_model` of :func:`choose_precision`) and the choice.

    If the int8 engine fails to build, the policy is resolved again without int8 and the reason says why.
    """
    choice = choose_precision(policy, device, model)
    try:
        return prepare_model(model, choice.name, device), choice
    except Exception as e:  # noqa: BLE001 - only int8 can fail here (engine, graph); float always builds
        if choice.name != "int8":
            raise
        blocker = f"its engine failed: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}"
        choice = resolve_precision(policy, device, model.meta.get(PARITY_KEY), blocker)
        return prepare_model(model, choice.name, device), choice


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
    float32), or for int8 built into a quantised graph from the model file's calibration
    (:mod:`.int8`; CPU only); the head stays float32, so logits and CAMs are float32 and a
    CAM's spatial mean plus the bias is still the logit. ``model`` itself is not touched.
    """
    precision = check_policy(precision)
    if precision == "auto":
        raise ValueError("resolve 'auto' first (resolve_precision)")
    device = torch.device(device)
    clone = copy.deepcopy(model).to(device).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    trunk = fold_batchnorm(clone.features)
    if precision == "int8":
        from . import int8

        if device.type != "cpu":
            raise ValueError("int8 runs on the CPU only")
        reason = int8.unsupported(model) or int8.check_calibration(model.meta.get(int8.CALIBRATION_KEY), model)
        if reason:
            raise ValueError(reason)
        clone.features = int8.Int8Trunk(int8.build_qdq_model(trunk, model.meta[int8.CALIBRATION_KEY],
                                                             model.input_channels))
    else:
        dtype = DTYPES[precision]
        clone.features = _TrunkIn(trunk.to(dtype=dtype, memory_format=torch.channels_last), dtype)
    clone.meta = dict(clone.meta, precision=precision)
    return clone


@torch.inference_mode()
def _outputs(model: CamClassifier, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    logits, cams, pooled = model.logits_cams_pooled(model.normalize(x))
    probs = model.probabilities(logits)
    return probs, model.decide(probs), cams.float(), pooled.float()


def cam_correlations(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of two ``N x K x h x w`` CAM stacks (all classes of an image together)."""
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    den = (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)
    return (a * b).sum(dim=1) / den


def measure_parity(model: CamClassifier, batches: Iterable[torch.Tensor], precisions: Iterable[str] = REDUCED,
                   device: torch.device | str = "cpu", split: str = "validation",
                   allow_empty: bool = False) -> dict[str, dict[str, Any]]:
    """Compare each reduced precision with float32 on ``batches`` of ``N x 1 x H x W`` grey images.

    Images are float in [0, 1] or uint8 (divided by 255). Returns, per precision,
    ``agreement`` (fraction of images whose label is the same as in float32, by the
    model's decision rule), ``max_prob_diff`` (largest absolute difference of any
    class probability), ``cam_correlation`` (mean over images of the correlation of the
    CAMs with float32's) and ``cam_correlation_min`` (the lowest), for a model with a scope
    ``scope_agreement`` (same in-scope decision as float32) and ``max_scope_diff``, ``n`` and ``split``:
    the record :func:`resolve_precision` reads. ``int8`` needs the model file's calibration.
    No images raise :class:`ValueError` unless ``allow_empty`` (a rank with an empty shard).
    """
    from .scope import ScopeStats

    device = torch.device(device)
    names = [check_policy(p) for p in precisions]
    scope = ScopeStats.from_meta(model.meta.get("scope"))
    reference = prepare_model(model, "float32", device)
    reduced = {name: prepare_model(model, name, device) for name in names}
    same = dict.fromkeys(names, 0)
    worst = dict.fromkeys(names, 0.0)
    corr_sum = dict.fromkeys(names, 0.0)
    corr_min = dict.fromkeys(names, 1.0)
    scope_same = dict.fromkeys(names, 0)
    scope_diff = dict.fromkeys(names, 0.0)
    n = 0
    for x in batches:
        x = x.to(device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        probs, labels, cams, pooled = _outputs(reference, x)
        ref_scope = scope.distance(pooled.cpu().numpy()) if scope is not None else None
        for name, clone in reduced.items():
            p, lab, c, pool = _outputs(clone, x)
            if scope is not None:
                d = scope.distance(pool.cpu().numpy())
                scope_same[name] += int(((d <= scope.threshold) == (ref_scope <= scope.threshold)).sum())
                scope_diff[name] = max(scope_diff[name], float(abs(d - ref_scope).max()))
            same[name] += int((lab == labels).sum())
            worst[name] = max(worst[name], float((p - probs).abs().max()))
            r = cam_correlations(c, cams)
            corr_sum[name] += float(r.sum())
            corr_min[name] = min(corr_min[name], float(r.min()))
        n += len(x)
    if n == 0 and not allow_empty:
        raise ValueError("no images to measure parity on")
    scoped = {name: {"scope_agreement": scope_same[name] / max(n, 1), "max_scope_diff": round(scope_diff[name], 6)}
              if scope is not None else {} for name in names}
    return {name: {"agreement": same[name] / max(n, 1), "max_prob_diff": round(worst[name], 6),
                   "cam_correlation": round(corr_sum[name] / max(n, 1), 6), "cam_correlation_min": round(corr_min[name], 6),
                   **scoped[name], "n": n, "split": split}
            for name in names}


def cpu_description() -> str:
    """The CPU's model name and count, the features the policy reads (and whether :data:`CPU_ENV` forced them),
    and the reduced precisions it runs natively: the line every benchmark starts with."""
    import os
    import platform

    name = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.lower().startswith("model name")), name)
    except OSError:
        pass
    forced = f" (forced by {CPU_ENV})" if os.environ.get(CPU_ENV) is not None else ""
    native = native_precisions(torch.device("cpu"))
    return (f"{name}, {os.cpu_count()} CPUs; features {', '.join(sorted(cpu_features())) or 'none'}{forced}; "
            f"native reduced precisions: {', '.join(native) or 'none'}")
