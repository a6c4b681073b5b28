"""`python -m rnnedge.export`: the same as `rnnedge export` (without the training extra: one line saying so, exit 2)."""

import sys

from rnnedge.runtime.umbrella import run_command

sys.exit(run_command("export", sys.argv[1:], "rnnedge export"))
