"""``python -m rtnb`` is the ``rtnb`` command."""

import sys

from .cli import main

sys.exit(main())
