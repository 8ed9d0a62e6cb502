"""What the model said, and what leaves the app: per-file results, their columns, CSV / PNG / DICOM
exports, overlays and burned-in text, measurements, and the reader study with its session files."""
