"""Yearly sunspot counts as a raw-scale forecasting data set (the README's int8 saturation figures).

Not bundled: the counts ship in statsmodels' wheel (public domain, `statsmodels/datasets/sunspots/sunspots.csv`,
1700-2008, 309 years); this reads that CSV with the csv module (statsmodels is not imported) and writes an .npz
that `rnnedge-train` takes: windows of WINDOW years every STRIDE years, X the count of each year (raw, (N, T, 1))
and y the next year's count (raw, not normalised), in time order, for `--split time`.

    pip download --no-deps statsmodels==0.15.0 -d /tmp/sm
    unzip -q /tmp/sm/statsmodels-0.15.0-*.whl 'statsmodels/datasets/sunspots/*' -d /tmp/sm/x
    python -m benchmarks.make_sunspots /tmp/sm/x/statsmodels/datasets/sunspots/sunspots.csv sunspots.npz
"""

from __future__ import annotations

import csv
import sys

import numpy as np

WINDOW, STRIDE = 24, 2


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], newline="") as f:
        rows = list(csv.reader(f))[1:]  # header: "YEAR","SUNACTIVITY"
    counts = np.array([float(row[1]) for row in rows], np.float32)
    starts = range(0, len(counts) - WINDOW - 1, STRIDE)
    X = np.stack([counts[s : s + WINDOW] for s in starts])[..., None]
    y = np.stack([counts[s + 1 : s + WINDOW + 1] for s in starts])[..., None]
    np.savez(argv[1], X=X, y=y)
    print(f"wrote {argv[1]}: {len(X)} windows of {WINDOW} years, counts {counts.min():g}..{counts.max():g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
