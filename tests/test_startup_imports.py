"""Start-up stays light: the CLI's help, version and argument errors, and the viewer's first paint, never import torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "onnxruntime")

CLI = """
import json, runpy, sys
heavy = set(json.loads(sys.argv[2]))
sys.argv = ["cxrviewer", *json.loads(sys.argv[1])]
try:
    runpy.run_module("cxrviewer", run_name="__main__")
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "heavy": sorted({m.split(".")[0] for m in sys.modules} & heavy)}))
"""

PAINT = """
import json, sys, threading
from cxrviewer.gui import model_loader
gate = threading.Event()
model_loader.load_model = lambda path: gate.wait(60)  # the model stays on its way while we look
from cxrviewer.gui import app
from cxrviewer.gui.main_window import MainWindow
from PySide6.QtCore import QEventLoop, QTimer
qapp = app._application()
window = MainWindow()
app.fit_window(window)
painted = []
window.show()
loop = QEventLoop()
QTimer.singleShot(0, lambda: (painted.append(window.isVisible()), loop.quit()))
loop.exec()
qapp.processEvents()
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[1])))
print(json.dumps({"painted": painted, "heavy": heavy, "label": window.model_label.text()}))
gate.set()
window.close()
window.tasks.stop() if hasattr(window.tasks, "stop") else None
"""


def _run(code: str, *args: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert lines, out.stderr[-2000:]
    return json.loads(lines[-1])


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0), (["--version"], 0), (["predict", "--help"], 0), (["--no-such-option"], 2),
    (["predict"], 2),  # missing arguments: a one-line usage error
])
def test_cli_help_version_and_argument_errors_never_import_torch(argv, code):
    got = _run(CLI, json.dumps(argv), json.dumps(HEAVY))
    assert got["code"] == code
    assert got["heavy"] == [], f"{argv} imported {got['heavy']}"


def test_import_cxrviewer_is_light_and_its_public_names_still_resolve():
    got = _run("import json, sys, cxrviewer; before = 'torch' in sys.modules; cxrviewer.CamClassifier; "
               "print(json.dumps({'before': before, 'after': 'torch' in sys.modules, 'v': cxrviewer.__version__}))")
    assert got == {"before": False, "after": True, "v": "0.1.0"}


def test_the_window_paints_before_torch_is_imported_and_says_the_model_is_loading():
    got = _run(PAINT, json.dumps(HEAVY), env={"QT_QPA_PLATFORM": "offscreen"})
    assert got["painted"] == [True]
    assert got["heavy"] == [], f"the first paint imported {got['heavy']}"
    assert got["label"].startswith("Loading ")  # a visible state, not "No model"


def test_the_torch_free_method_catalog_matches_the_methods():
    from cxrviewer.core.explain.catalog import CATALOG
    from cxrviewer.core.explain.methods import METHODS

    assert list(CATALOG) == list(METHODS)
    for name, make in METHODS.items():
        m, info = make(), CATALOG[name]
        assert (m.name, m.label, m.short, m.units, m.additive) == (info.name, info.label, info.short, info.units,
                                                                   info.additive)
