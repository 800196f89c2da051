"""``python -m segtrack``: the same as the ``segtrack`` command."""

import sys

from segtrack.cli import main

sys.exit(main())
