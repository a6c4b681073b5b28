"""python -m train: the same as rnnedge-train."""

from train.cli import main

raise SystemExit(main())
