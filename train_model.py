#!/usr/bin/env python
"""Train a cxrviewer model: ``python train_model.py --data DIR --out resources/models/NAME.safetensors``.

Thin wrapper over :mod:`cxrviewer.core.training.train` (``get_args_parser``, ``main``);
also runs under ``torchrun --nproc_per_node=N train_model.py ...``.
"""

import sys

from cxrviewer.core.errors import CxrError
from cxrviewer.core.training.train import get_args_parser, main

if __name__ == "__main__":
    args = get_args_parser().parse_args()
    try:
        main(args)
    except CxrError as e:
        sys.exit(f"train_model.py: error: {e}")
