"""python -m rnnedge.train: the same as `rnnedge train` (without the training extra: one line saying so, exit 2)."""

import sys

from rnnedge.runtime.umbrella import run_command

sys.exit(run_command("train", sys.argv[1:], "rnnedge train"))
