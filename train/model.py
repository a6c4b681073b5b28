"""The PyTorch model built from a spec: the ground truth every artifact is checked against.

`RecurrentModel(spec)` stacks one torch RNN/LSTM/GRU module per spec layer (each uni- or
bidirectional), with the dense-input normalisation or the token embedding in front and a linear head
behind. `forward` runs whole (padded) sequences with their true lengths; `step` is the readable float
golden step: the cell equations written out, one time step, for streaming (forward-only) models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from runtime import spec as specs

_TORCH_CELL = {
    "rnn_tanh": lambda i, h, bi: nn.RNN(i, h, nonlinearity="tanh", batch_first=True, bidirectional=bi),
    "rnn_relu": lambda i, h, bi: nn.RNN(i, h, nonlinearity="relu", batch_first=True, bidirectional=bi),
    "lstm": lambda i, h, bi: nn.LSTM(i, h, batch_first=True, bidirectional=bi),
    "gru": lambda i, h, bi: nn.GRU(i, h, batch_first=True, bidirectional=bi),
}


class RecurrentModel(nn.Module):
    """Embedding or normalisation -> stacked recurrent layers -> linear head, from a spec."""

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
            _TORCH_CELL[layer["cell"]](n_in, layer["hidden"], layer["bidirectional"])
            for layer, n_in in zip(self.spec["layers"], specs.layer_input_sizes(self.spec))
        )
        self.dropout = nn.Dropout(self.spec["dropout"])
        self.head = nn.Linear(specs.output_width(self.spec), self.spec["head"]["out"])

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
            if lengths is None:
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
        """Each direction's final output: forward at the true last step, backward at step 0."""
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
        if act == "sigmoid":
            return torch.sigmoid(logits)
        return logits

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """What the device returns: the head's activated output."""
        return self.activate(self.logits(x, lengths))

    # -- one step: the float golden reference ----------------------------------------------
    def initial_state(self, batch: int = 1) -> list[tuple[torch.Tensor, ...]]:
        """Zero state per layer: (h,) or (h, c) for LSTM, each (B, H)."""
        state = []
        for layer in self.spec["layers"]:
            zeros = torch.zeros(batch, layer["hidden"])
            state.append((zeros, zeros.clone()) if layer["cell"] == "lstm" else (zeros,))
        return state

    @torch.no_grad()
    def step(self, x_t: torch.Tensor, state: list[tuple[torch.Tensor, ...]]):
        """One time step for B streams: x_t (B, F) float or (B,) int -> (y_t (B, out), new state).

        The cell equations as PyTorch defines them (gate order i f g o for LSTM, r z n for GRU).
        """
        if not specs.can_stream(self.spec):
            raise ValueError("a bidirectional model cannot run one step at a time; use forward()")
        v = self.embed(x_t)
        new_state = []
        for layer, rnn, s in zip(self.spec["layers"], self.layers, state):
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
