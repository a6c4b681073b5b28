"""PyTorch module -> canonical tensors: all knowledge of how torch names its parameters sits here.

Canonical names (runtime.spec.tensor_shapes): embedding.weight; layers.{l}.{fwd|bwd}.{w_ih,w_hh,b_ih,b_hh}
in PyTorch's own gate order (lstm i f g o, gru r z n); head.weight, head.bias. Reordering gates for
ONNX happens in export/onnx_graphs.py, nowhere else.
"""

from __future__ import annotations

import numpy as np

from runtime import spec as specs


def canonical_tensors(model) -> dict[str, np.ndarray]:
    """float32 numpy copies of a RecurrentModel's parameters under their canonical names."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}
    if model.spec["input"]["kind"] == "tokens":
        out["embedding.weight"] = sd["embedding.weight"]
    for l, layer in enumerate(model.spec["layers"]):
        for d, suffix in (("fwd", ""), ("bwd", "_reverse"))[: specs.directions(layer)]:
            for ours, theirs in (("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh")):
                out[f"layers.{l}.{d}.{ours}"] = sd[f"layers.{l}.{theirs}_l0{suffix}"]
    out["head.weight"] = sd["head.weight"]
    out["head.bias"] = sd["head.bias"]
    return out
