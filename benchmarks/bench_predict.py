"""Benchmark of the batch engine (what ``cxrviewer predict`` does, minus the CSV).

Measures, on a folder of 1,200-2,000 px JPEGs (generated from the training
images, upscaled with a slightly random size, unless ``--data-dir`` holds some):

1. ``Predictor`` end to end: decode (draft mode) + batched forward + CAMs, images/s;
2. the model's pure forward pass (``logits_and_cams``) on preloaded tensors, images/s;
3. a per-image loop in the style of the seed article: full decode, resize, one
   forward with autograd on and a forward hook appending features to a list,
   ``np.dot`` CAM, ``scipy.ndimage.zoom`` to the image size; images/s;
4. peak resident memory (``ru_maxrss`` of a fresh subprocess) of ``Predictor``
   over 150 and 1,500 images (the large run cycles through the generated files
   unless ``--distinct``), holding every result as the viewer does.

Prints a markdown table and checks the targets: (1) >= 2x (3); total time of
(1) within 1.3x of (2); peak memory at 1,500 within 300 MB of that at 150.

    python benchmarks/bench_predict.py                    # N=200, default model if installed
    python benchmarks/bench_predict.py --n 40 --seed-n 5 --skip-large   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxrviewer.core.checkpoint import default_model_path, load_model, save_model  # noqa: E402
from cxrviewer.core.imaging import load_radiograph, to_model_input  # noqa: E402
from cxrviewer.core.inference import Predictor  # noqa: E402
from cxrviewer.core.model import CamClassifier  # noqa: E402

SOURCE = Path("/work/shared/data/chest_xray/train")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="JPEGs to generate / use (default: 200)")
    p.add_argument("--data-dir", type=Path, help="folder of JPEGs to use; generated into it if it has fewer than --n "
                   "(default: a temporary folder, deleted afterwards)")
    p.add_argument("--source", type=Path, default=SOURCE, help=f"images to upscale (default: {SOURCE}; "
                   "synthetic images if missing)")
    p.add_argument("--model", type=Path, help="model file (default: the installed default model, "
                   "else a random resnet18 at 224 x 224 with 1 input channel)")
    p.add_argument("--batch-size", type=int, default=16, help="Predictor and pure-forward batch size (default: 16)")
    p.add_argument("--device", default="cpu", help="device (default: cpu)")
    p.add_argument("--seed-n", type=int, default=30, help="images for the slow seed-style loop (default: 30)")
    p.add_argument("--mem-small", type=int, default=150, help="images in the small memory run (default: 150)")
    p.add_argument("--mem-large", type=int, default=1500, help="images in the large memory run (default: 1500)")
    p.add_argument("--skip-large", action="store_true", help="skip the large memory run")
    p.add_argument("--skip-memory", action="store_true", help="skip both memory runs")
    p.add_argument("--distinct", action="store_true", help="generate --mem-large distinct files for the memory runs "
                   "instead of cycling through --n files")
    p.add_argument("--bf16", action="store_true", help="also time Predictor with bfloat16 autocast")
    p.add_argument("--out", type=Path, help="also write the markdown table to this file")
    p.add_argument("--mem-child", type=int, help=argparse.SUPPRESS)
    return p


# -- data ----------------------------------------------------------------------------------
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


# -- measurements -------------------------------------------------------------------------
def time_predictor(model: CamClassifier, paths: list[Path], batch_size: int, device: str, precision: str = "float32") -> float:
    predictor = Predictor(model, device=device, batch_size=batch_size, precision=precision)
    list(predictor.predict(paths[:batch_size]))  # warm-up
    t0 = time.perf_counter()
    n = sum(1 for r in predictor.predict(paths) if r.ok)
    elapsed = time.perf_counter() - t0
    assert n == len(paths), f"{len(paths) - n} files failed"
    return elapsed


def time_forward(model: CamClassifier, paths: list[Path], batch_size: int, device: str) -> float:
    size = model.input_size
    x = torch.from_numpy(np.stack([to_model_input(load_radiograph(p, target_size=size).pixels, size) for p in paths]))[:, None]
    model = model.to(device).eval()
    x = x.to(device)
    with torch.inference_mode():
        model.logits_and_cams(model.normalize(x[:batch_size]))  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(x), batch_size):
            logits, cams = model.logits_and_cams(model.normalize(x[i:i + batch_size]))
            model.probabilities(logits)
            cams.cpu()
        return time.perf_counter() - t0


def time_seed_loop(model: CamClassifier, paths: list[Path]) -> float:
    """The seed article's way: per image, full decode, resize, autograd forward with a hook, np.dot CAM, zoom."""
    model = model.cpu().eval()
    h, w = model.input_size
    mean = float(model.meta.get("mean", [0.5])[0])
    std = float(model.meta.get("std", [0.25])[0])
    features_blobs: list[np.ndarray] = []  # as in the article: grows with every image

    def hook_feature(module, inputs, output):
        features_blobs.append(output.data.cpu().numpy())

    handle = model.features.register_forward_hook(hook_feature)
    weight = model.classifier.weight.detach().numpy()
    try:
        t0 = time.perf_counter()
        for p in paths:
            img = Image.open(p).convert("L")
            full_w, full_h = img.size
            x = np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
            x = (torch.from_numpy(x)[None, None] - mean) / std
            logit = model(x)  # autograd on
            probs = torch.softmax(logit, dim=1).data.squeeze()
            idx = int(probs.argmax())
            feats = features_blobs[-1][0]
            nc, fh, fw = feats.shape
            cam = np.dot(weight[idx], feats.reshape(nc, fh * fw)).reshape(fh, fw)
            cam = (cam - cam.min()) / max(float(cam.max() - cam.min()), 1e-12)
            ndimage.zoom(cam, (full_h / fh, full_w / fw))
        return time.perf_counter() - t0
    finally:
        handle.remove()


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


def mem_child(args: argparse.Namespace) -> None:
    """Subprocess body: Predictor over ``--mem-child`` images (cycling the folder), holding every result."""
    paths = sorted(args.data_dir.glob("*.jp*g"))
    paths = [paths[i % len(paths)] for i in range(args.mem_child)]
    model = load_model(args.model)
    base = peak_rss_mb()
    t0 = time.perf_counter()
    results = list(Predictor(model, device=args.device, batch_size=args.batch_size).predict(paths))
    print(json.dumps({"n": len(results), "ok": sum(r.ok for r in results), "seconds": time.perf_counter() - t0,
                      "peak_mb": peak_rss_mb(), "before_mb": base}))


def run_mem_child(n: int, data_dir: Path, model_file: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--mem-child", str(n), "--data-dir", str(data_dir), "--model", str(model_file),
           "--batch-size", str(args.batch_size), "--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"memory run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- main -----------------------------------------------------------------------------------
def main(args: argparse.Namespace) -> int:
    if args.mem_child:
        mem_child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="cxr-bench-") as tmp:
        tmp = Path(tmp)
        data_dir = args.data_dir or tmp / "jpegs"
        t0 = time.perf_counter()
        paths = make_jpegs(data_dir, args.n, args.source)
        gen = time.perf_counter() - t0
        model, model_file, model_desc = get_model(args.model, tmp)
        sizes = [Image.open(p).size for p in paths]
        print(f"{len(paths)} JPEGs in {data_dir} ({min(min(s) for s in sizes)}-{max(max(s) for s in sizes)} px; "
              f"ready in {gen:.0f} s); model: {model_desc}; torch threads: {torch.get_num_threads()}", file=sys.stderr)

        rows = []
        t_pred = time_predictor(model, paths, args.batch_size, args.device)
        rows.append(("Predictor end to end (decode + forward + CAMs)", len(paths), t_pred))
        if args.bf16:
            t_bf = time_predictor(model, paths, args.batch_size, args.device, precision="bfloat16")
            rows.append(("Predictor, bfloat16 autocast (opt-in)", len(paths), t_bf))
        t_fwd = time_forward(model, paths, args.batch_size, args.device)
        rows.append(("Pure forward pass on preloaded tensors", len(paths), t_fwd))
        seed_paths = paths[:max(1, min(args.seed_n, len(paths)))]
        t_seed = time_seed_loop(model, seed_paths)
        rows.append(("Seed-article loop (full decode, autograd, hook, zoom)", len(seed_paths), t_seed))

        lines = [f"Model: {model_desc}; {len(paths)} JPEGs of 1,200-2,000 px; batch size {args.batch_size}; "
                 f"device {args.device}; {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs.", "",
                 "| Measurement | Images | Seconds | Images/s |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {n} | {s:.1f} | {n / s:.2f} |" for name, n, s in rows]
        ips_pred, ips_seed = len(paths) / t_pred, len(seed_paths) / t_seed
        checks = [f"Predictor vs seed loop: {ips_pred / ips_seed:.1f}x (target >= 2x) "
                  f"{'PASS' if ips_pred >= 2 * ips_seed else 'FAIL'}",
                  f"Predictor total / pure forward: {t_pred / t_fwd:.2f} (target <= 1.3) "
                  f"{'PASS' if t_pred <= 1.3 * t_fwd else 'FAIL'}"]

        if not args.skip_memory:
            sizes_n = [args.mem_small] + ([] if args.skip_large else [args.mem_large])
            if args.distinct:
                make_jpegs(data_dir, max(sizes_n), args.source)
            mem = {n: run_mem_child(n, data_dir, model_file, args) for n in sizes_n}
            lines += ["", "| Peak memory (fresh process) | Images | Peak RSS MB | Seconds |", "|---|---:|---:|---:|"]
            lines += [f"| Predictor, all results held | {m['n']} | {m['peak_mb']:.0f} | {m['seconds']:.1f} |" for m in mem.values()]
            if not args.skip_large:
                delta = mem[args.mem_large]["peak_mb"] - mem[args.mem_small]["peak_mb"]
                checks.append(f"Peak memory {args.mem_large} - {args.mem_small} images: {delta:+.0f} MB (target <= 300 MB) "
                              f"{'PASS' if delta <= 300 else 'FAIL'}")
        lines += [""] + [f"- {c}" for c in checks]
        text = "\n".join(lines)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
