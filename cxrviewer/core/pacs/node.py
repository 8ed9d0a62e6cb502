"""The DICOM node behind ``cxrviewer serve``: receive radiographs, classify them, send the results on. Qt-free.

Three parts, each on its own thread, joined by the durable :class:`~cxrviewer.core.pacs.node_queue.NodeQueue`:

- the storage SCP (pynetdicom) answers C-ECHO and C-STORE; a C-STORE is checked (size, parse,
  UIDs, a radiograph storage class) and written to the queue (fsynced) before success is answered;
  anything else gets a failure status and the node goes on;
- the classifier takes the queued files in batches through the :class:`~cxrviewer.core.batch.inference.Predictor`
  (scope guard and checks included) and writes each source's SR and Secondary Capture to the outbox,
  rendering on :data:`RENDER_THREADS` threads beside the next batch's forward pass;
- the sender C-STOREs the outbox to the destination, records each instance sent, and retries a
  destination that is down with a backoff (1 s doubling to 60 s) while the queue waits.

Nothing received is ever executed: data sets are parsed by pydicom and decoded as images, nothing else.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..batch.workers import DaemonPool
from .dicom_net import RADIOGRAPH_CLASSES, RECEIVE_SYNTAXES, DicomNetError, Peer, check_aet, send_files
from .node_queue import NodeQueue, QueueError, check_uid
from .node_results import ResultMaker

log = logging.getLogger("cxrviewer.serve")

SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND, SOP_CLASS_NOT_SUPPORTED = 0x0000, 0xA700, 0xC210, 0x0122
MAX_BACKOFF = 60.0
RENDER_THREADS = max(2, min(8, (os.cpu_count() or 2) // 2))
"""Threads that make the SRs and Secondary Captures beside the forward passes (half the cores, 2 to 8)."""


@dataclass
class NodeConfig:
    """What ``cxrviewer serve`` was asked: the node's AE title and address, where results go, and its limits."""

    aet: str = "CXRVIEWER"
    host: str = "127.0.0.1"
    port: int = 11112
    send_to: Peer | None = None
    allow_aets: list[str] = field(default_factory=list)  # empty: any calling AE title
    max_bytes: int = 256 << 20
    log_patient_names: bool = False
    batch_size: int = 16


class Node:
    """A running node: :meth:`start`, then :meth:`stop` (also on SIGTERM, from the CLI)."""

    def __init__(self, config: NodeConfig, queue: NodeQueue, predictor, maker: ResultMaker):
        self.config, self.queue, self.predictor, self.maker = config, queue, predictor, maker
        self.stopping = threading.Event()
        self._work, self._outbox = threading.Event(), threading.Event()
        self._claimed: set[str] = set()
        self._claim_lock = threading.Lock()
        self._server = None
        self._threads: list[threading.Thread] = []
        self.callers: dict[str, str] = {}  # source UID -> calling AE title (for the log line)

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Listen, and start classifying and sending (what a previous run left queued goes first)."""
        from pynetdicom import AE, evt

        ae = AE(ae_title=check_aet(self.config.aet))
        for uid in RADIOGRAPH_CLASSES:
            ae.add_supported_context(uid, list(RECEIVE_SYNTAXES))
        ae.add_supported_context("1.2.840.10008.1.1")
        if self.config.allow_aets:
            ae.require_calling_aet = [check_aet(a) for a in self.config.allow_aets]
        ae.maximum_associations = 16
        handlers = [(evt.EVT_C_ECHO, lambda event: SUCCESS), (evt.EVT_C_STORE, self._on_store)]
        self._server = ae.start_server((self.config.host, self.config.port), block=False, evt_handlers=handlers)
        for target, name in ((self._classify_loop, "cxrviewer-classify"), (self._send_loop, "cxrviewer-send")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self._work.set()
        self._outbox.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop listening, finish the results being written, leave the rest queued for the next start."""
        self.stopping.set()
        self._work.set()
        self._outbox.set()
        if self._server is not None:
            self._server.shutdown()
        for t in self._threads:
            t.join(timeout)
        self.queue.close()

    # -- receiving ----------------------------------------------------------------------
    def _on_store(self, event) -> int:
        """Check and queue one instance; a failure status for anything that cannot be a radiograph to classify."""
        if self.stopping.is_set():
            return OUT_OF_RESOURCES
        caller = str(event.assoc.requestor.ae_title).strip()
        try:
            raw = event.request.DataSet.getvalue()
            if len(raw) > self.config.max_bytes:
                log.warning("refused an instance from %s: %d bytes, over the limit of %d", caller, len(raw),
                            self.config.max_bytes)
                return OUT_OF_RESOURCES
            uid = self._check(raw, event)
            if uid is None:
                return SOP_CLASS_NOT_SUPPORTED
            data = event.encoded_dataset(include_meta=True)
            if not self.queue.put(uid, data):
                log.info("%s from %s: classified before; not queued again", uid, caller)
                return SUCCESS
        except QueueError as e:
            log.warning("refused an instance from %s: %s", caller, e)
            return OUT_OF_RESOURCES if "cannot queue" in str(e) else CANNOT_UNDERSTAND
        except Exception as e:  # noqa: BLE001 - a malformed data set never stops the node
            log.warning("refused an instance from %s: cannot parse it (%s)", caller, _one_line(e))
            return CANNOT_UNDERSTAND
        self.callers[uid] = caller
        self._work.set()
        return SUCCESS

    @staticmethod
    def _check(raw: bytes, event) -> str | None:
        """The instance's SOP Instance UID after parsing every element; None for a class the node does not take."""
        from pydicom.filereader import read_dataset

        ts = event.context.transfer_syntax
        if ts.is_deflated:
            import zlib

            raw = zlib.decompress(raw, -zlib.MAX_WBITS)
        ds = read_dataset(io.BytesIO(raw), ts.is_implicit_VR, ts.is_little_endian)
        for _elem in ds.iterall():  # parse every element now: a broken one fails here, not in the classifier
            pass
        if str(ds.get("SOPClassUID", "")) not in RADIOGRAPH_CLASSES:
            return None
        for key in ("StudyInstanceUID", "SeriesInstanceUID"):
            check_uid(str(ds.get(key, "")))
        if "PixelData" not in ds or not int(ds.get("Rows") or 0) or not int(ds.get("Columns") or 0):
            raise ValueError("no pixel data, rows or columns")
        return check_uid(str(ds.SOPInstanceUID))

    # -- classifying --------------------------------------------------------------------
    def _classify_loop(self) -> None:
        pool = DaemonPool(RENDER_THREADS, "cxrviewer-render")
        try:
            while not self.stopping.is_set():
                self._work.wait(1.0)
                self._work.clear()
                while not self.stopping.is_set():
                    with self._claim_lock:
                        batch = [p for p in self.queue.pending() if p.stem not in self._claimed]
                        batch = batch[:self.config.batch_size * 4]
                        self._claimed.update(p.stem for p in batch)
                    if not batch:
                        break
                    self._classify(batch, pool)
        except Exception:  # noqa: BLE001 - logged; the queue keeps the files for the next start
            log.exception("the classifier stopped")
        finally:
            pool.shutdown(timeout=60.0)

    def _classify(self, batch, pool: DaemonPool) -> None:
        results = self.predictor.predict(batch, cancel=self.stopping)
        inflight: list[Future] = []
        try:
            for result in results:
                inflight.append(pool.submit(self._finish, result))
                while len(inflight) > 2 * RENDER_THREADS:
                    inflight.pop(0).result()
        finally:
            results.close()
            for fut in inflight:
                fut.result()
            with self._claim_lock:
                self._claimed.difference_update(p.stem for p in batch)

    def _finish(self, result) -> None:
        """Write one source's results to the outbox and log its one line; never raises."""
        uid = result.path.stem
        try:
            datasets = self.maker.results_for(result)
            self.queue.finish(uid, datasets)
        except Exception as e:  # noqa: BLE001 - left queued: tried again at the next start
            log.error("%s: results not made (%s); left in the queue", uid, _one_line(e))
            return
        self._outbox.set()
        log.info("%s", self._line(uid, result, datasets))

    def _line(self, uid: str, result, datasets: list) -> str:
        who = self.callers.pop(uid, "queue")
        if not result.ok:
            verdict = f"not assessed: {result.error}"
        elif not result.in_scope:
            verdict = f"not assessed: {result.scope_reason}"
        else:
            verdict = f"{result.label} p={result.probs.get(result.label, float('nan')):.3f}"
            if result.warnings():
                verdict += f" ({'; '.join(result.warnings())})"
        name = ""
        if self.config.log_patient_names:
            name = f" patient {datasets[0].get('PatientName') or '?'}"
        return f"{uid} from {who}{name}: {verdict} -> {'SR + SC' if len(datasets) > 1 else 'SR'} queued"

    # -- sending ------------------------------------------------------------------------
    def _send_loop(self) -> None:
        backoff = 1.0
        peer = self.config.send_to
        while not self.stopping.is_set():
            self._outbox.wait(1.0)
            self._outbox.clear()
            while peer is not None and not self.stopping.is_set():
                waiting = self.queue.waiting()
                if not waiting:
                    break
                sources = dict((str(p), s) for s, p in waiting)
                try:
                    send_files(peer, [p for _, p in waiting], self.config.aet,
                               sent=lambda path, sop, m=sources: self.queue.mark_sent(sop, m[str(path)]))
                    backoff = 1.0
                except (DicomNetError, OSError, RuntimeError, ValueError) as e:
                    log.warning("%s: %s; %d source(s) waiting, retrying in %.0f s", peer, _one_line(e),
                                self.queue.counts()["outbox"], backoff)
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
