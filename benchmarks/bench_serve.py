"""The node's rate against ``predict``'s on the same images: is ``cxrviewer serve`` at >= 80% of it?

    nice python benchmarks/bench_serve.py [FOLDER] [--synthetic N] [--size PX] [--model PATH] [--batch-size N]

FOLDER: DICOM radiographs with a Study Instance UID (default: ``--synthetic`` DX images of ``--size`` px).
Three rates, images per second, each on the same files:

- ``predict``: the batch engine as ``cxrviewer predict`` runs it (decode, forward pass, scope guard, checks);
- ``predict_overlays``: the same plus each image's overlay drawn (as ``predict --overlays``, without the PNG write);
- ``serve``: a node in this process (``cxrviewer.core.pacs.node``), the images sent to it in one burst by C-STORE,
  timed until every SR and Secondary Capture has reached a local storage SCP standing in for the PACS.

``serve / predict`` is the target's ratio; ``serve / predict_overlays`` compares like with like (the node
draws a heat map per image). Run it on an idle machine; the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def synthetic(folder: Path, n: int, size: int) -> list[Path]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.Modality, ds.BodyPartExamined, ds.PatientID = "DX", "CHEST", f"B{i}"
        pixels = (np.linspace(0, 3000, size)[None, :] + rng.integers(0, 1000, (size, size))).astype(np.uint16)
        ds.set_pixel_data(pixels, "MONOCHROME2", 12)
        path = folder / f"b{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_predict(model, paths, batch_size: int, overlays: bool) -> float:
    from cxrviewer.core.batch.inference import Predictor
    from cxrviewer.core.pacs.node_results import RenderSettings, ResultMaker, model_info

    predictor = Predictor(model, batch_size=batch_size)
    maker = ResultMaker(model_info(model), RenderSettings.for_model(model))
    for result in predictor.predict(paths[:2]):  # warm-up, as the node gets
        maker.overlay(result) if overlays and result.ok else None
    t = time.perf_counter()
    for result in predictor.predict(paths):
        if overlays and result.ok:
            maker.overlay(result)
    return len(paths) / (time.perf_counter() - t)


def time_serve(model, paths, batch_size: int, work: Path, warm: list[Path]) -> float:
    from pynetdicom import AE, evt

    from cxrviewer.core.pacs.dicom_net import RESULT_CLASSES, RESULT_SYNTAXES, Peer, echo
    from cxrviewer.core.batch.inference import Predictor
    from cxrviewer.core.pacs.node import Node, NodeConfig
    from cxrviewer.core.pacs.node_queue import NodeQueue
    from cxrviewer.core.pacs.node_results import RenderSettings, ResultMaker, model_info

    received = {"sr": 0, "sc": 0}
    done = threading.Event()
    target = [len(warm)]

    def on_store(event):
        kind = "sr" if event.request.AffectedSOPClassUID == RESULT_CLASSES[1] else "sc"
        received[kind] += 1
        if received["sr"] >= target[0]:
            done.set()
        return 0x0000

    sink = AE(ae_title="SINK")
    for uid in RESULT_CLASSES:
        sink.add_supported_context(uid, list(RESULT_SYNTAXES))
    sink_port, node_port = free_port(), free_port()
    server = sink.start_server(("127.0.0.1", sink_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    config = NodeConfig(port=node_port, send_to=Peer("SINK", "127.0.0.1", sink_port), batch_size=batch_size)
    node = Node(config, NodeQueue(work), Predictor(model, batch_size=batch_size),
                ResultMaker(model_info(model), RenderSettings.for_model(model)))
    node.start()
    echo(Peer("CXRVIEWER", "127.0.0.1", node_port))
    client = AE(ae_title="MODALITY")
    client.add_requested_context("1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.1.2.1")

    def burst(files) -> None:
        assoc = client.associate("127.0.0.1", node_port, ae_title="CXRVIEWER")
        for p in files:
            assoc.send_c_store(p)
        assoc.release()

    burst(warm)  # first use: imports, highdicom's tables, the model's first pass
    done.wait(3600)
    done.clear()
    target[0] = len(warm) + len(paths)
    t = time.perf_counter()
    burst(paths)
    done.wait(3600)
    elapsed = time.perf_counter() - t
    node.stop()
    server.shutdown()
    return len(paths) / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?")
    p.add_argument("--synthetic", type=int, default=64)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--model")
    p.add_argument("--batch-size", type=int, default=16)
    a = p.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    from cxrviewer.core.model.checkpoint import load_model
    from cxrviewer.core.batch.inference import scan_inputs

    model = load_model(a.model)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.folder:
            paths = scan_inputs([a.folder])
        else:
            (tmp / "in").mkdir()
            paths = synthetic(tmp / "in", a.synthetic, a.size)
        rates = {"images": len(paths), "load_average": os.getloadavg()[0]}
        rates["predict"] = time_predict(model, paths, a.batch_size, overlays=False)
        rates["predict_overlays"] = time_predict(model, paths, a.batch_size, overlays=True)
        (tmp / "warm").mkdir()
        rates["serve"] = time_serve(model, paths, a.batch_size, tmp / "work", synthetic(tmp / "warm", 2, 256))
        rates["serve_vs_predict"] = rates["serve"] / rates["predict"]
        rates["serve_vs_predict_overlays"] = rates["serve"] / rates["predict_overlays"]
        rates["load_average_after"] = os.getloadavg()[0]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rates.items()}, indent=2))


if __name__ == "__main__":
    main()
