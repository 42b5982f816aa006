"""``python -m distil <command>``: the ``distil`` command (see `distil.cli`)."""

import sys

from distil.cli import main

sys.exit(main())
