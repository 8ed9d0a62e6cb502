"""``python -m cxrviewer``: the same as the ``cxrviewer`` command."""

import sys

from .cli import main

sys.exit(main())
