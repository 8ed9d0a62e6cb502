"""cxrviewer: review chest radiographs with an AI second reader and its class activation maps.

Importing the package is cheap: the public names below load torch only when first used
(``--help``, ``--version`` and the viewer's first paint never import torch).
"""

import importlib
import os

# Thread layout: torch's OpenMP threads sleep instead of spinning while they wait for each other, so
# the decoding threads (and the viewer) get the cores in between. Spinning costs up to 4x the CPU per
# image when decoding runs alongside (benchmarks/README.md). Read once, when torch is first imported;
# a value already set in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
_LAZY = {
    "load_model": ".core.model.checkpoint", "save_model": ".core.model.checkpoint",
    "CorruptFileError": ".core.errors", "CxrError": ".core.errors", "ModelFileError": ".core.errors",
    "RadiographError": ".core.errors", "UnsupportedFileError": ".core.errors",
    "Radiograph": ".core.io.radiograph", "load_radiograph": ".core.io.reading",
    "CamClassifier": ".core.model.classifier",
}
__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    """The public names, imported from their modules on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
