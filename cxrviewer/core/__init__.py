"""Qt-free core of cxrviewer: ``io`` (files -> images), ``model``, ``results`` (results and exports),
``explain``, ``batch`` (the engine), ``training`` and ``site`` (evaluation and calibration); see
docs/architecture.md."""
