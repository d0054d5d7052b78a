"""``python -m assembled_lightning.cli``: the console script."""

import sys

from . import main

sys.exit(main())
