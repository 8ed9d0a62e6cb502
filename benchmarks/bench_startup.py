"""Start-up benchmark: how soon the command and the window answer, per precision, on this CPU.

    python benchmarks/bench_startup.py [--repeat 3] [--precisions float32,int8,auto] [--out FILE]

Rows (best of ``--repeat`` fresh processes, each timed from just before it is started):

- ``cxrviewer --help``: wall time and peak RSS of the process;
- ``cxrviewer predict`` of one sample image (whole process, CSV written), per precision;
- the viewer launched on ``resources/samples`` as ``cxrviewer resources/samples`` runs it
  (``cli.main``, temporary settings holding the precision): seconds until its window is
  exposed (mapped) and until the first verdict is in the table, per precision.

The window rows need a display (``QT_QPA_PLATFORM=offscreen`` by default, or run under
``xvfb-run`` with ``--platform xcb`` for a real X server). The first line names the CPU,
the features the precision policy reads and the precisions it runs natively.
Targets (issue 31): --help <= 0.3 s and <= 100 MB; window <= 1.0 s; first verdict <= 2 s;
``predict`` of one image <= 2.0 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "resources" / "samples"

CHILD = r"""
import json, os, sys, time
launched = float(sys.argv[1])
from PySide6.QtCore import QSettings
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[3])
from cxrviewer.gui import app
seen = {}
real_create = app.create_window

def create_window(paths=None, **kw):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from cxrviewer.gui.results_model import DONE
    w = real_create(paths, **kw)
    timer = QTimer(interval=1)

    def poll():
        now = time.time() - launched
        h = w.windowHandle()
        if "window" not in seen and h is not None and h.isExposed():
            seen["window"] = now
            seen["torch_at_window"] = "torch" in sys.modules
        if "verdict" not in seen and any(r.status == DONE for r in w.results_model._rows):
            seen["verdict"] = now
            seen["precision"] = w.precision_text()
        if ("window" in seen and "verdict" in seen) or now > 120:
            timer.stop()
            print(json.dumps(seen), flush=True)
            QApplication.instance().quit()

    timer.timeout.connect(poll)
    timer.start()
    return w

app.create_window = create_window
from cxrviewer.cli import main
sys.exit(main([sys.argv[2]]))
"""


def cpu_line() -> str:
    """The CPU, its features and its native reduced precisions (imports torch: call it after the timed rows)."""
    from cxrviewer.core.model import precision as prec

    return prec.cpu_description()


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out


def window_run(precision: str, platform: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="cxr-startup-") as tmp:
        ini = Path(tmp) / "cxrviewer" / "cxrviewer.ini"
        ini.parent.mkdir(parents=True)
        ini.write_text(f"[model]\nprecision={precision}\n")
        _, _, out = timed([sys.executable, "-c", CHILD, repr(time.time()), str(SAMPLES), tmp],
                          env={"QT_QPA_PLATFORM": platform})
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes per row, the best counts (default: 3)")
    ap.add_argument("--precisions", default="", help="comma-separated (default: float32, the native ones, auto)")
    ap.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
                    help="Qt platform of the window rows (default: offscreen; xcb under xvfb-run)")
    ap.add_argument("--skip-window", action="store_true", help="skip the window rows")
    ap.add_argument("--out", default="-", help="markdown file to write (default '-': print only)")
    args = ap.parse_args(argv)

    # first, while this process is small: Linux keeps a forked child's peak RSS across exec
    rows: list[tuple[str, str]] = []
    best = min(timed([sys.executable, "-m", "cxrviewer", "--help"])[:2] for _ in range(args.repeat))
    rows.append(("`cxrviewer --help`", f"{best[0]:.2f} s, peak {best[1]:.0f} MB"))

    sys.path.insert(0, str(ROOT))
    import torch

    from cxrviewer.core.model import precision as prec

    precisions = ([prec.check_policy(p) for p in args.precisions.split(",") if p.strip()] if args.precisions
                  else ["float32", *prec.native_precisions(torch.device("cpu")), "auto"])
    sample = sorted(SAMPLES.glob("*.jpeg"))[0]
    with tempfile.TemporaryDirectory(prefix="cxr-startup-") as tmp:
        for p in precisions:
            t = min(timed([sys.executable, "-m", "cxrviewer", "predict", str(sample), "--csv", f"{tmp}/one.csv",
                           "--overwrite", "--precision", p, "--no-cache"])[0] for _ in range(args.repeat))
            rows.append((f"`cxrviewer predict` one image, {p} (whole process, classified: `--no-cache`)", f"{t:.2f} s"))
            t = min(timed([sys.executable, "-m", "cxrviewer", "predict", str(sample), "--csv", f"{tmp}/one.csv",
                           "--overwrite", "--precision", p])[0] for _ in range(args.repeat))
            rows.append((f"`cxrviewer predict` one image, {p} (whole process, rerun answered by the results cache)",
                         f"{t:.2f} s"))
    if not args.skip_window:
        for p in precisions:
            runs = [window_run(p, args.platform) for _ in range(args.repeat)]
            runs = [r for r in runs if "window" in r] or [{}]
            w = min(r.get("window", float("nan")) for r in runs)
            v = min(r.get("verdict", float("nan")) for r in runs)
            torch_first = any(r.get("torch_at_window") for r in runs)
            rows.append((f"viewer on resources/samples, {p}: window exposed after launch", f"{w:.2f} s"
                         + (" (torch already imported)" if torch_first else "")))
            rows.append((f"viewer on resources/samples, {p}: first verdict in the table after launch",
                         f"{v:.2f} s ({runs[0].get('precision', '?')})"))
    lines = [f"Command: `python benchmarks/bench_startup.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}` "
             f"({datetime.date.today().isoformat()}); best of {args.repeat}", "", f"CPU: {cpu_line()}", "",
             "| Start-up row | Result |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        Path(args.out).write_text("# Start-up benchmark\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
