"""Training: ``train_model.py`` runs :func:`cxrviewer.core.training.train.main`."""

import sys
from collections.abc import Callable, Sequence

from ..errors import CxrError


class TrainingError(CxrError):
    """A training run that cannot start (bad data folder, weights unavailable, ...)."""


def run_cli(name: str, parser, main: Callable, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` and run ``main``; a :class:`CxrError` is one line ``NAME: error: ...``, exit 1."""
    try:
        main(parser.parse_args(argv))
    except CxrError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 1
    return 0
