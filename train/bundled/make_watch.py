"""Convert seglearn's smartwatch exercise recordings into the bundled, pickle-free train/bundled/watch.npz.

Run once, by hand, from the repository root:

    python train/bundled/make_watch.py /tmp/dl/seglearn/data/watch_dataset.npy

The input is `seglearn/data/watch_dataset.npy` from the seglearn 1.2.5 wheel (BSD-3-Clause, Copyright (c)
2018 David M. Burns). It is a pickled dict, so this script, and only this script, reads it with
allow_pickle=True: it is a known third-party file read once at conversion time. rnnedge itself loads the
output with allow_pickle=False.

Output arrays (see train/bundled/README.md):
    samples   (S, 6) float32   every recording's 50 Hz samples, concatenated in recording order
    offsets   (R+1,) int64     recording r is samples[offsets[r]:offsets[r+1]]
    labels    (R,) int64       exercise 0..6
    subjects  (R,) int64       study participant 1..10
    sides     (R,) int64       1 right arm, 0 left arm
    feature_names (6,) str, label_names (7,) str   fixed-width unicode, not objects
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "watch.npz"


def convert(src: Path, out: Path = OUT) -> None:
    raw = np.load(src, allow_pickle=True).item()  # third-party pickle, see the module docstring
    recordings = [np.asarray(x, dtype=np.float32) for x in raw["X"]]
    lengths = np.array([len(x) for x in recordings], dtype=np.int64)
    np.savez_compressed(
        out,
        samples=np.concatenate(recordings, axis=0),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        labels=np.asarray(raw["y"], dtype=np.int64),
        subjects=np.asarray(raw["subject"], dtype=np.int64),
        sides=np.asarray(raw["side"], dtype=np.int64),
        feature_names=np.array(raw["X_labels"], dtype=str),
        label_names=np.array(raw["y_labels"], dtype=str),
    )
    print(f"wrote {out}: {len(recordings)} recordings, {lengths.sum()} samples, {out.stat().st_size} bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="seglearn/data/watch_dataset.npy")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    convert(args.src, args.out)
