"""The Qt layer of cxrviewer (the only package that imports PySide6)."""

import sys

from ._preload import preload as _preload

_preload()  # before any PySide6 import: see _preload

# Python hands the GIL between threads every 5 ms by default, so each time the GUI
# thread gives it up (numpy, Agg) it may wait that long for a decoding or batch thread
# to return it. 1 ms keeps drawing responsive while those threads run Python code.
GIL_SWITCH_INTERVAL = 0.001
sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
