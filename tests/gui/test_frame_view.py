"""The viewer with a frame-normalising model: the map covers the kept box only, nothing is drawn over the frame."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cxrviewer import save_model
from cxrviewer.core.explain.on_demand import MethodMap
from cxrviewer.core.io.frame import box_in
from tests.conftest import make_tiny_model
from tests.gui.helpers import open_and_wait


def grey(rgba: np.ndarray) -> np.ndarray:
    """Per pixel: R == G == B (nothing coloured)."""
    return (rgba[..., 0] == rgba[..., 1]) & (rgba[..., 1] == rgba[..., 2])


@pytest.fixture
def framed_folder(tmp_path):
    """One 240 x 200 image behind a black frame on the left (20%) and the top (5%) only."""
    rng = np.random.default_rng(3)
    image = np.zeros((240, 200), np.float32)
    image[12:, 40:] = np.clip(0.4 + 0.1 * rng.standard_normal((228, 160)), 0, 1)
    folder = tmp_path / "framed"
    folder.mkdir()
    Image.fromarray((image * 255).round().astype(np.uint8)).save(folder / "framed.png")
    return folder


def test_the_canvas_draws_the_map_over_the_kept_box_only(qtbot, make_window, framed_folder, tmp_path):
    model_file = save_model(make_tiny_model(threshold=0.5, temperature=1.0, frame_normalize=True), tmp_path / "f.safetensors")
    window = make_window(model_file)
    open_and_wait(qtbot, window, [framed_folder])
    window.results_view.select_source_row(0)
    qtbot.waitUntil(lambda: window.canvas.has_image and window.canvas._overlay is not None, timeout=5000)
    result = window.current_result()
    assert result.kept_box is not None and window.canvas._overlay.box == result.kept_box

    for zoomed in (False, True):  # the fitted screen-size copy, then the full image
        if zoomed:
            window.canvas.zoom(1.5)
        window.canvas.rgba()
        shown = np.asarray(window.canvas._image.get_array())
        t, b, left, r = box_in(result.kept_box, shown.shape[:2])
        assert grey(shown[:, :left]).all() and grey(shown[:t]).all()  # nothing over the frame
        assert (~grey(shown[t:, left:])).mean() > 0.9                 # the map over the rest

    seen = []
    window.canvas.hovered.connect(seen.append)
    inside = SimpleNamespace(inaxes=window.canvas.ax, xdata=150.0, ydata=150.0)
    on_frame = SimpleNamespace(inaxes=window.canvas.ax, xdata=10.0, ydata=150.0)
    window.canvas._report_hover(inside)
    window.canvas._report_hover(on_frame)
    assert "CAM" in seen[0] and "CAM" not in seen[1] and "nan" not in seen[1]


def test_an_on_demand_map_keeps_its_box():
    from cxrviewer.gui.display import method_overlay

    found = MethodMap("occlusion", "Occlusion", "log-odds drop", True, "PNEUMONIA",
                      np.linspace(-1, 1, 49, dtype=np.float32).reshape(7, 7), (0.05, 1.0, 0.2, 1.0))
    assert method_overlay(found).box == (0.05, 1.0, 0.2, 1.0)
