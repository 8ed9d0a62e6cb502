"""cxrviewer: review chest radiographs with an AI second reader and its class activation maps."""

from .core.checkpoint import load_model, save_model
from .core.errors import CorruptFileError, CxrError, ModelFileError, RadiographError, UnsupportedFileError
from .core.imaging import Radiograph, load_radiograph
from .core.model import CamClassifier

__version__ = "0.1.0"
__all__ = [
    "CamClassifier", "CorruptFileError", "CxrError", "ModelFileError", "Radiograph", "RadiographError",
    "UnsupportedFileError", "load_model", "load_radiograph", "save_model", "__version__",
]
