#!/usr/bin/env python
"""Write docs/cli.md from the argument parsers themselves, so the reference cannot drift.

    python docs/gen_cli_reference.py           # rewrite docs/cli.md
    python docs/gen_cli_reference.py --check   # exit 1 if docs/cli.md is not what the parsers give now

``tests/test_cli_reference.py`` runs the check. A new command is one entry in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "cli.md"
WIDTH = 100
"""Help is wrapped at this width whatever the terminal, so the file is the same on every machine."""

#: (command as a user types it, module, function returning its argparse parser, one line on what it is for)
COMMANDS: list[tuple[str, str, str, str]] = [
    ("cxrviewer", "cxrviewer.cli", "build_gui_parser", "Open the viewer (on folders or files)."),
    ("cxrviewer predict", "cxrviewer.cli", "build_predict_parser",
     "Classify files and folders headless into a CSV, optionally with overlay PNGs; also under `torchrun`."),
    ("cxrviewer evaluate", "cxrviewer.site_commands", "build_evaluate_parser",
     "Metrics, plots and heat-map faithfulness of a model on a labelled folder."),
    ("cxrviewer calibrate", "cxrviewer.site_commands", "build_calibrate_parser",
     "A new model file whose threshold, temperature and scope threshold fit a site's labelled folder."),
    ("cxrviewer serve", "cxrviewer.serve", "build_serve_parser",
     "A DICOM node: classify received radiographs, send the verdict SR and heat-map Secondary Capture to a PACS."),
    ("python train_model.py", "cxrviewer.core.training.train", "get_args_parser",
     "Train a model file (also under `torchrun`)."),
    ("python -m cxrviewer.core.training.study", "cxrviewer.core.training.study", "get_args_parser",
     "Train and score one row of the recipe study (docs/recipe-study.md)."),
    ("python -m cxrviewer.core.training.protocol", "cxrviewer.core.training.protocol", "get_args_parser",
     "Score model files on the selection protocol (docs/selection-protocol.md)."),
    ("python -m cxrviewer.core.training.explanations", "cxrviewer.core.training.explanations", "get_args_parser",
     "Audit an existing model file's heat maps and record the result in its metadata."),
    ("python -m cxrviewer.core.training.parity", "cxrviewer.core.training.parity", "get_args_parser",
     "Record an existing model file's reduced-precision label agreement in its metadata."),
    ("python -m cxrviewer.core.training.scope_fit", "cxrviewer.core.training.scope_fit", "get_args_parser",
     "Give an existing model file the scope score's statistics (a new file; the source is untouched)."),
]


def _anchor(command: str) -> str:
    """GitHub's heading anchor for ``command`` (lower case, punctuation dropped, spaces to hyphens)."""
    kept = "".join(c for c in command.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _help_text(command: str, module: str, function: str) -> str:
    parser: argparse.ArgumentParser = getattr(importlib.import_module(module), function)()
    parser.prog = command
    base = parser.formatter_class
    parser.formatter_class = lambda prog, **kw: base(prog, width=WIDTH, **kw)  # type: ignore[misc]
    return parser.format_help().rstrip() + "\n"


def render() -> str:
    """The whole of docs/cli.md as the parsers define it now."""
    os.environ.pop("FORCE_COLOR", None)  # argparse may colour help (Python 3.14); the file is plain text
    os.environ["NO_COLOR"] = "1"
    lines = ["# Command-line reference", "",
             "Generated from the argument parsers by `python docs/gen_cli_reference.py`; do not edit by hand",
             "(`tests/test_cli_reference.py` fails when this file and the parsers disagree).", ""]
    lines += [f"- [`{command}`](#{_anchor(command)}): {purpose}" for command, _, _, purpose in COMMANDS]
    for command, module, function, purpose in COMMANDS:
        lines += ["", f"## {command}", "", purpose, "", "```text", _help_text(command, module, function).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/cli.md from the argument parsers.")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when docs/cli.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run python docs/gen_cli_reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # the checkout's package, whatever is installed
    sys.exit(main())
