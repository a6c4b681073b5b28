"""The PyTorch model built from a spec: the ground truth every artifact is checked against.

`RecurrentModel(spec)` stacks one torch RNN/LSTM/GRU module per spec layer (each uni- or
bidirectional), with the dense-input normalisation or the token embedding in front and a head behind: a
`Head`, the spec's hidden dense layers (if any) then the final linear layer. `forward` runs whole (padded) sequences with their true lengths; `step` is the readable float
golden step: the cell equations written out, one time step, for streaming (forward-only) models.

A layer with ONNX extensions (runtime/spec.py's module docstring: reverse, linear_before_reset false,
input_forget, peepholes, clip, activations, initial_state) is an `OnnxLayer` instead: the ONNX operator's
equations written out in torch, one time step per loop iteration. It keeps nn.LSTM/GRU/RNN's parameter names
(weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, `_reverse` for the backward direction, PyTorch's gate
order) and adds peephole_l0 (3H: p_i, p_f, p_o), h0_l0 and, lstm, c0_l0 (H each). Layers without extensions
stay torch's own modules, so models and checkpoints of PyTorch's cells are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnedge.runtime import spec as specs

_TORCH_CELL = {
    "rnn_tanh": lambda i, h, bi: nn.RNN(i, h, nonlinearity="tanh", batch_first=True, bidirectional=bi),
    "rnn_relu": lambda i, h, bi: nn.RNN(i, h, nonlinearity="relu", batch_first=True, bidirectional=bi),
    "lstm": lambda i, h, bi: nn.LSTM(i, h, batch_first=True, bidirectional=bi),
    "gru": lambda i, h, bi: nn.GRU(i, h, batch_first=True, bidirectional=bi),
}


# -- a layer with ONNX extensions -------------------------------------------------------------------------
def _elu(x, alpha, beta):
    return torch.where(x >= 0, x, alpha * torch.expm1(torch.clamp(x, max=0.0)))


# ONNX's activation functions (spec.ACTIVATION_FNS), each f(x, alpha, beta). ThresholdedRelu keeps x only
# above alpha (x > alpha), which is what ONNX Runtime computes.
ACTIVATION_FUNCTIONS = {
    "relu": lambda x, a, b: torch.relu(x),
    "tanh": lambda x, a, b: torch.tanh(x),
    "sigmoid": lambda x, a, b: torch.sigmoid(x),
    "affine": lambda x, a, b: a * x + b,
    "leakyrelu": lambda x, a, b: torch.where(x >= 0, x, a * x),
    "thresholdedrelu": lambda x, a, b: torch.where(x > a, x, torch.zeros_like(x)),
    "scaledtanh": lambda x, a, b: a * torch.tanh(b * x),
    "hardsigmoid": lambda x, a, b: torch.clamp(a * x + b, 0.0, 1.0),
    "elu": _elu,
    "softsign": lambda x, a, b: x / (1 + torch.abs(x)),
    "softplus": lambda x, a, b: torch.logaddexp(x, torch.zeros_like(x)),
}


class OnnxLayer(nn.Module):
    """One spec layer with ONNX extensions: the ONNX RNN/LSTM/GRU equations, a time loop over (B, T, I).

    Parameters per direction (suffix "" forward or a reverse layer's one direction, "_reverse" backward), PyTorch
    gate order (lstm i f g o, gru r z n): weight_ih_l0 (G*H, I), weight_hh_l0 (G*H, H), bias_ih_l0, bias_hh_l0
    (G*H,); with peepholes peephole_l0 (3H,) = [p_i; p_f; p_o]; with initial_state h0_l0 (H,) and, lstm,
    c0_l0 (H,). With lengths, each sequence's state stays frozen past its length and its output is zero there;
    a backward direction therefore starts from the initial state at each sequence's last true step.
    """

    def __init__(self, layer: dict, n_in: int):
        super().__init__()
        self.layer = layer
        self.cell_name = layer["cell"]
        self.hidden = H = layer["hidden"]
        self.directions = specs.directions(layer)
        self.clip = specs.option(layer, "clip")
        self.suffixes = ("", "_reverse")[: self.directions]
        self.fns = [[(ACTIVATION_FUNCTIONS[name], alpha, beta) for name, alpha, beta in specs.functions(layer, d)]
                    for d in range(self.directions)]
        rows = specs.GATES[self.cell_name] * H
        for s in self.suffixes:
            self.register_parameter(f"weight_ih_l0{s}", nn.Parameter(torch.empty(rows, n_in)))
            self.register_parameter(f"weight_hh_l0{s}", nn.Parameter(torch.empty(rows, H)))
            self.register_parameter(f"bias_ih_l0{s}", nn.Parameter(torch.empty(rows)))
            self.register_parameter(f"bias_hh_l0{s}", nn.Parameter(torch.empty(rows)))
            if layer.get("peepholes"):
                self.register_parameter(f"peephole_l0{s}", nn.Parameter(torch.empty(3 * H)))
            if layer.get("initial_state"):
                self.register_parameter(f"h0_l0{s}", nn.Parameter(torch.zeros(H)))
                if self.cell_name == "lstm":
                    self.register_parameter(f"c0_l0{s}", nn.Parameter(torch.zeros(H)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's recurrent init, U(-1/sqrt(H), 1/sqrt(H)), for weights, biases and peepholes; zero h0/c0."""
        bound = self.hidden ** -0.5
        for name, param in self.named_parameters():
            if name.startswith(("h0_", "c0_")):
                nn.init.zeros_(param)
            else:
                nn.init.uniform_(param, -bound, bound)

    def param(self, name: str, d: int) -> torch.Tensor:
        return getattr(self, f"{name}_l0{self.suffixes[d]}")

    def initial(self, d: int, batch: int, like: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Direction d's state before the first step: (h,) or (h, c), each (B, H); h0/c0 or zeros."""
        H = self.hidden
        dtype = self.param("weight_hh", d).dtype if like is None else like.dtype
        parts = ("h0", "c0") if self.cell_name == "lstm" else ("h0",)
        if not self.layer.get("initial_state"):
            device = self.param("weight_hh", d).device if like is None else like.device
            return tuple(torch.zeros(batch, H, dtype=dtype, device=device) for _ in parts)
        return tuple(self.param(p, d).to(dtype).expand(batch, H).clone() for p in parts)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, I) -> (B, T, dirs*H): each direction's h at every step, zero past each sequence's length."""
        outputs = [self.run_direction(d, x, lengths) for d in range(self.directions)]
        return torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]

    def run_direction(self, d: int, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        batch, steps = x.shape[0], x.shape[1]
        backward = d == 1 or specs.option(self.layer, "reverse")
        projected = x @ self.param("weight_ih", d).T + self.param("bias_ih", d)  # (B, T, G*H)
        state = self.initial(d, batch, like=x)
        out = [None] * steps
        for t in (range(steps - 1, -1, -1) if backward else range(steps)):
            new = self.cell(d, projected[:, t], state)
            if lengths is None:
                state, out[t] = new, new[0]
            else:
                valid = (t < lengths).to(x.device).unsqueeze(1)  # (B, 1)
                state = tuple(torch.where(valid, n, s) for n, s in zip(new, state))
                out[t] = torch.where(valid, new[0], torch.zeros_like(new[0]))
        return torch.stack(out, dim=1)

    def cell(self, d: int, projected: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """One step of direction d: projected = W_ih x + b_ih (B, G*H), state (h,) or (h, c) -> new state."""
        h = state[0]
        w_hh, b_hh = self.param("weight_hh", d), self.param("bias_hh", d)
        clip = self._clip
        if self.cell_name == "lstm":
            (f, fa, fb), (g, ga, gb), (hf, ha, hb) = self.fns[d]
            i, fg, cand, o = (projected + h @ w_hh.T + b_hh).chunk(4, dim=1)
            c = state[1]
            if self.layer.get("peepholes"):
                p_i, p_f, p_o = self.param("peephole", d).chunk(3)
                i, fg = i + p_i * c, fg + p_f * c
            i = f(clip(i), fa, fb)
            fg = 1 - i if self.layer.get("input_forget") else f(clip(fg), fa, fb)
            c = fg * c + i * g(clip(cand), ga, gb)
            if self.layer.get("peepholes"):
                o = o + p_o * c
            h = f(clip(o), fa, fb) * hf(c, ha, hb)
            return h, c
        if self.cell_name == "gru":
            (f, fa, fb), (g, ga, gb) = self.fns[d]
            H = self.hidden
            xr, xz, xn = projected.chunk(3, dim=1)
            hr, hz = (h @ w_hh[: 2 * H].T + b_hh[: 2 * H]).chunk(2, dim=1)
            r, z = f(clip(xr + hr), fa, fb), f(clip(xz + hz), fa, fb)
            if specs.option(self.layer, "linear_before_reset"):
                n = g(clip(xn + r * (h @ w_hh[2 * H :].T + b_hh[2 * H :])), ga, gb)
            else:  # ONNX's default: the reset gate scales h before the recurrent product
                n = g(clip(xn + (r * h) @ w_hh[2 * H :].T + b_hh[2 * H :]), ga, gb)
            return ((1 - z) * n + z * h,)
        ((f, fa, fb),) = self.fns[d]
        return (f(clip(projected + h @ w_hh.T + b_hh), fa, fb),)

    def _clip(self, pre: torch.Tensor) -> torch.Tensor:
        return pre if self.clip is None else torch.clamp(pre, -self.clip, self.clip)


def _build_layer(layer: dict, n_in: int) -> nn.Module:
    """torch's own module for PyTorch's cell; an OnnxLayer for a layer with ONNX extensions."""
    if specs.extensions(layer):
        return OnnxLayer(layer, n_in)
    return _TORCH_CELL[layer["cell"]](n_in, layer["hidden"], layer["bidirectional"])


# A hidden head layer's activation (spec.HIDDEN_ACTIVATIONS)
HIDDEN_FUNCTIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "gelu_tanh": lambda v: F.gelu(v, approximate="tanh"),
    "none": lambda v: v,
}


class Head(nn.Linear):
    """The head up to its logits: the spec's hidden dense layers, each act_k(W_k v + b_k), then the final linear
    layer. It is the final nn.Linear itself, so its state_dict keys are the canonical tensor names:
    head.weight (O, U_last), head.bias (O,) as a single linear head's (old checkpoints load), and
    head.hidden.{k}.weight (U_k, in_k), head.hidden.{k}.bias (U_k,)."""

    def __init__(self, spec: dict):
        widths = specs.head_input_sizes(spec)
        super().__init__(widths[-1], spec["head"]["out"])
        dense = specs.head_hidden(spec)
        self.hidden = nn.ModuleList(nn.Linear(n_in, d["units"]) for d, n_in in zip(dense, widths))
        self.functions = [HIDDEN_FUNCTIONS[d["activation"]] for d in dense]

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        for dense, fn in zip(self.hidden, self.functions):
            v = fn(dense(v))
        return super().forward(v)


class RecurrentModel(nn.Module):
    """Embedding or normalisation -> stacked recurrent layers -> head (dense layers, linear), from a spec."""

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = specs.validate(spec)
        inp = self.spec["input"]
        if inp["kind"] == "dense":
            self.register_buffer("norm_mean", torch.tensor(inp["mean"], dtype=torch.float32))
            self.register_buffer("norm_std", torch.tensor(inp["std"], dtype=torch.float32))
            self.embedding = None
        else:
            self.embedding = nn.Embedding(inp["vocab"], inp["embed_dim"], padding_idx=inp["padding_idx"])
        self.layers = nn.ModuleList(
            _build_layer(layer, n_in)
            for layer, n_in in zip(self.spec["layers"], specs.layer_input_sizes(self.spec))
        )
        self.dropout = nn.Dropout(self.spec["dropout"])
        self.head = Head(self.spec)

    # -- whole sequences -------------------------------------------------------------------
    def set_normalisation(self, mean, std) -> None:
        """Store the input statistics in the model (and its spec): the device feeds raw values."""
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        self.norm_mean.copy_(mean)
        self.norm_std.copy_(std)
        self.spec["input"]["mean"] = [float(v) for v in mean]
        self.spec["input"]["std"] = [float(v) for v in std]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Raw input (B, T, F) float or (B, T) int -> first layer's input (B, T, I)."""
        if self.embedding is None:
            return (x - self.norm_mean) / self.norm_std
        return self.embedding(x)

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Output of the last recurrent layer: (B, T, H*dirs), zero beyond each sequence's length."""
        h = self.embed(x)
        for i, rnn in enumerate(self.layers):
            if i > 0:
                h = self.dropout(h)
            if isinstance(rnn, OnnxLayer):
                h = rnn(h, lengths)
            elif lengths is None:
                h, _ = rnn(h)
            else:
                packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
                h, _ = rnn(packed)
                h, _ = pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        return h

    def logits(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Head before its activation: (B, T, out) for every_step, (B, out) for last_step."""
        h = self.features(x, lengths)
        if self.spec["head"]["on"] == "last_step":
            h = self.final_state(h, lengths)
        return self.head(h)

    def final_state(self, h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Each direction's final output: forward at the true last step, backward (or reverse) at step 0."""
        if specs.option(self.spec["layers"][-1], "reverse"):
            return h[:, 0]
        batch, steps = h.shape[0], h.shape[1]
        last = (torch.full((batch,), steps, device=h.device) if lengths is None else lengths.to(h.device)) - 1
        fwd = h[torch.arange(batch, device=h.device), last]
        if not self.spec["layers"][-1]["bidirectional"]:
            return fwd
        hidden = self.spec["layers"][-1]["hidden"]
        return torch.cat([fwd[:, :hidden], h[:, 0, hidden:]], dim=1)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        act = self.spec["head"]["activation"]
        if act == "softmax":
            return torch.softmax(logits, dim=-1)
        if act == "log_softmax":
            return torch.log_softmax(logits, dim=-1)
        if act == "sigmoid":
            return torch.sigmoid(logits)
        return logits

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """What the device returns: the head's activated output."""
        return self.activate(self.logits(x, lengths))

    # -- one step: the float golden reference ----------------------------------------------
    def initial_state(self, batch: int = 1) -> list[tuple[torch.Tensor, ...]]:
        """The state a stream starts from, per layer: (h,) or (h, c) for LSTM, each (B, H); zeros, or a layer's
        initial_state h0 (and c0)."""
        state = []
        for layer, rnn in zip(self.spec["layers"], self.layers):
            if isinstance(rnn, OnnxLayer):
                state.append(tuple(s.detach() for s in rnn.initial(0, batch)))
                continue
            zeros = torch.zeros(batch, layer["hidden"])
            state.append((zeros, zeros.clone()) if layer["cell"] == "lstm" else (zeros,))
        return state

    @torch.no_grad()
    def step(self, x_t: torch.Tensor, state: list[tuple[torch.Tensor, ...]]):
        """One time step for B streams: x_t (B, F) float or (B,) int -> (y_t (B, out), new state).

        The cell equations as PyTorch defines them (gate order i f g o for LSTM, r z n for GRU); a layer with
        ONNX extensions steps through OnnxLayer.cell. Start from initial_state().
        """
        if not specs.can_stream(self.spec):
            raise ValueError("a model with a bidirectional or reverse layer cannot run one step at a time; "
                             "use forward()")
        v = self.embed(x_t)
        new_state = []
        for layer, rnn, s in zip(self.spec["layers"], self.layers, state):
            if isinstance(rnn, OnnxLayer):
                new_state.append(rnn.cell(0, v @ rnn.weight_ih_l0.T + rnn.bias_ih_l0, s))
                v = new_state[-1][0]
                continue
            w_ih, w_hh, b_ih, b_hh = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
            h = s[0]
            if layer["cell"] == "lstm":
                i, f, g, o = (v @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
                c = torch.sigmoid(f) * s[1] + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                new_state.append((h, c))
            elif layer["cell"] == "gru":
                xr, xz, xn = (v @ w_ih.T + b_ih).chunk(3, dim=1)
                hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, dim=1)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                n = torch.tanh(xn + r * hn)
                h = (1 - z) * n + z * h
                new_state.append((h,))
            else:
                pre = v @ w_ih.T + b_ih + h @ w_hh.T + b_hh
                h = torch.tanh(pre) if layer["cell"] == "rnn_tanh" else F.relu(pre)
                new_state.append((h,))
            v = h
        return self.activate(self.head(v)), new_state
