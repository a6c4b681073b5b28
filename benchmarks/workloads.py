"""What the benchmarks share: the seeded dense inputs of their workloads (kws: 40 features, har: 6)."""

from __future__ import annotations

import numpy as np


def dense_inputs(*features: int, seed: int = 1234) -> list[dict]:
    """Dense input specs of these widths with a non-trivial normalisation (so every engine does the same input
    work), drawn in order from one seeded generator."""
    rng = np.random.default_rng(seed)
    return [{"kind": "dense", "features": f, "mean": rng.normal(0.0, 1.0, f).round(3).tolist(),
             "std": rng.uniform(0.5, 2.0, f).round(3).tolist()} for f in features]
