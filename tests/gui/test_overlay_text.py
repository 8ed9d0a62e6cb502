"""The text over the image (verdict badge, banners, notes, four-corner text) never overlaps or leaves the image,
at 1366 x 768 and 1024 x 640, on a folder with long names, DICOM radiographs, CT, MR and a corrupt file:
checked on the rendered extents of every text block."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QRect

from cxrviewer.gui.app import fit_window
from cxrviewer.gui.canvas import ImageCanvas, Overlay
from cxrviewer.gui.overlay_layout import elide_middle, share_width, wrap_words
from tests.gui.helpers import open_and_wait, write_image

SIZES = [(1366, 768), (1024, 640)]
LONG = "person1044_bacteria_2978_with_a_much_longer_name_than_usual.jpeg"  # 60+ characters
BANNER = ("OUT OF SCOPE: not a chest radiograph like the model's training images (scope score 3.41 over the "
          "threshold 1.20) (no verdict; the model would say PNEUMONIA: P(PNEUMONIA) 97% \u2265 72%)")
NOTE = "no positive evidence for PNEUMONIA (Grad-CAM: mean positive part 0.0024, 3% of the map's absolute evidence)"


def mixed_folder(root: Path) -> Path:
    """Long names in two subfolders (two that end alike), a 60-character name, a DICOM radiograph, CT and MR
    DICOMs and a corrupt JPEG."""
    from pydicom.data import get_testdata_file

    folder = root / "ward"
    for sub, name, seed in (("NORMAL", "NORMAL2-IM-0601-0001.jpeg", 1), ("PNEUMONIA", "IM-0601-0001.jpeg", 2),
                            ("PNEUMONIA", LONG, 3)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        write_image(folder / sub / name, 300, 240, seed=seed)
    samples = Path(__file__).resolve().parents[2] / "resources" / "samples"
    shutil.copy(next(samples.glob("*.dcm")), folder / "cr.dcm")
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(get_testdata_file(name), folder / name)
    (folder / "bad.jpg").write_bytes(b"this is not a JPEG at all" * 20)
    return folder


def text_boxes(canvas) -> dict:
    """Display-pixel boxes of the text blocks drawn over the image (with their background boxes)."""
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = {}
    for name, artist in [("badge", canvas._caption), ("note", canvas._note), *canvas.corners.artists.items()]:
        if not artist.get_visible() or not artist.get_text():
            continue
        patch = artist.get_bbox_patch()
        if patch is not None:
            artist.update_bbox_position_size(renderer)
            boxes[name] = patch.get_window_extent(renderer)
        else:
            boxes[name] = artist.get_window_extent(renderer)
    return boxes


def overlaps(canvas) -> list[str]:
    """Blocks that reach outside the image's box, or cover one another; the colour bar's label outside the view."""
    image, problems = canvas.ax.bbox, []
    boxes = text_boxes(canvas)
    for name, b in boxes.items():
        if b.x0 < image.x0 - 1 or b.x1 > image.x1 + 1 or b.y0 < image.y0 - 1 or b.y1 > image.y1 + 1:
            problems.append(f"{name} {b.bounds} leaves the image {image.bounds}")
    names = list(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            p, q = boxes[a], boxes[b]
            if min(p.x1, q.x1) - max(p.x0, q.x0) > 0.5 and min(p.y1, q.y1) - max(p.y0, q.y0) > 0.5:
                problems.append(f"{a} {p.bounds} covers {b} {q.bounds}")
    if canvas.cax.get_visible():
        label = canvas.cax.yaxis.label
        if label.get_text():
            b, fig = label.get_window_extent(canvas.get_renderer()), canvas.figure.bbox
            if b.x0 < fig.x0 or b.x1 > fig.x1 + 0.5 or b.y0 < fig.y0 or b.y1 > fig.y1:
                problems.append(f"colour bar label {b.bounds} leaves the view {fig.bounds}")
    return problems


@pytest.mark.parametrize("size", SIZES)
def test_no_text_covers_other_text_or_leaves_the_image(qtbot, make_window, tiny_model_file, tmp_path, size):
    folder = mixed_folder(tmp_path)
    window = make_window(tiny_model_file)
    window.resize(*size)
    fit_window(window, QRect(0, 0, *size))
    open_and_wait(qtbot, window, [folder])
    model = window.results_model
    assert model.rowCount() == 7
    image_h, image_w = window.canvas.fit_box()
    assert image_w >= 0.33 * size[0] and image_h >= 0.5 * size[1], (image_w, image_h)  # the image has the room
    for row in range(model.rowCount()):
        if window._current_row != row:
            with qtbot.waitSignal(window.imageShown, timeout=5000):
                window.results_view.select_source_row(row)
        qtbot.waitUntil(lambda: window.canvas.has_image or "\n\n" in window.canvas._message.get_text(), timeout=5000)
        if not window.canvas.has_image:
            assert model.row(row).path.name == "bad.jpg"
            continue
        assert overlaps(window.canvas) == [], model.row(row).path.name
        badge = window.canvas._caption
        if window.canvas.caption:  # wrapped, never cut
            assert badge.get_text().replace("\n", " ") == window.canvas.caption
        # the worst case: a long out-of-scope banner, a note and the corner text on the same image
        window.canvas.set_caption(BANNER)
        window.canvas._note_text = NOTE
        assert overlaps(window.canvas) == [], model.row(row).path.name
        assert badge.get_text().replace("\n", " ") == BANNER and window.canvas._note.get_text().replace("\n", " ") == NOTE
        window.canvas._note_text = ""


def test_a_long_file_name_keeps_its_start_and_its_extension(qtbot):
    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(520, 420)
    canvas.show()
    qtbot.waitExposed(canvas)
    from cxrviewer.core.io.corner_text import CornerInfo

    canvas.set_image(write_and_read(), overlay=Overlay(None, 0, 1, "", note=NOTE))
    canvas.set_corner_info(CornerInfo("NORMAL/" + LONG, {"format": "JPEG", "original_size": (300, 240)}, index=3, count=41))
    canvas.set_caption("NORMAL: P(PNEUMONIA) 69% < 72%")
    assert overlaps(canvas) == []
    shown = canvas.corners.artists["top_left"].get_text().split("\n")[0]
    assert shown.startswith("NORMAL/person1044") and shown.endswith(".jpeg") and "\u2026" in shown
    # the occlusion map's two-line colour-bar label keeps its units in view (it lost them at 1366 px)
    canvas.set_overlay(Overlay(write_and_read()[::30, ::30], 0.0, 2.0,
                               "Occlusion sensitivity: PNEUMONIA\nlog-odds drop when the patch is greyed, this image's range"))
    assert canvas.cax.get_visible() and overlaps(canvas) == []
    assert "greyed" in canvas.cax.yaxis.label.get_text()  # wrapped to the bar, never dropped


def write_and_read():
    import numpy as np

    return np.linspace(0, 1, 300 * 240, dtype=np.float32).reshape(240, 300)


def test_elide_wrap_and_share_keep_what_matters():
    measure = lambda s: 7.0 * len(s)  # noqa: E731 - a fixed-pitch font, 7 px a character
    assert elide_middle("NORMAL2-IM-0601-0001.jpeg", 1000, measure) == "NORMAL2-IM-0601-0001.jpeg"
    short = elide_middle("NORMAL2-IM-0601-0001.jpeg", 15 * 7, measure)
    assert len(short) == 15 and short.startswith("NORMAL2") and short.endswith("jpeg") and "\u2026" in short
    assert elide_middle("abcdef", 7, measure) == "\u2026"
    lines = wrap_words(BANNER, 200, measure)
    assert all(measure(line) <= 200 for line in lines) and " ".join(lines) == BANNER
    assert "".join(wrap_words("x" * 100, 70, measure)) == "x" * 100
    assert share_width(100, 50, 400, 10) == (100, 50)
    assert share_width(300, 50, 200, 10) == (140, 50)  # the narrow one keeps its need, the other the rest
    assert share_width(300, 300, 210, 10) == (100, 100)
    assert share_width(0, 300, 200, 10) == (0, 200)
