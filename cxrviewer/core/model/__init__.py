"""The classifier and its files: CamClassifier, model files (safetensors + metadata) and their rewrites,
inference precision, and the scope rules that say which images the model may answer."""
