"""The DICOM value pipeline after decoding: Modality LUT (LUT sequence, else rescale), then VOI (LUT
sequence, else the first window with its VOI LUT Function, else a 0.5-99.5 percentile window)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .radiograph import clip01

_PERCENTILES = (0.5, 99.5)


def _modality(arr: np.ndarray, ds, meta: dict) -> np.ndarray:
    """Modality LUT: the LUT sequence if present, else rescale slope / intercept (float32)."""
    if ds.get("ModalityLUTSequence"):
        from pydicom.pixels import apply_modality_lut

        meta["rescale"] = None
        meta["modality_lut"] = "Modality LUT Sequence"
        return np.asarray(apply_modality_lut(arr, ds))
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    meta["rescale"] = (slope, intercept)
    meta["modality_lut"] = "rescale" if (slope, intercept) != (1.0, 0.0) else None
    if (slope, intercept) == (1.0, 0.0):
        return arr
    out = arr.astype(np.float32)
    out *= np.float32(slope)
    out += np.float32(intercept)
    return out


def _voi(values: np.ndarray, ds, meta: dict) -> np.ndarray:
    """VOI LUT Sequence, else the first window (LINEAR / LINEAR_EXACT / SIGMOID), else a percentile window."""
    if ds.get("VOILUTSequence"):
        from pydicom.pixels import apply_voi

        item = ds.VOILUTSequence[0]
        n, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
        # clip first: pydicom would wrap inputs beyond the table in its unsigned index array
        ints = np.clip(np.rint(values) if values.dtype.kind == "f" else values, first, first + n - 1)
        ints = ints.astype(np.int32)
        table = apply_voi(np.arange(first, first + n, dtype=np.int64), ds, index=0)
        lo, hi = float(table.min()), float(table.max())
        out = apply_voi(ints, ds, index=0).astype(np.float32)
        meta.update(window=None, window_source="VOI LUT Sequence", voi_lut_function=None)
        if hi <= lo:
            return np.zeros(out.shape, np.float32)
        out -= np.float32(lo)
        out /= np.float32(hi - lo)
        return clip01(out)

    window = _first_window(ds)
    x = values.astype(np.float32, copy=values.dtype != np.float32)
    if window is not None:
        center, width = window
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            function = "LINEAR"
        meta.update(window=(center, width), window_source="file", voi_lut_function=function)
        return apply_window(x, center, width, function)

    sample = x[:: max(1, x.shape[0] // 512), :: max(1, x.shape[1] // 512)]
    lo, hi = (float(v) for v in np.percentile(sample, _PERCENTILES))
    source = f"percentile {_PERCENTILES[0]}-{_PERCENTILES[1]}%"
    if hi <= lo:
        lo, hi = float(x.min()), float(x.max())
        source = "min-max"
    meta.update(window=((lo + hi) / 2, hi - lo), window_source=source, voi_lut_function="LINEAR_EXACT")
    if hi <= lo:
        return np.zeros(x.shape, np.float32)
    return apply_window(x, (lo + hi) / 2, hi - lo, "LINEAR_EXACT")


def _first_window(ds) -> tuple[float, float] | None:
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None

    def first(v):
        return float(v[0] if isinstance(v, Sequence) and not isinstance(v, (str, bytes)) else v)

    try:
        center, width = first(ds.WindowCenter), first(ds.WindowWidth)
    except (TypeError, ValueError, IndexError):
        return None
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        return None
    return center, width


def apply_window(x: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2) of ``x`` onto [0, 1], as pydicom's ``apply_windowing``."""
    x = np.asarray(x, dtype=np.float32)
    c, w = float(center), float(width)
    if function == "SIGMOID":
        y = np.float32(-4.0 / w) * (x - np.float32(c))
        np.exp(np.clip(y, -80.0, 80.0, out=y), out=y)  # clipped: no float32 overflow, same result
        y += np.float32(1.0)
        return np.reciprocal(y, out=y)
    if function == "LINEAR_EXACT":
        y = (x - np.float32(c - w / 2)) / np.float32(w)
    elif w <= 1:
        return (x > np.float32(c - 0.5)).astype(np.float32)
    else:
        y = (x - np.float32(c - 0.5)) / np.float32(w - 1)
        y += np.float32(0.5)
    return clip01(y)

