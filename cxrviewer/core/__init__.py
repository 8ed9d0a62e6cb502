"""Qt-free core of cxrviewer: loading, model, inference, overlays, exports, training."""
