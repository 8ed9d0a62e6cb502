"""Loading radiographs: raster formats, the DICOM display pipeline, and every bad input."""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFile, ImageOps
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_voi_lut
from pydicom.uid import UID, JPEG2000Lossless, RLELossless

from cxrviewer import load_radiograph as exported_loader
from cxrviewer.core.errors import CorruptFileError, RadiographError, UnsupportedFileError
from cxrviewer.core.io import dicom as dicom_reader, radiograph as radiograph_module
from cxrviewer.core.io.dicom_values import apply_window
from cxrviewer.core.io.radiograph import IMAGE_SUFFIXES, Radiograph, to_model_input
from cxrviewer.core.io.reading import is_radiograph_file, load_radiograph
from dicom_factory import make_dataset, make_dicom, make_jpeg_dicom, write

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def data_file(name: str) -> str:
    """Path of a pydicom / pydicom-data test file, from the installed packages only (never downloads)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} not installed: pip install pydicom-data (the project's test extra)"
    return path


@pytest.fixture(scope="module")
def rg1():
    """The real MONOCHROME1 chest (RG1), uncompressed and JPEG 2000 lossless, each loaded once."""
    return {"UNCR": load_radiograph(data_file("RG1_UNCR.dcm")), "J2KR": load_radiograph(data_file("RG1_J2KR.dcm"))}


def ramp(h=32, w=48, top=4095, dtype=np.uint16):
    return (np.linspace(0, top, h * w).reshape(h, w)).round().astype(dtype)


def check_pixels(r: Radiograph):
    assert isinstance(r, Radiograph)
    assert r.pixels.dtype == np.float32 and r.pixels.ndim == 2
    assert np.isfinite(r.pixels).all()
    assert r.pixels.min() >= 0.0 and r.pixels.max() <= 1.0
    assert r.meta["decoded_size"] == (r.pixels.shape[1], r.pixels.shape[0])


def expect_error(cls, path, *words, **kwargs) -> RadiographError:
    with pytest.raises(cls) as info:
        load_radiograph(path, **kwargs)
    err = info.value
    text = str(err)
    assert text.startswith(Path(path).name + ": ") and "\n" not in text, text
    for word in words:
        assert word.lower() in text.lower(), text
    return err


# --------------------------------------------------------------------------- real DICOM radiographs


def test_rg1_jpeg2000_lossless_loads_identical_to_uncompressed(rg1):
    unc, j2k = rg1["UNCR"], rg1["J2KR"]
    check_pixels(unc)
    check_pixels(j2k)
    assert np.array_equal(unc.pixels, j2k.pixels)
    assert unc.meta["transfer_syntax"] == "Explicit VR Little Endian"
    assert "JPEG 2000" in j2k.meta["transfer_syntax"]


def test_rg1_meta_reports_pipeline_and_identity(rg1):
    meta = rg1["UNCR"].meta
    assert meta["format"] == "DICOM"
    assert meta["original_size"] == meta["decoded_size"] == (1841, 1955)
    assert meta["photometric_interpretation"] == "MONOCHROME1" and meta["inverted"] is True
    assert meta["window"] == (15000.0, 30000.0) and meta["window_source"] == "file"
    assert meta["voi_lut_function"] == "LINEAR" and meta["bits_stored"] == 15
    assert meta["rescale"] == (1.0, 0.0)
    assert (meta["Modality"], meta["BodyPartExamined"], meta["ViewPosition"]) == ("CR", "CHEST", "PA")
    assert meta["StudyDate"] == "20040826" and "Philips" in meta["Manufacturer"]


def test_rg1_monochrome1_is_inverted_once_by_hand(rg1):
    raw = pydicom.dcmread(data_file("RG1_UNCR.dcm")).pixel_array.astype(np.float64)
    # LINEAR window 15000 / 30000 (PS3.3 C.11.2.1.2.1), then MONOCHROME1 -> dense bright
    expected = 1.0 - np.clip((raw - 14999.5) / 29999.0 + 0.5, 0.0, 1.0)
    assert np.allclose(rg1["UNCR"].pixels, expected, atol=1e-5)


def test_rg1_chest_shows_lungs_dark_and_mediastinum_bright(rg1):
    p = rg1["UNCR"].pixels
    h, w = p.shape

    def mean(y0, y1, x0, x1):
        return float(p[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)].mean())

    mediastinum = mean(0.2, 0.5, 0.45, 0.55)
    lungs = mean(0.2, 0.45, 0.2, 0.35), mean(0.2, 0.45, 0.62, 0.78)
    assert mediastinum > max(lungs) + 0.1


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_compressed_twins_load_identical(name):
    reference = load_radiograph(data_file("MR_small.dcm"))
    twin = load_radiograph(data_file(name))
    check_pixels(twin)
    assert np.array_equal(reference.pixels, twin.pixels)


def test_jpeg_lossless_dicom_decodes():
    r = load_radiograph(data_file("JPEG-LL.dcm"))
    check_pixels(r)
    assert "JPEG Lossless" in r.meta["transfer_syntax"]
    assert r.pixels.shape == (1024, 256) and r.pixels.std() > 0.05


def test_colour_dicoms_become_grey():
    rgb = pydicom.dcmread(data_file("SC_rgb.dcm")).pixel_array.astype(np.float64)
    luma = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    r = load_radiograph(data_file("SC_rgb.dcm"))
    check_pixels(r)
    assert np.allclose(r.pixels, luma, atol=1e-5)
    ybr_jpeg = load_radiograph(data_file("SC_rgb_jpeg_dcmtk.dcm"))  # YBR_FULL, JPEG baseline (lossy)
    check_pixels(ybr_jpeg)
    assert ybr_jpeg.meta["photometric_interpretation"].startswith("YBR")
    assert float(np.abs(ybr_jpeg.pixels - r.pixels).mean()) < 0.03


def test_dicom_voi_lut_sequence_from_real_file_matches_pydicom():
    ds = pydicom.dcmread(data_file("vlut_04.dcm"))
    ref = apply_voi_lut(ds.pixel_array, ds).astype(np.float64)
    lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
    r = load_radiograph(data_file("vlut_04.dcm"))
    assert r.meta["window_source"] == "VOI LUT Sequence"
    assert np.allclose(r.pixels, (ref - lut.min()) / (lut.max() - lut.min()), atol=1e-6)


# --------------------------------------------------------------------------- synthetic DICOM pipeline


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("center,width", [(1000.0, 1500.0), (2047.5, 4096.0), (300.0, 1.0), (3000.0, 10.0)])
def test_window_functions_match_pydicom(function, center, width):
    if function != "LINEAR" and width == 1.0:
        width = 0.5  # pydicom's LINEAR_EXACT / SIGMOID take any width > 0
    x = ramp(64, 64)
    ds = make_dataset(x, bits_stored=12, WindowCenter=center, WindowWidth=width, VOILUTFunction=function)
    with np.errstate(over="ignore"):  # pydicom's SIGMOID overflows exp() far from the centre
        ref = apply_voi_lut(x, ds).astype(np.float64) / 4095.0  # pydicom outputs the 12-bit range
    assert np.allclose(apply_window(x, center, width, function), ref, atol=2e-6)


@pytest.mark.parametrize("photometric,shape,inverted", [
    ("MONOCHROME1", None, True), ("MONOCHROME1", "INVERSE", True), ("MONOCHROME1", "IDENTITY", False),
    ("MONOCHROME2", None, False), ("MONOCHROME2", "INVERSE", True), ("MONOCHROME2", "IDENTITY", False),
])
def test_monochrome1_and_presentation_lut_shape_invert_exactly_once(tmp_path, photometric, shape, inverted):
    x = ramp()
    tags = {"WindowCenter": 2048, "WindowWidth": 4096, "VOILUTFunction": "LINEAR_EXACT"}
    if shape:
        tags["PresentationLUTShape"] = shape
    r = load_radiograph(make_dicom(tmp_path / "m.dcm", x, photometric=photometric, bits_stored=12, **tags))
    check_pixels(r)
    windowed = x.astype(np.float64) / 4096.0
    assert np.allclose(r.pixels, 1.0 - windowed if inverted else windowed, atol=1e-6)
    assert r.meta["inverted"] is inverted and r.meta["photometric_interpretation"] == photometric


def test_rescale_slope_intercept_before_window(tmp_path):
    x = ramp(top=1000)
    path = make_dicom(tmp_path / "r.dcm", x, bits_stored=12, RescaleSlope=2, RescaleIntercept=-1000,
                      WindowCenter=0, WindowWidth=1000, VOILUTFunction="LINEAR_EXACT")
    r = load_radiograph(path)
    hu = x * 2.0 - 1000.0
    assert np.allclose(r.pixels, np.clip((hu + 500.0) / 1000.0, 0, 1), atol=1e-6)
    assert r.meta["rescale"] == (2.0, -1000.0) and r.meta["window"] == (0.0, 1000.0)


def test_modality_lut_sequence_is_applied(tmp_path):
    x = (np.arange(16 * 16) % 16).reshape(16, 16).astype(np.uint16)
    lut = Dataset()
    lut.add_new(0x00283002, "US", [16, 0, 16])  # LUT Descriptor
    lut.ModalityLUTType = "US"
    lut.add_new(0x00283006, "US", [v * v * 10 for v in range(16)])  # LUT Data: non-linear, 0 .. 2250
    path = make_dicom(tmp_path / "mlut.dcm", x, bits_stored=8 + 8, ModalityLUTSequence=[lut],
                      WindowCenter=1125, WindowWidth=2250, VOILUTFunction="LINEAR_EXACT")
    r = load_radiograph(path)
    assert r.meta["modality_lut"] == "Modality LUT Sequence"
    assert np.allclose(r.pixels, (x.astype(np.float64) ** 2 * 10) / 2250.0, atol=1e-6)


def test_voi_lut_sequence_wins_over_window(tmp_path):
    x = ramp(top=255)
    lut = Dataset()
    lut.add_new(0x00283002, "US", [256, 0, 16])
    lut.add_new(0x00283006, "US", [int(4000 * (v / 255) ** 2) + 50 for v in range(256)])  # 50 .. 4050
    path = make_dicom(tmp_path / "voi.dcm", x, bits_stored=16, VOILUTSequence=[lut],
                      WindowCenter=10, WindowWidth=5)
    r = load_radiograph(path)
    assert r.meta["window_source"] == "VOI LUT Sequence"
    expected = (np.array(lut.LUTData, dtype=np.float64)[x] - 50) / 4000.0
    assert np.allclose(r.pixels, expected, atol=1e-6)


def test_missing_window_uses_robust_percentile_window(tmp_path):
    x = ramp(100, 100, top=1000)
    x[0, :5] = 60000  # a few hot pixels must not squash the image
    r = load_radiograph(make_dicom(tmp_path / "nw.dcm", x, bits_stored=16))
    assert r.meta["window_source"].startswith("percentile")
    lo, hi = np.percentile(x[::1, ::1].astype(np.float64), [0.5, 99.5])
    center, width = r.meta["window"]
    assert abs(center - (lo + hi) / 2) < 15 and abs(width - (hi - lo)) < 30
    assert r.pixels[0, :5].tolist() == [1.0] * 5
    body = r.pixels[1:]
    assert body.std() > 0.25 and np.isclose(np.median(body), 0.5, atol=0.05)


def test_window_present_is_used_not_percentiles(tmp_path):
    x = ramp(top=1000)
    r = load_radiograph(make_dicom(tmp_path / "w.dcm", x, bits_stored=16, WindowCenter=[250, 900],
                                   WindowWidth=[500, 10], VOILUTFunction="LINEAR_EXACT"))
    assert r.meta["window"] == (250.0, 500.0) and r.meta["window_source"] == "file"
    assert np.allclose(r.pixels, np.clip(x / 500.0, 0, 1), atol=1e-6)


def test_flat_image_without_window_is_black_not_nan(tmp_path):
    r = load_radiograph(make_dicom(tmp_path / "flat.dcm", np.full((8, 8), 77, np.uint16), bits_stored=16))
    check_pixels(r)
    assert r.pixels.max() == 0.0


def test_bits_stored_ignores_garbage_high_bits(tmp_path):
    x = ramp()
    clean = make_dicom(tmp_path / "clean.dcm", x, bits_stored=12, WindowCenter=2048, WindowWidth=4096)
    ds = make_dataset(x, bits_stored=12, WindowCenter=2048, WindowWidth=4096)
    ds.PixelData = (x | np.uint16(0xA000)).astype("<u2").tobytes()  # overlay-style junk above bit 11
    dirty = write(ds, tmp_path / "dirty.dcm")
    assert np.array_equal(load_radiograph(dirty).pixels, load_radiograph(clean).pixels)
    assert load_radiograph(dirty).pixels.std() > 0.2


def test_signed_bits_stored_is_sign_extended(tmp_path):
    x = (np.linspace(-2048, 2047, 32 * 32).round().astype(np.int16)).reshape(32, 32)
    ds = make_dataset(x, bits_stored=12, WindowCenter=0, WindowWidth=4096, VOILUTFunction="LINEAR_EXACT")
    ds.PixelData = (x.view(np.uint16) & np.uint16(0x0FFF)).astype("<u2").tobytes()  # 12-bit two's complement
    r = load_radiograph(write(ds, tmp_path / "signed.dcm"))
    assert np.allclose(r.pixels, (x + 2048.0) / 4096.0, atol=1e-6)


def test_rle_dicom_loads_identical_to_uncompressed(tmp_path):
    x = ramp(40, 30)
    tags = {"WindowCenter": 2000, "WindowWidth": 3000, "photometric": "MONOCHROME1", "bits_stored": 12}
    plain = load_radiograph(make_dicom(tmp_path / "plain.dcm", x, **tags))
    rle = load_radiograph(make_dicom(tmp_path / "rle.dcm", x, transfer_syntax=RLELossless, **tags))
    assert rle.meta["transfer_syntax"] == "RLE Lossless"
    assert np.array_equal(plain.pixels, rle.pixels)


def test_jpeg_baseline_dicom_matches_the_same_jpeg_in_pillow(tmp_path):
    rng = np.random.default_rng(0)
    grey = np.clip(ramp(64, 80, top=255).astype(float) + rng.normal(0, 10, (64, 80)), 0, 255)
    path, pillow = make_jpeg_dicom(tmp_path / "jpeg.dcm", grey)
    ds = pydicom.dcmread(path)
    ds.WindowCenter, ds.WindowWidth = 128, 256  # LINEAR 128 / 256 maps 0..255 onto v / 255
    ds.save_as(path)
    r = load_radiograph(path)
    assert r.meta["transfer_syntax"] == "JPEG Baseline (Process 1)"
    assert np.abs(r.pixels - pillow).max() <= 2.5 / 255  # two IDCT implementations


def test_multiframe_loads_first_frame_only(tmp_path):
    frames = np.stack([ramp(), ramp()[::-1], np.zeros_like(ramp())])
    tags = {"WindowCenter": 2048, "WindowWidth": 4096, "VOILUTFunction": "LINEAR_EXACT", "bits_stored": 12}
    r = load_radiograph(make_dicom(tmp_path / "mf.dcm", frames, **tags))
    assert r.meta["frames"] == 3
    assert np.allclose(r.pixels, ramp() / 4096.0, atol=1e-6)
    rle = load_radiograph(make_dicom(tmp_path / "mf_rle.dcm", frames, transfer_syntax=RLELossless, **tags))
    assert np.array_equal(rle.pixels, r.pixels)


def test_suffixless_dicom_is_recognised_by_magic(tmp_path):
    path = make_dicom(tmp_path / "IM000001", ramp(), bits_stored=12)
    assert is_radiograph_file(path)
    assert load_radiograph(path).meta["format"] == "DICOM"


def test_dicom_without_pixel_data_is_refused(tmp_path):
    path = make_dicom(tmp_path / "sr.dcm", None)
    expect_error(UnsupportedFileError, path, "no pixel data")
    expect_error(UnsupportedFileError, data_file("rtplan.dcm"), "no pixel data")


def test_missing_decoder_names_syntax_and_install(monkeypatch, tmp_path):
    from pydicom.pixels import get_decoder

    monkeypatch.setattr(get_decoder(JPEG2000Lossless), "_available", {})  # as if no plugin were installed
    err = expect_error(UnsupportedFileError, data_file("MR_small_jp2klossless.dcm"),
                       "JPEG 2000 Image Compression (Lossless Only)", "pip install", "pylibjpeg-openjpeg")
    assert "no decoder" in err.reason


def test_unknown_transfer_syntax_is_unsupported(tmp_path):
    ds = make_dataset(ramp(), bits_stored=12)
    ds.file_meta.TransferSyntaxUID = UID("1.2.3.4.5.6.7")
    path = tmp_path / "odd.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True, enforce_file_format=True)
    expect_error(UnsupportedFileError, path, "transfer syntax", "not supported")


def test_dicom_bomb_is_refused_from_the_header(monkeypatch, tmp_path):
    ds = make_dataset(ramp(), bits_stored=12)
    ds.Rows, ds.Columns = 40000, 30000  # 1.2 gigapixels claimed, a few bytes stored
    path = write(ds, tmp_path / "bomb.dcm")

    def no_decode(*args, **kwargs):
        raise AssertionError("decoding started")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", no_decode)
    expect_error(CorruptFileError, path, "refused", "30000 x 40000")


def test_max_pixels_is_the_policy_for_both_readers(monkeypatch, tmp_path):
    Image.fromarray(ramp(top=255, dtype=np.uint8)).save(tmp_path / "small.png")
    dcm = make_dicom(tmp_path / "small.dcm", ramp(), bits_stored=12)
    monkeypatch.setattr(radiograph_module, "MAX_PIXELS", 1000)
    expect_error(CorruptFileError, tmp_path / "small.png", "refused")
    expect_error(CorruptFileError, dcm, "refused")


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")
def test_truncated_dicoms_are_corrupt(tmp_path):
    whole = make_dicom(tmp_path / "whole.dcm", ramp(256, 256), bits_stored=12).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(whole[:-1000])
    expect_error(CorruptFileError, tmp_path / "cut.dcm", "truncated")
    j2k = Path(data_file("MR_small_jp2klossless.dcm")).read_bytes()
    (tmp_path / "cut_j2k.dcm").write_bytes(j2k[: len(j2k) - 2000])
    expect_error(CorruptFileError, tmp_path / "cut_j2k.dcm", "truncated")


# --------------------------------------------------------------------------- raster formats


def test_8bit_png_and_bmp_are_exact(tmp_path):
    x = ramp(top=255, dtype=np.uint8)
    for name in ("g.png", "g.bmp"):
        Image.fromarray(x).save(tmp_path / name)
        r = load_radiograph(tmp_path / name)
        check_pixels(r)
        assert np.array_equal(r.pixels, x / np.float32(255))
        assert r.meta["original_size"] == (48, 32)
    assert load_radiograph(tmp_path / "g.bmp").meta["format"] == "BMP"


@pytest.mark.parametrize("name", ["g16.png", "g16.tif"])
def test_16bit_png_and_tiff_keep_full_precision(tmp_path, name):
    x = np.random.default_rng(1).integers(0, 65536, (40, 50), dtype=np.uint16)
    x[0, :3] = [1000, 1001, 1002]  # differ below 8-bit resolution
    Image.fromarray(x).save(tmp_path / name)
    r = load_radiograph(tmp_path / name)
    check_pixels(r)
    assert np.array_equal(np.rint(r.pixels.astype(np.float64) * 65535).astype(np.uint16), x)
    assert len(set(r.pixels[0, :3].tolist())) == 3


def test_rgb_rgba_palette_and_cmyk_become_grey(tmp_path):
    rng = np.random.default_rng(2)
    rgb = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), "RGB")
    expected = np.asarray(rgb.convert("L"), dtype=np.float32) / 255
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (30, 40), dtype=np.uint8)))
    rgba.save(tmp_path / "rgba.png")
    rgb.save(tmp_path / "rgb.png")
    for name in ("rgb.png", "rgba.png"):
        r = load_radiograph(tmp_path / name)
        check_pixels(r)
        assert np.array_equal(r.pixels, expected), name  # alpha is ignored

    pal = rgb.quantize(64)
    pal.save(tmp_path / "pal.png")
    r = load_radiograph(tmp_path / "pal.png")
    assert r.meta["mode"] == "P"
    assert np.array_equal(r.pixels, np.asarray(pal.convert("RGB").convert("L"), dtype=np.float32) / 255)

    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    r = load_radiograph(tmp_path / "cmyk.jpg")
    check_pixels(r)
    assert r.meta["mode"] == "CMYK"
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert np.array_equal(r.pixels, np.asarray(im.convert("RGB").convert("L"), dtype=np.float32) / 255)
    assert float(np.abs(r.pixels - expected).mean()) < 0.05


def test_i16_tiff_mode_is_kept_16_bit(tmp_path):
    x = (np.arange(64 * 64, dtype=np.uint32) * 16).astype(np.uint16).reshape(64, 64)
    Image.frombytes("I;16B", (64, 64), x.astype(">u2").tobytes()).save(tmp_path / "i16.tiff")
    r = load_radiograph(tmp_path / "i16.tiff")
    assert r.meta["mode"].startswith("I;16") and r.meta["format"] == "TIFF"
    assert np.allclose(r.pixels, x / 65535.0, atol=1e-7)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    x = np.zeros((20, 40), np.uint8)
    x[:5, :10] = 255  # a bright top-left corner, so every flip and turn is visible
    x[:, 30:] = 128
    im = Image.fromarray(x)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    r = load_radiograph(tmp_path / "o.jpg")
    with Image.open(tmp_path / "o.jpg") as src:
        expected = np.asarray(ImageOps.exif_transpose(src).convert("L"), dtype=np.float32) / 255
    assert np.array_equal(r.pixels, expected)
    assert r.meta["exif_orientation"] == orientation
    assert r.meta["original_size"] == ((20, 40) if orientation in (5, 6, 7, 8) else (40, 20))


def test_jpeg_target_size_uses_draft_mode_but_reports_original_size(tmp_path):
    rng = np.random.default_rng(3)
    big = Image.fromarray(rng.integers(0, 256, (1600, 2000), dtype=np.uint8)).resize((2000, 1600))
    big.convert("RGB").save(tmp_path / "big.jpg", quality=80)
    full = load_radiograph(tmp_path / "big.jpg")
    small = load_radiograph(tmp_path / "big.jpg", target_size=(224, 224))
    assert full.meta["decoded_size"] == full.meta["original_size"] == small.meta["original_size"] == (2000, 1600)
    w, h = small.meta["decoded_size"]
    assert 224 <= min(w, h) and w < 2000 and h < 1600
    check_pixels(small)
    # a target bigger than the image never upsamples or shrinks
    assert load_radiograph(tmp_path / "big.jpg", target_size=(4000, 4000)).pixels.shape == (1600, 2000)


# --------------------------------------------------------------------------- bad input


def test_empty_random_and_missing_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    expect_error(CorruptFileError, tmp_path / "empty.png", "empty", "0 bytes")
    noise = np.random.default_rng(4).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    for name in ("noise.jpg", "noise.dcm", "noise"):
        (tmp_path / name).write_bytes(noise)
        expect_error(UnsupportedFileError, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image\n")
    expect_error(UnsupportedFileError, tmp_path / "notes.txt", "not a supported image")
    expect_error(UnsupportedFileError, tmp_path / "missing.png", "not found")
    expect_error(UnsupportedFileError, tmp_path, "folder")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.parametrize("fmt,suffix", [("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif"), ("BMP", "bmp")])
def test_truncated_raster_files_are_corrupt(tmp_path, fmt, suffix):
    x = np.random.default_rng(5).integers(0, 256, (120, 160), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, fmt)
    data = buf.getvalue()
    (tmp_path / f"cut.{suffix}").write_bytes(data[: len(data) // 2])
    expect_error(CorruptFileError, tmp_path / f"cut.{suffix}")
    (tmp_path / f"head.{suffix}").write_bytes(data[:12])
    expect_error(CorruptFileError, tmp_path / f"head.{suffix}")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels but holds almost no data."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("width,height", [(100_000, 100_000), (10_000, 9_000)])
def test_png_bomb_is_refused_before_decoding(monkeypatch, tmp_path, width, height):
    (tmp_path / "bomb.png").write_bytes(png_header_only(width, height))
    before = Image.MAX_IMAGE_PIXELS

    def no_load(self, *args, **kwargs):
        raise AssertionError("decoding started")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    expect_error(CorruptFileError, tmp_path / "bomb.png", "refused")
    assert Image.MAX_IMAGE_PIXELS == before  # Pillow's global policy is left alone


def test_files_are_never_modified(tmp_path):
    Image.fromarray(ramp(top=255, dtype=np.uint8)).save(tmp_path / "a.jpg")
    make_dicom(tmp_path / "b.dcm", ramp(), bits_stored=12, photometric="MONOCHROME1")
    shutil.copy(data_file("MR_small_RLE.dcm"), tmp_path / "c.dcm")
    before = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    for p in sorted(tmp_path.iterdir()):
        load_radiograph(p)
        load_radiograph(p, target_size=(8, 8))
    after = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert after == before


# --------------------------------------------------------------------------- helpers and samples


def test_is_radiograph_file_and_suffixes(tmp_path):
    assert IMAGE_SUFFIXES == {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"}
    for name in ("a.JPG", "b.Jpeg", "c.png", "d.BMP", "e.tif", "f.TIFF", "g.DCM", "h.dicom"):
        assert is_radiograph_file(tmp_path / name), name  # by name only: need not exist
    for name in ("a.txt", "b.gif", "c.dcm.bak", "d.json"):
        assert not is_radiograph_file(tmp_path / name), name
    (tmp_path / "plain").write_bytes(b"\0" * 200)
    assert not is_radiograph_file(tmp_path / "plain")
    assert not is_radiograph_file(tmp_path / "absent")
    assert not is_radiograph_file(tmp_path)


def test_to_model_input_resizes_to_hw():
    x = np.random.default_rng(6).random((50, 80)).astype(np.float32)
    y = to_model_input(x, (32, 24))
    assert y.shape == (32, 24) and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert np.array_equal(to_model_input(x, (50, 80)), x)
    checkerboard = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)
    assert np.abs(to_model_input(checkerboard, (16, 16)) - 0.5).max() < 0.05  # antialiased, no aliasing


def test_draft_mode_with_cmyk_and_rotated_jpegs(tmp_path):
    rng = np.random.default_rng(7)
    im = Image.fromarray(rng.integers(0, 256, (600, 900, 3), dtype=np.uint8), "RGB").resize((900, 600))
    im.convert("CMYK").save(tmp_path / "cmyk.jpg")
    r = load_radiograph(tmp_path / "cmyk.jpg", target_size=(100, 100))
    check_pixels(r)
    assert r.meta["original_size"] == (900, 600) and min(r.pixels.shape) >= 100
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "rot.jpg", exif=exif)
    r = load_radiograph(tmp_path / "rot.jpg", target_size=(100, 200))
    assert r.meta["original_size"] == (600, 900)
    h, w = r.pixels.shape
    assert h > w and h >= 100 and w >= 200 and h < 900


def test_package_exports_the_loader():
    assert exported_loader is load_radiograph


def test_samples_load_and_stay_small():
    files = sorted(p for p in SAMPLES.iterdir() if is_radiograph_file(p))
    assert sum(p.stat().st_size for p in SAMPLES.iterdir()) < 1_000_000
    formats = set()
    for p in files:
        r = load_radiograph(p)
        check_pixels(r)
        formats.add(r.meta["format"])
    assert {"JPEG", "DICOM"} <= formats
    assert any("NORMAL" in p.parent.name or "IM-" in p.name for p in files)


def test_sample_dicom_shows_the_same_chest_as_its_jpeg():
    dicom = next(SAMPLES.glob("*.dcm"))  # made from "<jpeg stem>__mono1_12bit_rle.dcm"
    r = load_radiograph(dicom)
    assert r.meta["photometric_interpretation"] == "MONOCHROME1" and r.meta["inverted"] is True
    assert r.meta["transfer_syntax"] == "RLE Lossless"
    jpeg = SAMPLES / (dicom.name.split("__")[0] + ".jpeg")
    assert np.abs(r.pixels - load_radiograph(jpeg).pixels).max() < 1e-3


# --------------------------------------------------------------------------- hardening (issue 7)


def test_pydicom_test_files_it_decodes_decode_here():
    for name in ("image_dfl.dcm", "SC_rgb_jpeg.dcm"):  # deflated; a JPEG only the data-set route reads
        r = load_radiograph(data_file(name))
        check_pixels(r)
        assert r.meta["original_size"] == (r.pixels.shape[1], r.pixels.shape[0])
    assert load_radiograph(data_file("image_dfl.dcm")).meta["transfer_syntax"] == "Deflated Explicit VR Little Endian"


def test_a_text_file_named_dcm_is_not_a_dicom(tmp_path):
    (tmp_path / "notes.dcm").write_text("Patient notes: nothing to see here\n" * 20)
    expect_error(UnsupportedFileError, tmp_path / "notes.dcm", "not a DICOM file")


def test_a_huge_zero_filled_dcm_is_refused_without_reading_it(tmp_path):
    big = tmp_path / "zeros.dcm"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of zeros, no disk used
    expect_error(UnsupportedFileError, big, "not a DICOM file")
    tail = tmp_path / "tail.dcm"
    with open(tail, "wb") as f:
        f.write(b"\0" * 128 + b"DICM")
        f.truncate(1 << 30)
    expect_error(RadiographError, tail, "DICOM")


def test_garbage_after_the_pixel_data_is_never_parsed(tmp_path):
    path = make_dicom(tmp_path / "padded.dcm", ramp())
    with open(path, "ab") as f:
        f.write(b"\xfc\xff\xfc\xff" + b"OB\0\0" + struct.pack("<I", 0) + b"\xfe" * 4000)
    check_pixels(load_radiograph(path))


def _jpeg_bytes(h: int, w: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w), 128, np.uint8), "L").save(buf, "JPEG")
    return buf.getvalue()


def test_an_embedded_jpeg_larger_than_the_header_is_refused_before_decoding(tmp_path, monkeypatch):
    path, _ = make_jpeg_dicom(tmp_path / "bomb.dcm", np.full((64, 64), 100, np.uint8))
    data = path.read_bytes()
    sof = data.index(b"\xff\xc0")
    data = data[:sof + 5] + struct.pack(">HH", 60000, 60000) + data[sof + 9:]  # the JPEG now says 60000 x 60000
    path.write_bytes(data)
    decoded = []
    monkeypatch.setattr(dicom_reader, "_decode_first_frame", lambda *a: decoded.append(1))
    expect_error(CorruptFileError, path, "declares 60000 x 60000", "64 x 64")
    assert not decoded


def test_an_embedded_jpeg2000_is_checked_against_rows_and_columns(tmp_path):
    ds = pydicom.dcmread(data_file("MR_small_jp2klossless.dcm"))
    rows, cols = ds.Rows, ds.Columns
    ds.Rows, ds.Columns = 16, 16
    ds.save_as(tmp_path / "small.dcm")
    expect_error(CorruptFileError, tmp_path / "small.dcm", f"declares {cols} x {rows}", "16 x 16")


@pytest.mark.parametrize("tags", [
    {"RescaleSlope": "1e38"},
    {"RescaleIntercept": "-1e39", "RescaleSlope": "1"},
    {"WindowCenter": "1e39", "WindowWidth": "1e39"},
    {"WindowCenter": "1", "WindowWidth": "1e39"},
])
def test_non_finite_numbers_never_become_pixels(tmp_path, tags):
    path = make_dicom(tmp_path / "odd.dcm", ramp(), bits_stored=12, **tags)
    try:
        r = load_radiograph(path)
    except CorruptFileError as e:
        assert "not finite" in str(e) or "display attributes" in str(e)
    else:
        check_pixels(r)  # a window it could still apply; the pixels are finite either way


def test_reasons_are_sentences_not_python_text(tmp_path):
    ds = make_dataset(ramp(16, 16))
    ds.PixelData = ds.PixelData[:500]  # shorter than Rows x Columns needs
    write(ds, tmp_path / "short.dcm")
    no_rows = make_dataset(ramp(16, 16))
    del no_rows.Rows
    write(no_rows, tmp_path / "norows.dcm")
    for name, words in (("short.dcm", ("pixel data",)), ("norows.dcm", ("missing", "Rows"))):
        err = expect_error(CorruptFileError, tmp_path / name, *words)
        assert not any(t in str(err) for t in ("reshape", "object has no attribute", "Error", "'"))


def test_only_regular_files_are_opened(tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    os.mkfifo(tmp_path / "PIPE")
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(
        (expect_error(UnsupportedFileError, fifo, "not a regular file"), is_radiograph_file(tmp_path / "PIPE"))),
        daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():  # unblock, then fail
        for p in (fifo, tmp_path / "PIPE"):
            with open(p, "wb"):
                pass
        pytest.fail("a FIFO was opened and blocked")
    assert outcome and outcome[0][1] is False
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    expect_error(UnsupportedFileError, tmp_path / "dangling.png", "broken link")
    os.symlink(tmp_path / "self.png", tmp_path / "self.png")
    expect_error(UnsupportedFileError, tmp_path / "self.png", "loops")


def test_large_images_decode_at_a_bounded_size(tmp_path):
    big = np.random.default_rng(0).integers(0, 255, (2000, 1800), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")
    make_dicom(tmp_path / "big.dcm", big.astype(np.uint16) * 16, bits_stored=12)
    for name in ("big.png", "big.dcm"):
        full = load_radiograph(tmp_path / name)
        small = load_radiograph(tmp_path / name, target_size=(224, 224))
        check_pixels(small)
        assert full.pixels.shape == (2000, 1800) and small.meta["original_size"] == (1800, 2000)
        assert 2 * 224 <= min(small.pixels.shape) and small.pixels.size * 4 <= full.pixels.size
        assert abs(float(small.pixels.mean()) - float(full.pixels.mean())) < 0.02
