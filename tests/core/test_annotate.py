"""Export captions readable at any size, measurements and corner text burned in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrviewer.core.io.radiograph import Radiograph
from cxrviewer.core.results.annotate import MIN_FONT_PX, Annotations, burn_in, font, font_px, wrap
from cxrviewer.core.results.file_result import FileResult
from cxrviewer.core.results.measurements import Calibration, Measurement
from cxrviewer.core.results.overlay import export_caption, overlay_image, render_export

LONG_NAME = "cxr-resnet18-224-kermany-pneumonia-recipe-b-seed-3-temperature-scaled"


def _radiograph(w, h):
    yy, xx = np.mgrid[0:h, 0:w]
    return Radiograph(Path("x.png"), (0.3 + 0.4 * np.sin(xx / 17.0) * np.cos(yy / 23.0)).astype(np.float32) ** 2,
                      {"format": "PNG", "original_size": (w, h)})


def _result(w, h):
    rng = np.random.default_rng(1)
    return FileResult(path=Path("x.png"), label="PNEUMONIA", predicted="PNEUMONIA",
                      probs={"NORMAL": 0.03, "PNEUMONIA": 0.97}, logits=np.array([-1.0, 2.5], np.float32),
                      cams=rng.normal(size=(2, 7, 7)).astype(np.float32), image_size=(w, h))


def _caption_rows(w, h, **kwargs):
    """How many rows at the bottom left the caption's dark box covers, and the caption's lines."""
    rad, r = _radiograph(w, h), _result(w, h)
    plain = overlay_image(rad, r).astype(int)
    out = np.asarray(render_export(rad, r, model_name=LONG_NAME, **kwargs)).astype(int)
    size = font_px(w, h)
    x = max(2, size // 2) - 1  # inside the caption's box, left of its text
    rows = int(((plain[h // 2:, x] - out[h // 2:, x]).sum(axis=1) > 30).sum())
    lines = wrap(export_caption(r, "CAM PNEUMONIA, image scale", LONG_NAME), font(size), w - 2 * max(2, size // 2))
    return rows, lines, size


@pytest.mark.parametrize("w, h", [(224, 224), (1841, 1500)])
def test_caption_is_legible_and_carries_the_full_model_name(w, h):
    rows, lines, size = _caption_rows(w, h)
    assert size >= MIN_FONT_PX and size >= 0.02 * min(w, h)
    assert " ".join(lines).replace(" ", "") == export_caption(_result(w, h), "CAM PNEUMONIA, image scale", LONG_NAME).replace(" ", "")
    assert LONG_NAME in " ".join(lines) or LONG_NAME in "".join(lines)  # never cut, at most wrapped
    assert not any("…" in line for line in lines)
    assert rows >= len(lines) * size  # every line drawn, at full size
    if w == 224:
        assert len(lines) >= 2  # wrapped to fit the narrow image
    else:
        assert len(lines) <= 2 and size >= 30


def test_wrap_breaks_a_word_wider_than_the_line_without_losing_characters():
    lines = wrap("p=0.97 " + LONG_NAME, font(12), 60)
    assert "".join(lines).replace(" ", "") == ("p=0.97" + LONG_NAME)
    assert all(font(12).getlength(line) <= 60 for line in lines)


def test_measurements_are_drawn_at_their_image_pixels_and_scaled():
    rad, r = _radiograph(224, 224), _result(224, 224)
    line = Measurement("distance", ((100, 200), (300, 200)))  # in a 448 px wide original: x 50..150, y 100 here
    a = Annotations((line,), Calibration(0.5, 0.5, "Pixel Spacing"), full_width=448)
    out = np.asarray(render_export(rad, r, annotations=a)).astype(int)
    plain = np.asarray(render_export(rad, r)).astype(int)
    changed = np.abs(out - plain).sum(axis=2) > 60
    assert changed[100, 60:140].all()  # the line
    assert not changed[100 + 6:140, 60:140].any() and not changed[60:100 - 16, 20:40].any()
    yellow = out[100, 60:140]
    assert (yellow[:, 0] > 200).all() and (yellow[:, 2] < 90).all()


def test_burn_in_draws_corner_text_and_leaves_an_empty_request_alone():
    from PIL import Image

    grey = Image.fromarray(np.full((300, 400, 3), 128, np.uint8), "RGB")
    assert burn_in(grey, Annotations()) is grey
    corners = {"top_left": ["DOE, JANE"], "bottom_right": ["Image 3 of 9"]}
    out = np.asarray(burn_in(grey, Annotations(corners=corners))).astype(int)
    assert (out[2:14, 2:60] != 128).any() and (out[-14:-2, -60:-2] != 128).any()
    assert (out[140:160, 150:250] == 128).all()
