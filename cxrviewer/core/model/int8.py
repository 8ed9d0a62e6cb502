"""int8 inference of a ResNet trunk: calibrated activation ranges (data in the model file) -> a QDQ graph on ONNX Runtime.

The trunk (batch norms folded into the convolutions) is written as a list of steps
(:func:`trunk_plan`). :func:`calibrate` runs those steps in float32 on training images
and records, per quantisation point, the range of its activations as ``[scale, zero_point]``
(uint8): that record, :data:`CALIBRATION_KEY` in the model file's metadata, is plain data.
At load time :func:`build_qdq_model` writes an ONNX graph from the float weights and that
record: per-channel symmetric weights in 7 bits (exact on AVX2 without VNNI as well as with
VNNI), int32 biases, activations quantised and dequantised at every point, which ONNX
Runtime fuses into integer convolutions. :class:`Int8Trunk` runs it and returns float32
features, so the float32 head gives the logits and the CAMs of a whole batch as before.

Why ONNX Runtime: ``torch.ao.quantization`` is deprecated for removal, and torchao's pt2e
flow needs inductor compilation (a C++ compiler, seconds to minutes) at every load.
Without ``onnxruntime`` (or ``onnx``) :func:`engine_missing` says so and the policy stays in float.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

CALIBRATION_KEY = "int8_calibration"
"""Model-file metadata key: ``{"format", "points": {name: [scale, zero_point]}, "n", "source", "weights"}``."""
FORMAT = 1
WEIGHT_MAX = 63  # 7-bit weights: u8 x s8 products cannot saturate AVX2's 16-bit accumulation
OPSET = 17


def engine_missing() -> str | None:
    """Why the int8 engine cannot run here (a missing package), or None."""
    for name in ("onnx", "onnxruntime"):
        try:
            __import__(name)
        except Exception as e:  # noqa: BLE001 - an ImportError or a broken install: either way no engine
            return f"{name} is not installed ({type(e).__name__})"
    return None


def unsupported(model: nn.Module) -> str | None:
    """Why ``model``'s trunk has no int8 path (only ResNets have one), or None."""
    from .classifier import RESNETS

    arch = getattr(model, "arch", None)
    return None if arch in RESNETS else f"int8 needs a ResNet trunk, not {arch}"


# -- the trunk as steps --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvStep:
    """``out = [relu](conv(inp))``, quantised at ``out``."""

    conv: nn.Conv2d
    inp: str
    out: str
    relu: bool


@dataclass(frozen=True)
class AddStep:
    """``out = relu(a + b)``, quantised at ``out``."""

    a: str
    b: str
    out: str


@dataclass(frozen=True)
class PoolStep:
    """``out = maxpool(inp)``: same quantisation as ``inp``."""

    pool: nn.MaxPool2d
    inp: str
    out: str


def trunk_plan(trunk: nn.Module) -> list[ConvStep | AddStep | PoolStep]:
    """The steps of a folded ResNet trunk (``conv1, relu, maxpool, layer1..4``; batch norms already Identity)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    for name in ("bn1",):
        if not isinstance(getattr(trunk, name), nn.Identity):
            raise ValueError("fold the batch norms first (precision.fold_batchnorm)")
    steps: list[Any] = [ConvStep(trunk.conv1, "input", "stem", True), PoolStep(trunk.maxpool, "stem", "pool")]
    x = "pool"
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        for i, block in enumerate(getattr(trunk, layer)):
            b = f"{layer}.{i}"
            convs = ["conv1", "conv2"] + (["conv3"] if isinstance(block, Bottleneck) else [])
            if not isinstance(block, (BasicBlock, Bottleneck)):
                raise ValueError(f"{b}: not a ResNet block")
            h = x
            for j, c in enumerate(convs):
                if not isinstance(getattr(block, f"bn{c[4:]}"), nn.Identity):
                    raise ValueError("fold the batch norms first (precision.fold_batchnorm)")
                last = j == len(convs) - 1
                steps.append(ConvStep(getattr(block, c), h, f"{b}.{c}", not last))
                h = f"{b}.{c}"
            shortcut = x
            if block.downsample is not None:
                steps.append(ConvStep(block.downsample[0], x, f"{b}.downsample", False))
                shortcut = f"{b}.downsample"
            steps.append(AddStep(h, shortcut, f"{b}.out"))
            x = f"{b}.out"
    return steps


def run_plan(steps: list, x: torch.Tensor, observe=None) -> torch.Tensor:
    """Run ``steps`` in float on ``x``; ``observe(name, tensor)`` sees every quantisation point. Returns the last output."""
    values = {"input": x}
    if observe is not None:
        observe("input", x)
    for s in steps:
        if isinstance(s, ConvStep):
            y = s.conv(values[s.inp])
            y = torch.relu(y) if s.relu else y
        elif isinstance(s, AddStep):
            y = torch.relu(values[s.a] + values[s.b])
        else:
            y = s.pool(values[s.inp])
        values[s.out] = y
        if observe is not None and not isinstance(s, PoolStep):
            observe(s.out, y)
    return values[steps[-1].out]


# -- calibration ---------------------------------------------------------------------------------------
def _qparams(lo: float, hi: float) -> list[float]:
    """uint8 ``[scale, zero_point]`` covering ``[lo, hi]`` (and 0, exactly)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    zero = int(round(-lo / scale))
    return [scale, float(min(255, max(0, zero)))]


@torch.inference_mode()
def calibrate(model: nn.Module, batches, source: str = "training images") -> dict[str, Any]:
    """The :data:`CALIBRATION_KEY` record of ``model`` (a :class:`CamClassifier`) on ``batches``.

    ``batches``: ``N x 1 x H x W`` grey images, uint8 or float in [0, 1], normalised as
    the model does. Records each quantisation point's range (min and max over all images).
    """
    from .precision import prepare_model

    reason = unsupported(model)
    if reason:
        raise ValueError(reason)
    clone = prepare_model(model, "float32")
    steps = trunk_plan(clone.features.trunk)
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}

    def observe(name: str, t: torch.Tensor) -> None:
        lo[name] = min(lo.get(name, 0.0), float(t.min()))
        hi[name] = max(hi.get(name, 0.0), float(t.max()))

    n = 0
    for x in batches:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        run_plan(steps, clone.normalize(x), observe)
        n += len(x)
    if n == 0:
        raise ValueError("no images to calibrate on")
    points = {name: _qparams(lo[name], hi[name]) for name in lo}
    return {"format": FORMAT, "points": points, "n": n, "source": source, "weights": f"per-channel symmetric, "
            f"{WEIGHT_MAX} levels", "activations": "uint8, min-max"}


def check_calibration(record: Any, model: nn.Module) -> str | None:
    """Why ``record`` cannot quantise ``model`` (absent, another format, points missing), or None."""
    if not isinstance(record, dict) or not record.get("points"):
        return "the model file records no int8 calibration"
    if record.get("format") != FORMAT:
        return f"int8 calibration format {record.get('format')!r} is not {FORMAT}"
    return None


# -- the ONNX graph ------------------------------------------------------------------------------------
def build_qdq_model(trunk: nn.Module, record: dict[str, Any], input_channels: int) -> bytes:
    """Serialized ONNX model: ``input N x C x H x W`` float -> ``features`` float, quantised per ``record``."""
    from onnx import TensorProto, helper, numpy_helper

    points = record["points"]
    steps = trunk_plan(trunk)
    nodes: list = []
    inits: list = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array, name))
        return name

    def qdq(name: str, src: str) -> str:
        """Quantise and dequantise ``src`` at point ``name``; returns the dequantised tensor's name."""
        scale, zero = points[name]
        s = const(f"{name}/scale", np.array(scale, dtype=np.float32))
        z = const(f"{name}/zero", np.array(int(zero), dtype=np.uint8))
        nodes.append(helper.make_node("QuantizeLinear", [src, s, z], [f"{name}/q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}/q", s, z], [f"{name}/dq"]))
        return f"{name}/dq"

    dq = {"input": qdq("input", "input")}
    for s in steps:
        if isinstance(s, PoolStep):
            nodes.append(helper.make_node("MaxPool", [dq[s.inp]], [s.out], kernel_shape=_pair(s.pool.kernel_size),
                                          strides=_pair(s.pool.stride), pads=_pair(s.pool.padding) * 2,
                                          dilations=_pair(s.pool.dilation), ceil_mode=int(s.pool.ceil_mode)))
            # same scale as its input: re-quantising is exact and lets the runtime keep it in uint8
            scale, zero = points[s.inp]
            points = dict(points, **{s.out: [scale, zero]})
            dq[s.out] = qdq(s.out, s.out)
            continue
        if isinstance(s, AddStep):
            nodes.append(helper.make_node("Add", [dq[s.a], dq[s.b]], [f"{s.out}/sum"]))
            nodes.append(helper.make_node("Relu", [f"{s.out}/sum"], [s.out]))
            dq[s.out] = qdq(s.out, s.out)
            continue
        conv = s.conv
        w = conv.weight.detach().float().cpu().numpy()
        b = (conv.bias.detach().float().cpu().numpy() if conv.bias is not None
             else np.zeros(w.shape[0], dtype=np.float32))
        w_scale = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(axis=1), 1e-12) / WEIGHT_MAX
        w_q = np.clip(np.round(w / w_scale[:, None, None, None]), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
        in_scale = float(points[s.inp][0])
        b_scale = (w_scale * in_scale).astype(np.float32)
        b_q = np.round(b / b_scale).astype(np.int32)
        n = s.out
        nodes.append(helper.make_node(
            "DequantizeLinear", [const(f"{n}/w_q", w_q), const(f"{n}/w_scale", w_scale.astype(np.float32)),
                                 const(f"{n}/w_zero", np.zeros(w.shape[0], dtype=np.int8))], [f"{n}/w"], axis=0))
        nodes.append(helper.make_node(
            "DequantizeLinear", [const(f"{n}/b_q", b_q), const(f"{n}/b_scale", b_scale),
                                 const(f"{n}/b_zero", np.zeros(w.shape[0], dtype=np.int32))], [f"{n}/b"], axis=0))
        conv_out = f"{n}/conv" if s.relu else n
        nodes.append(helper.make_node("Conv", [dq[s.inp], f"{n}/w", f"{n}/b"], [conv_out],
                                      kernel_shape=_pair(conv.kernel_size), strides=_pair(conv.stride),
                                      pads=_pair(conv.padding) * 2, dilations=_pair(conv.dilation), group=conv.groups))
        if s.relu:
            nodes.append(helper.make_node("Relu", [conv_out], [n]))
        dq[n] = qdq(n, n)
    last = steps[-1].out
    nodes.append(helper.make_node("Identity", [dq[last]], ["features"]))
    graph = helper.make_graph(
        nodes, "cxrviewer-int8-trunk",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", input_channels, "H", "W"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", None, None, None])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cxrviewer")
    proto.ir_version = 8
    return proto.SerializeToString()


def _pair(v) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(a) for a in v]


class Int8Trunk(nn.Module):
    """A trunk run by ONNX Runtime from its QDQ graph: ``N x C x H x W`` float32 -> float32 features.

    One session per thread count (the engine's lanes each run on few threads); runs are thread-safe.
    """

    def __init__(self, onnx_bytes: bytes):
        super().__init__()
        self.onnx_bytes = onnx_bytes
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.session(torch.get_num_threads())  # fail now, at load, not mid-batch

    def session(self, threads: int):
        with self._lock:
            s = self._sessions.get(threads)
            if s is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = max(1, int(threads))
                opts.inter_op_num_threads = 1
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                s = self._sessions[threads] = ort.InferenceSession(self.onnx_bytes, opts,
                                                                   providers=["CPUExecutionProvider"])
            return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise RuntimeError("the int8 engine runs on the CPU only")
        arr = np.ascontiguousarray(x.detach().float().numpy())
        (out,) = self.session(torch.get_num_threads()).run(["features"], {"input": arr})
        return torch.from_numpy(out)

    def __deepcopy__(self, memo):  # sessions are not copyable; the graph is
        return Int8Trunk(self.onnx_bytes)
