"""Is this image something the model may answer? Header rules, pixel rules and a learned score.

An image is *out of scope* when the model was never meant to read it: a CT slice, an ultrasound,
a photograph, a blank frame. Its verdict is then withheld (the probabilities are still recorded).

Two layers, each giving a reason a user understands:

1. **Rules** on what the file says about itself (:func:`rule_reason`): a DICOM whose Modality is
   not a projection radiograph, whose Body Part Examined is not the chest, or that holds a
   multi-frame volume; a raster image that is tiny, of an extreme aspect ratio, essentially
   blank, or strongly coloured.
2. **A learned score** (:class:`ScopeStats`): the Mahalanobis distance (Lee et al., NeurIPS 2018)
   of the image's pooled features (the vector the model's linear head reads, from the same
   forward pass) to the nearest class mean, under the covariance shared by the training
   classes. It is fitted on training features and thresholded so that ~99% of validation
   radiographs are in scope; ``benchmarks/scope_separation.py`` measures it against the
   energy score (Liu et al., NeurIPS 2020).

numpy only; the statistics travel in the model file's metadata (``meta["scope"]``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

#: DICOM Modality values of projection radiographs (CR computed, DX digital, RG radiographic
#: film; "DR" is written by some vendors although it is not a defined term).
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "RG", "DR"})
#: Body Part Examined values (upper case, substring match) that mean the chest.
CHEST_WORDS = ("CHEST", "THORA", "TORAX", "LUNG", "PULM", "RIB")
MIN_SIDE = 64           # px: smaller images are icons or thumbnails, not readable radiographs
MAX_ASPECT = 2.5        # long side / short side; chest radiographs lie within ~0.7-1.5
MIN_RANGE = 0.04        # 1st-99th percentile grey range (0-1) below which an image is blank
MAX_COLOUR = 0.05       # share of distinctly coloured pixels above which an image is a colour picture
QUANTILE = 0.99         # share of validation radiographs the learned threshold keeps in scope
PIXEL_SAMPLE = 128      # the blank test reads the 1st-99th percentiles on a grid of at most this many pixels a side
HEADER_MARGIN = 1.5     # a DICOM whose header declares a chest radiograph is refused only beyond this x threshold


@dataclass(frozen=True)
class ScopeVerdict:
    """``in_scope``; ``score`` (the learned distance, None without statistics); ``reason`` (None in scope)."""

    in_scope: bool = True
    score: float | None = None
    reason: str | None = None


def dicom_reason(meta: dict[str, Any]) -> str | None:
    """Why a DICOM's header puts it out of scope, or None."""
    modality = str(meta.get("Modality") or "").strip().upper()
    if modality and modality not in RADIOGRAPH_MODALITIES:
        return (f"DICOM Modality is {modality}, not a projection radiograph (CR or DX): "
                "the model reads chest X-rays only")
    part = str(meta.get("BodyPartExamined") or "").strip().upper()
    if part and not any(w in part for w in CHEST_WORDS):
        return f"DICOM Body Part Examined is {part}, not the chest"
    frames = int(meta.get("frames") or 1)
    if frames > 1:
        return f"multi-frame DICOM ({frames} frames): a volume or cine loop, not a single radiograph"
    return None


def size_reason(meta: dict[str, Any]) -> str | None:
    """Why the image size is implausible for a radiograph, or None."""
    size = meta.get("original_size")
    if not size:
        return None
    w, h = int(size[0]), int(size[1])
    if min(w, h) < MIN_SIDE:
        return f"image is only {w} x {h} pixels: too small to be a radiograph"
    if max(w, h) / max(min(w, h), 1) > MAX_ASPECT:
        return f"image is {w} x {h} pixels: aspect ratio {max(w, h) / min(w, h):.1f}:1 is not that of a radiograph"
    return None


def pixel_reason(pixels: np.ndarray, meta: dict[str, Any]) -> str | None:
    """Why the pixels put the image out of scope (blank, strongly coloured), or None."""
    colour = meta.get("colour_fraction")
    if colour is not None and float(colour) > MAX_COLOUR:
        return f"colour picture ({100 * float(colour):.0f}% of pixels coloured): radiographs are grey"
    a = np.asarray(pixels, dtype=np.float32)
    step = max(1, -(-max(a.shape) // PIXEL_SAMPLE))  # a grid of at most PIXEL_SAMPLE^2 pixels is plenty for a range
    lo, hi = np.percentile(a[::step, ::step], [1, 99]) if a.size else (0.0, 0.0)
    if hi - lo < MIN_RANGE:
        return "image is blank or nearly uniform: nothing to read"
    return None


def rule_reason(pixels: np.ndarray, meta: dict[str, Any]) -> str | None:
    """The first rule that puts an image out of scope, or None: header, then size, then pixels."""
    reason = dicom_reason(meta) if meta.get("format") == "DICOM" else None
    return reason or size_reason(meta) or pixel_reason(pixels, meta)


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Free energy ``-T logsumexp(logits / T)`` per row (Liu et al. 2020): higher = less familiar."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    m = z.max(axis=1, keepdims=True)
    return -temperature * (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))


def _encode(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "float32_base64": base64.b64encode(a.tobytes()).decode("ascii")}


def _decode(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["float32_base64"]), dtype="<f4").reshape(d["shape"]).astype(np.float64)


@dataclass
class ScopeStats:
    """Class means and a low-rank-plus-isotropic shared covariance of pooled features.

    ``means`` K x F; ``basis`` R x F (orthonormal rows: the leading eigenvectors of the shared
    within-class covariance); ``variances`` R (their eigenvalues); ``residual``: the mean of the
    remaining eigenvalues, so the covariance is full rank. ``distance`` is the Mahalanobis
    distance to the nearest class mean divided by sqrt(F); ``threshold``: in scope when
    ``distance <= threshold``.
    """

    means: np.ndarray
    basis: np.ndarray
    variances: np.ndarray
    residual: float
    threshold: float = float("inf")

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, rank: int = 64) -> ScopeStats:
        """Fit on training ``features`` (N x F) with class indices ``labels``; threshold unset."""
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels).astype(np.int64)
        classes = np.unique(y)  # a class without images has no mean
        means = np.stack([x[y == k].mean(axis=0) for k in classes])
        centred = x - means[np.searchsorted(classes, y)]
        cov = centred.T @ centred / max(len(x) - len(classes), 1)
        vals, vecs = np.linalg.eigh(cov)
        vals, vecs = vals[::-1], vecs[:, ::-1]
        rank = min(rank, x.shape[1] - 1)
        floor = max(float(vals[0]) * 1e-6, 1e-12)
        residual = max(float(vals[rank:].mean()), floor)
        return cls(means, vecs[:, :rank].T.copy(), np.maximum(vals[:rank], residual), residual)

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Distance of each row of ``features`` (N x F) to the nearest class mean (see class doc).

        Small products through ``einsum`` without BLAS: a multithreaded BLAS call here would wake
        threads that compete with the model's for the cores, costing more than the product.
        """
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        best = np.full(len(x), np.inf)
        for mu in self.means:
            d = x - mu
            proj = np.einsum("nf,rf->nr", d, self.basis, optimize=False)
            rest = (d * d).sum(axis=1) - (proj * proj).sum(axis=1)
            d2 = (proj * proj / self.variances).sum(axis=1) + np.maximum(rest, 0.0) / self.residual
            best = np.minimum(best, d2)
        return np.sqrt(best / x.shape[1])

    def fit_threshold(self, features: np.ndarray, quantile: float = QUANTILE) -> float:
        """Set and return the threshold that keeps ``quantile`` of ``features`` (in-scope images) in scope."""
        self.threshold = float(np.quantile(self.distance(features), quantile))
        return self.threshold

    def verdicts(self, features: np.ndarray) -> list[ScopeVerdict]:
        """One verdict per row from the score alone (no header), with a reason for distances over the threshold."""
        return [judge(None, float(s), self.threshold, {}) for s in self.distance(features)]

    def to_meta(self, **extra) -> dict:
        """JSON-ready ``meta["scope"]`` entry (arrays as base64 float32), with ``extra`` provenance keys."""
        return {"method": "mahalanobis", "features": "pooled", "rank": len(self.variances), "threshold": float(self.threshold),
                "residual": float(self.residual), "means": _encode(self.means), "basis": _encode(self.basis),
                "variances": _encode(self.variances), **extra}

    @classmethod
    def from_meta(cls, scope: dict | None) -> ScopeStats | None:
        """Statistics from ``meta["scope"]``, or None when the model file has none (or unreadable ones)."""
        if not isinstance(scope, dict) or scope.get("method") != "mahalanobis":
            return None
        try:
            stats = cls(_decode(scope["means"]), _decode(scope["basis"]), _decode(scope["variances"]),
                        float(scope["residual"]), float(scope["threshold"]))
        except (KeyError, TypeError, ValueError):
            return None
        f = stats.means.shape[1]
        if stats.basis.shape[1] != f or len(stats.variances) != len(stats.basis) or stats.residual <= 0:
            return None
        return stats


def declares_chest_radiograph(meta: dict[str, Any]) -> bool:
    """True for a DICOM whose header says it is a projection radiograph (CR, DX, ...) of the chest."""
    modality = str(meta.get("Modality") or "").strip().upper()
    part = str(meta.get("BodyPartExamined") or "").strip().upper()
    return (meta.get("format") == "DICOM" and modality in RADIOGRAPH_MODALITIES
            and any(w in part for w in CHEST_WORDS))


def learned_reason(score: float | None, threshold: float | None, meta: dict[str, Any]) -> str | None:
    """Why the learned ``score`` puts an image out of scope, or None.

    A DICOM whose header declares a chest radiograph (an adult chest CR, say: further from the
    pediatric training set than its validation images, yet a chest radiograph) is refused only
    beyond ``HEADER_MARGIN`` times the threshold: its header is evidence the score cannot see.
    """
    if score is None or threshold is None:
        return None
    limit = threshold * (HEADER_MARGIN if declares_chest_radiograph(meta) else 1.0)
    if score <= limit:
        return None
    return f"unlike the chest radiographs the model learned from (scope score {score:.2f} > {limit:.2f})"


def judge(rule: str | None, score: float | None, threshold: float | None, meta: dict[str, Any]) -> ScopeVerdict:
    """The verdict for one image from its rule reason (see :func:`rule_reason`) and learned score: a rule wins."""
    reason = rule or learned_reason(score, threshold, meta)
    return ScopeVerdict(reason is None, score, reason)
