"""Batch engine: files and folders -> a stream of :class:`FileResult`, in input order.

Qt-free; used by ``cxrviewer predict`` and by the viewer's worker thread::

    paths = scan_inputs(["folder", "file.dcm"])
    predictor = Predictor(model, device=None, batch_size=16)
    for result in predictor.predict(paths, cancel=event, progress=on_progress):
        ...

Batches run on a few lanes (:mod:`.thread_layout`): each lane decodes a batch
(JPEGs at reduced scale, ``load_radiograph(path, target_size=model.input_size)``)
and runs one forward pass under ``torch.inference_mode()`` that gives the logits
and the CAMs of every class; a bounded number of batches is in flight (so memory
stays flat however many files) and results come back in input order. The forward pass runs on a private copy of
the model in the precision the policy picks (:mod:`~cxrviewer.core.model.precision`: ``auto`` =
bfloat16 on CPUs with native bf16 when the model file records parity, else
float32), channels_last; the caller's model is never changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CxrError, RadiographError
from ..explain.checks import as_results, verdict_checks
from ..io.radiograph import IMAGE_SUFFIXES, to_model_input
from ..io.reading import is_radiograph_file, load_radiograph
from ..model.classifier import CamClassifier
from ..model.precision import PARITY_KEY, prepare_model, resolve_precision
from ..model.scope import ScopeStats, judge, rule_reason
from ..results.file_result import OUT_OF_SCOPE, FileResult, VerdictChecks
from .thread_layout import default_lanes, intra_op_threads, thread_budget, threads_per_lane
from .workers import DaemonPool, Gate

log = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "DeviceError", "InputError", "Predictor", "pick_device", "scan_inputs"]


SHUTDOWN_WAIT = 0.2
#: Seconds the end of a run waits for forward passes under way (they always finish; this is a guard).
FORWARD_WAIT = 120.0
"""Seconds a finished or cancelled run waits for its decoding threads before leaving them behind."""
NON_FINITE = "the model gave no finite probability for this image (non-finite numbers in its input or weights)"


class DeviceError(CxrError):
    """A device that does not exist or is not available on this machine."""


class InputError(CxrError):
    """An input path that does not exist or cannot be scanned."""


def pick_device(preference: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``preference`` if given (e.g. "cpu", "cuda:1", "mps"), else CUDA, else Apple MPS, else CPU.

    ``None``, "" and "auto" choose automatically. A device that is unknown or
    not available here raises :class:`DeviceError`.
    """
    if preference is None or str(preference).strip().lower() in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(str(preference).strip().lower())
    except RuntimeError:
        raise DeviceError(f"unknown device {str(preference)!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(preference)!r} is not available: no CUDA GPU found")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(preference)!r} is not available: {torch.cuda.device_count()} CUDA GPU(s) found")
    elif dev.type == "mps":
        if not _mps_available():
            raise DeviceError(f"device {str(preference)!r} is not available: Apple MPS not found")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {str(preference)!r}; use cpu, cuda, cuda:N or mps")
    return dev


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def scan_inputs(inputs: Iterable[str | Path], skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Expand files and folders into the list of image files to classify.

    - A file named directly is kept whatever its name (an unreadable one becomes
      an error row later); folders are walked recursively and radiographs are taken
      (:func:`~cxrviewer.core.io.reading.is_radiograph_file`: a suffix in
      ``IMAGE_SUFFIXES``, any case, or a suffix-less regular file with DICOM's magic).
    - Nothing but regular files is ever opened: a FIFO, device or socket never blocks
      the scan. An entry with an image suffix that is not a readable regular file (a
      FIFO, a dangling or looping link) is kept, so that it becomes an error row.
    - Hidden files and folders (name starting with ".") inside folders are skipped.
    - Symbolic links are followed, each real folder is walked once (no loop hangs).
    - Duplicates (the same file reached twice, e.g. through a link) are dropped;
      the first occurrence keeps its place. Folder contents come sorted by name.
    - Folders that cannot be read are appended to ``skipped`` as ``(path, reason)``.

    Raises :class:`InputError` for an input that does not exist.
    """
    found: list[Path] = []
    seen: set[tuple[int, int] | Path] = set()
    for item in map(Path, inputs):
        try:
            st = item.stat()
        except FileNotFoundError:
            raise InputError(f"{item}: no such file or folder") from None
        except OSError as e:
            raise InputError(f"{item}: cannot read ({e.strerror or e})") from None
        if stat.S_ISDIR(st.st_mode):
            _walk(item, found, seen, skipped if skipped is not None else [])
        else:
            _add(item, st, found, seen)
    return found


def _add(path: Path, st: os.stat_result | None, found: list[Path], seen: set) -> None:
    key = (st.st_dev, st.st_ino) if st is not None else path
    if key not in seen:
        seen.add(key)
        found.append(path)


def _walk(top: Path, found: list[Path], seen: set, skipped: list[tuple[Path, str]]) -> None:
    """Add the radiographs under the folder ``top`` to ``found`` (see :func:`scan_inputs`)."""
    seen_dirs: set[tuple[int, int]] = set()

    def unreadable(e: OSError) -> None:
        skipped.append((Path(e.filename or top), f"folder cannot be read ({e.strerror or e})"))

    for root, dirs, files in os.walk(top, followlinks=True, onerror=unreadable):
        try:
            rst = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        if (rst.st_dev, rst.st_ino) in seen_dirs:  # reached again through a link: walked already
            dirs[:] = []
            continue
        seen_dirs.add((rst.st_dev, rst.st_ino))
        dirs[:] = [d for d in sorted(dirs, key=_sort_key) if not _is_hidden(d) and _new_dir(root, d, seen_dirs)]
        for f in sorted(files, key=_sort_key):
            if not _is_hidden(f):
                _consider(Path(root) / f, found, seen)


def _new_dir(root: str, name: str, seen_dirs: set[tuple[int, int]]) -> bool:
    try:
        st = os.stat(os.path.join(root, name))
    except OSError:
        return False
    return (st.st_dev, st.st_ino) not in seen_dirs


def _consider(path: Path, found: list[Path], seen: set) -> None:
    """Add ``path`` if it is a radiograph; an image-named entry that is not a regular file is added as is."""
    try:
        st = path.stat()
    except OSError:
        st = None  # a dangling or looping link
    if st is not None and stat.S_ISREG(st.st_mode):
        if is_radiograph_file(path):
            _add(path, st, found, seen)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        _add(path, st, found, seen)


def _sort_key(name: str) -> tuple[str, str]:
    return (name.casefold(), name)


@dataclass
class _Decoded:
    """One file ready for the model (``array`` set) or failed (``error`` set)."""

    index: int
    path: Path
    array: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    scope_rule: str | None = None


def _decode(index: int, path: Path, size: tuple[int, int]) -> _Decoded:
    """Read one file into the model's input size; never raises."""
    item = _Decoded(index, path)
    try:
        rad = load_radiograph(path, target_size=size)
        item.meta = dict(rad.meta)
        item.image_size = _image_size(rad.meta, rad.pixels.shape)
        item.array = to_model_input(rad.pixels, size)
        if not np.isfinite(item.array).all():
            item.array, item.error = None, "the image holds non-finite values after decoding"
        item.scope_rule = rule_reason(rad.pixels, rad.meta)
    except RadiographError as e:
        item.error = e.reason
    except Exception as e:  # noqa: BLE001 - one bad file must never end the batch
        item.error = f"unexpected error: {_one_line(e)}"
    return item


def _image_size(meta: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, int]:
    """(W, H) of the image as shown: the stored size, turned if EXIF orientation turned the pixels."""
    dh, dw = int(shape[0]), int(shape[1])
    orig = meta.get("original_size")
    if not orig:
        return dw, dh
    w, h = int(orig[0]), int(orig[1])
    if w != h and dw != dh and (w > h) != (dw > dh):
        w, h = h, w
    return w, h


def _spans(total: int, first: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each batch: the first holds ``first`` files, the others ``size``."""
    start, n = 0, first
    while start < total:
        yield start, min(total, start + n)
        start, n = start + n, size


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


class Predictor:
    """Runs a :class:`CamClassifier` over files in batches and streams one :class:`FileResult` per file.

    ``device``: as for :func:`pick_device` (``None`` = best available).
    ``batch_size``: files per forward pass. ``workers``: lanes, threads that each decode a
    batch and run its forward pass on ``lane_threads`` torch threads (default: see
    :mod:`.thread_layout`; 2 lanes of 1 thread on 2 cores). ``prefetch``: batches queued
    beyond those the lanes are working on. ``first_batch``: size of the first
    batch only (small, so the first result shows quickly in the viewer).
    ``precision``: "auto" (default), "float32", "bfloat16" or "float16"; see
    :func:`~cxrviewer.core.model.precision.resolve_precision`. ``self.precision`` is
    the one in use, ``self.precision_reason`` says why. The forward pass runs on
    ``self.model``, a private copy in that precision: ``model`` is not moved or changed.
    ``checks``: run the per-verdict checks (:mod:`cxrviewer.core.explain.checks`) and set
    each result's ``checks``: evidence outside the chest (from the same forward pass, cheap)
    and, with ``stability``, the verdict's stability under a black border and a blur, in the
    same precision, which costs two more forward passes per image (off: ``checks.unstable`` is None).
    """

    def __init__(self, model: CamClassifier, device: str | torch.device | None = None, batch_size: int = 16,
                 workers: int | None = None, prefetch: int = 1, first_batch: int = 4, precision: str = "auto",
                 checks: bool = True, stability: bool = False):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.device = pick_device(device)
        choice = resolve_precision(precision, self.device, model.meta.get(PARITY_KEY))
        self.precision, self.precision_reason = choice.name, choice.reason
        self.model = prepare_model(model, self.precision, self.device)
        self.batch_size = int(batch_size)
        budget = thread_budget()
        self.workers = int(workers) if workers else default_lanes(budget)
        self.lane_threads = threads_per_lane(budget, self.workers)
        self.prefetch = max(0, int(prefetch))
        # CPU lanes run their forward passes side by side; on a GPU one at a time (MPS is not thread-safe)
        self._model_turn = contextlib.nullcontext() if self.device.type == "cpu" else threading.Lock()
        self.first_batch = max(1, min(int(first_batch), self.batch_size))
        self.checks = bool(checks)
        self.stability = bool(stability)
        self.scope = ScopeStats.from_meta(model.meta.get("scope"))

    def predict(self, paths: Iterable[str | Path], cancel: threading.Event | None = None,
                progress: Callable[[int, int], None] | None = None) -> Iterator[FileResult]:
        """Yield one result per path, in input order, as each batch finishes.

        A file that cannot be read (or fails in any other way) gives a result
        with ``error`` set; it never stops the batch. ``progress(done, total)`` is
        called just before each result is yielded. Once ``cancel`` is set the
        iterator stops within one forward pass, however long a decode takes;
        closing the iterator early (``break``, ``close()``) also stops it. Either
        way its lanes are told to stop; one stuck in a read is not waited for
        (it is a daemon thread).
        """
        paths = [Path(p) for p in paths]
        if not paths:
            return
        cancel = cancel if cancel is not None else threading.Event()
        left = threading.Event()  # the consumer has gone: lanes stop at their next file
        gate = Gate()  # forward passes under way, waited for at the end (decodes are not)
        spans = deque(_spans(len(paths), self.first_batch, self.batch_size))
        done = 0
        with intra_op_threads(self.lane_threads):
            pool = DaemonPool(self.workers, "cxrviewer-lane")
            pending: deque[Future[list[FileResult]]] = deque()
            try:
                while spans or pending:
                    while spans and len(pending) < self.workers + self.prefetch:
                        pending.append(pool.submit(self._lane, paths, spans.popleft(), cancel, left, gate))
                    results = self._wait(pending.popleft(), cancel)
                    for result in results or ():
                        if cancel.is_set():
                            return
                        done += 1
                        if progress is not None:
                            progress(done, len(paths))
                        yield result
                    if results is None or cancel.is_set():
                        return
            finally:
                left.set()
                gate.close(timeout=FORWARD_WAIT)  # no torch work left running on a daemon thread
                pool.shutdown(timeout=SHUTDOWN_WAIT)  # a lane stuck in a read is left behind, never waited on

    def _lane(self, paths: list[Path], span: tuple[int, int], cancel: threading.Event,
              left: threading.Event, gate: Gate) -> list[FileResult]:
        """One lane's work: decode the files of ``span`` one by one, then one forward pass for them
        (on a GPU, lanes take turns for it and overlap only their decoding)."""
        batch = []
        for i in range(*span):
            if cancel.is_set() or left.is_set():
                return []
            batch.append(_decode(i, paths[i], self.model.input_size))
        if not gate.enter():
            return []
        try:
            with self._model_turn:
                return self._run_batch(batch)
        finally:
            gate.leave()

    @staticmethod
    def _wait(fut: Future[list[FileResult]], cancel: threading.Event) -> list[FileResult] | None:
        while not cancel.is_set():
            try:
                return fut.result(timeout=0.05)
            except FutureTimeout:
                continue
        return None

    def _run_batch(self, batch: list[_Decoded]) -> list[FileResult]:
        """One forward pass for the decoded files of ``batch``; failed files pass through as error rows."""
        results = [FileResult(path=d.path, index=d.index, image_size=d.image_size, meta=d.meta, error=d.error)
                   for d in batch]
        ok = [(r, d.array) for r, d in zip(results, batch) if d.error is None]
        if not ok:
            return results
        arrays = np.stack([a for _, a in ok])
        try:
            out = self.forward(arrays)
        except Exception as e:  # noqa: BLE001 - reported on each file of the batch, the run goes on
            for r, _ in ok:
                r.error = f"model failed: {_one_line(e)}"
            return results
        names = self.model.class_names
        scores = self.scope.distance(out[4]) if self.scope is not None else [None] * len(ok)
        rules = {d.index: d.scope_rule for d in batch}
        for (r, _), lg, cm, pr, lb, score in zip(ok, *out[:4], scores):
            if int(lb) < 0 or not np.isfinite(lg).all():
                r.error = NON_FINITE
                continue
            r.logits = [float(v) for v in lg]
            r.cams = np.array(cm, dtype=np.float32, copy=True)
            r.probs = {n: float(v) for n, v in zip(names, pr)}
            r.predicted = names[int(lb)]
            r.precision = self.precision
            self._judge_scope(r, rules[r.index], score)
        good = [i for i, (r, _) in enumerate(ok) if r.ok]
        if self.checks and good:
            scored = tuple(np.asarray(v)[good] for v in out)
            for i, found in zip(good, self.verdict_checks(arrays[good], scored)):
                ok[i][0].checks = found
        return results

    def verdict_checks(self, arrays: np.ndarray, out: tuple[np.ndarray, ...]) -> list[VerdictChecks | None]:
        """The per-verdict checks of a batch :meth:`forward` scored (stability: same model and precision, one batch of 2N copies).

        A failure here never costs the verdicts: every file then gets ``None``.
        """
        logits, cams, _, labels = out[:4]
        dev = self.device
        try:
            x = torch.from_numpy(np.ascontiguousarray(arrays, dtype=np.float32))[:, None].to(dev)
            found = verdict_checks(self.model, x, torch.from_numpy(logits).to(dev), torch.from_numpy(cams).to(dev),
                                   torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(dev),
                                   with_stability=self.stability)
            return list(as_results(found))
        except Exception as e:  # noqa: BLE001 - the checks are extra; the verdicts stand without them
            log.warning("verdict checks failed for a batch of %d: %s", len(arrays), _one_line(e))
            return [None] * len(arrays)

    def _judge_scope(self, r: FileResult, rule: str | None, score) -> None:
        """Set the scope fields of ``r``; an out-of-scope image's label becomes ``OUT_OF_SCOPE``."""
        verdict = judge(rule, None if score is None else float(score),
                        None if self.scope is None else self.scope.threshold, r.meta)
        r.in_scope, r.scope_score, r.scope_reason = verdict.in_scope, verdict.score, verdict.reason
        r.label = r.predicted if verdict.in_scope else OUT_OF_SCOPE

    def forward(self, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Classify a stack ``N x H x W`` of grey model inputs in [0, 1].

        Returns numpy ``(logits N x K, cams N x K x h x w float32, probs N x K, labels N, pooled features N x F)``.
        """
        model = self.model
        x = torch.from_numpy(np.ascontiguousarray(arrays, dtype=np.float32))[:, None]
        x = x.to(self.device, non_blocking=True)
        with torch.inference_mode():
            logits, cams, pooled = model.logits_cams_pooled(model.normalize(x))
            probs = model.probabilities(logits)
            labels = model.decide(probs)
            return (logits.float().cpu().numpy(), cams.float().contiguous().cpu().numpy(),
                    probs.float().cpu().numpy(), labels.cpu().numpy(), pooled.float().cpu().numpy())
