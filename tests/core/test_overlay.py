"""Overlay rendering: upsampling, evidence maps, the two scales, blending, the export figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from cxrviewer.core.io.radiograph import Radiograph
from cxrviewer.core.results.overlay import (
    DEFAULT_CAM_RANGE, cam_for_display, cam_range_from_meta, class_evidence, colormap_lut, compose, overlay_image, render_export, upsample_cam, window_pixels,
)
from cxrviewer.core.results.file_result import FileResult

RNG = np.random.default_rng(0)
PATTERN = RNG.normal(0, 1, (7, 7)).astype(np.float32)


def _result(shift: float, size=(90, 60), bias=(0.2, -0.2)) -> FileResult:
    """Two-class result whose PNEUMONIA evidence is the same pattern moved by ``shift`` logits."""
    cams = np.stack([-(PATTERN + shift) / 2, (PATTERN + shift) / 2]).astype(np.float32)
    logits = cams.mean(axis=(1, 2)) + np.array(bias, np.float32)
    e = np.exp(logits - logits.max())
    p = e / e.sum()
    return FileResult(path=Path("x.png"), probs={"NORMAL": float(p[0]), "PNEUMONIA": float(p[1])},
                      label="PNEUMONIA" if p[1] >= 0.5 else "NORMAL", logits=logits.tolist(), cams=cams,
                      image_size=size)


def test_upsample_matches_ndimage_zoom_and_is_float32():
    for size in [(224, 224), (301, 157), (7, 7), (3, 5)]:
        up = upsample_cam(PATTERN, size)
        ref = ndimage.zoom(PATTERN, (size[0] / 7, size[1] / 7), order=3, mode="nearest", grid_mode=True)
        assert up.shape == size and up.dtype == np.float32
        np.testing.assert_allclose(up, ref, atol=1e-4)
    np.testing.assert_allclose(upsample_cam(PATTERN.astype(np.float16), (7, 7)), PATTERN, atol=1e-2)


@pytest.mark.parametrize("cam, size", [(np.zeros(5), (4, 4)), (np.zeros((0, 3)), (4, 4)), (np.zeros((3, 3)), (0, 4)),
                                       (np.zeros((3, 3)), "big"), (np.array([["a"]]), (2, 2))])
def test_upsample_checks_inputs(cam, size):
    with pytest.raises(ValueError):
        upsample_cam(cam, size)


def test_evidence_mean_is_the_logit_margin():
    r = _result(1.5)
    for k in range(2):
        ev = class_evidence(r.cams, r.logits, k)
        assert ev.mean() == pytest.approx(r.logits[k] - r.logits[1 - k], abs=1e-5)
    cams = RNG.normal(0, 1, (3, 4, 4)).astype(np.float32)
    logits = cams.mean(axis=(1, 2)) + [0.1, 0.2, 0.3]
    assert class_evidence(cams, logits, 2).mean() == pytest.approx(logits[2] - (logits[0] + logits[1]) / 2, abs=1e-5)
    with pytest.raises(ValueError):
        class_evidence(cams, logits, 3)
    with pytest.raises(ValueError):
        class_evidence(cams, logits[:2], 0)


def test_image_scale_stretches_each_map_fixed_scale_is_shared():
    low, high = _result(-6.0), _result(+6.0)
    cam_lo, vmin, vmax = cam_for_display(low, "PNEUMONIA", scale="image")
    assert cam_lo.shape == (60, 90) and (vmin, vmax) == (cam_lo.min(), cam_lo.max())
    assert cam_for_display(high, "PNEUMONIA", scale="fixed")[1:] == DEFAULT_CAM_RANGE
    assert cam_for_display(high, "PNEUMONIA", (10, 20), "fixed", (-3, 5))[1:] == (-3.0, 5.0)
    assert cam_for_display(high, "PNEUMONIA", (10, 20))[0].shape == (10, 20)

    grey = np.full((60, 90), 0.5, np.float32)

    def redness(result, scale):
        cam, a, b = cam_for_display(result, "PNEUMONIA", scale=scale)
        rgb = compose(grey, cam, a, b, alpha=0.6).astype(float)
        return (rgb[..., 0] - rgb[..., 2]).mean()

    # per-image: both glow the same (the seed article's look)
    assert redness(low, "image") == pytest.approx(redness(high, "image"), abs=1.0)
    # fixed: the confident NORMAL image stays cold on the PNEUMONIA map, the PNEUMONIA one glows
    assert redness(low, "fixed") < -40 < 40 < redness(high, "fixed")


def test_cam_for_display_defaults_and_checks():
    r = _result(2.0)
    cam, _, _ = cam_for_display(r)  # predicted class, image size
    np.testing.assert_allclose(cam, cam_for_display(r, r.label)[0])
    with pytest.raises(ValueError, match="unknown class"):
        cam_for_display(r, "COVID")
    with pytest.raises(ValueError, match="scale"):
        cam_for_display(r, scale="log")
    with pytest.raises(ValueError, match="cam_range"):
        cam_for_display(r, scale="fixed", cam_range=(3, 3))
    with pytest.raises(ValueError, match="failed"):
        cam_for_display(FileResult(path=Path("bad.jpg"), error="corrupt"))
    flat = _result(0.0)
    flat.cams = np.zeros_like(flat.cams)
    _, a, b = cam_for_display(flat)
    assert b > a


def test_cam_range_from_meta():
    assert cam_range_from_meta({"cam_range": [-4, 6]}) == (-4.0, 6.0)
    for bad in ({}, None, {"cam_range": [3, 1]}, {"cam_range": "x"}, {"cam_range": [0, float("inf")]}):
        assert cam_range_from_meta(bad) == DEFAULT_CAM_RANGE


def test_opacity_zero_gives_the_grey_image_and_opacity_one_the_colours():
    pixels = RNG.random((20, 30)).astype(np.float32)
    cam = RNG.random((20, 30)).astype(np.float32)
    grey = np.round(pixels * 255).astype(np.uint8)
    out = compose(pixels, cam, 0, 1, alpha=0.0)
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))
    np.testing.assert_array_equal(compose(pixels, None, 0, 1), out)
    full = compose(pixels, cam, 0, 1, alpha=1.0)
    np.testing.assert_array_equal(full, colormap_lut("jet")[np.round(cam * 255).astype(int)])
    half = compose(pixels, cam, 0, 1, alpha=0.5).astype(int)
    assert np.abs(half - (out.astype(int) + full) / 2).max() <= 1
    assert not np.array_equal(compose(pixels, cam, 0, 1, cmap="viridis"), compose(pixels, cam, 0, 1))


def test_window_and_invert():
    pixels = np.array([[0.0, 0.25, 0.5, 0.75, 1.0]], np.float32)
    np.testing.assert_allclose(window_pixels(pixels, (0.25, 0.75)), [[0, 0, 0.5, 1, 1]])
    np.testing.assert_allclose(window_pixels(pixels, invert=True), 1 - pixels)
    out = compose(pixels, None, 0, 1, window=(0.25, 0.75), invert=True)
    assert out[0, :, 0].tolist() == [255, 255, 128, 0, 0]
    as_bytes = np.array([[0, 64, 128, 191, 255]], np.uint8)
    np.testing.assert_array_equal(compose(as_bytes, None, 0, 1), compose(as_bytes / np.float32(255), None, 0, 1))


@pytest.mark.parametrize("kwargs, match", [
    (dict(pixels=np.zeros((4, 4, 3))), "2-D"),
    (dict(pixels=np.zeros((4, 4), np.int32)), "float"),
    (dict(cam=np.zeros((5, 4))), "upsample"),
    (dict(alpha=1.5), "alpha"),
    (dict(vmin=1, vmax=1), "vmin < vmax"),
    (dict(cmap="no-such-map"), "colormap"),
    (dict(window=(0.5, 0.2)), "window"),
])
def test_compose_checks_inputs(kwargs, match):
    args = dict(pixels=np.zeros((4, 4), np.float32), cam=np.zeros((4, 4), np.float32), vmin=0, vmax=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        compose(**args)


@pytest.mark.parametrize("size", [(60, 90), (300, 200), (24, 24)])
def test_export_figure_is_the_image_size_with_bar_and_caption(size):
    h, w = size
    rad = Radiograph(Path("x.png"), RNG.random((h, w)).astype(np.float32), {"format": "PNG"})
    r = _result(3.0, size=(w, h))
    plain = overlay_image(rad, r, scale="fixed")
    assert plain.shape == (h, w, 3) and plain.dtype == np.uint8
    img = render_export(rad, r, model_name="a model with a rather long name " * 3, scale="fixed")
    assert img.size == (w, h) and img.mode == "RGB"
    arr = np.asarray(img)
    assert not np.array_equal(arr, plain)  # bar and caption drawn
    if min(size) >= 200:  # away from bar and caption the figure is the composite itself (a caption of legible
        # size covers much of a tiny image)
        np.testing.assert_array_equal(arr[h // 2 - 2:h // 2 + 2, w // 3], plain[h // 2 - 2:h // 2 + 2, w // 3])
    with pytest.raises(ValueError):
        render_export(rad, FileResult(path=Path("bad.png"), error="corrupt"))
