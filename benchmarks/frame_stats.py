"""How much frame normalisation crops: the training images, pydicom-data's radiographs and synthetic frames.

    nice -n 10 python benchmarks/frame_stats.py [--data ../shared/data/chest_xray] [--size 224] [--limit N]

For every image under ``DATA/train`` (or ``DATA`` itself when it has no ``train`` folder): the frame that
:func:`cxrviewer.core.io.frame.frame_box` finds on the image as ``predict`` decodes it (``load_radiograph`` with the
model's size as the target, reduced decoding included), and the one :func:`~cxrviewer.core.io.frame.frame_boxes` finds
on the ``size x size`` input the trainer crops; per edge how many images lose something and the median and largest
share of the side they lose. Then pydicom-data's radiographs (``RG*.dcm``, at full resolution) and a grid of synthetic
frames (2-15% a side; black, white, grey; the image shrunk into the frame or the frame painted over it) on a shipped
sample, with the largest error of the box found. Prints markdown; takes about a minute for 5,216 images.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cxrviewer.core.errors import RadiographError  # noqa: E402
from cxrviewer.core.io.frame import MARGIN, MAX_CROP, box_fraction, frame_box, frame_boxes  # noqa: E402
from cxrviewer.core.io.radiograph import IMAGE_SUFFIXES, to_model_input  # noqa: E402
from cxrviewer.core.io.reading import load_radiograph  # noqa: E402

EDGES = ("top", "bottom", "left", "right")
SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "IM-0115-0001.jpeg"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    p.add_argument("--data", type=Path, default=Path("../shared/data/chest_xray"),
                   help="data folder; its train/ folder is read (default: ../shared/data/chest_xray)")
    p.add_argument("--size", type=int, default=224, help="model input side (default: 224)")
    p.add_argument("--limit", type=int, default=0, help="read at most this many images, evenly spaced (default: all)")
    p.add_argument("--no-synthetic", action="store_true", help="skip the synthetic frames")
    return p


def flat_strips(pixels: np.ndarray, box: tuple[int, int, int, int]) -> list[np.ndarray]:
    """The strips cropped off each edge, without the margin next to the image (which holds its soft edge)."""
    H, W = pixels.shape
    t, b, lf, r = box
    mh, mw = max(1, int(np.ceil(MARGIN * H))), max(1, int(np.ceil(MARGIN * W)))
    strips = [pixels[:t - mh] if t > mh else None, pixels[b + mh:] if H - b > mh else None,
              pixels[:, :lf - mw] if lf > mw else None, pixels[:, r + mw:] if W - r > mw else None]
    return [s for s in strips if s is not None and s.size]


def edge_table(fractions: np.ndarray, n: int) -> list[str]:
    """Markdown rows: per edge, images cropped there, median and largest share of the side among them."""
    rows = ["| edge | images cropped | median share | largest share |", "|---|---:|---:|---:|"]
    for i, edge in enumerate(EDGES):
        cut = fractions[:, i][fractions[:, i] > 0] if len(fractions) else np.zeros(0)
        rows.append(f"| {edge} | {len(cut)} ({len(cut) / max(n, 1):.2%}) | "
                    + (f"{np.median(cut):.3f} | {cut.max():.3f} |" if len(cut) else "- | - |"))
    return rows


def summary(fractions: np.ndarray, n: int, what: str) -> list[str]:
    any_cut = (fractions > 0).any(axis=1) if len(fractions) else np.zeros(0, bool)
    widest = fractions.max(axis=1) if len(fractions) else np.zeros(0)
    return [f"**{what}**: {int(any_cut.sum())} of {n} images cropped ({any_cut.mean() if n else 0:.2%}); "
            f"more than 5% off some edge: {int((widest > 0.05).sum())}, more than 10%: {int((widest > 0.10).sum())}, "
            f"largest {widest.max() if n else 0:.3f} (limit {MAX_CROP})", ""] + edge_table(fractions, n) + [""]


def training_images(data: Path, size: int, limit: int) -> list[str]:
    root = data / "train" if (data / "train").is_dir() else data
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit and len(paths) > limit:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, limit)]
    decoded, model_size, failed, biggest, sizes, spread = [], [], 0, [], {}, []
    start = time.perf_counter()
    for p in paths:
        try:
            pixels = load_radiograph(p, target_size=(size, size)).pixels
        except RadiographError:
            failed += 1
            continue
        box = frame_box(pixels)
        decoded.append(box_fraction(box, pixels.shape))
        sizes[pixels.shape] = sizes.get(pixels.shape, 0) + 1
        strips = flat_strips(pixels, box)
        if strips:  # how far the cropped pixels spread from their strip's level: large would mean anatomy
            worst = max(float(np.percentile(np.abs(s - np.median(s)), 99)) for s in strips)
            spread.append((worst, p))
        x = torch.from_numpy(to_model_input(pixels, (size, size)))[None, None]
        model_size.append(box_fraction(tuple(frame_boxes(x)[0].tolist()), (size, size)))
        biggest.append((max(decoded[-1]), p))
    n = len(decoded)
    dec, mod = np.array(decoded).reshape(-1, 4), np.array(model_size).reshape(-1, 4)
    common = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    out = [f"## Training images ({root}, {n} read, {failed} failed, {time.perf_counter() - start:.0f} s)", "",
           "Decoded sizes (H x W, most common): " + ", ".join(f"{h} x {w}: {k}" for (h, w), k in common)
           + f" ({len(sizes)} distinct)", ""]
    out += summary(dec, n, f"as predict decodes them (target {size} px, crop at the decoded resolution)")
    out += summary(mod, n, f"as the trainer crops them ({size} x {size} model input)")
    agree = int(((dec > 0) == (mod > 0)).all(axis=1).sum()) if n else 0
    out += [f"Both agree on which edges are cropped for {agree} of {n} images.", ""]
    if spread:
        worst, where = max(spread)
        out += [f"What was cropped is flat: in each cropped strip (without the margin), 99% of the pixels lie within "
                f"{255 * float(np.median([v for v, _ in spread])):.1f} grey levels (of 255) of the strip's median for "
                f"the median image, {255 * worst:.1f} for the worst (`{where.parent.name}/{where.name}`).", ""]
    top = sorted(biggest, key=lambda t: -t[0])[:5]
    if top and top[0][0] > 0:
        out += ["Largest crops (decoded): " + ", ".join(f"`{p.parent.name}/{p.name}` {f:.3f}" for f, p in top if f > 0), ""]
    return out


def pydicom_radiographs() -> list[str]:
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        return ["## pydicom-data", "", "pydicom is not installed.", ""]
    out = ["## pydicom-data radiographs (full resolution)", "", "| file | what | size | top | bottom | left | right |",
           "|---|---|---|---:|---:|---:|---:|"]
    for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG2_UNCR.dcm", "RG2_J2KR.dcm", "RG3_UNCR.dcm", "RG3_J2KR.dcm"):
        path = get_testdata_file(name, download=False)
        if path is None:
            continue
        rad = load_radiograph(path)
        what = " ".join(str(rad.meta.get(k, "")) for k in ("Modality", "BodyPartExamined")).strip()
        f = box_fraction(frame_box(rad.pixels), rad.pixels.shape)
        out.append(f"| {name} | {what} | {rad.pixels.shape[1]} x {rad.pixels.shape[0]} | "
                   + " | ".join(f"{v:.3f}" for v in f) + " |")
    return out + [""]


def synthetic() -> list[str]:
    """The largest error (pixels beyond the frame, or frame left) of the box found, per shade and way of framing."""
    base = np.asarray(Image.open(SAMPLE).convert("L").resize((300, 360), Image.Resampling.BILINEAR), np.float32) / 255
    H, W = base.shape
    out = ["## Synthetic frames (a 300 x 360 training sample; 2, 4, 7, 10, 15% a side)", "",
           "| frame | way | frame left (px, worst) | cropped beyond the frame (px, worst) |", "|---|---|---:|---:|"]
    for shade, value in (("black", 0.0), ("white", 1.0), ("grey", 0.5)):
        for how in ("border", "mask"):
            left_in, beyond = 0, 0
            for frac in (0.02, 0.04, 0.07, 0.10, 0.15):
                fy, fx = round(frac * H), round(frac * W)
                img = np.full((H, W), value, np.float32)
                if how == "border":
                    img[fy:H - fy, fx:W - fx] = np.asarray(Image.fromarray(base, "F").resize((W - 2 * fx, H - 2 * fy)))
                else:
                    img[fy:H - fy, fx:W - fx] = base[fy:H - fy, fx:W - fx]
                t, b, lf, r = frame_box(img)
                extra = np.array([t - fy, (H - fy) - b, lf - fx, (W - fx) - r])
                left_in = max(left_in, int((-extra).clip(0).max()))
                beyond = max(beyond, int(extra.clip(0).max()))
            out.append(f"| {shade} | {how} | {left_in} | {beyond} |")
    return out + ["", "(beyond the frame includes the deliberate margin of "
                      "max(1 px, 0.4% of the side) that removes a resize's soft edge)", ""]


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)  # small per-image tensors: one thread is fastest, and far faster on a busy machine
    lines = [f"# Frame normalisation figures ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             "Command: `nice -n 10 python benchmarks/frame_stats.py " + " ".join(sys.argv[1:]) + "`", ""]
    if args.data.is_dir():
        lines += training_images(args.data, args.size, args.limit)
    else:
        lines += ["## Training images", "", f"{args.data}: no such folder; skipped.", ""]
    lines += pydicom_radiographs()
    if not args.no_synthetic:
        lines += synthetic()
    print("\n".join(lines))


if __name__ == "__main__":
    main(get_args_parser().parse_args())
