"""What export/from_module.py works with: its errors, the Mapping it returns, and the abstract values it gives
each node of a user's traced forward() (a sequence, one vector per sequence, a recurrent module's result, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

PROOF_TOLERANCE = 1e-5
SUPPORTED = ("rnnedge maps nn.Embedding / nn.RNN / nn.LSTM / nn.GRU (packed with forward(x, lengths) or not), "
             "dropout, and a head of nn.Linear layers with ReLU / Tanh / GELU / Sigmoid between them and a final "
             "softmax, log_softmax or sigmoid")
RECURRENT = (nn.RNN, nn.LSTM, nn.GRU)
# The activations a head maps: module class / function -> name (gelu's approximate="tanh" is "gelu_tanh")
ACTIVATION_MODULES = {nn.Softmax: "softmax", nn.LogSoftmax: "log_softmax", nn.Sigmoid: "sigmoid", nn.ReLU: "relu",
                      nn.Tanh: "tanh", nn.GELU: "gelu"}
ACTIVATION_FUNCTIONS = {F.softmax: "softmax", torch.softmax: "softmax", F.log_softmax: "log_softmax",
                        torch.log_softmax: "log_softmax", F.sigmoid: "sigmoid", torch.sigmoid: "sigmoid",
                        F.relu: "relu", torch.relu: "relu", F.tanh: "tanh", torch.tanh: "tanh", F.gelu: "gelu"}
ACTIVATION_METHODS = {"softmax", "log_softmax", "sigmoid", "relu", "tanh"}
MODULES = (*RECURRENT, nn.Embedding, nn.Linear, nn.Dropout, nn.AlphaDropout, nn.Identity, *ACTIVATION_MODULES)


class MappingError(ValueError):
    """The module's forward() does something the rnnedge spec cannot express (the message names it)."""


class ProofError(MappingError):
    """The mapped model does not reproduce the user's forward(); carries the measured difference."""

    def __init__(self, message: str, max_abs_diff: float):
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


class PitfallWarning(UserWarning):
    """The user's forward() does something legal but probably unintended; export reproduces it exactly."""


@dataclass
class Mapping:
    """What map_module found; unpacks as (spec, state_dict, warnings)."""

    spec: dict
    state_dict: dict[str, torch.Tensor]
    warnings: list[str]
    read_step: str | None = None  # None: forward() is the mapped model's output; "last"/"first": its [:, -1]/[:, 0]
    input_time_major: bool = False  # forward() takes (T, B[, F])
    output_time_major: bool = False  # forward() returns (T, B, out) (every_step heads only)
    max_abs_diff: float | None = None  # the proof's measured difference
    notes: list[str] = field(default_factory=list)
    lengths: str | None = None  # forward(x, <lengths>) packs with this argument; the runtime takes run(X, lengths)
    enforce_sorted: bool = False  # some pack_padded_sequence has enforce_sorted=True: lengths must come sorted
    padded_to: str | None = None  # per-step output padded to the "input"'s length or the "longest" sequence's

    def __iter__(self):
        return iter((self.spec, self.state_dict, self.warnings))

    def user_output(self, y: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The mapped model's (B, T, out) or (B, out) output -> what the user's forward() returns (within each
        sequence's length: past it the runtime's every-step output is zero, the user's the head of the padding)."""
        if self.read_step == "last":
            return y[:, -1]
        if self.read_step == "first":
            return y[:, 0]
        if y.dim() == 3 and self.padded_to == "longest" and lengths is not None:
            y = y[:, : int(lengths.max())]
        if y.dim() == 3 and self.output_time_major:
            return y.transpose(0, 1)
        return y

    def describe(self) -> dict:
        return {"spec_head_on": self.spec["head"]["on"], "read_step": self.read_step,
                "input_time_major": self.input_time_major, "output_time_major": self.output_time_major,
                "proof_max_abs_diff": self.max_abs_diff, "proof_tolerance": PROOF_TOLERANCE,
                "lengths_input": self.lengths, "enforce_sorted": self.enforce_sorted, "padded_to": self.padded_to,
                "warnings": self.warnings, "notes": self.notes}


# -- abstract values of the traced graph -------------------------------------------------------------------------
@dataclass
class Layer:
    module: str  # the user's module name
    rnn: nn.Module
    index: int  # layer within that module
    cell: str


@dataclass
class Chain:
    """The recurrent stack a value comes from."""

    input: dict | None = None  # spec["input"]
    embedding: nn.Embedding | None = None
    layers: list[Layer] = field(default_factory=list)
    input_time_major: bool | None = None
    modules: list[str] = field(default_factory=list)

    @property
    def hidden(self) -> int:
        return self.layers[-1].rnn.hidden_size

    @property
    def dirs(self) -> int:
        return 2 if self.layers[-1].rnn.bidirectional else 1


@dataclass
class Input:
    swapped: bool = False  # transposed (time <-> batch) relative to the forward's input


@dataclass
class Seq:
    """A sequence (embedded input, or a recurrent output); pieces: (layer, dir, lo, hi) columns, None = raw."""

    chain: Chain
    swapped: bool
    pieces: tuple | None
    padded: str | None = None  # pad_packed_sequence's output (zero past each length), padded to "input" or "longest"

    @property
    def time_major(self) -> bool:
        return bool(self.chain.input_time_major) != self.swapped


@dataclass
class Vec:
    """One vector per sequence: pieces (layer, dir, time "last"/"first", lo, hi)."""

    chain: Chain
    pieces: tuple


@dataclass
class RnnOut:
    chain: Chain
    first: int  # chain layer index of this module's layer 0
    rnn: nn.Module
    name: str
    part: str | None = None  # None: the (output, state) tuple; "state": (h_n, c_n) of an LSTM
    packed: bool = False  # read a PackedSequence: its output is one, and h_n is each sequence's true last step


@dataclass
class Lengths:
    """The forward()'s second argument, the sequence lengths (as given, or converted .cpu() / .tolist() ...)."""

    name: str


@dataclass
class LastIndex:
    """lengths - 1: each sequence's last true step, as an index."""

    lengths: Lengths


class BatchIndex:
    """torch.arange over the batch (of a shape), as an index."""


@dataclass
class Packed:
    """A PackedSequence: pack_padded_sequence of `value` (Input or Seq; batch_first says its layout), or a
    recurrent module's packed output (batch_first None: a PackedSequence has no layout until padded)."""

    value: object
    batch_first: bool | None


@dataclass
class PaddedPair:
    """pad_packed_sequence's (padded sequence, lengths)."""

    seq: Seq
    lengths: Lengths


@dataclass
class Final:
    """h_n (kind "h") or c_n (kind "c") of one recurrent module."""

    out: RnnOut
    kind: str


@dataclass
class Dense:
    """One of the head's nn.Linear layers (the user's module name)."""

    weight: torch.Tensor
    bias: torch.Tensor
    name: str


@dataclass
class Head:
    """The head so far: dense layers (none: the identity) reading `pieces`; hidden[k] is the activation between
    dense[k] and dense[k+1]; `activation` the one after the last layer (the output's, unless a layer follows)."""

    chain: Chain
    on: str  # "seq" or "vec"
    pieces: tuple
    dense: list[Dense]
    hidden: list[str] = field(default_factory=list)
    swapped: bool = False
    activation: str = "none"
    padded: str | None = None  # an every-step head reading pad_packed_sequence's output (Seq.padded)


class Zeros:
    pass


class Shape:
    pass


@dataclass
class Error:
    message: str


def width(pieces) -> int:
    return sum(p[-1] - p[-2] for p in pieces)


def select(pieces, lo: int, hi: int):
    """Columns [lo, hi) of a concatenation of pieces."""
    out, offset = [], 0
    for p in pieces:
        a, b = p[-2], p[-1]
        n = b - a
        s, e = max(lo - offset, 0), min(hi - offset, n)
        if s < e:
            out.append((*p[:-2], a + s, a + e))
        offset += n
    return tuple(out)


def is_all(s) -> bool:
    return isinstance(s, slice) and s.start is None and s.stop is None and s.step is None


def describe_call(node: fx.Node) -> str:
    if node.op == "call_method":
        what = f"Tensor.{node.target}"
    else:
        module = getattr(node.target, "__module__", None) or ""
        name = getattr(node.target, "__name__", str(node.target))
        what = f"torch.{name}" if module.startswith("torch") and "functional" not in module else (
            f"F.{name}" if "functional" in module else name)
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 and isinstance(node.args[1], int) else None)
    return f"{what} over dim {dim}" if dim is not None else what


IDENTITY_METHODS = {"contiguous", "float", "to", "detach", "clone"}
DROPOUT_FUNCTIONS = {F.dropout, torch.dropout, F.alpha_dropout}
ZEROS = {torch.zeros, torch.zeros_like}

