"""Results kept between runs: a SQLite cache of :class:`FileResult` shared by ``predict`` and the viewer.

A file's result is found again when the file and everything that decides its result are the same:

- the file: its **identity** (resolved path, device, inode, size, ``mtime_ns`` and ``ctime_ns``; any write
  to a file changes its ``ctime``, which no tool can set back) maps to the **blake2b digest of its bytes**,
  computed once when its result is stored (re-read, from the page cache as a rule); a file whose identity
  is new is classified, never hashed up front, so the first result of a large folder is not delayed;
- the **model** (a digest of its weights and metadata: threshold, temperature, scope all count),
  the **precision** the forward pass ran in, the device type, and which **checks** ran;
- the **results format** (:data:`RESULTS_FORMAT` plus the field names of :class:`FileResult` and
  :class:`VerdictChecks`): a new field or a format bump makes every older row unusable (pruned on open).

Rows hold the whole result as JSON plus its arrays (the CAMs) as raw bytes with dtype and shape, and
a checksum of both; never pickle. Only complete results are kept (no error rows: a file that failed is
tried again; no result whose checks failed). The database is WAL-journalled; on a corrupt file, a
schema mismatch or a row that does not decode, the file is moved aside (``results-<time>.corrupt``)
and a new one is built: a cached row is never trusted unchecked. A database busy in another process
is skipped for that call (nothing cached), not treated as corrupt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..paths import cache_dir, file_key
from .file_result import FileResult, VerdictChecks

log = logging.getLogger(__name__)

#: Bump when a stored result would be read differently (its fields' meaning changes).
RESULTS_FORMAT = 1
SCHEMA_VERSION = 1
DB_NAME = "results.sqlite3"
_BUSY_MS = 5000
_NOT_STORED = ("path", "index", "overlay", "reader")  # set by whoever reads the row


def results_format() -> str:
    """The format key of stored rows: the version and the fields a result has now."""
    fields = ",".join(f.name for f in dataclasses.fields(FileResult)) + ";" + ",".join(
        f.name for f in dataclasses.fields(VerdictChecks))
    return f"{RESULTS_FORMAT}:{hashlib.blake2b(fields.encode(), digest_size=8).hexdigest()}"


def model_digest(model) -> str:
    """blake2b of a model's metadata (JSON, sorted keys) and of every tensor in its state dict."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(model.meta, sort_keys=True, default=str).encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{t.numel()}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """blake2b (16 bytes) of a file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identity(path: Path) -> tuple | None:
    """(resolved path, dev, inode, size, mtime_ns, ctime_ns) of a regular file; None when it cannot be read."""
    try:
        resolved = path.resolve()
        st = resolved.stat()
    except (OSError, RuntimeError):
        return None
    if not os.path.isfile(resolved):
        return None
    return (str(resolved), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# -- encoding: JSON with tags for tuples, paths, arrays and dataclasses ------------------------------
def _encode(value: Any, arrays: list[np.ndarray]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        arrays.append(np.ascontiguousarray(value))
        return {"__nd__": len(arrays) - 1, "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, Path):
        return {"__path__": str(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("only string keys can be stored")
        return {"__dict__": {k: _encode(v, arrays) for k, v in value.items()}}
    if isinstance(value, VerdictChecks):
        return {"__checks__": {f.name: _encode(getattr(value, f.name), arrays) for f in dataclasses.fields(value)}}
    raise TypeError(f"cannot store a {type(value).__name__}")


def _decode(value: Any, blobs: list[np.ndarray]) -> Any:
    if isinstance(value, list):
        return [_decode(v, blobs) for v in value]
    if not isinstance(value, dict):
        return value
    if "__nd__" in value:
        return blobs[value["__nd__"]]
    if "__path__" in value:
        return Path(value["__path__"])
    if "__tuple__" in value:
        return tuple(_decode(v, blobs) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, blobs) for k, v in value["__dict__"].items()}
    if "__checks__" in value:
        return VerdictChecks(**{k: _decode(v, blobs) for k, v in value["__checks__"].items()})
    raise ValueError(f"unknown stored value {sorted(value)}")


def encode_result(result: FileResult) -> tuple[str, bytes]:
    """(JSON text, array bytes) of ``result`` without its path, row, overlay and reader entry."""
    arrays: list[np.ndarray] = []
    fields = {f.name: _encode(getattr(result, f.name), arrays)
              for f in dataclasses.fields(result) if f.name not in _NOT_STORED}
    specs = [{"dtype": a.dtype.str, "shape": list(a.shape), "bytes": a.nbytes} for a in arrays]
    return json.dumps({"fields": fields, "arrays": specs}, allow_nan=True), b"".join(a.tobytes() for a in arrays)


def decode_result(text: str, data: bytes, path: Path, index: int) -> FileResult:
    """The result :func:`encode_result` stored, for ``path`` at row ``index``; ValueError when it does not decode."""
    doc = json.loads(text)
    blobs, at = [], 0
    for spec in doc["arrays"]:
        n = int(spec["bytes"])
        a = np.frombuffer(data[at:at + n], dtype=np.dtype(spec["dtype"]))
        if a.nbytes != n:
            raise ValueError("array bytes cut short")
        blobs.append(a.reshape(spec["shape"]).copy())
        at += n
    if at != len(data):
        raise ValueError("array bytes left over")
    fields = {k: _decode(v, blobs) for k, v in doc["fields"].items()}
    names = {f.name for f in dataclasses.fields(FileResult)}
    if not set(fields) <= names:
        raise ValueError(f"unknown fields {sorted(set(fields) - names)}")
    return FileResult(path=path, index=index, **fields)


def _checksum(key: str, text: str, data: bytes) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in (key.encode(), text.encode(), data):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


class CorruptCache(Exception):
    """The database or one of its rows cannot be trusted."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER,
    mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (key TEXT PRIMARY KEY, batch TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (digest TEXT NOT NULL, setting TEXT NOT NULL, format TEXT NOT NULL,
    json TEXT NOT NULL, arrays BLOB NOT NULL, checksum TEXT NOT NULL, used REAL NOT NULL,
    PRIMARY KEY (digest, setting));
"""


class ResultsCache:
    """The results database at ``folder/results.sqlite3`` (default: :func:`~.paths.cache_dir`).

    Thread-safe (one connection behind a lock). Every method survives a broken database: it is
    moved aside and rebuilt, and the call answers as if nothing were cached.
    """

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else cache_dir()
        self.path = self.folder / DB_NAME
        self._lock = threading.RLock()
        self._con: sqlite3.Connection | None = None
        self.moved_aside: list[Path] = []
        self.last_hits = 0  # results the last lookup found

    # -- connection ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._con is not None:
            return self._con
        self.folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(2):
            con = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, check_same_thread=False, isolation_level=None)
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.executescript(_SCHEMA)
                row = con.execute("SELECT value FROM info WHERE key='schema'").fetchone()
                if row is None:
                    con.execute("INSERT OR IGNORE INTO info VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif row[0] != str(SCHEMA_VERSION):
                    raise CorruptCache(f"schema {row[0]}, expected {SCHEMA_VERSION}")
                con.execute("DELETE FROM results WHERE format != ?", (results_format(),))
                self._con = con
                return con
            except sqlite3.OperationalError as e:
                con.close()
                if _busy(e) or attempt:
                    raise
                self._move_aside(str(e))
            except (sqlite3.DatabaseError, CorruptCache) as e:
                con.close()
                if attempt:
                    raise
                self._move_aside(str(e))
        raise AssertionError("unreachable")

    def _move_aside(self, why: str) -> None:
        """Move the database (and its WAL files) aside; the next connection builds a new one."""
        if self._con is not None:
            self._con.close()
            self._con = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.folder / f"results-{stamp}.corrupt"
        n = 1
        while target.exists():
            target, n = self.folder / f"results-{stamp}-{n}.corrupt", n + 1
        log.warning("results cache %s cannot be trusted (%s); moved to %s and rebuilt", self.path, why, target.name)
        if self.path.exists():
            os.replace(self.path, target)
            self.moved_aside.append(target)
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _guard(self, fn: Callable[[sqlite3.Connection], Any], default: Any) -> Any:
        """``fn(connection)``; on a broken database it is moved aside (once) and ``default`` answered."""
        with self._lock:
            try:
                return fn(self._connect())
            except sqlite3.OperationalError as e:
                if _busy(e):
                    log.info("results cache busy (%s); not used for this call", e)
                    return default
                self._move_aside(str(e))
            except (sqlite3.DatabaseError, CorruptCache) as e:
                self._move_aside(str(e))
            except OSError as e:
                log.warning("results cache unavailable (%s)", e)
            return default

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    # -- reading and writing ---------------------------------------------------------------
    def lookup(self, paths: list[Path], setting: str) -> tuple[dict[int, FileResult], dict[int, tuple]]:
        """Cached results of ``paths`` under ``setting``: ({row: result}, {row: identity of every readable file})."""
        ids = {i: ident for i, p in enumerate(paths) if (ident := identity(p)) is not None}

        def run(con: sqlite3.Connection) -> dict[int, FileResult]:
            found = {}
            fmt = results_format()
            for i, ident in ids.items():
                row = con.execute(
                    "SELECT r.digest, r.json, r.arrays, r.checksum FROM files f JOIN results r ON r.digest = f.digest "
                    "WHERE f.path=? AND f.dev=? AND f.ino=? AND f.size=? AND f.mtime_ns=? AND f.ctime_ns=? "
                    "AND r.setting=? AND r.format=?", (*ident, setting, fmt)).fetchone()
                if row is None:
                    continue
                digest, text, data, checksum = row
                if _checksum(f"{digest}|{setting}|{fmt}", text, bytes(data)) != checksum:
                    raise CorruptCache(f"row of {ident[0]} fails its checksum")
                try:
                    found[i] = decode_result(text, bytes(data), paths[i], i)
                except (ValueError, TypeError, KeyError) as e:
                    raise CorruptCache(f"row of {ident[0]} does not decode: {e}") from None
            if found:
                now = time.time()
                con.executemany("UPDATE results SET used=? WHERE digest=(SELECT digest FROM files WHERE path=?) AND setting=?",
                                [(now, ids[i][0], setting) for i in found])
            return found

        found = self._guard(run, {})
        self.last_hits = len(found)
        return found, ids

    def store(self, result: FileResult, ident: tuple, setting: str) -> bool:
        """Keep ``result`` for the file whose identity was ``ident`` before it was read. Nothing is kept when the
        result failed for a reason that may pass (:func:`lasting`), the file changed meanwhile or the result cannot
        be encoded; returns whether it was kept."""
        if not lasting(result):
            return False
        try:
            digest = file_digest(Path(ident[0]))
            if identity(Path(ident[0])) != ident:
                return False  # written to while it was classified: its result may be the old bytes'
            text, data = encode_result(result)
        except (OSError, TypeError, ValueError) as e:
            log.info("result of %s not cached: %s", result.path, e)
            return False
        fmt = results_format()
        checksum = _checksum(f"{digest}|{setting}|{fmt}", text, data)

        def run(con: sqlite3.Connection) -> bool:
            with con:
                con.execute("BEGIN")
                con.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", (*ident, digest))
                con.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (digest, setting, fmt, text, data, checksum, time.time()))
            return True

        return self._guard(run, False)

    def remember_model(self, key: str, batch) -> None:
        """Keep the CSV's per-run facts of a model (:class:`~cxrviewer.core.results.columns.Batch`), so that a run
        answered wholly from the cache needs no model."""
        text = json.dumps(dataclasses.asdict(batch))

        def run(con: sqlite3.Connection) -> None:
            con.execute("INSERT OR REPLACE INTO models VALUES (?, ?)", (key, text))

        self._guard(run, None)

    def model_batch(self, key: str):
        """The :class:`~cxrviewer.core.results.columns.Batch` kept for a model key, or None."""
        from .columns import Batch

        row = self._guard(lambda con: con.execute("SELECT batch FROM models WHERE key=?", (key,)).fetchone(), None)
        if row is None:
            return None
        try:
            d = json.loads(row[0])
            return Batch(tuple(d["class_names"]), d["positive"], d["threshold"], d["model_name"],
                         d.get("intended_for", ""), tuple(tuple(m) for m in d.get("meanings", ())),
                         bool(d.get("frame_normalize", False)))
        except (ValueError, KeyError, TypeError):
            return None  # never trusted; the next run that classifies rewrites it

    def clear(self) -> int:
        """Forget every result; returns how many there were."""
        def run(con: sqlite3.Connection) -> int:
            n = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            with con:
                con.execute("BEGIN")
                con.execute("DELETE FROM results")
                con.execute("DELETE FROM files")
                con.execute("DELETE FROM models")
            con.execute("VACUUM")
            return int(n)

        return self._guard(run, 0)

    def count(self) -> int:
        return self._guard(lambda con: int(con.execute("SELECT COUNT(*) FROM results").fetchone()[0]), 0)


def lasting(result: FileResult) -> bool:
    """A result worth keeping: a verdict, or a failure the same bytes always give (a file that is not a
    radiograph, a corrupt one); not an unexpected error or a failed forward pass."""
    return result.ok or not str(result.error).startswith(("unexpected error", "model failed"))


def _busy(e: sqlite3.OperationalError) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def model_key(model) -> str:
    """The model's part of the key: its file (resolved path and bytes' digest, set by
    :func:`~cxrviewer.core.model.checkpoint.load_model`) while its metadata is as loaded, else a digest of its
    weights and metadata (a model built in memory, or one whose metadata was changed after loading)."""
    key = getattr(model, "file_key", None)
    if key and getattr(model, "loaded_meta", None) == json.dumps(model.meta, sort_keys=True, default=str):
        return key
    return "state:" + model_digest(model)


def setting_key(model: str, precision: str, checks: bool, stability: bool, population: str = "flag") -> str:
    """What besides the file decides a result: the model (:func:`model_key`), the precision as asked
    for ("auto" included: the result records the one it ran in), which checks ran, and whether verdicts
    outside the intended population are withheld."""
    return f"{model}|precision={precision}|checks={int(checks)}|stability={int(stability)}|population={population}"


def answer_from_cache(cache: ResultsCache, model_file: Path, paths: list[Path], precision: str, checks: bool,
                      stability: bool, population: str = "flag"):
    """(Batch, results in input order) when ``cache`` holds a result for every path under these settings and
    knows the model file; else None. Needs no model and no torch: ``predict`` answers a rerun at once."""
    key = file_key(model_file, file_digest(model_file))
    batch = cache.model_batch(key)
    if batch is None:
        return None
    hits, _ = cache.lookup(paths, setting_key(key, precision, checks, stability, population))
    if len(hits) != len(paths):
        return None
    return batch, [hits[i] for i in range(len(paths))]


def predict_cached(predictor, cache: ResultsCache, paths: Iterable[str | Path], cancel=None,
                   progress: Callable[[int, int], None] | None = None) -> Iterator[FileResult]:
    """:meth:`Predictor.predict` that takes known results from ``cache`` and classifies only the rest.

    Results come in input order, each with its row as ``index``; new complete results are stored
    as they arrive, so a cancelled run resumes where it stopped.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return
    setting = predictor.cache_setting
    hits, ids = cache.lookup(paths, setting)
    if len(hits) < len(paths):
        from .columns import Batch

        cache.remember_model(predictor.cache_model, Batch.of(predictor.source_model))
    misses = [i for i in range(len(paths)) if i not in hits]
    total, done, nxt = len(paths), 0, 0

    def flush(upto: int) -> Iterator[FileResult]:
        nonlocal done, nxt
        while nxt < upto:
            if nxt in hits:
                done += 1
                if progress is not None:
                    progress(done, total)
                yield hits.pop(nxt)
            nxt += 1

    if misses:
        run = predictor.predict_uncached([paths[i] for i in misses], cancel=cancel)
        try:
            for r in run:
                row = misses[r.index]
                yield from flush(row)
                if cancel is not None and cancel.is_set():
                    return
                r.index = row
                if row in ids and (not r.ok or not predictor.checks or r.checks is not None):
                    cache.store(r, ids[row], setting)
                done += 1
                nxt = row + 1
                if progress is not None:
                    progress(done, total)
                yield r
        finally:
            run.close()
        if cancel is not None and cancel.is_set():
            return
    yield from flush(total)
