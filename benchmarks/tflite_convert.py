"""The benchmark's LiteRT models: each workload's canonical float weights (W.weights.npz, written by
benchmarks.peer_build from the same PyTorch model every engine uses) as .tflite files, fp32 and full-int8.

    artifacts/bench-venv/bin/python -m benchmarks.tflite_convert FOLDER '{"kws": {"streams": true, ...}, ...}'

Runs in the benchmark's own environment (tensorflow-cpu, ai-edge-litert; benchmarks.peers creates it), never in
the project's. Writes, per workload W:

    W.step.{fp32,int8}.tflite   one step: x (B, F), h{l}_in [, c{l}_in] (B, H) -> y, h{l}_out [, c{l}_out];
                                streamable workloads only
    W.seq_bB_tT.{fp32,int8}.tflite   whole sequences x (B, T, F) -> y for each (B, T) measured, the recurrence
                                as a while loop (tf.scan; the converter needs B and T fixed)

The step models' batch is dynamic; the interpreter resizes their inputs. The cells are written out with
PyTorch's equations and gate order (lstm i f g o, gru r z n, tanh or relu rnn; the ONNX layer extensions clip,
activation functions, peepholes, input_forget and linear_before_reset false as the spec gives them; the head's
dense layers and activations as the spec gives them), the LSTM's two matrices as one matrix
over [x; h] (one FULLY_CONNECTED). full-int8: TFLiteConverter's integer quantisation (int8 weights and
activations, float inputs and outputs), calibrated on W.calibration.npz (a stream of its own seed) with the
float states that stream produces. The whole-sequence int8 files are dynamic-range quantised instead (int8
weights, float activations): full-int8 calibration of the while loop crashes this TensorFlow. Prints what it wrote; exits 1 on any failure.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # after the log level is set

# the spec's activations (runtime/spec.py: HIDDEN_ACTIVATIONS between a head's dense layers, ACTIVATIONS after it)
HIDDEN_ACTIVATIONS = {"relu": tf.nn.relu, "tanh": tf.tanh, "sigmoid": tf.sigmoid, "none": lambda v: v,
                      "gelu": lambda v: tf.nn.gelu(v, approximate=False),
                      "gelu_tanh": lambda v: tf.nn.gelu(v, approximate=True)}
OUTPUT_ACTIVATIONS = {"softmax": tf.nn.softmax, "log_softmax": tf.nn.log_softmax, "sigmoid": tf.sigmoid,
                      "none": lambda v: v}


# the ONNX layer functions a spec's `activations` name (runtime/spec.py ACTIVATION_FNS), with their alpha and beta
FUNCTIONS = {"relu": lambda a, b: tf.nn.relu, "tanh": lambda a, b: tf.tanh, "sigmoid": lambda a, b: tf.sigmoid,
             "affine": lambda a, b: lambda v: a * v + b,
             "leakyrelu": lambda a, b: lambda v: tf.where(v < 0.0, a * v, v),
             "thresholdedrelu": lambda a, b: lambda v: tf.where(v > a, v, tf.zeros_like(v)),
             "scaledtanh": lambda a, b: lambda v: a * tf.tanh(b * v),
             "hardsigmoid": lambda a, b: lambda v: tf.clip_by_value(a * v + b, 0.0, 1.0),
             "elu": lambda a, b: lambda v: tf.where(v < 0.0, a * (tf.exp(v) - 1.0), v),
             "softsign": lambda a, b: lambda v: v / (1.0 + tf.abs(v)),
             "softplus": lambda a, b: tf.nn.softplus}
# runtime/spec.py's DEFAULT_FUNCTIONS, restated: this converter runs in the benchmark's own environment, which
# has TensorFlow and not the project
DEFAULT_FUNCTIONS = {"lstm": ("sigmoid", "tanh", "tanh"), "gru": ("sigmoid", "tanh"), "rnn_tanh": ("tanh",),
                     "rnn_relu": ("relu",)}


def functions(layer: dict, d: str) -> list:
    """The layer-direction's activation functions (spec.functions): its `activations`, else the cell's own."""
    n = len(DEFAULT_FUNCTIONS[layer["cell"]])
    acts = layer.get("activations")
    if acts is None:
        return [FUNCTIONS[name](0.0, 0.0) for name in DEFAULT_FUNCTIONS[layer["cell"]]]
    first = n * (d == "bwd")
    return [FUNCTIONS[a["fn"]](a["alpha"], a["beta"]) for a in acts[first : first + n]]


class Cells:
    def __init__(self, spec: dict, w: dict):
        self.spec, self.w = spec, w
        self.mean = tf.constant(np.asarray(spec["input"]["mean"], np.float32))
        self.inv_std = tf.constant(1.0 / np.asarray(spec["input"]["std"], np.float32))

    def weights(self, l: int, d: str):
        """(W over [x; h] transposed, bias) for lstm / rnn; (W_ih^T, b_ih, W_hh^T, b_hh) for gru."""
        w = self.w
        p = f"layers.{l}.{d}."
        if self.spec["layers"][l]["cell"] == "gru":
            return (tf.constant(w[p + "w_ih"].T), tf.constant(w[p + "b_ih"]), tf.constant(w[p + "w_hh"].T),
                    tf.constant(w[p + "b_hh"]))
        W = np.concatenate([w[p + "w_ih"], w[p + "w_hh"]], axis=1).T
        return tf.constant(np.ascontiguousarray(W)), tf.constant(w[p + "b_ih"] + w[p + "b_hh"])

    def cell(self, l: int, d: str, x, state):
        """One step of layer l, direction d: (h, [c]) -> new (h, [c]), with the layer's ONNX extensions (clip,
        activation functions, peepholes, input_forget, linear_before_reset false) as runtime/kernels_f32_ext
        computes them."""
        layer = self.spec["layers"][l]
        kind = layer["cell"]
        fns = functions(layer, d)
        clip = layer.get("clip")

        def pre(v):  # a pre-activation clipped to [-clip, clip] where the layer has a clip
            return v if clip is None else tf.clip_by_value(v, -clip, clip)

        wts = self.weights(l, d)
        if kind == "gru":
            W_ih, b_ih, W_hh, b_hh = wts
            h = state[0]
            H = layer["hidden"]
            gi = tf.matmul(x, W_ih) + b_ih
            ir, iz, in_ = tf.split(gi, 3, axis=-1)
            if layer.get("linear_before_reset", True):
                hr, hz, hn = tf.split(tf.matmul(h, W_hh) + b_hh, 3, axis=-1)
            else:  # W_hn multiplies r h
                hr, hz = tf.split(tf.matmul(h, W_hh[:, : 2 * H]) + b_hh[: 2 * H], 2, axis=-1)
            r, z = fns[0](pre(ir + hr)), fns[0](pre(iz + hz))
            if not layer.get("linear_before_reset", True):
                hn = tf.matmul(r * h, W_hh[:, 2 * H :]) + b_hh[2 * H :]
                n = fns[1](pre(in_ + hn))
            else:
                n = fns[1](pre(in_ + r * hn))
            return ((1.0 - z) * n + z * h,)
        W, b = wts
        g = tf.matmul(tf.concat([x, state[0]], axis=-1), W) + b
        if kind in ("rnn_tanh", "rnn_relu"):
            return (fns[0](pre(g)),)
        i, f, gg, o = tf.split(g, 4, axis=-1)
        c = state[1]
        p = self.w.get(f"layers.{l}.{d}.p") if layer.get("peepholes") else None
        if p is not None:  # [p_i; p_f; p_o]: i and f see the previous c, o the new one
            p_i, p_f, p_o = (tf.constant(v) for v in np.split(p, 3))
            i, f = i + p_i * c, f + p_f * c
        i = fns[0](pre(i))
        f = 1.0 - i if layer.get("input_forget") else fns[0](pre(f))
        c = f * c + i * fns[1](pre(gg))
        if p is not None:
            o = o + p_o * c
        return (fns[0](pre(o)) * fns[2](c), c)

    def head(self, v):
        """The head's dense layers (each with its activation), its linear layer, then its output activation."""
        for k, dense in enumerate(self.spec["head"].get("hidden", [])):
            weight, bias = self.w[f"head.hidden.{k}.weight"], self.w[f"head.hidden.{k}.bias"]
            v = tf.matmul(v, tf.constant(weight.T)) + tf.constant(bias)
            v = HIDDEN_ACTIVATIONS[dense["activation"]](v)
        y = tf.matmul(v, tf.constant(self.w["head.weight"].T)) + tf.constant(self.w["head.bias"])
        return OUTPUT_ACTIVATIONS[self.spec["head"].get("activation", "none")](y)

    def normalise(self, x):
        return (x - self.mean) * self.inv_std


def state_names(spec: dict) -> list[tuple[int, str]]:
    return [(l, s) for l, layer in enumerate(spec["layers"]) for s in ("h", "c")[: 2 if layer["cell"] == "lstm" else 1]]


def step_function(cells: Cells):
    spec = cells.spec
    F = spec["input"]["features"]
    names = state_names(spec)
    sig = [tf.TensorSpec([None, F], tf.float32, name="x")] + [
        tf.TensorSpec([None, spec["layers"][l]["hidden"]], tf.float32, name=f"{s}{l}_in") for l, s in names]

    @tf.function(input_signature=sig)
    def step(x, *states):
        v = cells.normalise(x)
        out = {}
        k = 0
        for l, layer in enumerate(spec["layers"]):
            n = 2 if layer["cell"] == "lstm" else 1
            new = cells.cell(l, "fwd", v, states[k : k + n])
            for s, t in zip("hc", new):
                out[f"{s}{l}_out"] = t
            v, k = new[0], k + n
        out["y"] = cells.head(v)
        return out

    return step


def run_direction(cells: Cells, l: int, d: str, xs, batch):
    """xs (T, B, I) time-major -> outputs (T, B, H); the backward direction reads xs from the end."""
    layer = cells.spec["layers"][l]
    H = layer["hidden"]
    zero = tf.zeros([batch, H])
    init = (zero, zero) if layer["cell"] == "lstm" else (zero,)
    seq = tf.reverse(xs, [0]) if d == "bwd" else xs
    states = tf.scan(lambda s, x: cells.cell(l, d, x, s), seq, initializer=init)
    hs = states[0]
    return tf.reverse(hs, [0]) if d == "bwd" else hs


def sequence_function(cells: Cells, batch: int, steps: int):
    spec = cells.spec
    F = spec["input"]["features"]

    @tf.function(input_signature=[tf.TensorSpec([batch, steps, F], tf.float32, name="x")])
    def seq(x):
        v = tf.transpose(cells.normalise(x), [1, 0, 2])  # (T, B, F)
        for l, layer in enumerate(spec["layers"]):
            dirs = ("fwd", "bwd") if layer["bidirectional"] else ("fwd",)
            v = tf.concat([run_direction(cells, l, d, v, batch) for d in dirs], axis=-1)
        if spec["head"]["on"] == "last_step":
            last = spec["layers"][-1]
            H = last["hidden"]
            v = tf.concat([v[-1, :, :H], v[0, :, H:]], axis=-1) if last["bidirectional"] else v[-1]
            return {"y": cells.head(v)}
        return {"y": tf.transpose(cells.head(v), [1, 0, 2])}

    return seq


def calibration_feeds(cells: Cells, step, xs: np.ndarray) -> list[dict]:
    """The step model's inputs along the calibration stream, states from the float step itself."""
    spec = cells.spec
    names = state_names(spec)
    state = {f"{s}{l}_in": np.zeros((1, spec["layers"][l]["hidden"]), np.float32) for l, s in names}
    feeds = []
    for x in xs:
        feed = {"x": x[None].astype(np.float32), **state}
        feeds.append(feed)
        out = step(*(tf.constant(v) for v in feed.values()))  # the signature's order: x, then the states
        state = {f"{s}{l}_in": out[f"{s}{l}_out"].numpy() for l, s in names}
    return feeds


def convert(fn, path: Path, representative=None, dynamic_range: bool = False) -> None:
    """Through a SavedModel, so the .tflite keeps its signature (input and output names)."""
    module = tf.Module()
    module.fn = fn
    with tempfile.TemporaryDirectory(prefix="tflite-") as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": fn.get_concrete_function()})
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if representative is not None or dynamic_range:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative is not None:
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        path.write_bytes(conv.convert())
    print(f"wrote {path} ({path.stat().st_size} bytes)", flush=True)



def main(argv: list[str]) -> int:
    folder, shapes = Path(argv[0]), json.loads(argv[1])
    for name, info in shapes.items():
        spec = json.loads((folder / f"{name}.spec.json").read_text())
        with np.load(folder / f"{name}.weights.npz") as z:
            w = {k: z[k] for k in z.files}
        with np.load(folder / f"{name}.calibration.npz") as z:
            xs = z["x"]
        cells = Cells(spec, w)
        if info["streams"]:
            step = step_function(cells)
            convert(step, folder / f"{name}.step.fp32.tflite")
            feeds = calibration_feeds(cells, step, xs)
            convert(step, folder / f"{name}.step.int8.tflite", lambda feeds=feeds: iter(feeds))
        for batch, steps in info["seq"]:
            seq = sequence_function(cells, batch, steps)
            convert(seq, folder / f"{name}.seq_b{batch}_t{steps}.fp32.tflite")
            convert(seq, folder / f"{name}.seq_b{batch}_t{steps}.int8.tflite", dynamic_range=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
