"""The models benchmarks.bench_streaming streams besides the runtime's: a KV-cache causal Transformer and a
ring-buffer causal TCN (whole-sequence forward and one-step stream each), and a RecurrentModel as PyTorch cells."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rnnedge.train.model import RecurrentModel


def sinusoidal(n: int, d: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe.float()


class Block(nn.Module):
    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def mlp(self, h: torch.Tensor) -> torch.Tensor:
        return self.ff2(F.gelu(self.ff1(self.ln2(h))))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Whole sequences (B, T, d), causal mask."""
        B, T, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).view(B, T, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, T, dh)
        h = h + self.proj(o.transpose(1, 2).reshape(B, T, d))
        return h + self.mlp(h)


class CausalTransformer(nn.Module):
    """Decoder-only causal self-attention with sinusoidal positions (no parameters for positions)."""

    def __init__(self, n_in: int, n_out: int, d_model: int, heads: int, layers: int, ff: int, max_len: int):
        super().__init__()
        self.d, self.heads, self.dh, self.n_layers = d_model, heads, d_model // heads, layers
        self.inp = nn.Linear(n_in, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, ff) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, n_out)
        self.register_buffer("pe", sinusoidal(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.pe[: x.shape[1]]
        for b in self.blocks:
            h = b(h)
        return self.out(self.norm(h))

    def flops_per_step(self, t: int) -> int:
        """Matrix products of one step at stream position t (t cached positions, this one included)."""
        d, ff = self.d, self.blocks[0].ff1.out_features
        per_layer = 2 * (3 * d * d + d * d + 2 * d * ff) + 2 * 2 * d * t  # projections, MLP; scores + weighted sum
        return 2 * (self.inp.in_features * d + d * self.out.out_features) + self.n_layers * per_layer


class TransformerStream:
    """One step per call; K and V of every layer appended to a preallocated cache (layers, heads, capacity, dh)."""

    def __init__(self, m: CausalTransformer, capacity: int):
        self.m = m
        self.capacity = capacity
        self.K = torch.zeros(m.n_layers, m.heads, capacity, m.dh)
        self.V = torch.zeros_like(self.K)
        self.bytes_per_position = 2 * m.n_layers * m.d * self.K.element_size()
        self.scale = 1.0 / math.sqrt(m.dh)
        self.t = 0

    def reset(self) -> None:
        self.t = 0  # positions past t are never read: no need to clear them

    def state_bytes(self, t: int) -> int:
        return t * self.bytes_per_position

    @property
    def allocated_bytes(self) -> int:
        return self.K.nbytes + self.V.nbytes

    def step(self, x: torch.Tensor) -> torch.Tensor:  # x (1, F)
        m, t = self.m, self.t
        h = m.inp(x) + m.pe[t]  # (1, d)
        for i, b in enumerate(m.blocks):
            q, k, v = b.qkv(b.ln1(h)).view(3, m.heads, 1, m.dh)
            K, V = self.K[i], self.V[i]
            K[:, t : t + 1] = k
            V[:, t : t + 1] = v
            scores = torch.matmul(q, K[:, : t + 1].transpose(1, 2)).mul_(self.scale)  # (heads, 1, t + 1)
            o = torch.matmul(torch.softmax(scores, dim=-1), V[:, : t + 1])  # (heads, 1, dh)
            h = h + b.proj(o.reshape(1, m.d))
            h = h + b.mlp(h)
        self.t = t + 1
        return m.out(m.norm(h))


class CausalTCN(nn.Module):
    """Linear in, residual dilated causal convolutions h + relu(conv(h)), Linear out."""

    def __init__(self, n_in: int, n_out: int, channels: int, kernel: int, dilations):
        super().__init__()
        self.kernel, self.dilations = kernel, tuple(dilations)
        self.inp = nn.Linear(n_in, channels)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d) for d in self.dilations)
        self.out = nn.Linear(channels, n_out)

    @property
    def receptive_field(self) -> int:
        return 1 + (self.kernel - 1) * sum(self.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x).transpose(1, 2)  # (B, C, T)
        for conv, d in zip(self.convs, self.dilations):
            h = h + F.relu(conv(F.pad(h, ((self.kernel - 1) * d, 0))))  # left padding only: causal
        return self.out(h.transpose(1, 2))

    def flops_per_step(self) -> int:
        C = self.inp.out_features
        return 2 * (self.inp.in_features * C + len(self.convs) * C * C * self.kernel + C * self.out.out_features)


class TCNStream:
    """One step per call; each layer keeps its last (k-1) d + 1 inputs (this step's included) in a ring buffer."""

    def __init__(self, m: CausalTCN):
        self.m = m
        k, C = m.kernel, m.inp.out_features
        self.sizes = [(k - 1) * d + 1 for d in m.dilations]
        self.rings = [torch.zeros(n, C) for n in self.sizes]
        # conv weight (C_out, C_in, k) -> (C_out, k * C_in): tap j (0 = oldest) times the input at t - (k-1-j) d
        self.weights = [c.weight.detach().permute(0, 2, 1).reshape(C, k * C).contiguous() for c in m.convs]
        self.biases = [c.bias.detach() for c in m.convs]
        self.t = 0

    def reset(self) -> None:
        for r in self.rings:
            r.zero_()  # steps before the start read zeros, as the whole-sequence forward's padding
        self.t = 0

    def state_bytes(self, t: int) -> int:
        return sum(r.nbytes for r in self.rings)

    allocated_bytes = property(lambda self: self.state_bytes(0))

    def step(self, x: torch.Tensor) -> torch.Tensor:  # x (1, F)
        m, t, k = self.m, self.t, self.m.kernel
        h = m.inp(x)[0]  # (C,)
        for ring, n, d, W, b in zip(self.rings, self.sizes, m.dilations, self.weights, self.biases):
            ring[t % n] = h
            taps = torch.cat([ring[(t - (k - 1 - j) * d) % n] for j in range(k)])
            h = h + F.relu(F.linear(taps, W, b))
        self.t = t + 1
        return m.out(h)[None]


class TorchCellStream:
    """A RecurrentModel (one layer) as nn.RNNCell / LSTMCell / GRUCell + Linear, stepped in PyTorch eager."""

    def __init__(self, rm: RecurrentModel):
        spec = rm.spec
        layer, rnn = spec["layers"][0], rm.layers[0]
        self.lstm = layer["cell"] == "lstm"
        cls = {"rnn_tanh": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[layer["cell"]]
        self.cell = cls(rnn.input_size, rnn.hidden_size)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.cell, name).copy_(getattr(rnn, name + "_l0"))
        self.mean, self.std, self.head = rm.norm_mean, rm.norm_std, rm.head
        self.hidden = layer["hidden"]
        self.reset()

    def reset(self) -> None:
        z = torch.zeros(1, self.hidden)
        self.state = (z, z.clone()) if self.lstm else z

    def step(self, x: torch.Tensor) -> torch.Tensor:
        v = (x - self.mean) / self.std
        self.state = self.cell(v, self.state)
        return self.head(self.state[0] if self.lstm else self.state)
