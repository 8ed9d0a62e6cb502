"""cxrviewer: review chest radiographs with an AI second reader and its class activation maps."""

import os

# Thread layout: torch's OpenMP threads sleep instead of spinning while they wait for each other, so
# the decoding threads (and the viewer) get the cores in between. Spinning costs up to 4x the CPU per
# image when decoding runs alongside (benchmarks/README.md). Read once, when torch is first imported;
# a value already set in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .core.errors import CorruptFileError, CxrError, ModelFileError, RadiographError, UnsupportedFileError
from .core.io.radiograph import Radiograph
from .core.io.reading import load_radiograph
from .core.model.checkpoint import load_model, save_model
from .core.model.classifier import CamClassifier

__version__ = "0.1.0"
__all__ = [
    "CamClassifier", "CorruptFileError", "CxrError", "ModelFileError", "Radiograph", "RadiographError",
    "UnsupportedFileError", "load_model", "load_radiograph", "save_model", "__version__",
]
