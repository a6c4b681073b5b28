"""The model spec: the one contract that train/, export/, runtime/ and firmware_ref/ all read.

A spec is a plain JSON-serialisable dict (see DESIGN.md). This module validates it and answers the
questions every stage asks of it (sizes of each layer, gates per cell, whether it can stream). It
imports nothing but the standard library, so the device can read it.

    {"version": 1,
     "input":  {"kind": "dense", "features": 6, "mean": [...], "std": [...]}
            or {"kind": "tokens", "vocab": 5000, "embed_dim": 64, "padding_idx": 0},
               (optional "chars": a string of `vocab` distinct characters, token id i being chars[i]:
                what a character model needs to turn text into ids and back without its training code)
     "layers": [{"cell": "lstm", "hidden": 128, "bidirectional": false}, ...],
     "head":   {"out": 12, "on": "every_step", "activation": "softmax",
               "hidden": [{"units": 32, "activation": "relu"}, ...]},   (optional, see below)
     "task":   "classify",
     "dropout": 0.0}

Optional layer keys, the ONNX operator semantics rnnedge runs beyond PyTorch's modules (absent = PyTorch's cell;
the normalised spec omits a key at its default, so a spec has one canonical form):

    "reverse": true              one direction, run from the last step to the first (ONNX direction=reverse);
                                 not with "bidirectional"; such a model cannot stream
    "linear_before_reset": false gru: n = g(W_in x + b_in + W_hn (r * h) + b_hn), the reset applied before the
                                 recurrent product (ONNX's default; PyTorch's form, true, is rnnedge's default)
    "input_forget": true         lstm: coupled gates, f = 1 - i (the forget rows' weights are unused)
    "peepholes": true            lstm: tensors layers.{l}.{d}.p (3H,) = [p_i; p_f; p_o]:
                                 i = f(.. + p_i * c_prev), f = f(.. + p_f * c_prev), o = f(.. + p_o * c_new)
    "clip": 3.0                  every gate's pre-activation (peephole and gru's r * (..) term included) is
                                 clamped to [-clip, clip] before its activation; the cell state is not
    "activations": [{"fn": "hardsigmoid", "alpha": 0.2, "beta": 0.5}, ...]
                                 the layer's functions as ONNX lists them, FUNCTIONS_PER_CELL per direction,
                                 forward first: rnn [f]; lstm [f (i, f, o), g (cell input), h (applied to c)];
                                 gru [f (r, z), g (n)]. Names: ACTIVATION_FNS; alpha/beta as ONNX defines them
                                 (both always written). Absent: the cell's own (rnn_tanh tanh, rnn_relu relu,
                                 lstm sigmoid tanh tanh, gru sigmoid tanh)
    "initial_state": true        tensors layers.{l}.{d}.h0 (H,) (and lstm: .c0 (H,)): the state every sequence
                                 and every stream (reset) starts from, instead of zeros

A spec using any of them is version 2 (validate sets it), so an rnnedge that reads version 1 only refuses it
rather than silently running PyTorch's cell. `unsupported(spec, precision)` names what a precision cannot run.

The head: `activation` is applied to the final linear layer's output: "softmax", "log_softmax" (log of the
softmax over the last axis, what nn.LogSoftmax(dim=-1) gives), "sigmoid" or "none". The optional "hidden" list
holds dense layers applied before that final layer, in order; layer k computes act_k(W_k v + b_k) with
tensors head.hidden.{k}.weight (U_k, in_k) and head.hidden.{k}.bias (U_k,), and the final layer head.weight
(O, U_last), head.bias (O,). Hidden activations: HIDDEN_ACTIVATIONS ("gelu" is the exact erf form,
nn.GELU(); "gelu_tanh" nn.GELU(approximate="tanh"); "none" nothing between two linear layers). An empty list
is today's single linear head and the normalised spec omits it. A spec with a non-empty "hidden" or a
"log_softmax" activation is version 3 (HEAD_VERSION), whatever its layers.

`dropout` is applied between stacked layers in training only. A `last_step` head reads each
direction's final state: the forward direction's output at the last true step and, for a
bidirectional last layer, the backward direction's output at step 0 (what it has seen of the whole
sequence). `mean`/`std` may be omitted when writing a spec by hand; they default to 0 and 1.

Bounds: `validate` refuses a key it does not know at any level (top, input, layers[i], head, head.hidden[k],
layers[i].activations[k]), naming it and where; every size (features, vocab, embed_dim, hidden, out, units) is an
int (not a bool) in [1, MAX_SIZE] (features: [1, MAX_FEATURES]); at most MAX_LAYERS layers and MAX_HEAD_LAYERS head layers; at most
MAX_PARAMETERS weights and biases in all; mean, std, clip, alpha and beta are finite float32 values (std and clip
at least FLOAT32_TINY), dropout in [0, 1). Files are read with these bounds before any tensor is allocated.
"""

from __future__ import annotations

import collections
import copy
import json
import math

from rnnedge.runtime import strict_json
from rnnedge.runtime.strict_json import short

SPEC_VERSION = 1  # what a spec of PyTorch's cells is written as
EXTENDED_VERSION = 2  # a spec with an ONNX layer extension (module docstring)
HEAD_VERSION = 3  # a spec with a head stack or a log_softmax head, with or without layer extensions
VERSIONS = (SPEC_VERSION, EXTENDED_VERSION, HEAD_VERSION)

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}  # rows of W_ih per hidden unit
HEAD_ON = ("every_step", "last_step")
ACTIVATIONS = ("softmax", "log_softmax", "sigmoid", "none")  # the head's output activation
HIDDEN_ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "gelu_tanh", "none")  # between a head's dense layers
_HEAD_KEYS = {"out", "on", "activation", "hidden"}
TASKS = ("classify", "tag", "forecast", "generate")

# ONNX's activation functions for RNN/LSTM/GRU (operator spec), each with the defaults of its alpha and beta
ACTIVATION_FNS = {"relu": (0.0, 0.0), "tanh": (0.0, 0.0), "sigmoid": (0.0, 0.0), "affine": (1.0, 0.0),
                  "leakyrelu": (0.01, 0.0), "thresholdedrelu": (1.0, 0.0), "scaledtanh": (1.0, 1.0),
                  "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0), "softsign": (0.0, 0.0), "softplus": (0.0, 0.0)}
FUNCTIONS_PER_CELL = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 3, "gru": 2}
DEFAULT_FUNCTIONS = {"rnn_tanh": ("tanh",), "rnn_relu": ("relu",), "lstm": ("sigmoid", "tanh", "tanh"),
                     "gru": ("sigmoid", "tanh")}
EXTENSIONS = ("reverse", "linear_before_reset", "input_forget", "peepholes", "clip", "activations", "initial_state")
_EXTENSION_DEFAULTS = {"reverse": False, "linear_before_reset": True, "input_forget": False, "peepholes": False,
                       "clip": None, "activations": None, "initial_state": False}
_LAYER_KEYS = {"cell", "hidden", "bidirectional", *EXTENSIONS}
_TOP_KEYS = {"version", "input", "layers", "head", "task", "dropout"}
_DENSE_KEYS = {"kind", "features", "mean", "std"}
_TOKEN_KEYS = {"kind", "vocab", "embed_dim", "padding_idx", "chars"}

# Bounds (module docstring): generous for any recurrent model a device runs, small enough that every size and
# every file a spec implies is a few GB at most, and so checked before anything is allocated
MAX_SIZE = 2**20  # vocab, embed_dim, hidden, head out and hidden units
MAX_FEATURES = 2**16  # dense input width: each feature costs two floats (mean, std) in every header that holds a spec
MAX_LAYERS = 64  # recurrent layers
MAX_HEAD_LAYERS = 64  # the head's hidden dense layers
MAX_PARAMETERS = 2**28  # weights and biases in all (1 GiB as float32)
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 2.0**-126  # the smallest normal float32: a std or clip below it divides into infinity
SPEC_MAX_DEPTH = 5  # spec > layers > layer > activations > function
SPEC_MAX_VALUES = 2 * MAX_FEATURES + 2**16  # mean and std, plus every other key and value of a spec at its caps


class SpecError(ValueError):
    """A model spec that is malformed or asks for something rnnedge does not support."""


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise SpecError(msg)


def _size(value, where: str, cap: int = MAX_SIZE) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool) and 0 < value <= cap,
             f"{where} must be a positive integer, got {short(value)} (at most {cap})")
    return value


def _number(value, where: str, low: float = -FLOAT32_MAX, high: float = FLOAT32_MAX,
            kind: str = "a finite number") -> float:
    """A JSON number (not a bool) in [low, high], as a float: the kernels compute in float32, so every number a spec
    holds must be a finite float32."""
    _require(isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high,
             f"{where} must be {kind} in [{low:g}, {high:g}], got {short(value)}")
    return float(value)


def _known_keys(d: dict, allowed: set[str], where: str) -> None:
    unknown = sorted((k if isinstance(k, str) and len(k) <= 60 else short(k) for k in set(d) - allowed), key=str)
    _require(not unknown, f"{where} has unknown keys {unknown[:5]}; its keys are {sorted(allowed)}")


def validate(spec: dict) -> dict:
    """Check a spec and return a normalised deep copy (defaults filled in). Raises SpecError naming the field.

    Unknown keys are refused at every level, every size is an int in [1, MAX_SIZE] (features MAX_FEATURES), every
    float a finite float32,
    and the model holds at most MAX_PARAMETERS parameters (module docstring, "Bounds").
    """
    _require(isinstance(spec, dict), f"spec must be a dict, got {type(spec).__name__}")
    _known_keys(spec, _TOP_KEYS, "spec")
    spec = copy.deepcopy(spec)
    version = spec.get("version")
    _require(isinstance(version, int) and not isinstance(version, bool) and version in VERSIONS,
             f"spec version {short(version)} is not supported (this rnnedge reads versions "
             f"{', '.join(map(str, VERSIONS))})")

    inp = spec.get("input")
    _require(isinstance(inp, dict), "spec['input'] is missing")
    kind = inp.get("kind")
    if kind == "dense":
        _known_keys(inp, _DENSE_KEYS, "input")
        f = _size(inp.get("features"), "input.features", MAX_FEATURES)
        inp.setdefault("mean", [0.0] * f)
        inp.setdefault("std", [1.0] * f)
        for key, low in (("mean", -FLOAT32_MAX), ("std", FLOAT32_TINY)):
            _require(isinstance(inp[key], list) and len(inp[key]) == f,
                     f"input.{key} must be a list of {f} numbers, got {short(inp[key])}")
            inp[key] = [_number(v, f"input.{key}[{j}]", low) for j, v in enumerate(inp[key])]
    elif kind == "tokens":
        _known_keys(inp, _TOKEN_KEYS, "input")
        v = _size(inp.get("vocab"), "input.vocab")
        _size(inp.get("embed_dim"), "input.embed_dim")
        pad = inp.setdefault("padding_idx", None)
        _require(pad is None or (isinstance(pad, int) and not isinstance(pad, bool) and 0 <= pad < v),
                 f"input.padding_idx must be null or an integer in [0, {v}), got {short(pad)}")
        chars = inp.pop("chars", None)
        if chars is not None:
            _require(isinstance(chars, str), f"input.chars must be a string, got {type(chars).__name__}")
            _require(len(chars) == v, f"input.chars must hold vocab = {v} characters, got {len(chars)}")
            repeated = sorted(c for c, n in collections.Counter(chars).items() if n > 1)
            _require(not repeated, f"input.chars must not repeat a character: {short(repeated)} appear more than once")
            inp["chars"] = chars
    else:
        raise SpecError(f"input.kind must be 'dense' or 'tokens', got {short(kind)}")

    layers = spec.get("layers")
    _require(isinstance(layers, list) and 0 < len(layers) <= MAX_LAYERS,
             f"spec['layers'] must be a list of 1 to {MAX_LAYERS} layers, got {short(layers)}")
    for i, layer in enumerate(layers):
        _require(isinstance(layer, dict), f"layers[{i}] must be a dict, got {short(layer)}")
        _known_keys(layer, _LAYER_KEYS, f"layers[{i}]")
        _require(layer.get("cell") in CELLS,
                 f"layers[{i}].cell {short(layer.get('cell'))} is not supported; supported cells: {', '.join(CELLS)}")
        _size(layer.get("hidden"), f"layers[{i}].hidden")
        layer.setdefault("bidirectional", False)
        _require(isinstance(layer["bidirectional"], bool), f"layers[{i}].bidirectional must be true or false")
        _validate_extensions(layer, f"layers[{i}]")

    head = spec.get("head")
    _validate_head(head)
    extended = any(key in layer for layer in layers for key in EXTENSIONS)
    spec["version"] = (HEAD_VERSION if head.get("hidden") or head["activation"] == "log_softmax"
                       else EXTENDED_VERSION if extended else SPEC_VERSION)

    spec.setdefault("task", "classify")
    _require(spec["task"] in TASKS, f"task must be one of {TASKS}, got {short(spec['task'])}")
    spec["dropout"] = _number(spec.get("dropout", 0.0), "dropout", 0.0, 1.0)
    _require(spec["dropout"] < 1.0, "dropout must be in [0, 1), got 1.0")
    n = parameter_count(spec)
    _require(n <= MAX_PARAMETERS, f"the spec describes {n} parameters, more than MAX_PARAMETERS = {MAX_PARAMETERS}")
    return spec


def parameter_count(spec: dict) -> int:
    """Weights and biases of a validated spec's float model (tensor_shapes), the quantity MAX_PARAMETERS bounds."""
    return sum(math.prod(shape) for shape in tensor_shapes(spec).values())


def _validate_head(head) -> None:
    """Check spec['head'] (module docstring), fill its default activation and drop an empty "hidden", in place."""
    _require(isinstance(head, dict), "spec['head'] is missing")
    _known_keys(head, _HEAD_KEYS, "head")
    _size(head.get("out"), "head.out")
    _require(head.get("on") in HEAD_ON, f"head.on must be one of {HEAD_ON}, got {short(head.get('on'))}")
    head.setdefault("activation", "none")
    _require(head["activation"] in ACTIVATIONS,
             f"head.activation {short(head['activation'])} is not supported; supported: {', '.join(ACTIVATIONS)}")
    hidden = head.get("hidden", [])
    _require(isinstance(hidden, list) and len(hidden) <= MAX_HEAD_LAYERS,
             f"head.hidden must be a list of dense layers (at most {MAX_HEAD_LAYERS}), got {short(hidden)}")
    for k, dense in enumerate(hidden):
        where = f"head.hidden[{k}]"
        _require(isinstance(dense, dict) and set(dense) == {"units", "activation"},
                 f"{where} must be {{'units': U, 'activation': name}} (exactly these keys), got {short(dense)}")
        _size(dense["units"], f"{where}.units")
        _require(dense["activation"] in HIDDEN_ACTIVATIONS,
                 f"{where}.activation {short(dense['activation'])} is not supported; supported: "
                 f"{', '.join(HIDDEN_ACTIVATIONS)}")
    if not hidden:
        head.pop("hidden", None)


def _validate_extensions(layer: dict, where: str) -> None:
    """Check a layer's optional ONNX keys (module docstring) and drop those at their default, in place."""
    cell = layer["cell"]
    for key in ("reverse", "linear_before_reset", "input_forget", "peepholes", "initial_state"):
        if key in layer:
            _require(isinstance(layer[key], bool), f"{where}.{key} must be true or false, got {short(layer[key])}")
    _require(not (layer.get("reverse") and layer["bidirectional"]),
             f"{where}: reverse and bidirectional exclude each other (a bidirectional layer runs both ways)")
    for key, family in (("linear_before_reset", "gru"), ("input_forget", "lstm"), ("peepholes", "lstm")):
        if key in layer:
            _require(cell == family, f"{where}.{key} belongs to {family} layers, this one is {cell}")
    if layer.get("clip") is not None:
        layer["clip"] = _number(layer["clip"], f"{where}.clip", FLOAT32_TINY, kind="a positive finite number")
    if layer.get("activations") is not None:
        acts = layer["activations"]
        n = FUNCTIONS_PER_CELL[cell] * (2 if layer["bidirectional"] else 1)
        _require(isinstance(acts, list) and len(acts) == n,
                 f"{where}.activations must list {n} functions ({FUNCTIONS_PER_CELL[cell]} per direction for "
                 f"{cell}), got {short(acts)}")
        normal = []
        for k, a in enumerate(acts):
            _require(isinstance(a, dict) and isinstance(a.get("fn"), str) and a["fn"] in ACTIVATION_FNS,
                     f"{where}.activations[{k}] must be {{'fn': name, 'alpha': a, 'beta': b}} with a name in "
                     f"{sorted(ACTIVATION_FNS)}, got {short(a)}")
            _known_keys(a, {"fn", "alpha", "beta"}, f"{where}.activations[{k}]")
            alpha, beta = ACTIVATION_FNS[a["fn"]]
            normal.append({"fn": a["fn"], "alpha": _number(a.get("alpha", alpha), f"{where}.activations[{k}].alpha"),
                           "beta": _number(a.get("beta", beta), f"{where}.activations[{k}].beta")})
        layer["activations"] = normal
        if all(a == {"fn": fn, "alpha": ACTIVATION_FNS[fn][0], "beta": ACTIVATION_FNS[fn][1]}
               for a, fn in zip(normal, DEFAULT_FUNCTIONS[cell] * (2 if layer["bidirectional"] else 1))):
            del layer["activations"]
    for key, default in _EXTENSION_DEFAULTS.items():
        if key in layer and layer[key] == default:
            del layer[key]


def option(layer: dict, key: str):
    """A layer's value of an optional key (EXTENSIONS), its default when absent."""
    return layer.get(key, _EXTENSION_DEFAULTS[key])


def functions(layer: dict, direction: int = 0) -> list[tuple[str, float, float]]:
    """(name, alpha, beta) of each activation function of one direction of a layer (module docstring)."""
    n = FUNCTIONS_PER_CELL[layer["cell"]]
    acts = layer.get("activations")
    if acts is None:
        return [(fn, *ACTIVATION_FNS[fn]) for fn in DEFAULT_FUNCTIONS[layer["cell"]]]
    return [(a["fn"], a["alpha"], a["beta"]) for a in acts[direction * n : (direction + 1) * n]]


def extensions(layer: dict) -> list[str]:
    """The optional keys a layer uses, in EXTENSIONS order."""
    return [key for key in EXTENSIONS if key in layer]


def unsupported(spec: dict, precision: str) -> list[str]:
    """What a precision's kernels cannot run in this spec, one phrase per layer and key ([] = runs).

    f32 and int8w run every extension; int8 runs reverse, linear_before_reset, input_forget, peepholes, clip
    and initial_state, not activation functions other than the cell's own (its gates are Q0.15 sigmoid/tanh
    tables). The head: HEAD_ACTIVATIONS_RUN and HIDDEN_ACTIVATIONS_RUN say what each precision computes.
    """
    if precision not in PRECISIONS:
        raise SpecError(f"precision {precision!r} is not supported (supported: {', '.join(PRECISIONS)})")
    problems = []
    if precision == "int8":
        for i, layer in enumerate(spec["layers"]):
            if "activations" in layer:
                names = [a["fn"] for a in layer["activations"]]
                problems.append(f"layers[{i}]: activations {names} (int8 computes only the cell's own "
                                "sigmoid/tanh/relu)")
    head = spec["head"]
    if head["activation"] not in HEAD_ACTIVATIONS_RUN[precision]:
        problems.append(f"head.activation {head['activation']} (not yet in the {precision} kernels)")
    for k, dense in enumerate(head_hidden(spec)):
        if dense["activation"] not in HIDDEN_ACTIVATIONS_RUN[precision]:
            problems.append(f"head.hidden[{k}]: a dense layer with activation {dense['activation']} ({precision} "
                            f"computes {', '.join(HIDDEN_ACTIVATIONS_RUN[precision])} between head layers)")
    return problems


def input_size(spec: dict) -> int:
    """Width of the first layer's input: features, or the embedding width."""
    inp = spec["input"]
    return inp["features"] if inp["kind"] == "dense" else inp["embed_dim"]


def directions(layer: dict) -> int:
    return 2 if layer["bidirectional"] else 1


def layer_input_sizes(spec: dict) -> list[int]:
    """Input width of every layer: the previous layer's output (both directions concatenated)."""
    sizes = [input_size(spec)]
    for layer in spec["layers"][:-1]:
        sizes.append(layer["hidden"] * directions(layer))
    return sizes


def output_width(spec: dict) -> int:
    """Width of the last recurrent layer's output, which the head reads."""
    last = spec["layers"][-1]
    return last["hidden"] * directions(last)


def head_hidden(spec: dict) -> list[dict]:
    """The head's dense layers before its final linear layer ([] for a single linear head)."""
    return spec["head"].get("hidden", [])


def head_input_sizes(spec: dict) -> list[int]:
    """Input width of each of the head's dense layers, the final one last: the recurrent output, then the units
    of each hidden layer."""
    return [output_width(spec)] + [dense["units"] for dense in head_hidden(spec)]


def can_stream(spec: dict) -> bool:
    """One step at a time needs every layer to run forward only (not bidirectional, not reverse)."""
    return not any(layer["bidirectional"] or layer.get("reverse", False) for layer in spec["layers"])


def tensor_shapes(spec: dict) -> dict[str, tuple[int, ...]]:
    """Name and shape of every tensor an artifact of this spec holds, in PyTorch's gate order.

    Dense-input normalisation (mean, std) lives in the spec itself, not in a tensor.
    The head: head.hidden.{k}.weight (U_k, in_k), head.hidden.{k}.bias (U_k,) per hidden layer, then
    head.weight (O, U_last or the recurrent output width), head.bias (O,).

    Per layer l and direction d (fwd, bwd): w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H,), b_hh (G*H,),
    where G is the number of gates of the cell (lstm 4: i f g o; gru 3: r z n; rnn 1); with "peepholes"
    p (3H,); with "initial_state" h0 (H,) and, lstm, c0 (H,). A reverse layer's one direction is "fwd".
    """
    shapes: dict[str, tuple[int, ...]] = {}
    inp = spec["input"]
    if inp["kind"] == "tokens":
        shapes["embedding.weight"] = (inp["vocab"], inp["embed_dim"])
    for l, (layer, n_in) in enumerate(zip(spec["layers"], layer_input_sizes(spec))):
        rows = GATES[layer["cell"]] * layer["hidden"]
        for d in ("fwd", "bwd")[: directions(layer)]:
            shapes[f"layers.{l}.{d}.w_ih"] = (rows, n_in)
            shapes[f"layers.{l}.{d}.w_hh"] = (rows, layer["hidden"])
            shapes[f"layers.{l}.{d}.b_ih"] = (rows,)
            shapes[f"layers.{l}.{d}.b_hh"] = (rows,)
            shapes.update(_extra_shapes(layer, f"layers.{l}.{d}"))
    widths = head_input_sizes(spec)
    for k, dense in enumerate(head_hidden(spec)):
        shapes[f"head.hidden.{k}.weight"] = (dense["units"], widths[k])
        shapes[f"head.hidden.{k}.bias"] = (dense["units"],)
    shapes["head.weight"] = (spec["head"]["out"], widths[-1])
    shapes["head.bias"] = (spec["head"]["out"],)
    return shapes


def _extra_shapes(layer: dict, prefix: str) -> dict[str, tuple[int, ...]]:
    """The tensors of a layer-direction's extensions: peepholes p (3H,), initial state h0 (H,) [, c0 (H,)]."""
    H = layer["hidden"]
    shapes = {}
    if layer.get("peepholes"):
        shapes[f"{prefix}.p"] = (3 * H,)
    if layer.get("initial_state"):
        shapes[f"{prefix}.h0"] = (H,)
        if layer["cell"] == "lstm":
            shapes[f"{prefix}.c0"] = (H,)
    return shapes


PRECISIONS = ("f32", "int8w", "int8")  # precisions whose weight files this rnnedge reads and writes
# per precision, the head activations and the hidden head layers' activations its kernels compute
HEAD_ACTIVATIONS_RUN = {precision: ACTIVATIONS for precision in PRECISIONS}
HIDDEN_ACTIVATIONS_RUN = {precision: HIDDEN_ACTIVATIONS for precision in PRECISIONS}


def recurrent_bias_rows(layer: dict) -> slice:
    """The rows of b_hh that cannot be folded into b_ih: gru's n rows (b_hn sits inside r * (W_hn h + b_hn));
    for every other gate, and for a gru with linear_before_reset false, b_ih + b_hh is one constant. The
    quantised files keep only these rows."""
    H = layer["hidden"]
    gru_reset_after = layer["cell"] == "gru" and layer.get("linear_before_reset", True)
    return slice(2 * H, 3 * H) if gru_reset_after else slice(0, 0)


def dumps(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def loads(text: str) -> dict:
    """Parse and validate a spec's JSON text, with strict_json's bounds (SPEC_MAX_DEPTH, SPEC_MAX_VALUES)."""
    return validate(strict_json.loads(text, "spec", SpecError, SPEC_MAX_DEPTH, SPEC_MAX_VALUES))
