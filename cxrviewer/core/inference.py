"""Batch engine: files and folders -> stream of FileResult (first, simple cut; being optimised).

Qt-free; used by ``cxrviewer predict`` and by the viewer's worker thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from .errors import RadiographError
from .imaging import load_radiograph, to_model_input
from .model import CamClassifier
from .results import FileResult

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"})


def pick_device(preference: str | None = None) -> torch.device:
    """``preference`` if given (e.g. "cpu", "cuda:1"), else CUDA, else Apple MPS, else CPU."""
    if preference:
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def scan_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named, plus images under folders named (recursive, sorted, hidden entries skipped)."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for root, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [Path(root) / f for f in sorted(files) if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
        else:
            found.append(item)
    return found


class Predictor:
    """Runs a CamClassifier over files in batches and yields one FileResult per file, in order."""

    def __init__(self, model: CamClassifier, device: str | torch.device | None = None, batch_size: int = 16):
        self.device = pick_device(str(device) if device else None)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size

    def predict(self, paths: list[Path], cancel: threading.Event | None = None,
                progress: Callable[[int, int], None] | None = None) -> Iterator[FileResult]:
        """Yield results as batches finish; stops early (cleanly) once ``cancel`` is set."""
        size = self.model.input_size
        names = self.model.class_names
        done = 0
        for start in range(0, len(paths), self.batch_size):
            if cancel is not None and cancel.is_set():
                return
            chunk = paths[start:start + self.batch_size]
            results, arrays = [], []
            for i, p in enumerate(chunk, start):
                r = FileResult(path=Path(p), index=i)
                try:
                    rad = load_radiograph(p, target_size=size)
                    r.meta = rad.meta
                    r.image_size = tuple(rad.meta.get("original_size", rad.pixels.shape[::-1]))
                    arrays.append(to_model_input(rad.pixels, size))
                except RadiographError as e:
                    r.error = str(e.reason)
                results.append(r)
            ok = [r for r in results if r.ok]
            if ok:
                x = torch.from_numpy(np.stack(arrays))[:, None].to(self.device)
                with torch.inference_mode():
                    logits, cams = self.model.logits_and_cams(self.model.normalize(x))
                    probs = self.model.probabilities(logits)
                    labels = self.model.decide(probs)
                for r, lg, cm, pr, lb in zip(ok, logits.float().cpu().numpy(), cams.float().cpu().numpy(),
                                             probs.cpu().numpy(), labels.cpu().tolist()):
                    r.logits = lg.tolist()
                    r.cams = cm
                    r.probs = {n: float(v) for n, v in zip(names, pr)}
                    r.label = names[lb]
            for r in results:
                done += 1
                if progress is not None:
                    progress(done, len(paths))
                yield r
