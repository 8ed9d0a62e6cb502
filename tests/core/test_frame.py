"""Frame normalisation (issue 30): the frame found, what is never cropped, and maps drawn on the pixels they explain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cxrviewer.core.batch.inference import Predictor
from cxrviewer.core.errors import ModelFileError
from cxrviewer.core.explain import get_method
from cxrviewer.core.explain.on_demand import explain_image
from cxrviewer.core.io.frame import (MARGIN, MAX_CROP, box_fraction, box_in, crop_frame, frame_box, framed_input,
                                     kept_fractions)
from cxrviewer.core.io.reading import load_radiograph
from cxrviewer.core.model.checkpoint import load_model, save_model
from cxrviewer.core.results.export import save_png
from cxrviewer.core.results.overlay import (MapLayer, cam_for_display, colormap_lut, compose, overlay_image,
                                            render_export, upsample_cam)
from tests.conftest import make_tiny_model
from tests.core.explain_models import synthetic_model
from tests.core.test_imaging import data_file

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
SHADES = {"black": 0.0, "white": 1.0, "grey": 0.5}
WIDTHS = (0.02, 0.04, 0.07, 0.10, 0.15)


def radiograph(h: int, w: int) -> np.ndarray:
    """A real training radiograph (a shipped sample, 224 px) resized to ``h x w``: anatomy and dark air to its edges."""
    im = Image.open(SAMPLES / "IM-0115-0001.jpeg").convert("L").resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 255.0


def framed(pixels: np.ndarray, frac: float, value: float, how: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``pixels`` with a constant frame of ``frac`` of each side: the image shrunk into it ("border") or the frame
    painted over its edges ("mask"). Returns the image and the box inside the frame."""
    H, W = pixels.shape
    fy, fx = round(frac * H), round(frac * W)
    out = np.full((H, W), value, np.float32)
    if how == "border":
        inner = Image.fromarray(pixels, "F").resize((W - 2 * fx, H - 2 * fy), Image.Resampling.BILINEAR)
        out[fy:H - fy, fx:W - fx] = np.asarray(inner)
    else:
        out[fy:H - fy, fx:W - fx] = pixels[fy:H - fy, fx:W - fx]
    return out, (fy, H - fy, fx, W - fx)


def assert_frame_found(found, frame, shape, slack: int = 2) -> None:
    """Every frame row and column is cropped, and no more than the margin plus ``slack`` pixels beyond it."""
    H, W = shape
    extra = [found[0] - frame[0], frame[1] - found[1], found[2] - frame[2], frame[3] - found[3]]
    limits = [max(1, int(np.ceil(MARGIN * s))) + slack for s in (H, H, W, W)]
    assert all(0 <= e <= lim for e, lim in zip(extra, limits)), (found, frame, extra)


# -- the frame found --------------------------------------------------------------------
@pytest.mark.parametrize("how", ["border", "mask"])
@pytest.mark.parametrize("shade", SHADES)
@pytest.mark.parametrize("frac", WIDTHS)
def test_a_synthetic_frame_is_found_to_within_a_pixel_or_two(frac, shade, how):
    image, frame = framed(radiograph(360, 300), frac, SHADES[shade], how)
    found = frame_box(image)
    assert_frame_found(found, frame, image.shape)
    kept, box = crop_frame(image)
    assert box == found and kept.shape == (found[1] - found[0], found[3] - found[2])
    assert not np.any(np.all(np.abs(kept - SHADES[shade]) < 1e-6, axis=1))  # no frame row is left


@pytest.mark.parametrize("shade", SHADES)
def test_a_frame_of_a_large_image_is_found_on_a_reduced_copy(shade):
    image, frame = framed(radiograph(2000, 1700), 0.07, SHADES[shade], "mask")
    step = 2  # frame_box measures images over 1024 px on every second pixel
    assert_frame_found(frame_box(image), frame, image.shape, slack=2 * step + 2)


def test_only_some_edges_framed_crops_only_those():
    image = radiograph(400, 500)
    image[:, :100] = 0.0   # 20% left
    image[:20] = 0.0       # 5% top
    t, b, left, r = frame_box(image)
    assert (b, r) == (400, 500)
    assert_frame_found((t, b, left, r), (20, 400, 100, 500), image.shape)


# -- what it never crops -------------------------------------------------------------
@pytest.mark.parametrize("name", ["IM-0115-0001.jpeg", "IM-0117-0001.jpeg", "person1000_bacteria_2931.jpeg",
                                  "person1000_virus_1681.jpeg", "IM-0115-0001__mono1_12bit_rle.dcm"])
def test_clean_training_images_are_not_cropped(name):
    pixels = load_radiograph(SAMPLES / name).pixels
    assert frame_box(pixels) == (0, pixels.shape[0], 0, pixels.shape[1])


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG1_J2KR.dcm"])
def test_real_chest_radiographs_are_not_cropped(name):
    """pydicom-data's chest (1955 x 1841, MONOCHROME1): dark air and noisy edges, no frame."""
    rad = load_radiograph(data_file(name))
    assert frame_box(rad.pixels) == (0, rad.pixels.shape[0], 0, rad.pixels.shape[1])
    reduced = load_radiograph(data_file(name), target_size=(224, 224)).pixels  # as predict decodes it
    assert frame_box(reduced) == (0, reduced.shape[0], 0, reduced.shape[1])


def test_dark_air_with_noise_is_not_a_frame():
    rng = np.random.default_rng(1)
    image = radiograph(300, 300)
    image[:, :60] = np.clip(0.02 + rng.normal(0, 4 / 255, (300, 60)), 0, 1)  # air: dark, but sensor noise
    assert frame_box(image) == (0, 300, 0, 300)


@pytest.mark.parametrize("frac", [0.31, 0.45])
def test_never_more_than_max_crop(frac):
    """A 'frame' wider than MAX_CROP is not a frame (a blank or nearly blank image): the image is left whole."""
    image, _ = framed(radiograph(300, 300), frac, 0.0, "mask")
    assert frame_box(image) == (0, 300, 0, 300)
    assert frame_box(np.zeros((300, 300), np.float32)) == (0, 300, 0, 300)
    for frac in WIDTHS:
        found = frame_box(framed(radiograph(300, 300), frac, 1.0, "border")[0])
        assert max(box_fraction(found, (300, 300))) <= MAX_CROP


# -- boxes as fractions ----------------------------------------------------------------
def test_kept_box_fractions_carry_over_to_any_size():
    assert kept_fractions((0, 100, 0, 80), (100, 80)) is None
    f = kept_fractions((5, 100, 20, 80), (100, 80))
    assert f == (0.05, 1.0, 0.25, 1.0)
    assert box_in(f, (100, 80)) == (5, 100, 20, 80)
    assert box_in(f, (1000, 800)) == (50, 1000, 200, 800)   # the full-resolution image of a reduced decode
    assert box_in(f, (10, 8)) == (0, 10, 2, 8)
    with pytest.raises(ValueError):
        box_in((0.5, 0.4, 0.0, 1.0), (10, 10))


def test_framed_input_crops_only_when_asked():
    image, _ = framed(radiograph(200, 240), 0.10, 0.0, "mask")
    whole, none = framed_input(image, (64, 64), False)
    cropped, kept = framed_input(image, (64, 64), True)
    assert none is None and kept is not None and whole.shape == cropped.shape == (64, 64)
    t, b, left, r = box_in(kept, image.shape)
    assert (t, b, left, r) == frame_box(image)
    assert cropped.min() > 0.0  # no black frame left in what the model sees


# -- maps onto the pixels they explain ------------------------------------------------------
def test_a_map_is_stretched_over_the_kept_box_and_blank_over_the_frame():
    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    box = (0.1, 1.0, 0.25, 1.0)
    up = upsample_cam(grid, (100, 80), box)
    assert np.isnan(up[:10]).all() and np.isnan(up[:, :20]).all()
    np.testing.assert_array_equal(up[10:, 20:], upsample_cam(grid, (90, 60)))
    np.testing.assert_array_equal(upsample_cam(grid, (100, 80), None), upsample_cam(grid, (100, 80)))
    grey = np.full((100, 80), 0.5, np.float32)
    rgb = compose(grey, up, 0.0, 11.0, alpha=0.4)
    np.testing.assert_array_equal(rgb[:10], compose(grey, None, 0, 1)[:10])   # grey, uncoloured
    np.testing.assert_array_equal(rgb[10:, 20:], compose(grey[10:, 20:], up[10:, 20:], 0.0, 11.0, alpha=0.4))


H, W, TOP, LEFT = 600, 500, 30, 100     # a frame on the left (20%) and the top (5%) only
PEAK = (0.3, 0.6)                         # where the evidence is, as a fraction of the content


def off_centre_image() -> np.ndarray:
    """Noisy grey content with one bright spot at PEAK, behind a black frame on the left and top only."""
    rng = np.random.default_rng(0)
    ch, cw = H - TOP, W - LEFT
    yy, xx = np.mgrid[0:ch, 0:cw]
    spot = np.exp(-((yy - PEAK[0] * ch) ** 2 + (xx - PEAK[1] * cw) ** 2) / (2 * 30.0 ** 2))
    image = np.zeros((H, W), np.float32)
    image[TOP:, LEFT:] = np.clip(0.3 + 0.03 * rng.standard_normal((ch, cw)) + 0.6 * spot, 0, 1)
    return image


def brightness_model(frame_normalize: bool = True):
    """Evidence for PNEUMONIA is brightness (a 64 x 64 CAM): its map peaks on the bright spot."""
    model = synthetic_model(nn.Identity(), gain=4.0, offset=-1.0, size=128)
    model.features.pool = nn.AvgPool2d(2)
    model.meta["frame_normalize"] = frame_normalize
    return model


EXPECTED = (TOP + PEAK[0] * (H - TOP), LEFT + PEAK[1] * (W - LEFT))  # (201, 340) in the original image
UNMAPPED = (PEAK[0] * H, PEAK[1] * W)                                   # (180, 300): a map spread over the frame


@pytest.fixture(scope="module")
def off_centre(tmp_path_factory):
    path = tmp_path_factory.mktemp("frame") / "framed.png"
    Image.fromarray((off_centre_image() * 255).round().astype(np.uint8)).save(path)
    result = next(Predictor(brightness_model(), device="cpu", checks=False).predict([path]))
    assert result.ok, result.error
    return path, result


def hottest(rgb: np.ndarray, region: tuple[slice, slice]) -> tuple[float, float]:
    """Centre of the pixels of ``rgb`` (drawn at alpha 1 with jet) in ``region`` whose colour is the hottest there."""
    lut = colormap_lut("jet").astype(np.int32)
    codes = {tuple(c): i for i, c in enumerate(lut)}
    sub = rgb[region].astype(np.int32)
    index = np.array([codes.get(tuple(p), -1) for p in sub.reshape(-1, 3)]).reshape(sub.shape[:2])
    ys, xs = np.nonzero(index >= index.max() - 1)
    return ys.mean() + (region[0].start or 0), xs.mean() + (region[1].start or 0)


def test_an_off_centre_crop_puts_the_map_back_on_the_right_pixels(off_centre):
    path, result = off_centre
    assert result.kept_box is not None
    t, b, left, r = box_in(result.kept_box, (H, W))
    assert (b, r) == (H, W) and TOP <= t <= TOP + 3 and LEFT <= left <= LEFT + 3
    rad = load_radiograph(path)

    cam, _, _ = cam_for_display(result, "PNEUMONIA")
    assert np.isnan(cam[:, :left]).all() and np.isnan(cam[:t]).all() and np.isfinite(cam[t:, left:]).all()
    peak = np.unravel_index(np.nanargmax(cam), cam.shape)
    assert abs(peak[0] - EXPECTED[0]) <= 4 and abs(peak[1] - EXPECTED[1]) <= 4, (peak, EXPECTED)

    rgb = overlay_image(rad, result, "PNEUMONIA", alpha=1.0)
    y, x = hottest(rgb, (slice(0, H), slice(0, W)))
    assert abs(y - EXPECTED[0]) <= 4 and abs(x - EXPECTED[1]) <= 4, ((y, x), EXPECTED, UNMAPPED)
    shown = overlay_image(rad, result, "PNEUMONIA")  # the default opacity: the frame stays as it is, uncoloured
    grey = compose(rad.pixels, None, 0, 1)
    np.testing.assert_array_equal(shown[:, :left], grey[:, :left])
    np.testing.assert_array_equal(shown[:t], grey[:t])
    assert (shown[t:, left:] != grey[t:, left:]).any(axis=2).mean() > 0.9


def test_the_png_export_puts_the_map_back_on_the_right_pixels(off_centre, tmp_path):
    path, result = off_centre
    t, _, left, _ = box_in(result.kept_box, (H, W))
    image = render_export(load_radiograph(path), result, "PNEUMONIA", alpha=1.0, model_name="brightness")
    written = save_png(image, tmp_path / "framed_cam.png")
    rgb = np.asarray(Image.open(written).convert("RGB"))
    # away from the colour bar (top right) and the caption (bottom)
    y, x = hottest(rgb, (slice(0, int(0.7 * H)), slice(0, int(0.85 * W))))
    assert abs(y - EXPECTED[0]) <= 4 and abs(x - EXPECTED[1]) <= 4, ((y, x), EXPECTED, UNMAPPED)
    grey = lambda a: (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()  # noqa: E731
    assert grey(rgb[:int(0.7 * H), :left]) and grey(rgb[:t, :int(0.85 * W)])  # nothing drawn over the frame
    assert (rgb[:int(0.7 * H), :LEFT] == 0).all() and (rgb[:TOP, :int(0.85 * W)] == 0).all()
    layer = render_export(load_radiograph(path), result, "PNEUMONIA", alpha=1.0,
                          map_layer=MapLayer(result.cams[1], -1.0, 1.0, "another map", result.kept_box))
    assert grey(np.asarray(layer)[:int(0.7 * H), :left]) and not grey(np.asarray(layer)[t:int(0.7 * H), left:int(0.85 * W)])


def test_the_model_sees_the_cropped_image_and_on_demand_maps_too(off_centre):
    path, result = off_centre
    model = brightness_model()
    framed_pixels = load_radiograph(path).pixels
    kept, box = crop_frame(framed_pixels)
    again = next(Predictor(brightness_model(frame_normalize=False), device="cpu", checks=False).predict([path]))
    cropped = torch.tensor(framed_input(kept, model.input_size, False)[0])[None, None]
    with torch.no_grad():
        logits, cams = model.logits_and_cams(model.normalize(cropped, frame=False))
    np.testing.assert_allclose(result.cams, cams[0].numpy(), atol=1e-5)
    assert again.kept_box is None and not np.allclose(again.cams, result.cams, atol=1e-3)  # the frame counts otherwise

    found = explain_image(model, framed_pixels, "PNEUMONIA", get_method("occlusion"))
    direct = explain_image(model, kept, "PNEUMONIA", get_method("occlusion"))
    assert found.box == result.kept_box and direct.box is None
    np.testing.assert_allclose(found.grid, direct.grid, atol=1e-5)
    up, lo, hi = found.for_display((H, W))
    assert np.isnan(up[:, :box[2]]).all() and np.isfinite(up[box[0]:, box[2]:]).all() and lo < hi


# -- the model file and the Predictor -----------------------------------------------------------
def test_frame_normalize_is_saved_loaded_and_checked(tmp_path):
    model = make_tiny_model(threshold=0.5, temperature=1.0, frame_normalize=True)
    loaded = load_model(save_model(model, tmp_path / "framed.safetensors"))
    assert loaded.frame_normalize is True and loaded.meta["frame_normalize"] is True
    assert load_model(save_model(make_tiny_model(), tmp_path / "plain.safetensors")).frame_normalize is False
    for bad in ("yes", 1, None):
        with pytest.raises(ModelFileError, match="frame_normalize must be true or false"):
            save_model(model, tmp_path / "bad.safetensors", meta={"frame_normalize": bad})


def test_the_predictor_on_a_framed_file_equals_the_pre_cropped_file(tmp_path):
    model = load_model(save_model(make_tiny_model(threshold=0.5, temperature=1.0, frame_normalize=True),
                                  tmp_path / "framed.safetensors"))
    image, _ = framed(radiograph(250, 200), 0.04, 0.5, "border")  # small enough to be decoded whole
    image[:, :40] = 0.5  # a grey frame, wider on the left
    as_file = lambda a, name: (Image.fromarray((a * 255).round().astype(np.uint8)).save(tmp_path / name), tmp_path / name)[1]
    framed_path = as_file(image, "framed.png")
    kept, box = crop_frame(load_radiograph(framed_path).pixels)
    pre = as_file(kept, "pre_cropped.png")
    a, b = Predictor(model, device="cpu", checks=False).predict([framed_path, pre])
    assert a.kept_box == kept_fractions(box, image.shape) and b.kept_box is None
    assert a.probs == pytest.approx(b.probs, abs=1e-6)
    np.testing.assert_allclose(a.cams, b.cams, atol=1e-5)
    assert a.image_size == (200, 250) and b.image_size == kept.shape[::-1]


def test_without_the_flag_or_without_a_frame_nothing_changes(tmp_path):
    plain = make_tiny_model(threshold=0.5, temperature=1.0)
    flagged = make_tiny_model(threshold=0.5, temperature=1.0, frame_normalize=True)
    framed_path = tmp_path / "framed.png"
    clean_path = tmp_path / "clean.png"
    image, _ = framed(radiograph(300, 260), 0.10, 0.0, "mask")
    Image.fromarray((image * 255).round().astype(np.uint8)).save(framed_path)
    Image.fromarray((radiograph(300, 260) * 255).round().astype(np.uint8)).save(clean_path)
    p_framed, p_clean = Predictor(plain, device="cpu").predict([framed_path, clean_path])
    f_framed, f_clean = Predictor(flagged, device="cpu").predict([framed_path, clean_path])
    assert p_framed.kept_box is None and p_clean.kept_box is None and f_clean.kept_box is None
    assert f_framed.kept_box is not None
    assert f_clean.probs == p_clean.probs and np.array_equal(f_clean.cams, p_clean.cams)
    assert f_clean.checks == p_clean.checks


@pytest.mark.parametrize("orientation", [1, 6])
def test_the_kept_box_is_in_the_displayed_image_after_a_reduced_decode_and_exif(tmp_path, orientation):
    """A large JPEG is decoded reduced (draft mode) and EXIF turns it: the box still fits the image as displayed."""
    shown = np.kron(off_centre_image(), np.ones((3, 3), np.float32))  # 1800 x 1500, frame left 300 px, top 90 px
    stored = np.rot90(shown, 1) if orientation == 6 else shown      # EXIF 6: the viewer turns it 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "big.jpg"
    Image.fromarray((stored * 255).round().astype(np.uint8)).save(path, quality=95, exif=exif)
    result = next(Predictor(brightness_model(), device="cpu", checks=False).predict([path]))
    assert result.meta["decoded_size"][0] < 1500 and result.image_size == (1500, 1800)
    t, b, left, r = box_in(result.kept_box, (1800, 1500))
    assert 3 * TOP <= t <= 3 * TOP + 12 and 3 * LEFT <= left <= 3 * LEFT + 12 and (b, r) == (1800, 1500)
    np.testing.assert_array_equal(load_radiograph(path).pixels.shape, (1800, 1500))


def test_the_csv_and_details_say_what_was_cropped(off_centre):
    from cxrviewer.core.results.columns import Batch, csv_columns, detail_columns

    _, result = off_centre
    framed, plain = Batch.of(brightness_model()), Batch.of(brightness_model(frame_normalize=False))
    assert framed.frame_normalize and not plain.frame_normalize
    assert "frame_cropped" not in [c.key for c in csv_columns(plain) + detail_columns(plain)]  # as before
    column = next(c for c in csv_columns(framed) if c.key == "frame_cropped")
    assert column in detail_columns(framed)
    assert column.text(result, framed) == "top 5.5%, left 20.4%"
    assert column.text(replace_box(result, None), framed) == ""


def replace_box(result, box):
    from dataclasses import replace

    return replace(result, kept_box=box)
