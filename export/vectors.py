"""Golden test vectors: `model.<precision>.vectors.safetensors`, one streamed sequence recorded step by step.

Export writes one beside each weight file `model.<precision>.safetensors` (f32, int8w, int8) of a model that can
stream. It holds what the runtime (runtime/stream.py, Stream.step with batch=1) did with one input sequence, so
firmware_ref/ can replay the inputs and compare its own numbers, step by step, without Python. This docstring
is the format's specification.

File: a safetensors file (no pickle; little-endian, C order). Steps t = 0 .. T-1, T = `steps`; F the input
width (spec input.features), S the state width (below), O the outputs (spec head.out).

Tensors:

    name       dtype    shape   precisions          meaning
    input      float32  (T, F)  all (dense input)   the raw input of step t, before normalisation
               int64    (T,)    all (token input)   the token id of step t
    input_q    int16    (T, F)  int8, dense only    the quantised input the integer layers received at step t:
                                                    clamp(rint(((x - mean) / std) / s_x), -32767, 32767), float32
                                                    arithmetic (runtime.kernels_int8.quantize_input_int8). Token
                                                    input has no input_q: the layers read the int8 embedding row
                                                    input[t] of the weight file.
    state      float32  (T, S)  f32, int8w          the full stream state after step t
               int16    (T, S)  int8                (int8: the integer state; h in its layer's scale, c in 2^p)
    logits_q   int32    (T, O)  int8                the head's integer accumulators b + W h of step t
    output     float32  (T, O)  all                 y, what step t returned (head activation applied; int8:
                                                    act(logits_q * head.scale))

"State after step t": the state starts as a fresh stream's does (not stored): zero, or for a layer with the
initial_state extension its h0 (and c0) from the weight file (runtime/spec.py); step t reads input[t] and the state after step
t - 1 and writes state[t], which is what step t + 1 starts from. The head runs at every step, also for a
`last_step` head (output[t] is then the answer if the sequence ended at t).

State layout (metadata `state_layout`, also `state_layout(spec)`): layers in order, each layer's h (H values)
then, for lstm only, its c (H values), packed without gaps; entries [layer, "h" | "c", offset, length]. E.g.
an lstm of 8 then a gru of 4: [[0, "h", 0, 8], [0, "c", 8, 8], [1, "h", 16, 4]], S = 20. This is
runtime/layout.py's state row; the firmware's state buffer uses the same order.

Metadata (all strings, as safetensors requires; exactly these keys, each in the canonical form written here):

    rnnedge.vectors.format           FORMAT_VERSION, decimal ("2"; version 1 files, whose header was not sealed,
                                     are refused: re-export them)
    rnnedge.vectors.precision        "f32", "int8w" or "int8": the weight file's precision
    rnnedge.vectors.steps            T, decimal, in [1, MAX_STEPS]
    rnnedge.vectors.artifact         file name (no folder) of the weight file the vectors were made with
    rnnedge.vectors.artifact_sha256  that file's `rnnedge.sha256` (runtime.artifact.sha256): ties the vectors to
                                     one weight file, spec and tensors
    rnnedge.vectors.state_layout     the state layout above, JSON without spaces
    rnnedge.vectors.spec             the model spec, JSON (runtime.spec.dumps of the validated spec)
    rnnedge.vectors.sha256           the seal: SHA-256 over every other key and value and every tensor (name,
                                     dtype, shape, bytes), as runtime.sealed.digest computes it under DOMAIN

read_vectors reads the file as runtime/sealed.py describes (a regular file only; header length, spec and tensor
table checked against the file's size before any tensor byte is read) and raises VectorsError, naming the field or
the reason, for anything else.

Agreement rules (`check_vectors`; the firmware's tests apply the same, host_test_float.c and arm_test_float.c):

    int8   input_q, state, logits_q: bit for bit. output: the float rule below, with scale(t) the largest
           |output[t]| (one float multiply and the head activation, whose exp may differ by an ulp or two).
    f32, int8w   state, output: the float rule (float sums may be ordered, and fused, differently).
    float rule   |actual - expected| <= ATOL + RTOL * scale(t) for every value of step t, ATOL = 1e-5,
           RTOL = 1e-5, scale(t) the largest |expected| value of step t's state and output (the magnitude that
           step's float sums work at; int8: its output).
    all    the replaying weight file's SHA-256 must equal artifact_sha256 (its name may differ).

Why scale(t) and not each value's own |expected|: a float32 sum is off by a few ulps of its terms, not of its
result, and a recurrent state carries that error on, growing with it. Random rnn_relu models whose states reach
100-10,000 (C host build against the runtime, 64 steps, f32 and int8w) needed up to RTOL = 3.4e-7 (states ~100)
and 1.8e-6 (states growing to 1e4) against scale(t), but up to 6.6e-4 against a value's own |expected|: a unit
near 0 computed from terms near 1,000. 1e-5 (84 float32 ulps of scale(t)) keeps 5x margin over the worst case;
a wrong weight, scale or cell moves values by far more. The absolute 1e-5 alone failed a third of them.

Bidirectional and reverse models cannot stream (step t would need later inputs): write_vectors refuses them
with ValueError; callers that export any model check runtime.spec.can_stream(spec) first.

    write_vectors(path, artifact_path, X, steps=64)   record; returns the metadata (as read_vectors parses it)
    read_vectors(path) -> (metadata, tensors)         verify and load; VectorsError if not a valid file
    check_vectors(vectors_path, artifact_path)        replay with the runtime; [] or mismatch descriptions
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from rnnedge.runtime import artifact, sealed, strict_json
from rnnedge.runtime import spec as specs
from rnnedge.runtime.kernels_int8 import quantize_input_int8
from rnnedge.runtime.layout import L_OFF_C, L_OFF_H, M_N_IN, M_OFF_IN_A, M_OFF_IN_B, M_OFF_IN_S
from rnnedge.runtime.model import Model

FORMAT_VERSION = 2  # 2: the header is sealed with the tensors (1: the tensors only)
DEFAULT_STEPS = 64
# the float rule for state and output, |diff| <= ATOL + RTOL * scale(t) ("Agreement rules"); int8 integers: exact
ATOL = 1e-5
RTOL = 1e-5
MAX_LISTED = 20  # check_vectors lists at most this many mismatching elements per tensor, then a count
PREFIX = "rnnedge.vectors."
DOMAIN = "rnnedge vectors file"
KEYS = tuple(PREFIX + key for key in ("format", "precision", "steps", "artifact", "artifact_sha256", "state_layout",
                                      "spec", "sha256"))
MAX_STEPS = 2**24  # steps a vectors file may hold (its tensors are checked against the file size before reading)
_INT16 = np.iinfo(np.int16)


class VectorsError(ValueError):
    """A vectors file that is truncated, tampered with, of another version, or inconsistent with its spec."""


def vectors_file(precision: str) -> str:
    """The vectors file's name beside `model.<precision>.safetensors`."""
    return f"model.{precision}.vectors.safetensors"


def state_layout(spec: dict) -> list[list]:
    """[layer, "h" | "c", offset, length] of every state tensor, in state order (module docstring)."""
    layout, offset = [], 0
    for l, layer in enumerate(spec["layers"]):
        H = layer["hidden"]
        for part in ("h", "c") if layer["cell"] == "lstm" else ("h",):
            layout.append([l, part, offset, H])
            offset += H
    return layout


def vector_tensors(spec: dict, precision: str, steps: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, dtype name) of every tensor a vectors file of this spec, precision and length holds."""
    T, O = steps, spec["head"]["out"]
    S = sum(length for _, _, _, length in state_layout(spec))
    dense = spec["input"]["kind"] == "dense"
    int8 = precision == "int8"
    tensors = {"input": ((T, specs.input_size(spec)), "float32") if dense else ((T,), "int64"),
               "state": ((T, S), "int16" if int8 else "float32"),
               "output": ((T, O), "float32")}
    if int8:
        tensors["logits_q"] = ((T, O), "int32")
        if dense:
            tensors["input_q"] = ((T, specs.input_size(spec)), "int16")
    return tensors


# -- writing ------------------------------------------------------------------------------------------

def write_vectors(path: str | os.PathLike, artifact_path: str | os.PathLike, X, steps: int | None = None) -> dict:
    """Stream one sequence X through the weight file at artifact_path and save every step to path.

    X: (T, F) float dense features or (T,) integer token ids, raw as the device sees them; only the first
    `steps` (default DEFAULT_STEPS) are used. Raises ValueError for a bidirectional model or a bad X,
    ArtifactError for a bad weight file. Returns the metadata as read_vectors returns it.
    """
    spec, precision, weights = artifact.read(artifact_path)
    if not specs.can_stream(spec):
        raise ValueError(f"{artifact_path}: the model has a bidirectional or reverse layer, so it cannot stream one "
                         "step at a time and has no step-by-step test vectors")
    steps = DEFAULT_STEPS if steps is None else steps
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    model = Model(spec, precision, weights)
    X = _check_input(model, X)[:steps]
    metadata = {"format": FORMAT_VERSION, "precision": precision, "steps": len(X),
                "artifact": os.path.basename(os.fspath(artifact_path)),
                "artifact_sha256": artifact.sha256(spec, precision, weights),
                "state_layout": _runtime_state_layout(model), "spec": model.spec}
    save_vectors(path, metadata, record(model, X))
    return read_vectors(path)[0]


def save_vectors(path: str | os.PathLike, metadata: dict, tensors: dict[str, np.ndarray]) -> None:
    """Low-level writer: metadata as read_vectors returns it (its sha256 is recomputed: the seal), tensors as above.

    Checks the tensors against the spec first, so it never writes a file read_vectors would refuse.
    """
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    spec = specs.validate(metadata["spec"])
    precision, steps = metadata["precision"], int(metadata["steps"])
    if not _is_file_name(str(metadata["artifact"])):
        raise ValueError(f"artifact {metadata['artifact']!r}: a vectors file names its weight file by a file name "
                         "(ASCII, no folder), as read_vectors requires")
    _check_tensors(tensors, spec, precision, steps, str(path))
    header = {
        PREFIX + "format": str(FORMAT_VERSION),
        PREFIX + "precision": precision,
        PREFIX + "steps": str(steps),
        PREFIX + "artifact": str(metadata["artifact"]),
        PREFIX + "artifact_sha256": str(metadata["artifact_sha256"]),
        PREFIX + "state_layout": json.dumps(metadata["state_layout"], separators=(",", ":")),
        PREFIX + "spec": specs.dumps(spec),
    }
    sealed.write(path, DOMAIN, PREFIX + "sha256", header, tensors)


def record(model: Model, X: np.ndarray) -> dict[str, np.ndarray]:
    """The vectors' tensors for X (checked by _check_input): a fresh stream of batch 1 (starting from the model's
    initial state), one step per row."""
    stream = model.stream(batch=1)
    T = len(X)
    int8 = model.precision == "int8"
    lay = model.layout
    state = np.empty((T, lay.state_size), dtype=np.int16 if int8 else np.float32)
    output = np.empty((T, model.out), dtype=np.float32)
    out = {"input": X, "state": state, "output": output}
    if int8:
        logits = out["logits_q"] = np.empty((T, model.out), dtype=np.int32)
        if model.dense:
            m, n_in = lay.model, int(lay.model[M_N_IN])
            mean, std = lay.vector(int(m[M_OFF_IN_A]), n_in), lay.vector(int(m[M_OFF_IN_B]), n_in)
            scale = lay.blob[int(m[M_OFF_IN_S])]
            xq = np.zeros(n_in, dtype=np.int32)
            input_q = out["input_q"] = np.empty((T, n_in), dtype=np.int16)
    for t in range(T):
        x = np.ascontiguousarray(X[t : t + 1])
        stream.step(x)
        output[t] = stream.y[0]
        if int8:
            s = stream.state[0]
            if s.size and (s.min() < _INT16.min or s.max() > _INT16.max):
                raise RuntimeError(f"int8 state at step {t} leaves the int16 range: the runtime broke its invariant")
            state[t] = s
            logits[t] = stream.logits_q[0]
            if model.dense:
                quantize_input_int8(xq, X[t], mean, std, scale)
                input_q[t] = xq
        else:
            state[t] = stream.state[0]
    return out


def _check_input(model: Model, X) -> np.ndarray:
    X = np.asarray(X)
    if model.dense:
        if X.ndim != 2 or X.shape[1] != model.features or not np.issubdtype(X.dtype, np.floating):
            raise ValueError(f"X must be float features of shape (steps, {model.features}), got {X.dtype} {X.shape}")
        X = np.ascontiguousarray(X, dtype=np.float32)
    else:
        if X.ndim != 1 or not np.issubdtype(X.dtype, np.integer):
            raise ValueError(f"X must be integer token ids of shape (steps,), got {X.dtype} {X.shape}")
        X = np.ascontiguousarray(X, dtype=np.int64)
    if len(X) == 0:
        raise ValueError("X has no time steps")
    return X


def _runtime_state_layout(model: Model) -> list[list]:
    """state_layout(spec), checked against the offsets the runtime's kernels use (runtime/layout.py)."""
    layout = state_layout(model.spec)
    for l, part, offset, _ in layout:
        if int(model.layout.layers[2 * l, L_OFF_H if part == "h" else L_OFF_C]) != offset:
            raise RuntimeError(f"runtime state layout differs from vectors.state_layout at layer {l} {part}")
    if sum(n for *_, n in layout) != model.layout.state_size:
        raise RuntimeError("runtime state size differs from vectors.state_layout")
    return layout


# -- reading ------------------------------------------------------------------------------------------

def read_vectors(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Load and verify a vectors file: (metadata, tensors).

    metadata: format (int), precision, steps (int), artifact, artifact_sha256, state_layout (list), spec
    (dict), sha256. Raises VectorsError (only) for a missing, truncated, tampered or inconsistent file.
    """
    with sealed.SealedFile(path, VectorsError) as f:
        path, raw = f.path, f.metadata
        _check_keys(raw, path)
        precision = raw[PREFIX + "precision"]
        try:
            spec = specs.loads(raw[PREFIX + "spec"])
        except specs.SpecError as e:
            raise VectorsError(f"{path}: bad spec in metadata: {e}") from None
        if not specs.can_stream(spec):
            raise VectorsError(f"{path}: the spec has a bidirectional or reverse layer, which has no step-by-step "
                               "vectors")
        steps = int(raw[PREFIX + "steps"])
        layout = strict_json.loads(raw[PREFIX + "state_layout"], f"{path}: state_layout", VectorsError, 2,
                                   16 * specs.MAX_LAYERS + 8)
        if layout != state_layout(spec):
            raise VectorsError(f"{path}: state_layout {strict_json.short(layout)} does not match the spec's "
                               f"{strict_json.short(state_layout(spec))}")
        layout = state_layout(spec)  # the same values, and surely ints (0.0 == 0 == False compared equal above)
        f.check_table(vector_tensors(spec, precision, steps), f"the spec ({precision}, {steps} steps)",
                      f"{precision} vectors need")
        for key, canonical in (("spec", specs.dumps(spec)), ("state_layout", json.dumps(layout, separators=(",", ":")))):
            if raw[PREFIX + key] != canonical:
                raise VectorsError(f"{path}: {PREFIX}{key} is not in canonical form: it was edited or written by "
                                   "another tool")
        tensors = f.read_tensors()
    if sealed.digest(DOMAIN, {k: raw[k] for k in KEYS if k != PREFIX + "sha256"}, tensors) != raw[PREFIX + "sha256"]:
        raise VectorsError(f"{path}: SHA-256 of the header and tensors does not match {PREFIX}sha256: the file was "
                           "modified or damaged")
    metadata = {"format": FORMAT_VERSION, "precision": precision, "steps": steps,
                "artifact": raw[PREFIX + "artifact"], "artifact_sha256": raw[PREFIX + "artifact_sha256"],
                "state_layout": layout, "spec": spec, "sha256": raw[PREFIX + "sha256"]}
    _check_tensors(tensors, spec, precision, steps, path)
    return metadata, tensors


def _is_file_name(name: str) -> bool:
    """A weight file's name as a vectors file records it: ASCII (the header is ASCII), no folder, no NUL."""
    return (0 < len(name) <= 255 and name.isascii() and name not in (".", "..")
            and not re.search(r"[/\\\x00]", name))


def _check_keys(raw: dict[str, str], path: str) -> None:
    """The format version first (its own message for version 1), then exactly KEYS, each value's form."""
    version = raw.get(PREFIX + "format")
    if version is None:
        hint = " (it is a weight file: pass its vectors file)" if "rnnedge.format" in raw else ""
        raise VectorsError(f"{path}: not an rnnedge vectors file (no '{PREFIX}format' in its metadata){hint}")
    if version == "1":
        raise VectorsError(f"{path}: vectors format 1 is no longer read: its header was not sealed; re-export it "
                           f"with this rnnedge (rnnedge export) to get format {FORMAT_VERSION}")
    if version != str(FORMAT_VERSION):
        raise VectorsError(f"{path}: vectors format {strict_json.short(version)[1:-1]} is not supported (this "
                           f"rnnedge reads {FORMAT_VERSION})")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise VectorsError(f"{path}: unknown metadata key {strict_json.short(unknown[0])}: a vectors file's metadata "
                           f"holds exactly {', '.join(KEYS)}")
    missing = [key for key in KEYS if key not in raw]
    if missing:
        raise VectorsError(f"{path}: metadata lacks {', '.join(missing)}")
    if raw[PREFIX + "precision"] not in specs.PRECISIONS:
        raise VectorsError(f"{path}: precision {strict_json.short(raw[PREFIX + 'precision'])} is not supported "
                           f"(supported: {', '.join(specs.PRECISIONS)})")
    steps = raw[PREFIX + "steps"]
    if not re.fullmatch(r"[1-9][0-9]{0,8}", steps) or int(steps) > MAX_STEPS:
        raise VectorsError(f"{path}: steps {strict_json.short(steps)} is not an integer in [1, {MAX_STEPS}]")
    if not _is_file_name(raw[PREFIX + "artifact"]):
        raise VectorsError(f"{path}: artifact {strict_json.short(raw[PREFIX + 'artifact'])} is not a file name (ASCII, "
                           "no folder)")
    for key in ("artifact_sha256", "sha256"):
        if not re.fullmatch(r"[0-9a-f]{64}", raw[PREFIX + key]):
            raise VectorsError(f"{path}: {PREFIX}{key} is not a SHA-256 hex digest")


def _check_tensors(tensors: dict[str, np.ndarray], spec: dict, precision: str, steps: int, path: str) -> None:
    expected = vector_tensors(spec, precision, steps)
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise VectorsError(f"{path}: tensors do not match the spec ({precision}, {steps} steps): missing {missing}, "
                           f"unexpected {extra}")
    for name, (shape, dtype) in expected.items():
        arr = tensors[name]
        if tuple(arr.shape) != shape:
            raise VectorsError(f"{path}: tensor {name} has shape {tuple(arr.shape)}, expected {shape}")
        if arr.dtype != np.dtype(dtype):
            raise VectorsError(f"{path}: tensor {name} is {arr.dtype}, {precision} vectors need {dtype}")
        if arr.dtype == np.float32 and not np.all(np.isfinite(arr)):
            raise VectorsError(f"{path}: tensor {name} holds NaN or infinity")
    if spec["input"]["kind"] == "tokens":
        ids, vocab = tensors["input"], spec["input"]["vocab"]
        if np.any((ids < 0) | (ids >= vocab)):
            raise VectorsError(f"{path}: input holds a token id outside the vocabulary [0, {vocab})")


# -- checking -----------------------------------------------------------------------------------------

def check_vectors(vectors_path: str | os.PathLike, artifact_path: str | os.PathLike, atol: float = ATOL,
                  max_listed: int = MAX_LISTED, rtol: float = RTOL) -> list[str]:
    """Replay a vectors file's inputs through the runtime with the weight file at artifact_path.

    Returns [] when the runtime reproduces the file (module docstring, "Agreement rules"), else one line per
    mismatching element (at most max_listed per tensor, then a count), in step order, each naming the tensor,
    step, position, expected (the file) and actual (the runtime) value. A weight file other than the one the
    vectors were made with is one mismatch. An invalid vectors or weight file raises VectorsError / ArtifactError.
    """
    meta, expected = read_vectors(vectors_path)
    spec, precision, weights = artifact.read(artifact_path)
    sha = artifact.sha256(spec, precision, weights)
    if sha != meta["artifact_sha256"] or precision != meta["precision"]:
        name = os.path.basename(os.fspath(artifact_path))
        return [f"weight file: the vectors were made with {meta['artifact']} ({meta['precision']}, sha256 "
                + f"{meta['artifact_sha256'][:16]}...), {name} is {precision} with sha256 {sha[:16]}..."]
    model = Model(spec, precision, weights)
    actual = record(model, _check_input(model, np.array(expected["input"])))
    names = {"state": _state_names(meta["state_layout"]), "output": None, "logits_q": None, "input_q": None}
    scale = _step_scale(expected, precision)
    problems: list[str] = []
    for name in ("input_q", "state", "logits_q", "output"):
        if name not in expected:
            continue
        exact = precision == "int8" and name != "output"
        rule = None if exact else (atol, rtol, scale)
        problems += _compare(name, expected[name], actual[name], rule, names[name], max_listed)
    return problems


def _step_scale(expected: dict[str, np.ndarray], precision: str) -> np.ndarray:
    """scale(t) (T, 1) float64 of the float rule: the largest |expected| value of step t's float tensors (state and
    output; int8: output, its state being integers)."""
    floats = ["output"] if precision == "int8" else ["state", "output"]
    parts = [np.abs(expected[name].astype(np.float64)) for name in floats if expected[name].shape[1]]
    return np.max(np.concatenate(parts, axis=1), axis=1, keepdims=True)


def _state_names(layout: list[list]) -> list[str]:
    names = []
    for l, part, _, length in layout:
        names += [f"layer {l} {part}[{j}]" for j in range(length)]
    return names


def _compare(name: str, expected: np.ndarray, actual: np.ndarray, rule: tuple | None, labels: list[str] | None,
             max_listed: int) -> list[str]:
    """Mismatching elements of (T, n) tensors: exact when rule is None, else rule = (atol, rtol, scale (T, 1)):
    |diff| <= atol + rtol * scale(t) (a NaN never agrees)."""
    if rule is None:
        bad = expected != actual
    else:
        atol, rtol, scale = rule
        diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
        bad = ~(diff <= atol + rtol * scale)
    where = np.argwhere(bad)
    lines = []
    for t, i in where[:max_listed]:
        e, a = expected[t, i].item(), actual[t, i].item()
        label = f" ({labels[i]})" if labels else ""
        if rule is None:
            more, stated = "", "exact"
        else:
            more = f", |diff| {abs(a - e):.3g}"
            stated = f"|diff| <= {atol:g} + {rtol:g} * {scale[t, 0]:.6g} (step {t}'s largest |expected|)"
        lines.append(f"{name}: step {t}, position {i}{label}: expected {e!r} (vectors file), actual {a!r} "
                     f"(runtime){more}; rule {stated}")
    if len(where) > max_listed:
        lines.append(f"{name}: {len(where) - max_listed} more mismatching elements not listed")
    return lines
