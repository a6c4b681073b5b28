import sys

from rnnedge.runtime.cli import main

sys.exit(main())
