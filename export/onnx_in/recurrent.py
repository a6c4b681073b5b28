"""Recurrent nodes: ONNX RNN / LSTM / GRU -> spec layers and canonical tensors (attributes, activation functions,
sequence_lens, initial states), in PyTorch's gate order."""

from __future__ import annotations

import numpy as np
import onnx

from rnnedge.export.onnx_in.values import (
    SAMPLE_POINTS,
    Const,
    Extra,
    Failed,
    Refuse,
    Sampled,
    Tensor,
    as_text,
    describe_runtime,
    float32_decimal,
    joined,
    spread_weight,
)
from rnnedge.runtime import spec as specs

# ONNX gate order, each gate named by its PyTorch letter (export/onnx_graphs.py says the same the other way)
TORCH_GATES = {"rnn": "h", "lstm": "ifgo", "gru": "rzn"}
ONNX_GATES = {"rnn": "h", "lstm": "iofg", "gru": "zrn"}
# ONNX's activation function names by the spec's (lowercase) names, and how ONNX Runtime fills their alpha / beta
# (measured: RecurrentOps._functions)
_ONNX_FNS = {name.lower(): name for name in ("Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
                                             "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus")}
_TAKES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_TAKES_BETA = {"affine", "scaledtanh", "hardsigmoid"}
_ORT_DEFAULTS = {"affine": (0.0, 0.0), "leakyrelu": (0.01, 0.0), "thresholdedrelu": (0.0, 0.0),
                 "scaledtanh": (0.0, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}
_ORT_DIFFERS = {"affine", "thresholdedrelu", "scaledtanh"}  # ORT's default alpha is not the ONNX operator's


class RecurrentOps:
    """The Mapper's handling of RNN / LSTM / GRU nodes (mixed into export.onnx_in.mapper.Mapper)."""

    def recurrent(self, node, attrs, args) -> list:
        op = node.op_type
        family = op.lower()
        problems: list[str] = []
        direction = as_text(attrs.get("direction", "forward"))
        if direction not in ("forward", "reverse", "bidirectional"):
            problems.append(f"direction={direction!r} is not an ONNX direction (forward, reverse, bidirectional)")
        dirs = 2 if direction == "bidirectional" else 1
        ext: dict = {"reverse": True} if direction == "reverse" else {}
        if "clip" in attrs:
            clip = float32_decimal(attrs["clip"])
            if clip > 0 and np.isfinite(clip):
                ext["clip"] = clip
            else:
                problems.append(f"clip={clip} is not a positive finite threshold")
        if op == "LSTM" and attrs.get("input_forget", 0):
            ext["input_forget"] = True
        if op == "GRU" and not attrs.get("linear_before_reset", 0):
            ext["linear_before_reset"] = False  # ONNX's default GRU: the reset before the recurrent product
        cell, functions = self._functions(node, attrs, dirs, problems)
        if functions is not None:
            ext["activations"] = functions
        layout = attrs.get("layout", 0)
        if layout not in (0, 1):
            problems.append(f"layout={layout} is not an ONNX layout (0 or 1)")
        inputs = list(args) + [None] * (8 - len(args))
        x = inputs[0]
        time_label = None
        if isinstance(x, Tensor) and len(x.axes) == 3:
            time_label = x.axes[0] if layout == 0 else x.axes[1]
            if x.stage != "input":
                time_label = self.raw_time
        lengths = self._sequence_lens(inputs[4], time_label, problems)
        batch_axis = 1 if layout == 0 else 0  # of initial_h / initial_c: (D, B, H) or (B, D, H)
        states = {what: self._initial_state(inputs[k], what, batch_axis, problems)
                  for k, what in ((5, "initial_h"), (6, "initial_c")) if k < 6 or op == "LSTM"}
        peepholes = inputs[7] if op == "LSTM" else None
        if peepholes is not None and not isinstance(peepholes, (Const, Failed)):
            problems.append(f"peepholes P {describe_runtime(peepholes)}; rnnedge's peepholes must be a constant")
        for k, what in ((1, "W"), (2, "R"), (3, "B")):
            if inputs[k] is not None and not isinstance(inputs[k], (Const, Failed)):
                problems.append(f"{what} {describe_runtime(inputs[k])}; it must be a constant")
        if problems:
            raise Refuse("; ".join(problems))
        errors = [a for a in args if isinstance(a, Failed)]
        for e in errors:
            self.report(e)
        if errors:
            return [joined(errors)] * len(node.output)
        self._layer_input(x, layout)
        W, R = inputs[1].value.astype(np.float32), inputs[2].value.astype(np.float32)
        if x.terms != 1 or x.scale != 1:  # it reads the previous layer's directions summed (merge_mode "sum")
            W = np.stack([spread_weight(w, x) for w in W])
        kind = "rnn" if op == "RNN" else family
        gates = len(TORCH_GATES[kind])
        hidden = int(attrs.get("hidden_size", R.shape[-1]))
        n_in = W.shape[-1]
        B = inputs[3].value.astype(np.float32) if inputs[3] is not None else np.zeros((dirs, 2 * gates * hidden),
                                                                                       np.float32)
        if W.shape != (dirs, gates * hidden, n_in) or R.shape != (dirs, gates * hidden, hidden) or B.shape != (
                dirs, 2 * gates * hidden):
            raise Refuse(f"W {W.shape}, R {R.shape}, B {B.shape} do not fit hidden_size {hidden}, {dirs} "
                          f"direction(s), {gates} gate(s)")
        expected_in = specs.input_size({"input": self.input}) if not self.layers else (
            self.layers[-1]["hidden"] * specs.directions(self.layers[-1]))
        if n_in != expected_in:
            raise Refuse(f"W reads {n_in} input features, the sequence it is given has {expected_in}")
        P = None
        if isinstance(peepholes, Const) and peepholes.value.any():
            P = peepholes.value.astype(np.float32)
            if P.shape != (dirs, 3 * hidden):
                raise Refuse(f"peepholes P {P.shape} do not fit hidden_size {hidden}, {dirs} direction(s): "
                              f"expected {(dirs, 3 * hidden)}")
            ext["peepholes"] = True
        init = {}
        for what, value in states.items():
            if value is not None:
                if value.shape != (dirs, hidden):
                    raise Refuse(f"{what} holds {value.shape[0]} direction(s) of {value.shape[1]} units; expected "
                                  f"{dirs} of hidden_size {hidden}")
                init[what] = value
        if init:
            ext["initial_state"] = True
        l = len(self.layers)
        self.layers.append({"cell": cell, "hidden": hidden, "bidirectional": dirs == 2, **ext})
        self.layer_lengths.append(lengths)
        for d, name in enumerate(("fwd", "bwd")[:dirs]):
            t = {f"layers.{l}.{name}.w_ih": _to_torch_order(kind, W[d]),
                 f"layers.{l}.{name}.w_hh": _to_torch_order(kind, R[d]),
                 f"layers.{l}.{name}.b_ih": _to_torch_order(kind, B[d, : gates * hidden]),
                 f"layers.{l}.{name}.b_hh": _to_torch_order(kind, B[d, gates * hidden:])}
            if P is not None:  # ONNX's P is [p_i; p_o; p_f], the spec's [p_i; p_f; p_o]
                p_i, p_o, p_f = np.split(P[d], 3)
                t[f"layers.{l}.{name}.p"] = np.concatenate([p_i, p_f, p_o])
            if init:
                zeros = np.zeros(hidden, np.float32)
                t[f"layers.{l}.{name}.h0"] = init["initial_h"][d] if "initial_h" in init else zeros
                if op == "LSTM":
                    t[f"layers.{l}.{name}.c0"] = init["initial_c"][d] if "initial_c" in init else zeros
            self.layer_tensors.append(t)
        all_dirs = tuple(range(dirs))
        if layout == 0:
            y_axes, final_axes = ("T", "D", "B", "F"), ("D", "B", "F")
        else:
            y_axes, final_axes = ("B", "T", "D", "F"), ("B", "D", "F")
        outs = [Tensor(y_axes, "y", l, dirs=all_dirs, hidden=hidden),
                Tensor(final_axes, "final", l, dirs=all_dirs, hidden=hidden),
                Failed(op, node.name or "(unnamed)", "its output Y_c (the final cell state) is used; rnnedge heads "
                       "read the hidden state")]
        return outs[: len(node.output)]

    def _functions(self, node, attrs, dirs: int, problems: list[str]):
        """(cell, the spec's "activations" list or None) of a recurrent node's activations and activation_alpha /
        activation_beta, aligned as ONNX Runtime aligns them.

        Measured with ONNX Runtime 1.32 (RNN, LSTM and GRU, forward and bidirectional, every function): the alpha
        list is consumed in order, across both directions, only by the functions that take an alpha (Affine,
        LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu); the beta list likewise only by those that take a
        beta (Affine, ScaledTanh, HardSigmoid). Tanh, Relu, Sigmoid, Softsign, Softplus consume nothing:
        activations [Tanh, LeakyRelu] with alpha [0.3] give LeakyRelu 0.3 (not positional, unlike
        onnx.reference's RNN). Once a list runs out, ORT takes its own defaults (_ORT_DEFAULTS): LeakyRelu 0.01,
        Elu 1.0, HardSigmoid 0.2 / 0.5, but 0 for Affine's and ScaledTanh's alpha and beta and ThresholdedRelu's
        alpha (ONNX's deprecated Affine / ThresholdedRelu operators default alpha to 1.0); entries left over are
        ignored. ORT's ThresholdedRelu is x > alpha (not >=). The spec gets every alpha and beta written out.
        """
        op = node.op_type
        per_direction = specs.FUNCTIONS_PER_CELL["rnn_tanh" if op == "RNN" else op.lower()]
        default = {"RNN": ["Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}[op]
        names = [as_text(a) for a in attrs.get("activations", [])] or default * dirs
        alphas = [float(v) for v in attrs.get("activation_alpha", [])]
        betas = [float(v) for v in attrs.get("activation_beta", [])]
        plain = {"RNN": "rnn_tanh", "LSTM": "lstm", "GRU": "gru"}[op]
        if len(names) != per_direction * dirs:
            problems.append(f"activations {names} list {len(names)} function(s); {op} with {dirs} direction(s) takes "
                            f"{per_direction * dirs} ({per_direction} per direction)")
            return plain, None
        unknown = [n for n in names if n.lower() not in specs.ACTIVATION_FNS]
        if unknown:
            problems.append(f"activations {unknown} are not supported (rnnedge runs {', '.join(_ONNX_FNS.values())})")
            return plain, None
        functions = []
        for name in names:
            fn = name.lower()
            alpha, beta = _ORT_DEFAULTS.get(fn, (0.0, 0.0))
            if fn in _TAKES_ALPHA and alphas:
                alpha = alphas.pop(0)
            elif fn in _TAKES_ALPHA and fn in _ORT_DIFFERS:
                self.notes.append(f"node {node.name or '(unnamed)'!r} ({op}): {name} gets ONNX Runtime's default "
                                  f"alpha {alpha:g} (the graph is mapped as ONNX Runtime runs it)")
            if fn in _TAKES_BETA and betas:
                beta = betas.pop(0)
            functions.append({"fn": fn, "alpha": float32_decimal(alpha), "beta": float32_decimal(beta)})
        if alphas or betas:
            self.notes.append(f"node {node.name or '(unnamed)'!r} ({op}): {len(alphas)} activation_alpha and "
                              f"{len(betas)} activation_beta value(s) left over are ignored, as ONNX Runtime does")
        if op == "RNN":
            kinds = {f["fn"] for f in functions}
            if kinds == {"tanh"}:
                return "rnn_tanh", None
            if kinds == {"relu"}:
                return "rnn_relu", None
        return plain, functions

    def _sequence_lens(self, value, time_label, problems: list[str]):
        """What a recurrent node's sequence_lens means: None (whole sequences) or the name of the graph input
        holding them."""
        if value is None or isinstance(value, Failed):
            return None
        if isinstance(value, Extra):
            value.used_as.add("sequence_lens")
            if value.elem != onnx.TensorProto.INT32 or len(value.dims) != 1:
                problems.append(f"sequence_lens is the graph input {value.name!r} of type "
                                f"{onnx.TensorProto.DataType.Name(value.elem)} and rank {len(value.dims)}; ONNX "
                                f"takes int32 (batch,)")
            return value.name
        if isinstance(value, Const):
            full = self.input_dims[int(time_label)] if time_label in ("0", "1") else None
            lens = value.value.reshape(-1)
            if full is not None and lens.size and (lens == full).all():
                return None  # every sequence runs whole: what rnnedge does anyway
            problems.append(f"sequence_lens is the constant {lens.tolist()[:8]}, not the full length of the input's "
                            f"time axis ({'dynamic' if full is None else full}); rnnedge takes lengths at run time "
                            f"(model.run(X, lengths)): make sequence_lens a graph input")
            return None
        if isinstance(value, Sampled) and time_label in ("0", "1") and all(
                (s == point[time_label]).all() for s, point in zip(value.samples, SAMPLE_POINTS)):
            return None  # the input's own length for every sequence, computed from its shape
        problems.append(f"sequence_lens {describe_runtime(value)}; rnnedge reads it from a graph input only")
        return None

    def _initial_state(self, value, what: str, batch_axis: int, problems: list[str]):
        """A recurrent node's initial_h / initial_c -> (D, H) state every sequence starts from, or None (zeros)."""
        if value is None or isinstance(value, Failed):
            return None
        if isinstance(value, Extra):
            value.used_as.add(what)
            problems.append(f"{what} is the graph input {value.name!r}: a state given at run time; rnnedge starts "
                            f"every sequence from zeros or from a constant initial state (make it an initializer)")
            return None
        if not isinstance(value, (Const, Sampled)):
            problems.append(f"{what} {describe_runtime(value)}; rnnedge's initial state must be a constant")
            return None
        # a state built from the run-time batch size (zeros, or a learned h0 expanded over the batch) is one state
        # if every batch row at every sample size is the same row
        found = [self._state_row(v.astype(np.float32), what, batch_axis, problems)
                 for v in (value.samples if isinstance(value, Sampled) else [value.value])]
        if any(row is None for row in found):
            return None
        if any(not np.array_equal(row, found[0]) for row in found[1:]):
            problems.append(f"{what} is computed from the run-time sizes and changes with them; rnnedge starts every "
                            f"sequence from one state")
            return None
        return found[0] if found[0].any() else None

    @staticmethod
    def _state_row(v: np.ndarray, what: str, batch_axis: int, problems: list[str]):
        """The (D, H) state every batch row of one initial_h / initial_c value holds, or None (a problem)."""
        if v.ndim != 3:
            problems.append(f"{what} has shape {v.shape}; ONNX takes (directions, batch, hidden) (layout=1: "
                            f"(batch, directions, hidden))")
            return None
        rows = np.moveaxis(v, batch_axis, 0)  # (B, D, H)
        differ = [b for b in range(1, rows.shape[0]) if not np.array_equal(rows[b], rows[0])]
        if differ:
            problems.append(f"{what} differs between batch rows (row {differ[0]} is not row 0): the graph then "
                            f"works for batch size {rows.shape[0]} only; rnnedge starts every sequence from one "
                            f"state")
            return None
        return rows[0]

    def _layer_input(self, x, layout: int) -> Tensor:
        order = ("T", "B") if layout == 0 else ("B", "T")
        if not isinstance(x, Tensor) or x.stage not in ("input", "y"):
            raise Refuse("X must be the input sequence or the previous recurrent layer's whole output")
        if len(x.axes) != 3 or x.axes[-1] != "F":
            raise Refuse(f"X has axes {x.axes}; expected ({order[0]}, {order[1]}, features)")
        if x.stage == "input":
            if self.layers:
                raise Refuse("X is the model input, but a recurrent layer already read it; rnnedge stacks layers")
            self.raw_time = x.axes[0] if layout == 0 else x.axes[1]
            return x
        if x.layer != len(self.layers) - 1 or x.step is not None or x.pieces != tuple(
                range(specs.directions(self.layers[-1]))):
            raise Refuse("X must be the previous recurrent layer's whole output (every step, all directions, in "
                          "order)")
        if x.axes[:2] != order:
            raise Refuse(f"X has axes {x.axes[:2]} + features; layout={layout} expects {order}")
        return x


def _to_torch_order(family: str, rows: np.ndarray) -> np.ndarray:
    """Gate blocks (axis 0) from ONNX's order to PyTorch's: the reverse of onnx_graphs.to_onnx_gate_order."""
    blocks = np.split(rows, len(ONNX_GATES[family]), axis=0)
    return np.concatenate([blocks[ONNX_GATES[family].index(g)] for g in TORCH_GATES[family]], axis=0)

