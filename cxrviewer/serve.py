"""``cxrviewer serve``: a DICOM node that classifies the radiographs it receives and sends the results on.

    cxrviewer serve --aet CXRVIEWER --host 127.0.0.1 --port 11112 --send-to ORTHANC@127.0.0.1:4242 --workdir DIR

It runs until SIGTERM or Ctrl+C (then it stops cleanly: what is queued stays queued for the next start).
One log line per instance on stderr. Qt-free; the work is in :mod:`cxrviewer.core.pacs.node`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from .core.errors import CxrError

DEFAULTS = {"aet": "CXRVIEWER", "host": "127.0.0.1", "port": 11112, "send_to": None, "workdir": None,
            "allow_aet": [], "model": None, "device": None, "batch_size": 16, "precision": "auto",
            "stability": False, "max_mb": 256, "log_patient_names": False}


def build_serve_parser(parser_class=argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = parser_class(prog="cxrviewer serve", description="A DICOM node: receive radiographs (C-STORE), classify them, "
                     "and send the verdict as a DICOM SR and the heat map as a Secondary Capture to --send-to.")
    p.add_argument("--config", metavar="FILE", help="JSON file with any of these options (keys as the long option "
                   "names, with _ for -); the command line wins")
    p.add_argument("--aet", help="the node's AE title (default: CXRVIEWER)")
    p.add_argument("--host", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, help="port to listen on (default: 11112)")
    p.add_argument("--send-to", metavar="AET@HOST:PORT", help="where results are sent by C-STORE, e.g. "
                   "ORTHANC@127.0.0.1:4242 (default: none, results stay in the work folder's outbox)")
    p.add_argument("--workdir", metavar="DIR", help="the node's durable queue and ledger (required)")
    p.add_argument("--allow-aet", action="append", metavar="AET", help="accept associations only from this "
                   "calling AE title (repeat for several; default: any)")
    p.add_argument("--model", metavar="PATH", help="model file (default: the shipped model)")
    p.add_argument("--device", metavar="D", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--batch-size", type=int, metavar="N", help="images per forward pass (default: 16)")
    p.add_argument("--precision", choices=("auto", "float32", "bfloat16", "float16"), help="as predict (default: auto)")
    p.add_argument("--stability", action="store_true", default=None, help="run the stability check (3x the model's work)")
    p.add_argument("--max-mb", type=float, metavar="N", help="refuse data sets larger than this many MiB (default: 256)")
    p.add_argument("--log-patient-names", action="store_true", default=None,
                   help="name the patient in the log lines (default: UIDs only)")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with ``--config``'s values where the command line gave none, then the defaults."""
    given = {}
    if args.config:
        try:
            given = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CxrError(f"{args.config}: cannot read the config ({e})") from None
        if not isinstance(given, dict) or set(given) - set(DEFAULTS):
            unknown = sorted(set(given) - set(DEFAULTS)) if isinstance(given, dict) else "not an object"
            raise CxrError(f"{args.config}: unknown keys {unknown}; known: {', '.join(DEFAULTS)}")
    for key, default in DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, given.get(key, default))
    if not args.workdir:
        raise CxrError("--workdir is required (the node's queue and ledger)")
    if isinstance(args.allow_aet, str):
        args.allow_aet = [args.allow_aet]
    return args


def serve(args: argparse.Namespace) -> int:
    """Run the node until SIGTERM or SIGINT; returns the exit code."""
    from .core.model.checkpoint import load_model
    from .core.pacs.dicom_net import parse_peer
    from .core.batch.inference import Predictor
    from .core.pacs.node import Node, NodeConfig
    from .core.pacs.node_queue import NodeQueue
    from .core.pacs.node_results import RenderSettings, ResultMaker, model_info

    args = resolve(args)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("pynetdicom", "highdicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = NodeConfig(aet=args.aet, host=args.host, port=int(args.port),
                        send_to=parse_peer(args.send_to) if args.send_to else None, allow_aets=list(args.allow_aet),
                        max_bytes=int(float(args.max_mb) * (1 << 20)), log_patient_names=bool(args.log_patient_names),
                        batch_size=int(args.batch_size))
    queue = NodeQueue(args.workdir)
    model = load_model(args.model, device="cpu")
    predictor = Predictor(model, device=args.device, batch_size=config.batch_size, precision=args.precision,
                          stability=bool(args.stability))
    node = Node(config, queue, predictor, ResultMaker(model_info(model, args.model), RenderSettings.for_model(model)))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        node.start()
    except OSError as e:
        raise CxrError(f"cannot listen on {config.host}:{config.port} ({e.strerror or e})") from None
    counts = queue.counts()
    logging.getLogger("cxrviewer.serve").info(
        "%s listening on %s:%d; results to %s; %d queued, %d waiting to be sent (work folder %s)", config.aet,
        config.host, config.port, config.send_to or "nowhere (kept in the outbox)", counts["queued"],
        counts["outbox"], args.workdir)
    while not stop.wait(0.5):
        pass
    logging.getLogger("cxrviewer.serve").info("stopping: %s", queue.counts())
    node.stop()
    return 0
