"""The precision policies by name (torch-free, so the CLI's parser loads without torch; see :mod:`.precision`)."""

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
