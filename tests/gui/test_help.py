"""Help: a Keyboard Shortcuts window made from the actions themselves; an About box that fits a 768 px screen
and shows the model card in words."""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialogButtonBox

from cxrviewer.gui import dialogs
from cxrviewer.gui.about import ABOUT_MAX_HEIGHT, about_dialog, about_html
from cxrviewer.gui.shortcuts_dialog import ShortcutsDialog, shortcut_rows


def test_the_shortcuts_window_lists_every_key_of_the_actions(qtbot, monkeypatch, window):
    shown = []
    monkeypatch.setattr(dialogs, "show_dialog", lambda d: shown.append(d))
    window.shortcuts_act.trigger()
    assert len(shown) == 1 and isinstance(shown[0], ShortcutsDialog)
    qtbot.addWidget(shown[0])
    rows = shortcut_rows(window)
    keys = {what: key for _menu, what, key in rows}
    assert keys["Open Folder"] == "Ctrl+O" and keys["Export Overlay"] == "Ctrl+E" and keys["Invert"] == "I"
    assert any(m == "View > Window Presets" and k == "3" for m, _, k in rows)  # submenus by their path
    with_keys = {id(a) for a in [*window.actions(), *window.findChildren(QAction)] if a.shortcuts()}
    assert len(rows) == len(with_keys) and all(k for _, _, k in rows)  # every action with a key, once
    # a new action with a key is listed without any change to the dialog
    window.addAction(extra := QAction("Brand New Thing", window))
    extra.setShortcut("Ctrl+Alt+J")
    assert ("Other", "Brand New Thing", "Ctrl+Alt+J") in shortcut_rows(window)
    text = shown[0].view.toPlainText()
    assert "Ctrl+Shift+E" in text and "Up / Down" in text
    assert shown[0].height() <= 600


def test_about_fits_a_laptop_screen_and_shows_no_raw_metadata(qtbot, window):
    model = window.model
    model.meta["scope"] = {"method": "mahalanobis", "features": "pooled", "threshold": 1.5,
                           "means": {"shape": [2, 512], "float32_base64": "zP3IP5T4FT/ZqAZAXRsTP" * 40},
                           "fitted_on": "4432 training-split images"}
    model.meta["metrics"] = {"validation": {"n": 784, "auroc": 0.999, "sensitivity": 0.95, "specificity": 1.0}}
    model.meta["blob"] = "A" * 500
    model.meta["training"] = {"data": "chest_xray", "command": "train_model.py " + "--flag value " * 60}
    text = about_html(model, None, "cpu", "0")
    assert "float32_base64" not in text and "AAAAAAAA" not in text and "zP3IP5" not in text
    assert "out of scope above 1.5" in text and "fitted on 4432 training-split images" in text
    box = about_dialog(window, "About cxrviewer", text + "<p>more</p>" * 200)  # a card far longer than a screen
    qtbot.addWidget(box)
    box.show()
    qtbot.waitExposed(box)
    assert box.height() <= ABOUT_MAX_HEIGHT
    ok = box.findChild(QDialogButtonBox)
    assert ok.isVisible() and ok.geometry().bottom() <= box.height()  # its OK button on the box, the box on a 768 px screen
