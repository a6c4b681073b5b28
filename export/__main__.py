"""`python -m export`: the same as `rnnedge-export`."""

import sys

from export.cli import main

sys.exit(main())
