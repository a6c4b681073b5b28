"""The tensor tables of the weight files: which tensors a `model.<precision>.safetensors` of a spec holds.

One rule that the writer (export/) and the reader (runtime/artifact.py) both check: name -> (shape, dtype name) for
each precision (f32, int8w, int8), built from runtime.spec's sizes. Stdlib only, like runtime/spec.py.
"""

from __future__ import annotations

from rnnedge.runtime.spec import (
    GATES,
    PRECISIONS,
    SpecError,
    directions,
    head_hidden,
    head_input_sizes,
    layer_input_sizes,
    recurrent_bias_rows,
    tensor_shapes,
)


def quantized_matrices(spec: dict) -> list[str]:
    """Names of the matrices an int8w file stores as int8, one float32 scale per row beside each.

    Every weight matrix: the embedding table (a scale per token row), each layer-direction's w_ih and w_hh
    (a scale per gate row, i.e. per output row), each hidden head layer's weight and the head weight (a scale
    per output). Biases stay float32.
    """
    return [name for name in tensor_shapes(spec)
            if name == "embedding.weight" or name.endswith((".weight", ".w_ih", ".w_hh"))]


def artifact_tensors(spec: dict, precision: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, dtype name) of every tensor a `model.<precision>.safetensors` file of this spec holds.

    f32: tensor_shapes, all float32. int8w: the same names, with each quantized matrix int8 and a float32
    `<name>.scale` of shape (rows,) for it, and the recurrent bias folded into b_ih (recurrent_bias_rows):
    b_hh is gru's b_hn (H,) only, and absent for the other cells. int8: int8_tensors. The one rule the writer
    and the reader both check.
    """
    if precision not in PRECISIONS:
        raise SpecError(f"precision {precision!r} is not supported (supported: {', '.join(PRECISIONS)})")
    if precision == "int8":
        return int8_tensors(spec)
    tensors = {name: (shape, "float32") for name, shape in tensor_shapes(spec).items()}
    if precision == "int8w":
        for name in quantized_matrices(spec):
            shape = tensors[name][0]
            tensors[name] = (shape, "int8")
            tensors[f"{name}.scale"] = ((shape[0],), "float32")
        for l, layer in enumerate(spec["layers"]):
            keep = recurrent_bias_rows(layer)
            for d in ("fwd", "bwd")[: directions(layer)]:
                if keep.stop > keep.start:
                    tensors[f"layers.{l}.{d}.b_hh"] = ((keep.stop - keep.start,), "float32")
                else:
                    del tensors[f"layers.{l}.{d}.b_hh"]
    return tensors


def int8_tensors(spec: dict) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, dtype) of a `model.int8.safetensors` file (arithmetic: runtime/kernels_int8.py).

    input.scale float32 (1,)              dense: s_x, the quantised input's scale
    embedding.weight int8 (V, D)          tokens: the table in the first layer's input scale,
    embedding.scale float32 (1,)          which is this one s_x
    layers.{l}.{d}.w_ih / w_hh int8       as tensor_shapes (G*H rows, each with its own scale, folded into
                                          the multipliers below)
    layers.{l}.{d}.b_ih int32 (G*H,)      folded input-side bias b_x
    layers.{l}.{d}.b_hh int32 (H,)        gru (linear_before_reset) only: b_h of the n rows (b_hn); every
                                          other b_h is 0
    layers.{l}.{d}.h0 / c0 int16 (H,)     initial_state: h0 in the layer's s_h, lstm c0 in 2^cell_power
    layers.{l}.{d}.p int16 (3H,)          peepholes: [p_i; p_f; p_o], symmetric, one scale per gate vector
    layers.{l}.{d}.p_requant int32 (3,)   peepholes: per gate, the multiplier M and shift S taking p * c
    layers.{l}.{d}.p_shift int8 (3,)      (c in 2^cell_power) to the gate's Q3.12 pre-activation
    layers.{l}.{d}.requant int32 (2, G*H) multipliers Mx, Mh of every gate row
    layers.{l}.{d}.shift int8 (2, G*H)    their shifts Sx, Sh
    layers.{l}.scale float32 (1,)         s_h, the layer's output (hidden state) scale
    layers.{l}.cell_power int32 (1,)      lstm: p, the cell state's scale 2^p; 0 for other cells
    head.hidden.{k}.weight int8 (U, in)   each hidden head layer: one scale per row, folded into its
    head.hidden.{k}.bias int32 (U,)       multipliers; the bias in s_in * s_W[row]
    head.hidden.{k}.requant int32 (U,)    per row the multiplier M and shift S taking the int32 sum to the
    head.hidden.{k}.shift int8 (U,)       layer's output scale (relu, none) or to Q3.12 (the rest)
    head.hidden.{k}.scale float32 (1,)    s_out, the layer's output scale (tanh, sigmoid 2^-15, gelu 2^-12)
    head.weight int8 (O, Hin), head.bias int32 (O,),
    head.scale float32 (O,)               the integer logits' dequantisation scale per output
    """
    tensors: dict[str, tuple[tuple[int, ...], str]] = {}
    inp = spec["input"]
    if inp["kind"] == "dense":
        tensors["input.scale"] = ((1,), "float32")
    else:
        tensors["embedding.weight"] = ((inp["vocab"], inp["embed_dim"]), "int8")
        tensors["embedding.scale"] = ((1,), "float32")
    for l, (layer, n_in) in enumerate(zip(spec["layers"], layer_input_sizes(spec))):
        rows = GATES[layer["cell"]] * layer["hidden"]
        for d in ("fwd", "bwd")[: directions(layer)]:
            p = f"layers.{l}.{d}"
            tensors[f"{p}.w_ih"] = ((rows, n_in), "int8")
            tensors[f"{p}.w_hh"] = ((rows, layer["hidden"]), "int8")
            tensors[f"{p}.b_ih"] = ((rows,), "int32")
            keep = recurrent_bias_rows(layer)
            if keep.stop > keep.start:
                tensors[f"{p}.b_hh"] = ((keep.stop - keep.start,), "int32")
            if layer.get("peepholes"):
                tensors[f"{p}.p"] = ((3 * layer["hidden"],), "int16")
                tensors[f"{p}.p_requant"] = ((3,), "int32")
                tensors[f"{p}.p_shift"] = ((3,), "int8")
            if layer.get("initial_state"):
                tensors[f"{p}.h0"] = ((layer["hidden"],), "int16")
                if layer["cell"] == "lstm":
                    tensors[f"{p}.c0"] = ((layer["hidden"],), "int16")
            tensors[f"{p}.requant"] = ((2, rows), "int32")
            tensors[f"{p}.shift"] = ((2, rows), "int8")
        tensors[f"layers.{l}.scale"] = ((1,), "float32")
        tensors[f"layers.{l}.cell_power"] = ((1,), "int32")
    widths = head_input_sizes(spec)
    for k, dense in enumerate(head_hidden(spec)):
        units = dense["units"]
        tensors[f"head.hidden.{k}.weight"] = ((units, widths[k]), "int8")
        tensors[f"head.hidden.{k}.bias"] = ((units,), "int32")
        tensors[f"head.hidden.{k}.requant"] = ((units,), "int32")
        tensors[f"head.hidden.{k}.shift"] = ((units,), "int8")
        tensors[f"head.hidden.{k}.scale"] = ((1,), "float32")
    out, width = spec["head"]["out"], widths[-1]
    tensors["head.weight"] = ((out, width), "int8")
    tensors["head.bias"] = ((out,), "int32")
    tensors["head.scale"] = ((out,), "float32")
    return tensors
