"""``python -m worldloom``: the same CLI as the ``worldloom`` script (for environments without its entry point)."""

import sys

from worldloom.cli import main

sys.exit(main())
