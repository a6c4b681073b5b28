"""PyTorch module -> canonical tensors: all knowledge of how torch names its parameters sits here.

Canonical names (runtime.spec.tensor_shapes): embedding.weight; layers.{l}.{fwd|bwd}.{w_ih,w_hh,b_ih,b_hh}
in PyTorch's own gate order (lstm i f g o, gru r z n), and for a layer with ONNX extensions p (peepholes,
[p_i; p_f; p_o]), h0 and c0 (initial state); head.hidden.{k}.weight, head.hidden.{k}.bias for each hidden head
layer (a RecurrentModel's own keys, train/model.py Head); head.weight, head.bias. Reordering gates for ONNX happens in
export/onnx_graphs.py, nowhere else.
"""

from __future__ import annotations

import numpy as np

from rnnedge.runtime import spec as specs

# canonical tensor suffix -> RecurrentModel parameter name before its "_l0" (train/model.py)
_TORCH_NAMES = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh",
                "p": "peephole", "h0": "h0", "c0": "c0"}


def torch_names(spec: dict) -> dict[str, str]:
    """Canonical name -> RecurrentModel state_dict key, for every tensor of spec.tensor_shapes (in its order).

    A layer's backward direction carries torch's "_reverse" suffix; a reverse layer's one direction is "fwd",
    without it.
    """
    names = {}
    for name in specs.tensor_shapes(spec):
        if name.startswith("layers."):
            _, l, d, key = name.split(".")
            names[name] = f"layers.{l}.{_TORCH_NAMES[key]}_l0{'_reverse' if d == 'bwd' else ''}"
        else:
            names[name] = name
    return names


def canonical_tensors(model) -> dict[str, np.ndarray]:
    """float32 numpy copies of a RecurrentModel's parameters under their canonical names."""
    sd = model.state_dict()
    return {ours: sd[theirs].detach().cpu().numpy().astype(np.float32)
            for ours, theirs in torch_names(model.spec).items()}
