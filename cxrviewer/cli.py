"""The ``cxrviewer`` command: the viewer, or ``cxrviewer predict`` headless.

    cxrviewer [FOLDER_OR_FILE ...]          open the viewer (on these paths)
    cxrviewer predict INPUT ... --csv OUT   classify files and folders into a CSV
    cxrviewer evaluate FOLDER --out DIR     metrics and plots on a labelled folder (see site_commands)
    cxrviewer calibrate FOLDER --out NEW    a new model file fitted to a site's labelled folder
    cxrviewer serve --workdir DIR --send-to AET@HOST:PORT   a DICOM node: classify what it receives (see serve.py)
    cxrviewer --version
    torchrun --nproc_per_node=N -m cxrviewer predict INPUT ... --csv OUT   the same, N processes

Expected failures (bad model file, missing input, existing CSV, ...) end with
one line on stderr and a non-zero exit code, never a traceback. ``predict``
exits 0 when the batch ran, whatever failed per file (see the ``error`` column).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .core.batch.workers import DaemonPool
from .core.errors import CxrError, RadiographError

if TYPE_CHECKING:  # imported where used: --help, --version and argument errors stay light (no numpy, no torch)
    from .core.results.file_result import FileResult

PROG = "cxrviewer"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
OVERLAY_SIZE_HINT = (2048, 2048)
"""Overlays of large images are drawn from the image decoded at no less than twice this size (bounded memory)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run ends as on Ctrl+C: partial files removed."""


#: Seconds an interrupted run may take to end before the process is ended without further clean-up.
EXIT_GRACE = 20.0
_signalled: list[int] = []  # the exit code of a signal received while predict ran (then the process ends at once)


def _on_signal(code: int, error: type[KeyboardInterrupt]):
    """A handler that records the signal, arms the exit watchdog and raises ``error`` in the main thread."""
    def handler(signum, frame):
        if not _signalled:
            _signalled.append(code)
            timer = threading.Timer(EXIT_GRACE, _force_exit, (code,))
            timer.daemon = True
            timer.start()
        raise error()
    return handler


def _force_exit(code: int) -> None:
    print(f"{PROG}: error: still running {EXIT_GRACE:.0f} s after the signal; ended without clean-up", file=sys.stderr)
    _exit_now(code)


def _exit_now(code: int) -> None:
    """End the process without interpreter shutdown: a read stuck in a daemon thread must not hold it up."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` and SIGINT KeyboardInterrupt in the main thread, and
    either makes sure the process ends (:data:`EXIT_GRACE`); elsewhere: no change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal(code, error)) for sig, code, error in
                ((signal.SIGTERM, EXIT_TERMINATED, Terminated), (signal.SIGINT, EXIT_INTERRUPTED, KeyboardInterrupt))}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_gui_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Review chest radiographs with an AI second reader and its class activation maps.",
                     epilog=f"Headless: {PROG} predict --help, {PROG} evaluate --help, {PROG} calibrate --help, "
                            f"{PROG} serve --help")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--install-desktop", action="store_true",
                        help="install a desktop menu entry and icon for this user (Linux), then exit")
    parser.add_argument("paths", nargs="*", metavar="FOLDER_OR_FILE", help="open the viewer on these (default: an empty window)")
    return parser


def add_population_option(parser: argparse.ArgumentParser, default: str = "flag", help_extra: str = "") -> None:
    """``--population flag|refuse``: what a run does with an image outside the model's intended population."""
    parser.add_argument("--population", choices=("flag", "refuse"), default=default,
                        help="an image outside the model's intended population (e.g. an adult, for a model trained on "
                             "children: age from the DICOM header) keeps its verdict with the population column saying "
                             "why (flag), or has it withheld as an out-of-scope image's is (refuse)"
                             f"{help_extra} (default: {default})")


def build_predict_parser() -> argparse.ArgumentParser:
    from .core.model.precision_policy import PRECISIONS

    parser = _Parser(prog=f"{PROG} predict", description="Classify radiographs and write a CSV (and optional overlay PNGs).")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (searched recursively)")
    parser.add_argument("--csv", required=True, metavar="OUT",
                        help="results CSV to write (refused if it exists, see --overwrite, or is an input or inside an input folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --csv file (default: refuse)")
    parser.add_argument("--overlays", metavar="DIR", help="also write one overlay PNG per image into DIR "
                        "(existing files are kept: new names get ' (1)'; DIR may not be an input folder or inside one)")
    parser.add_argument("--model", metavar="PATH", help="model file (.safetensors; default: the shipped model)")
    parser.add_argument("--device", metavar="D", default=None, help="cpu, cuda, cuda:N or mps (default: CUDA, else MPS, else CPU)")
    parser.add_argument("--batch-size", type=_positive_int, default=16, metavar="N", help="images per forward pass (default: 16)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="number type of the forward pass: auto = int8 on CPUs with VNNI or AVX2, else bfloat16 "
                             "on CPUs with native bf16 (float16 on CUDA), where the model file records >= 99.5%% label "
                             "agreement with float32 on validation (and CAMs correlating >= 0.98 for int8), else "
                             "float32; the CSV's precision column and stderr say which and why (default: auto)")
    parser.add_argument("--stability", action="store_true",
                        help="also re-score each image with a 10%% black border and with a slight blur and fill the "
                             "unstable and shift_* columns (the stability badge); costs two more forward passes per "
                             "image, about 3x the model time (default: off, those columns say 'not run')")
    parser.add_argument("--no-cache", action="store_true",
                        help="classify every file and keep nothing (default: results already known for the same file "
                             "bytes, model, precision and checks come from the results cache in the user's cache folder, "
                             "$CXRVIEWER_CACHE_DIR overrides it; new results are added to it)")
    add_population_option(parser)
    parser.add_argument("--class", dest="cam_class", metavar="NAME", help="class whose CAM the overlays show (default: the predicted class)")
    parser.add_argument("--scale", choices=("auto", "image", "fixed"), default="auto",
                        help="overlay colour scale: per-image min-max, or fixed logit range shared by all images; "
                             "auto = fixed when the model file defines cam_range, else image (default: auto)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cxrviewer``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "predict":
            return _predict(build_predict_parser().parse_args(argv[1:]))
        if argv and argv[0] == "serve":
            from . import serve

            return serve.serve(serve.build_serve_parser(_Parser).parse_args(argv[1:]))
        if argv and argv[0] in ("evaluate", "calibrate"):
            from . import site_commands as site

            parser = site.build_evaluate_parser() if argv[0] == "evaluate" else site.build_calibrate_parser()
            return getattr(site, argv[0])(parser.parse_args(argv[1:]))
        return _gui(build_gui_parser().parse_args(argv))
    except SystemExit as e:  # argparse: --help, --version, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    except CxrError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    finally:
        if _signalled:  # a real SIGINT/SIGTERM during predict: partial files are gone, the process ends now
            _exit_now(_signalled[0])


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _gui(args: argparse.Namespace) -> int:
    if args.install_desktop:
        from cxrviewer.gui.desktop import install_desktop_entry

        try:
            print(f"installed {install_desktop_entry()}")
        except OSError as e:
            return _fail(f"cannot install the desktop entry: {e}")
        return 0
    for p in args.paths:
        if not Path(p).exists():
            return _fail(f"{p}: no such file or folder")
    try:
        from cxrviewer.gui.app import main as gui_main
    except ImportError as e:
        return _fail(f"cannot start the viewer ({e}); '{PROG} predict' works without it")
    return int(gui_main([str(p) for p in args.paths] or None) or 0)


def _predict(args: argparse.Namespace) -> int:
    from .core.batch.distributed import join, leave

    group = join()  # under torchrun with several ranks: each classifies its share
    if group is None:
        return _predict_here(args)
    try:
        return _predict_ranked(args, group)
    finally:
        leave()


def _predict_here(args: argparse.Namespace) -> int:
    from .core.results.columns import Batch, csv_columns
    from .core.results.export import CsvWriter
    from .core.io.scan import scan_inputs

    skipped: list[tuple[Path, str]] = []
    paths = scan_inputs(args.inputs, skipped)
    for path, reason in skipped:
        print(f"{PROG}: skipped {path}: {reason}", file=sys.stderr)
    if not paths:
        return _fail(f"no images found in {', '.join(args.inputs)}")
    csv_path = _csv_target(args)
    out_dir = _overlay_folder(args)
    known = _answer_from_cache(args, paths) if out_dir is None else None
    if known is not None:
        return _write_known(args, csv_path, *known)
    model, predictor = _predictor(args)
    render = _overlay_writer(args, model, out_dir) if out_dir is not None else None
    batch = Batch.of(model)
    try:
        with _terminate_as_interrupt(), \
                CsvWriter(csv_path, batch, csv_columns(batch, overlays=render is not None), overwrite=args.overwrite) as writer:
            failed = _classify(predictor, paths, writer, render)
            written = writer.close()
    except Terminated:
        return _fail("terminated; no CSV written", EXIT_TERMINATED)
    except KeyboardInterrupt:
        return _fail("interrupted; no CSV written", EXIT_INTERRUPTED)
    cached = f" ({predictor.cache.last_hits} from the results cache)" if predictor.cache is not None and predictor.cache.last_hits else ""
    print(f"{PROG}: {len(paths)} file(s): {len(paths) - failed} classified{cached}, {failed} failed -> {written}",
          file=sys.stderr)
    return 0


def _answer_from_cache(args: argparse.Namespace, paths: list[Path]):
    """(Batch, results) when the results cache knows every file for this model and these options, else None;
    loads no model (and imports no torch)."""
    from .core.paths import default_model_in, resources_dir
    from .core.results.results_cache import ResultsCache, answer_from_cache

    if args.no_cache:
        return None
    model_file = Path(args.model) if args.model else default_model_in(resources_dir() / "models")
    if model_file is None or not model_file.is_file():
        return None  # the model's own refusal comes from loading it
    cache = ResultsCache()
    try:
        known = answer_from_cache(cache, model_file, paths, args.precision, True, args.stability, args.population)
    except OSError:
        return None
    finally:
        cache.close()
    if known is None or (args.cam_class is not None and args.cam_class not in known[0].class_names):
        return None
    return known


def _write_csv(csv_path: Path, batch, results: list[FileResult], overlays: bool, overwrite: bool) -> Path:
    """Write ``results`` as the CSV of ``batch`` (the columns of :func:`csv_columns`); returns the file written."""
    from .core.results.columns import csv_columns
    from .core.results.export import CsvWriter

    with CsvWriter(csv_path, batch, csv_columns(batch, overlays=overlays), overwrite=overwrite) as writer:
        for result in results:
            writer.write(result)
        return writer.close()


def _write_known(args: argparse.Namespace, csv_path: Path, batch, results: list[FileResult]) -> int:
    """Write the CSV of results all taken from the cache."""
    written = _write_csv(csv_path, batch, results, overlays=False, overwrite=args.overwrite)
    failed = sum(not r.ok for r in results)
    print(f"{PROG}: {len(results)} file(s): {len(results) - failed} classified, {failed} failed, all from the results "
          f"cache (no model run) -> {written}", file=sys.stderr)
    return 0


def _predictor(args: argparse.Namespace):
    """The model (``--model``, checked against ``--class``) and a Predictor for it (``--device``, ``--precision``,
    ``--stability``). Its lanes share torch's thread count (under torchrun: ``OMP_NUM_THREADS``, 1 by default)."""
    from .core.model.checkpoint import load_model
    from .core.errors import CxrError
    from .core.batch.inference import Predictor, pick_device
    from .core.results.results_cache import ResultsCache

    model = load_model(args.model, device="cpu")
    if args.cam_class is not None and args.cam_class not in model.class_names:
        raise CxrError(f"--class {args.cam_class!r} is not a class of this model ({', '.join(model.class_names)})")
    predictor = Predictor(model, device=pick_device(args.device), batch_size=args.batch_size,
                          first_batch=args.batch_size, precision=args.precision,  # full batches: same under torchrun
                          stability=args.stability, population=args.population,
                          cache=None if args.no_cache else ResultsCache())
    if int(os.environ.get("RANK", "0")) == 0:  # once, also under torchrun
        print(f"{PROG}: {predictor.precision} ({predictor.precision_reason})", file=sys.stderr)
    return model, predictor


def _predict_ranked(args: argparse.Namespace, group) -> int:
    """One rank of ``predict`` under torchrun: rank 0 scans and checks, every rank classifies its share,
    rank 0 writes the merged CSV in input order. If any rank fails, no CSV is written."""
    from .core.batch import distributed
    from .core.results.columns import Batch
    from .core.batch.inference import scan_inputs

    setup: tuple | str | None = None
    if group.main:
        try:
            paths = scan_inputs(args.inputs)
            setup = (paths, _csv_target(args)) if paths else f"no images found in {', '.join(args.inputs)}"
        except CxrError as e:
            setup = str(e)
    setup = distributed.broadcast(setup)
    if isinstance(setup, str):
        return _fail(setup) if group.main else EXIT_ERROR
    paths, csv_path = setup
    mine = group.share(len(paths), args.batch_size)
    kept: list[FileResult] = []
    problem = None
    try:
        out_dir = _overlay_folder(args)
        model, predictor = _predictor(args)
        render = _overlay_writer(args, model, out_dir) if out_dir is not None else None
        _classify(predictor, [paths[i] for i in mine], _Keep(kept, mine), render)
    except CxrError as e:
        problem = str(e)
    except Exception as e:  # noqa: BLE001 - reported, and then no rank writes a CSV
        problem = f"{type(e).__name__}: {e}"
    if not distributed.everyone(problem is None):
        if problem is not None:
            print(f"{PROG}: error: rank {group.rank}: {problem}", file=sys.stderr)
        return _fail("a rank failed; no CSV written") if group.main else EXIT_ERROR
    merged = distributed.gather(kept, group)
    if merged is None:
        return 0
    merged.sort(key=lambda r: r.index)
    batch = Batch.of(model)
    written = _write_csv(csv_path, batch, merged, overlays=out_dir is not None, overwrite=args.overwrite)
    failed = sum(not r.ok for r in merged)
    print(f"{PROG}: {len(paths)} file(s) on {group.world} ranks: {len(paths) - failed} classified, {failed} failed "
          f"-> {written}", file=sys.stderr)
    return 0


class _Keep:
    """A stand-in CSV writer for one rank: keeps each result (global index, no CAMs) for rank 0."""

    def __init__(self, kept: list[FileResult], owned: list[int]):
        self.kept, self.owned = kept, owned

    def write(self, result: FileResult) -> None:
        result.index = self.owned[result.index]
        result.cams = None
        self.kept.append(result)


def _csv_target(args: argparse.Namespace) -> Path:
    """The ``--csv`` path, checked: not an existing file without --overwrite, not a folder, its folder exists."""
    from .core.results.export import ExportError

    from .core.results.export import check_outside_inputs

    csv_path = Path(args.csv)
    check_outside_inputs(csv_path, args.inputs, "--csv")
    if csv_path.is_dir():
        raise ExportError(f"{csv_path}: is a folder; give a file name for the CSV (e.g. {csv_path / 'results.csv'})")
    if csv_path.exists() and not args.overwrite:
        raise ExportError(f"{csv_path}: already exists; choose another name or pass --overwrite")
    if not csv_path.parent.is_dir():
        raise ExportError(f"{csv_path.parent}: folder does not exist (for --csv)")
    return csv_path


def _overlay_folder(args: argparse.Namespace) -> Path | None:
    """The ``--overlays`` folder, checked and created; None without --overlays."""
    from .core.results.export import ExportError, check_output_dir

    if not args.overlays:
        return None
    check_output_dir(args.overlays, args.inputs, strict=True)
    out_dir = Path(args.overlays)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"{args.overlays}: cannot create the folder ({e.strerror or e})") from None
    return out_dir


def _overlay_writer(args: argparse.Namespace, model, out_dir: Path) -> Callable[[FileResult], tuple[Path | None, str | None]]:
    """``render(result)``: writes the overlay PNG of one result into ``out_dir``."""
    from .core.model.population import model_line
    from .core.results.columns import Batch
    from .core.results.overlay import cam_range_from_meta

    scale = args.scale
    if scale == "auto":
        scale = "fixed" if "cam_range" in model.meta else "image"
    options = dict(class_name=args.cam_class, scale=scale, cam_range=cam_range_from_meta(model.meta),
                   model_name=model_line(model.display_name, model.meta), batch=Batch.of(model))
    return lambda result: _write_overlay(result, out_dir, options)


def _classify(predictor, paths: list[Path], writer, render) -> int:
    """Classify ``paths`` into ``writer`` (overlays rendered alongside, two at a time); returns how many failed."""
    cancel = threading.Event()
    results = predictor.predict(paths, cancel=cancel)
    pool = DaemonPool(2, "cxrviewer-overlay") if render else None
    inflight: deque[tuple[FileResult, Future | None]] = deque()
    failed = 0
    with _progress_bar(len(paths)) as bar:
        try:
            for result in results:
                inflight.append((result, pool.submit(render, result) if pool is not None and result.ok else None))
                failed += _write_rows(inflight, 4 if pool is not None else 0, writer, bar)
            failed += _write_rows(inflight, 0, writer, bar)
        finally:
            cancel.set()
            results.close()
            if pool is not None:
                pool.shutdown(timeout=0.2)
    return failed


def _write_rows(inflight: deque, keep: int, writer, bar) -> int:
    """Write the CSV rows of the oldest results until ``keep`` remain in flight; returns how many failed."""
    failed = 0
    while len(inflight) > keep:
        result, fut = inflight.popleft()
        if fut is not None:
            written, problem = fut.result()
            result.overlay = written
            if problem and result.error is None:
                result.error = f"overlay not written: {problem}"
        failed += result.error is not None
        writer.write(result)
        bar.update(1)
        if failed:
            bar.set_postfix(failed=failed, refresh=False)
    return failed


def _write_overlay(result: FileResult, out_dir: Path, options: dict) -> tuple[Path | None, str | None]:
    """Render and save one overlay PNG; returns (path written, None) or (None, reason). Never raises."""
    from .core.results.export import overlay_path, save_png
    from .core.io.reading import load_radiograph
    from .core.results.overlay import render_export

    try:
        radiograph = load_radiograph(result.path, target_size=OVERLAY_SIZE_HINT)
        image = render_export(radiograph, result, **options)
        return save_png(image, overlay_path(out_dir, result.path)), None
    except RadiographError as e:
        return None, e.reason
    except CxrError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - one file's overlay never ends the batch
        return None, f"{type(e).__name__}: {e}"


def _progress_bar(total: int):
    """A tqdm bar on stderr when it is a terminal; a silent stand-in otherwise."""
    from tqdm import tqdm

    interactive = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(total=total, unit="img", file=sys.stderr, disable=not interactive, dynamic_ncols=True, leave=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
