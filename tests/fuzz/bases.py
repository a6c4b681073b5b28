"""The files the mutations start from: small real weight and vectors files made in-process by the project's own
export path (tests/helpers.py, export/vectors.py), once per process, with the outputs each gives on a fixed input.

Every precision, both input kinds, every cell family and a head stack appear at least once, so a mutation can reach
every branch of the readers' checks.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass

import numpy as np

# (name, precision, spec keywords for tests.helpers.make_spec): small, so a case costs little, but with every tensor
# kind a reader checks (embedding, per-row scales, int8 multipliers and shifts, head layers)
BASES = (
    ("f32-dense-lstm", "f32", {"cell": "lstm", "kind": "dense", "activation": "softmax"}),
    ("f32-tokens-gru-stack", "f32", {"cell": "gru", "kind": "tokens", "head_hidden": [(6, "relu")],
                                     "activation": "log_softmax"}),
    ("int8w-dense-rnn-stack", "int8w", {"cell": "rnn_tanh", "layers": 2, "kind": "dense", "on": "last_step",
                                        "head_hidden": [(5, "tanh")], "activation": "sigmoid"}),
    ("int8w-tokens-lstm", "int8w", {"cell": "lstm", "kind": "tokens", "activation": "none"}),
    ("int8-dense-gru-stack", "int8", {"cell": "gru", "kind": "dense", "head_hidden": [(6, "relu")],
                                      "activation": "softmax"}),
    ("int8-tokens-rnn-relu", "int8", {"cell": "rnn_relu", "kind": "tokens", "on": "last_step",
                                      "activation": "none"}),
    ("int8-dense-lstm-2", "int8", {"cell": "lstm", "layers": 2, "kind": "dense", "activation": "softmax"}),
    # ~280 KB: large enough that reading it whole more than twice shows above the fixed overhead
    ("f32-dense-lstm-wide", "f32", {"cell": "lstm", "kind": "dense", "hidden": 128, "activation": "none"}),
)
SIZES = {"hidden": 8, "features": 4, "vocab": 16, "embed_dim": 5, "out": 3}
VECTOR_STEPS = 6
INPUT_SEED = 5  # the fixed input every accepted mutation is run on


@dataclass(frozen=True)
class Base:
    name: str
    precision: str
    weights: bytes  # the weight file's bytes
    vectors: bytes  # its golden vectors file's bytes
    X: np.ndarray  # the fixed input (batch 2, 7 steps)
    Y: np.ndarray  # the original model's outputs on X (Model.run)
    vectors_read: tuple  # read_vectors of the original vectors file: (metadata, tensors)


@functools.lru_cache(maxsize=1)
def bases() -> tuple[Base, ...]:
    """Every base, built once per process (about a second; int8 calibrates on random streams)."""
    from rnnedge.export.vectors import read_vectors, write_vectors
    from rnnedge.runtime.model import load
    from tests.helpers import make_model, make_spec, random_inputs, write_artifact

    out = []
    with tempfile.TemporaryDirectory(prefix="rnnedge-fuzz-bases-") as tmp:
        for seed, (name, precision, kw) in enumerate(BASES):
            spec = make_spec(**{**SIZES, **kw})
            weights = write_artifact(make_model(spec, seed), os.path.join(tmp, f"{name}.safetensors"), precision)
            vectors = os.path.join(tmp, f"{name}.vectors.safetensors")
            write_vectors(vectors, weights, random_inputs(spec, 1, VECTOR_STEPS, seed=seed)[0], steps=VECTOR_STEPS)
            model = load(weights)
            X = random_inputs(model.spec, 2, 7, seed=INPUT_SEED)
            with open(weights, "rb") as f, open(vectors, "rb") as g:
                out.append(Base(name, precision, f.read(), g.read(), X, model.run(X), read_vectors(vectors)))
    return tuple(out)


def base(name: str) -> Base:
    for b in bases():
        if b.name == name:
            return b
    raise KeyError(f"no base file {name!r}; bases: {', '.join(b.name for b in bases())}")
