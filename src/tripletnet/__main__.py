"""``python -m tripletnet``: the same as the ``tripletnet`` command."""

import sys

from .cli import main

sys.exit(main())
