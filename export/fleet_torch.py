"""rnnedge eval --reference model.pt: the PyTorch model itself as the reference (needs the `train` extra).

Imported only when the reference is a PyTorch file. The checkpoint is read as rnnedge export reads it
(train/checkpoint.py: torch.load(weights_only=True), its spec checked against its tensors); its outputs on a stream
are what export compares a stepped artifact with (export/parity.py): forward's answer had the stream ended at each
step for a model that streams, forward on the whole sequence for one that cannot. Beside them, the same model in
float64 on the same stream gives PyTorch float32's own error there, the floor of the float rule (export/rules.py).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from rnnedge.export import parity
from rnnedge.runtime.spec import can_stream
from rnnedge.train.checkpoint import load_checkpoint

PRECISION = "pytorch"  # what the report calls this reference's precision


class TorchReference:
    """A checkpoint's model, answering for a stream as fleet.outputs_of answers for a weight file."""

    precision = PRECISION

    def __init__(self, path: str):
        # one thread: a small recurrent step is too small to split (train/loop.py TrainConfig.threads), and Ray
        # runs one evaluator per CPU
        torch.set_num_threads(1)
        self.model, _ = load_checkpoint(path)
        self.double = copy.deepcopy(self.model).double()
        self.spec = self.model.spec
        self.dense = self.spec["input"]["kind"] == "dense"

    def outputs(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """(B, T, out) float32 outputs for X (B, T, F) or (B, T), and the max abs difference of the float64 model's."""
        run = parity.torch_every_prefix if can_stream(self.spec) else parity.torch_sequence
        with torch.no_grad():
            got = run(self.model, X)
            exact = run(self.double, X.astype(np.float64) if self.dense else X)
        return got, float(np.abs(got.astype(np.float64) - exact).max()) if got.size else 0.0
