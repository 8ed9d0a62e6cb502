"""cxrviewer: review chest radiographs with an AI second reader and its class activation maps."""

import os

# Thread layout: torch's OpenMP threads sleep instead of spinning while they wait for each other, so
# the decoding threads (and the viewer) get the cores in between. Spinning costs up to 4x the CPU per
# image when decoding runs alongside (benchmarks/README.md). Read once, when torch is first imported;
# a value already set in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_EXPORTS = {
    "load_model": "model.checkpoint", "save_model": "model.checkpoint", "CamClassifier": "model.classifier", "Radiograph": "io.radiograph",
    "load_radiograph": "io.reading", "CorruptFileError": "errors", "CxrError": "errors", "ModelFileError": "errors",
    "RadiographError": "errors", "UnsupportedFileError": "errors",
}


def __getattr__(name: str):
    """The package's public names, imported when first used: ``cxrviewer predict`` answered from the
    results cache never imports torch."""
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".core.{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = [
    "CamClassifier", "CorruptFileError", "CxrError", "ModelFileError", "Radiograph", "RadiographError",
    "UnsupportedFileError", "load_model", "load_radiograph", "save_model", "__version__",
]
