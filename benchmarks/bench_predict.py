"""Benchmark of batch classification: the article's per-image loop against ``cxrviewer predict``.

On JPEGs of 1,200-2,000 px (generated from the training images next to the checkout,
``../shared/data/chest_xray/train``, upscaled to a slightly random size; synthetic
images if that folder is missing), with the shipped model unless ``--model``:

- the seed article's per-image pipeline: PIL opens the full file, ``Resize((224, 224))``,
  ``ToTensor``, ``Normalize``, one forward pass with autograd on (a forward hook keeps
  the features), softmax, the 7 x 7 map of the top class zoomed x32 to 224 x 224 with
  ``scipy.ndimage.zoom``; and, as its own row, the same with the map zoomed to the full
  image size (that row mostly times scipy);
- decode only (the engine's decoder on 1 and 2 threads) and forward only (per precision,
  on 1 and 2 torch threads, and in concurrent lanes as the engine runs them, on preloaded
  inputs): the two limits of the pipeline;
- ``Predictor`` in this process, end to end, per precision (no stability check);
- whole ``cxrviewer predict`` processes on ``--small`` and ``--large`` images: the marginal
  rate (large - small images / time difference) removes start-up; best of two alternated runs;
  per precision with the default options (no stability check), then with ``--stability``
  (the stability badge, two more forward passes per image) and with OpenMP threads spinning;
- peak RSS of a fresh process classifying 150 and 1,500 images while holding every result.

In-process rows run with torch's default OpenMP wait policy (torch is imported before
cxrviewer, which would set ``OMP_WAIT_POLICY=PASSIVE``), as the article's code runs; the
``predict`` processes run as users run them.

Names the CPU (``/proc/cpuinfo``), the features the precision policy reads and its native
precisions, and ends with one summary row per precision (forward only, ``Predictor``, ``predict``,
x the article loop, end to end / min(decode, forward)). ``--cpu-features`` forces the detected
features (as ``CXRVIEWER_CPU_FEATURES``: e.g. ``vnni,avx2`` for a desktop CPU without bf16).
The viewer's rate and the start-up rows: ``benchmarks/bench_gui.py`` and ``benchmarks/bench_startup.py``.

Prints markdown tables and the issue-9 and issue-31 target checks, and writes them to ``--out``.
Run it on an otherwise idle machine: the 1- and 5-minute load averages are printed
before and after.

    python benchmarks/bench_predict.py                                  # full run (~7 min on 2 cores)
    python benchmarks/bench_predict.py --n 60 --small 20 --large 60 --seed-n 20 --skip-memory --out -
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxrviewer.core.batch.inference import Predictor  # noqa: E402
from cxrviewer.core.batch.thread_layout import default_lanes, intra_op_threads, threads_per_lane  # noqa: E402
from cxrviewer.core.io.radiograph import to_model_input
from cxrviewer.core.io.reading import load_radiograph  # noqa: E402
from cxrviewer.core.model import precision as prec  # noqa: E402
from cxrviewer.core.model.checkpoint import default_model_path, load_model, save_model  # noqa: E402
from cxrviewer.core.model.classifier import CamClassifier  # noqa: E402

SOURCE = ROOT.parent / "shared" / "data" / "chest_xray" / "train"
OUT = ROOT / "benchmarks" / "results.md"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=300, help="JPEGs for the in-process rows (default: 300)")
    p.add_argument("--small", type=int, default=60, help="images of the small `predict` run (default: 60)")
    p.add_argument("--large", type=int, default=300, help="images of the large `predict` run (default: 300)")
    p.add_argument("--seed-n", type=int, default=60, help="images for the article loop (default: 60; the "
                   "full-size-zoom variant takes a third of them)")
    p.add_argument("--data-dir", type=Path, help="folder of JPEGs to use; generated into it if it has fewer "
                   "(default: a temporary folder, deleted afterwards)")
    p.add_argument("--source", type=Path, default=SOURCE, help="images to upscale (default: ../shared/data/"
                   "chest_xray/train next to the checkout; synthetic images if missing)")
    p.add_argument("--model", type=Path, help="model file (default: the shipped model, else a random resnet18)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size (default: 16, as `predict`)")
    p.add_argument("--precisions", default="", help="comma-separated precisions to time (default: float32, the "
                   "reduced precisions this CPU runs natively, and auto)")
    p.add_argument("--mem-small", type=int, default=150, help="images in the small memory run (default: 150)")
    p.add_argument("--mem-large", type=int, default=1500, help="images in the large memory run (default: 1500)")
    p.add_argument("--skip-memory", action="store_true", help="skip the memory runs")
    p.add_argument("--out", default=str(OUT), help="markdown file to write ('-': none; default: "
                   "benchmarks/results.md)")
    p.add_argument("--cpu-features", help="replace the detected CPU features for the precision policy, here and in "
                   "the `predict` processes (comma-separated subset of bf16,vnni,avx2, or none)")
    p.add_argument("--mem-child", type=int, help=argparse.SUPPRESS)
    return p


# -- data and model -------------------------------------------------------------------------
def make_jpegs(folder: Path, n: int, source: Path, seed: int = 0) -> list[Path]:
    """Make sure ``folder`` holds at least ``n`` JPEGs of 1,200-2,000 px; return ``n`` of them, sorted."""
    folder.mkdir(parents=True, exist_ok=True)
    have = sorted(folder.glob("*.jp*g"))
    if len(have) >= n:
        return have[:n]
    rng = random.Random(seed + len(have))
    sources = sorted(source.glob("*/*.jpeg")) if source.is_dir() else []
    for i in range(len(have), n):
        w = rng.randint(1200, 2000)
        h = min(2000, max(1200, round(w * rng.uniform(0.8, 1.2))))
        if sources:
            with Image.open(rng.choice(sources)) as im:
                big = im.convert("L").resize((w, h), Image.Resampling.BICUBIC)
        else:
            yy, xx = np.mgrid[0:h, 0:w]
            arr = 128 + 60 * np.sin(xx / 97.0 + i) * np.cos(yy / 71.0) + np.random.default_rng(i).normal(0, 12, (h, w))
            big = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        big.save(folder / f"cxr_{i:05d}.jpeg", quality=90)
    return sorted(folder.glob("*.jp*g"))[:n]


def get_model(path: Path | None, tmp: Path) -> tuple[CamClassifier, Path, str]:
    """The model to time, a file holding it (for subprocesses), and a description."""
    path = path or default_model_path()
    if path is not None:
        model = load_model(path)
        return model, Path(path), f"{Path(path).name} ({model.arch}, {model.input_size[0]} px)"
    torch.manual_seed(0)
    meta = dict(format_version=1, arch="resnet18", class_names=["NORMAL", "PNEUMONIA"], input_size=[224, 224],
                input_channels=1, mean=[0.5], std=[0.25], threshold=0.5)
    model = CamClassifier("resnet18", 2, 1, meta=meta).eval()
    file = save_model(model, tmp / "random-resnet18.safetensors")
    return model, file, "random resnet18 (224 px, 1 channel; no default model installed)"


def precisions_to_time(arg: str) -> list[str]:
    if arg:
        return [prec.check_policy(p) for p in arg.split(",") if p.strip()]
    return ["float32", *prec.native_precisions(torch.device("cpu")), "auto"]


# -- the article's loop ------------------------------------------------------------------------
def time_article_loop(model: CamClassifier, paths: list[Path], full_size_zoom: bool = False) -> float:
    """The seed article's per-image pipeline, as it runs it (see the module docstring)."""
    from torchvision import transforms

    model = model.cpu().eval()
    mean, std = model.meta.get("mean", [0.5]), model.meta.get("std", [0.25])
    preprocess = transforms.Compose([transforms.Resize(model.input_size), transforms.ToTensor(),
                                     transforms.Normalize(mean, std)])
    mode = "L" if model.input_channels == 1 else "RGB"
    features_blobs: list[np.ndarray] = []  # as in the article: one entry per image, never cleared

    def hook_feature(module, inputs, output):
        features_blobs.append(output.data.cpu().numpy())

    handle = model.features.register_forward_hook(hook_feature)
    weight_softmax = np.squeeze(model.classifier.weight.data.numpy())
    try:
        t0 = time.perf_counter()
        for p in paths:
            img_pil = Image.open(p)
            if img_pil.mode != mode:
                img_pil = img_pil.convert(mode)
            img_variable = preprocess(img_pil).unsqueeze(0)
            logit = model(img_variable)  # autograd on
            h_x = torch.nn.functional.softmax(logit, dim=1).data.squeeze()
            _, idx = h_x.sort(0, True)
            feature_conv = features_blobs[-1]
            _, nc, h, w = feature_conv.shape
            cam = weight_softmax[int(idx[0])].dot(feature_conv.reshape((nc, h * w))).reshape(h, w)
            cam = cam - np.min(cam)
            cam_img = np.uint8(255 * (cam / max(float(np.max(cam)), 1e-12)))
            out_h, out_w = (img_pil.height, img_pil.width) if full_size_zoom else model.input_size
            ndimage.zoom(cam_img, (out_h / h, out_w / w))
        return time.perf_counter() - t0
    finally:
        handle.remove()


# -- the engine's parts ------------------------------------------------------------------------
def decode_for_model(path: Path, size: tuple[int, int]) -> np.ndarray:
    """What the engine's decoding threads do for one file."""
    try:
        from cxrviewer.core.batch.inference import _decode

        item = _decode(0, path, size)
        if item.error:
            raise RuntimeError(f"{path}: {item.error}")
        return item.array
    except ImportError:  # pragma: no cover - older engine
        return to_model_input(load_radiograph(path, target_size=size).pixels, size)


def time_decode(paths: list[Path], size: tuple[int, int], threads: int) -> float:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: decode_for_model(p, size), paths[:threads * 2]))  # warm-up
        t0 = time.perf_counter()
        for _ in pool.map(lambda p: decode_for_model(p, size), paths):
            pass
        return time.perf_counter() - t0


def time_forward(model: CamClassifier, inputs: torch.Tensor, batch_size: int, precision: str, threads: int) -> float:
    """Forward passes with every class's CAM on preloaded inputs, as the engine runs them."""
    clone = prec.prepare_model(model, precision, "cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(2):  # warm-up: oneDNN builds its kernels on the first calls
                clone.logits_and_cams(clone.normalize(inputs[:batch_size]))
            t0 = time.perf_counter()
            for i in range(0, len(inputs), batch_size):
                logits, cams = clone.logits_and_cams(clone.normalize(inputs[i:i + batch_size]))
                clone.decide(clone.probabilities(logits))
                cams.numpy().copy()
            return time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def time_forward_lanes(model: CamClassifier, inputs: torch.Tensor, batch_size: int, precision: str) -> tuple[str, float]:
    """Forward passes as the engine's lanes run them (:mod:`cxrviewer.core.batch.thread_layout`): concurrent threads,
    each with its share of the batches on its own few torch threads. Returns (the layout, seconds)."""
    budget = torch.get_num_threads()
    lanes = default_lanes(budget)
    per_lane = threads_per_lane(budget, lanes)
    clone = prec.prepare_model(model, precision, "cpu")
    batches = [inputs[i:i + batch_size] for i in range(0, len(inputs), batch_size)]

    def lane(part: list[torch.Tensor]) -> None:
        with torch.inference_mode():
            for x in part:
                logits, cams = clone.logits_and_cams(clone.normalize(x))
                clone.decide(clone.probabilities(logits))
                cams.numpy().copy()

    def run(parts: list[list[torch.Tensor]]) -> float:
        threads = [threading.Thread(target=lane, args=(part,)) for part in parts]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    with intra_op_threads(per_lane):
        run([batches[:2]] * lanes)  # warm-up, in threads started under this thread count
        return f"{lanes} lanes x {per_lane} torch", run([batches[k::lanes] for k in range(lanes)])


def time_predictor(model: CamClassifier, paths: list[Path], batch_size: int, precision: str) -> float | None:
    try:
        predictor = Predictor(model, device="cpu", batch_size=batch_size, precision=precision)
    except ValueError:
        return None  # this engine does not offer that precision
    list(predictor.predict(paths[:batch_size * 2]))  # warm-up
    t0 = time.perf_counter()
    n = sum(1 for r in predictor.predict(paths) if r.ok)
    elapsed = time.perf_counter() - t0
    assert n == len(paths), f"{len(paths) - n} files failed"
    return elapsed


# -- whole processes ------------------------------------------------------------------------------
def predict_precisions(precisions: list[str]) -> list[str | None]:
    """The --precision values to run `predict` with (None: the CLI's default, when it has no such option)."""
    out = subprocess.run([sys.executable, "-m", "cxrviewer", "predict", "--help"], capture_output=True, text=True,
                         env=_env(), check=False).stdout
    return [p for p in precisions] if "--precision" in out else [None]


def out_of(cmd: list[str]) -> str:
    """``cmd --help``'s text (cached: which options this version of the CLI has)."""
    key = tuple(cmd)
    if key not in _HELP:
        _HELP[key] = subprocess.run([*cmd, "--help"], capture_output=True, text=True, env=_env(), check=False).stdout
    return _HELP[key]


_HELP: dict[tuple[str, ...], str] = {}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def time_predict_process(paths: list[Path], model_file: Path, csv: Path, precision: str | None,
                         batch_size: int, env: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> float:
    cmd = [sys.executable, "-m", "cxrviewer", "predict", *map(str, paths), "--csv", str(csv), "--overwrite",
           "--model", str(model_file), "--device", "cpu", "--batch-size", str(batch_size), *extra]
    if "--no-cache" in out_of(cmd[:4]):  # every timed run classifies: the results cache would answer a rerun at once
        cmd.append("--no-cache")
    if precision is not None:
        cmd += ["--precision", precision]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**_env(), **(env or {})}, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"`cxrviewer predict` failed:\n{proc.stderr}")
    return elapsed


def predict_marginal(paths: list[Path], small: int, model_file: Path, tmp: Path, precision: str | None,
                     batch_size: int, env: dict[str, str] | None = None,
                     extra: tuple[str, ...] = ()) -> tuple[float, float, float]:
    """(best seconds on ``small`` images, best seconds on all, marginal images/s); best of two alternated runs."""
    times: dict[int, list[float]] = {small: [], len(paths): []}
    for _ in range(2):
        for n in times:
            times[n].append(time_predict_process(paths[:n], model_file, tmp / "bench.csv", precision, batch_size, env,
                                                 extra))
    t_small, t_large = min(times[small]), min(times[len(paths)])
    if t_large <= t_small:  # only on a busy machine: the difference drowned in noise
        return t_small, t_large, float("nan")
    return t_small, t_large, (len(paths) - small) / (t_large - t_small)


PREDICT_VARIANTS = (
    ("stability", "default options plus --stability (the stability badge: two more forward passes per image)",
     {}, ("--stability",)),
    ("spinning", "default options, OMP_WAIT_POLICY=ACTIVE (OpenMP threads spin; cxrviewer sets PASSIVE)",
     {"OMP_WAIT_POLICY": "ACTIVE"}, ()),
)
"""Whole-process variants at the default precision: (key, what it measures, environment, extra options)."""


def predict_rows(large: list[Path], args: argparse.Namespace, model_file: Path, tmp: Path, precisions: list[str],
                 rows: list) -> dict[str, float]:
    """Marginal rates of whole `predict` processes: per precision without the stability check (the default),
    then :data:`PREDICT_VARIANTS`. Appends the rows; returns {key: images/s} (key: the precision, or the variant's)."""
    runs = [(p or "default", f"--precision {p or 'default'} (default options: no stability check)", p, {}, ())
            for p in predict_precisions(precisions)]
    runs += [(key, what, None, env, extra) for key, what, env, extra in PREDICT_VARIANTS]
    marginal: dict[str, float] = {}
    for key, what, precision, env, extra in runs:
        t_small, t_large, rate = predict_marginal(large, args.small, model_file, tmp, precision, args.batch_size,
                                                  env, extra)
        marginal[key] = rate
        rows.append((f"`cxrviewer predict` {what}: marginal rate ({len(large)} - {args.small} images) / "
                     f"({t_large:.1f} s - {t_small:.1f} s)", "default", len(large) - args.small, t_large - t_small))
        print(f"  predict {what}: {rate:.1f} images/s marginal", file=sys.stderr)
    return marginal


# -- memory ----------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


def mem_child(args: argparse.Namespace) -> None:
    """Subprocess body: Predictor (default precision) over ``--mem-child`` images (cycling the folder), holding every result."""
    paths = sorted(args.data_dir.glob("*.jp*g"))
    paths = [paths[i % len(paths)] for i in range(args.mem_child)]
    model = load_model(args.model)
    t0 = time.perf_counter()
    results = list(Predictor(model, device="cpu", batch_size=args.batch_size).predict(paths))
    print(json.dumps({"n": len(results), "ok": sum(r.ok for r in results), "seconds": time.perf_counter() - t0,
                      "peak_mb": peak_rss_mb()}))


def run_mem_child(n: int, data_dir: Path, model_file: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--mem-child", str(n), "--data-dir", str(data_dir), "--model", str(model_file),
           "--batch-size", str(args.batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"memory run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- report ----------------------------------------------------------------------------------------
def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} / {five:.2f}"


def cpu_line() -> str:
    """The CPU, its features and its native reduced precisions (:func:`precision.cpu_description`)."""
    return prec.cpu_description()


def check(text: str, ok: bool) -> str:
    return f"- {text}: {'PASS' if ok else 'FAIL'}"


def main(args: argparse.Namespace) -> int:
    if args.cpu_features is not None:
        os.environ[prec.CPU_ENV] = args.cpu_features  # the `predict` processes inherit it
    if args.mem_child:
        mem_child(args)
        return 0
    load_before = load_text()
    with tempfile.TemporaryDirectory(prefix="cxr-bench-") as tmp:
        tmp = Path(tmp)
        data_dir = args.data_dir or tmp / "jpegs"
        n_files = max(args.n, args.large)
        paths = make_jpegs(data_dir, n_files, args.source)
        model, model_file, model_desc = get_model(args.model, tmp)
        size = model.input_size
        precisions = precisions_to_time(args.precisions)
        auto = prec.choose_precision("auto", "cpu", model)
        print(f"{len(paths)} JPEGs in {data_dir}; model {model_desc}; auto -> {auto.name} ({auto.reason}); "
              f"load {load_before}", file=sys.stderr)
        bench = paths[:args.n]
        rows: list[tuple[str, str, int, float]] = []  # (measurement, threads, images, seconds)

        def add(name: str, threads: str, n: int, seconds: float) -> float:
            rows.append((name, threads, n, seconds))
            print(f"  {name} [{threads}]: {n / seconds:.1f} images/s", file=sys.stderr)
            return n / seconds

        seed_paths = bench[:max(1, args.seed_n)]
        article = add("Article loop (full open, Resize, autograd forward, CAM zoom x32 to 224)",
                      str(torch.get_num_threads()), len(seed_paths), time_article_loop(model, seed_paths))
        few = seed_paths[:max(1, len(seed_paths) // 3)]
        add("Article loop variant: CAM zoomed to the full image size (times scipy)", str(torch.get_num_threads()),
            len(few), time_article_loop(model, few, full_size_zoom=True))
        decode = {t: add("Decode only (engine decoder)", f"{t} decode", len(bench), time_decode(bench, size, t))
                  for t in (1, 2)}
        inputs = torch.from_numpy(np.stack([decode_for_model(p, size) for p in bench]))[:, None]
        forward: dict[str, float] = {}
        for p in [p for p in precisions if p != "auto"]:
            for t in (1, 2):
                rate = add(f"Forward only, {p} (logits + every CAM)", f"{t} torch", len(inputs),
                           time_forward(model, inputs, args.batch_size, p, t))
                forward[p] = max(forward.get(p, 0.0), rate)
            layout, seconds = time_forward_lanes(model, inputs, args.batch_size, p)
            rate = add(f"Forward only, {p} (logits + every CAM), concurrent lanes as the engine runs them", layout,
                       len(inputs), seconds)
            forward[p] = max(forward[p], rate)
        engine: dict[str, float] = {}
        for p in precisions:
            seconds = time_predictor(model, bench, args.batch_size, p)
            if seconds is not None:
                engine[p] = add(f"`Predictor` end to end, {p}, no stability check (in process: torch's default "
                                f"OpenMP wait policy)",
                                "default", len(bench), seconds)
        marginal = predict_rows(paths[:args.large], args, model_file, tmp, precisions, rows)
        mem = {}
        if not args.skip_memory:
            make_jpegs(data_dir, min(args.mem_large, 300), args.source)
            mem = {n: run_mem_child(n, data_dir, model_file, args) for n in (args.mem_small, args.mem_large)}
        load_after = load_text()

    lines = [f"Command: `python benchmarks/bench_predict.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}` "
             f"({datetime.date.today().isoformat()})", "", f"CPU: {cpu_line()}", "",
             f"Model {model_desc}; {len(bench)} JPEGs of 1,200-2,000 px; batch {args.batch_size}; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
             f"({torch.get_num_threads()} threads); `auto` = {auto.name} ({auto.reason}); "
             f"load average (1 / 5 min) {load_before} before, {load_after} after.", "",
             "| Measurement | Threads | Images | Seconds | Images/s |", "|---|---|---:|---:|---:|"]
    lines += [f"| {name} | {threads} | {n} | {s:.1f} | {f'{n / s:.1f}' if s > 0 else 'n/a (noise: busy machine)'} |"
              for name, threads, n, s in rows]
    if mem:
        lines += ["", "| Peak memory (fresh process, every result held) | Images | Peak RSS MB | Seconds |",
                  "|---|---:|---:|---:|"]
        lines += [f"| `Predictor`, default precision | {m['n']} | {m['peak_mb']:.0f} | {m['seconds']:.1f} |"
                  for m in mem.values()]
    lines += ["", "Per precision (images/s; `predict`: marginal rate of whole processes):", "",
              "| Precision | Forward only | `Predictor` | `predict` | `predict` / article loop | "
              "`predict` / min(decode, forward) |", "|---|---:|---:|---:|---:|---:|"]
    for p in precisions:
        ran = auto.name if p == "auto" else p
        fw, rate = forward.get(ran), marginal.get(p, float("nan"))
        limit = min(max(decode.values()), fw) if fw else None
        lines.append(f"| {p}{f' (= {auto.name})' if p == 'auto' else ''} | {f'{fw:.1f}' if fw else 'n/a'} | "
                     f"{engine.get(p, float('nan')):.1f} | {rate:.1f} | {rate / article:.2f}x | "
                     f"{f'{rate / limit:.2f}' if limit else 'n/a'} |")
    lines.append(f"| article loop (float32) | | | {article:.1f} | 1.00x | |")
    lines.append(f"| decode only (best of 1 and 2 threads) | | | {max(decode.values()):.1f} | | |")
    lines += ["", "Targets (issue 9; issue 31 on a CPU without native bf16):"]
    default = marginal.get("auto", marginal.get("default", 0.0))
    lines.append(check(f"`predict` marginal rate {default:.1f} images/s = {default / article:.2f}x the article loop "
                       f"({article:.1f}; target >= 3x)", default >= 3 * article))
    if not prec.cpu_has_native_bf16():
        lines.append(check(f"no native bf16 here: `predict` ({auto.name}) {default / article:.2f}x the article loop "
                           "(issue 31 target >= 5x)", default >= 5 * article))
    if auto.name in forward:
        limit = min(max(decode.values()), forward[auto.name])
        in_process = engine.get("auto", engine.get(auto.name, 0.0))
        lines.append(check(f"end to end ({auto.name}) `predict` {default:.1f}, `Predictor` "
                           f"{in_process:.1f} images/s vs 0.8 x min(decode {max(decode.values()):.1f}, "
                           f"forward {forward[auto.name]:.1f}) = {0.8 * limit:.1f}", default >= 0.8 * limit))
        shared = 1 / (1 / max(decode.values()) + 1 / forward[auto.name])
        lines.append(f"- decode and forward share the same cores here: together they allow at most {shared:.1f} "
                     f"images/s (1 / (1/decode + 1/forward)); `predict` reaches {100 * default / shared:.0f}% of that")
    if "stability" in marginal:
        lines.append(f"- `predict --stability` (the stability badge): {marginal['stability']:.1f} images/s, "
                     f"{marginal['stability'] / article:.2f}x the article loop")
    if mem:
        delta = mem[args.mem_large]["peak_mb"] - mem[args.mem_small]["peak_mb"]
        lines.append(check(f"peak memory {args.mem_large} vs {args.mem_small} images: {delta:+.0f} MB "
                           "(target <= 100 MB)", delta <= 100))
    record = (model.meta.get(prec.PARITY_KEY) or {}).get(auto.name)
    for name in prec.native_precisions(torch.device("cpu")):  # every precision auto may pick on this CPU
        r = (model.meta.get(prec.PARITY_KEY) or {}).get(name)
        if r and prec.parity_ok(name, r) is None:
            lines.append(f"- recorded parity of {name}: labels {100 * r['agreement']:.2f}% of {r['n']}, CAM correlation "
                         f"{r.get('cam_correlation', float('nan')):.4f}, scope decisions "
                         f"{100 * r.get('scope_agreement', float('nan')):.2f}% (bar: {100 * prec.MIN_AGREEMENT:.1f}%)")
    if auto.name != "float32":
        lines.append(check(f"labels under auto ({auto.name}) agree with float32 on {100 * record['agreement']:.2f}% "
                           f"of {record['n']} {record.get('split', 'validation')} images, largest probability "
                           f"difference {record['max_prob_diff']:.4f} (target >= 99.5%)",
                           record["agreement"] >= prec.MIN_AGREEMENT))
    else:
        lines.append(f"- `auto` runs float32 here ({auto.reason}): labels identical by construction")
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        Path(args.out).write_text("# Batch-classification benchmark\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
