"""Convert the Mauna Loa weekly CO2 series shipped in statsmodels 0.15.0 into train/bundled/co2.npz.

Run once (see train/bundled/README.md, section "co2"):

    pip download --no-deps statsmodels==0.15.0 -d /tmp/sm
    unzip -q /tmp/sm/statsmodels-0.15.0-*.whl 'statsmodels/datasets/co2/*' -d /tmp/sm/x
    python train/bundled/make_co2.py /tmp/sm/x/statsmodels/datasets/co2/co2.csv

`co2.csv` is a plain two-column CSV (`date` as YYYYMMDD, `co2` in ppmv, empty where the week has no value);
this script reads it with the csv module and does not import statsmodels. The weeks are consecutive
Saturdays; the 59 empty weeks are filled by linear interpolation between the nearest measured weeks on either
side (the first and last weeks are measured), and `observed` records which weeks were measured.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "co2.npz"
EXPECTED_WEEKS = 2284  # 1958-03-29 to 2001-12-29, every Saturday
EXPECTED_MISSING = 59
FIRST = [316.1, 317.3, 317.6, 317.5, 316.4, 316.9]  # the first six weeks of the file


def read_series(path: Path) -> tuple[list[dt.date], np.ndarray]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if rows[0] != ["date", "co2"]:
        sys.exit(f"{path}: unexpected header {rows[0]}")
    dates = [dt.datetime.strptime(r[0], "%Y%m%d").date() for r in rows[1:]]
    values = np.array([float(r[1]) if r[1].strip() else np.nan for r in rows[1:]], dtype=np.float64)
    return dates, values


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit(__doc__)
    dates, values = read_series(Path(argv[0]))
    observed = ~np.isnan(values)
    if len(values) != EXPECTED_WEEKS or int((~observed).sum()) != EXPECTED_MISSING:
        sys.exit(f"unexpected series: {len(values)} weeks, {int((~observed).sum())} missing")
    if any((b - a).days != 7 for a, b in itertools.pairwise(dates)) or not (observed[0] and observed[-1]):
        sys.exit("expected consecutive weeks with the first and last measured")
    if not np.allclose(values[:6], FIRST):
        sys.exit(f"unexpected first values {values[:6]}")
    weeks = np.arange(len(values))
    filled = np.interp(weeks, weeks[observed], values[observed])  # linear across each gap
    np.savez_compressed(
        OUT,
        co2=filled.astype(np.float32),  # ppmv, weekly, gaps linearly interpolated
        observed=observed,  # False where the week was interpolated
        start=np.array(dates[0].isoformat()),  # 1958-03-29, a Saturday
        interval_days=np.array(7, dtype=np.int64),
    )
    print(f"wrote {OUT}: {len(filled)} weeks {dates[0]}..{dates[-1]}, {int((~observed).sum())} interpolated, "
          f"{filled.min():.1f}..{filled.max():.1f} ppmv, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
