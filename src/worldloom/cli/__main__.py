"""``python -m worldloom.cli`` (also what ``torchrun -m worldloom.cli`` runs)."""

import sys

from . import main

sys.exit(main())
