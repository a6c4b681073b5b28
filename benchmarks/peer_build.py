"""The files every engine of benchmarks.peers loads, built once from one seeded PyTorch model per workload.

For a workload W in a folder:

    W.spec.json              the spec (train.model.RecurrentModel)
    W.torch.safetensors      the PyTorch state dict (PyTorch eager loads this)
    W.f32/int8w/int8.safetensors   rnnedge artifacts (export.quantize / export.quantize_int8, as export does)
    W.onnx, W.step.onnx      the exporter's ONNX graphs (export.onnx_graphs); W.qdq.onnx, W.step.qdq.onnx: the
                             same after onnxruntime.quantization.quantize_dynamic (int8 weights)
    W.weights.npz            the canonical float tensors, for the LiteRT conversion (benchmarks.tflite_convert)
    W.inputs.npz             the measured inputs and PyTorch float's outputs on them (the reference of every
                             engine's error): step (1, T, F) -> (T, out); seq (1, Tseq, F); seq32 (32, Tseq, F);
                             batch (256, S, F) -> (256, S, out) (streamable workloads only)

Every engine therefore holds the same weights; the int8 ones are quantised from them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import torch
from safetensors.torch import save_file

from benchmarks import f32_workload
from benchmarks.workloads import dense_inputs
from rnnedge.export.calibrate import calibrate, calibration_slice
from rnnedge.export.onnx_graphs import build_sequence_graph, build_step_graph
from rnnedge.export.quantize import quantize_int8w
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from rnnedge.runtime import spec as specs
from rnnedge.train.model import RecurrentModel

BATCHES = (8, 64, 256)  # batched streams
SEQ_BATCH = 32  # whole sequences, batched
CALIBRATION_STEPS = 2000
CALIBRATION_SEED = 2  # != the measured inputs' seed (0)


def workload_specs() -> dict[str, dict]:
    """kws and har as benchmarks.bench_f32 builds them; seed: a bidirectional 2-layer tanh RNN classifying T=200
    steps (its input statistics drawn third from the same generator, after kws's and har's)."""
    seed_input = dense_inputs(40, 6, 16)[2]
    return {**f32_workload.workload_specs(),
            "seed": {"version": 1, "input": seed_input,
                     "layers": [{"cell": "rnn_tanh", "hidden": 64, "bidirectional": True}] * 2,
                     "head": {"out": 10, "on": "last_step", "activation": "none"}, "task": "classify"}}


# a workload named by its shape: CELL HIDDEN [xLAYERS] [bi] [-inFEATURES] [-outCLASSES] [+EXTENSION...], e.g.
# lstm256-in13-out10, lstm128-in40-out12+relu
SHAPE = re.compile(r"(lstm|gru|rnn_tanh|rnn_relu)(\d+)(?:x(\d+))?(bi)?(?:-in(\d+))?(?:-out(\d+))?((?:\+[a-z0-9]+)*)")
# +EXTENSION: ONNX layer extensions every layer of a shape gets, as other exporters write them
EXTENSIONS = {
    "relu": "the cell's candidate and output functions relu (Keras' LSTM / GRU / SimpleRNN(activation='relu'))",
    "hardsigmoid": "the gates' function hard_sigmoid, alpha 0.2, beta 0.5 (Keras before 2.3, tf2onnx's HardSigmoid)",
    "peepholes": "peepholes (lstm; TensorFlow's LSTMCell(use_peepholes=True))",
    "cifg": "input_forget: f = 1 - i (lstm)",
    "clip": "every pre-activation clipped to [-3, 3] (ONNX clip)",
    "lbr0": "linear_before_reset false (gru; Keras' GRU(reset_after=False), ONNX's GRU default)",
}
SHAPE_HELP = ("a shape: CELL HIDDEN[xLAYERS][bi][-inFEATURES][-outCLASSES][+EXTENSION...], CELL one of lstm, gru, "
              "rnn_tanh, rnn_relu, EXTENSION one of " + ", ".join(EXTENSIONS) + " (e.g. lstm256-in13-out10, "
              "gru100x2, rnn_tanh64x2bi, lstm128-in40-out12+relu, gru64+lbr0+hardsigmoid; defaults: 1 layer, 16 "
              "features, 8 classes, a head on every step, or on the last step where bidirectional)")
# what the peers cannot be built with: a reverse layer's or an initial state's step models (their step feeds start
# from zeros) -- such model files are refused by name
NOT_BUILT = ("reverse", "initial_state")


def shape_extensions(cell: str, bidirectional: bool, names: list[str]) -> dict:
    """The spec layer keys of a shape's +EXTENSION names (EXTENSIONS); ValueError for one unknown or not of the
    cell's."""
    keys: dict = {}
    functions = list(specs.DEFAULT_FUNCTIONS[cell])
    changed = False
    for name in names:
        if name not in EXTENSIONS:
            raise ValueError(f"unknown extension +{name}: choose from {', '.join('+' + e for e in EXTENSIONS)}")
        lstm_only, gru_only = name in ("peepholes", "cifg"), name == "lbr0"
        gated = name == "hardsigmoid"
        if (lstm_only and cell != "lstm") or (gru_only and cell != "gru") or (gated and cell not in ("lstm", "gru")):
            raise ValueError(f"extension +{name} does not apply to a {cell} layer: {EXTENSIONS[name]}")
        if name == "relu":
            start = 1 if cell in ("lstm", "gru") else 0  # the gates keep theirs
            functions[start:] = ["relu"] * (len(functions) - start)
            changed = True
        elif name == "hardsigmoid":
            functions[0] = "hardsigmoid"
            changed = True
        else:
            keys.update({"peepholes": {"peepholes": True}, "cifg": {"input_forget": True}, "clip": {"clip": 3.0},
                         "lbr0": {"linear_before_reset": False}}[name])
    if changed:
        acts = [{"fn": f, "alpha": 0.2, "beta": 0.5} if f == "hardsigmoid" else {"fn": f} for f in functions]
        keys["activations"] = acts * (2 if bidirectional else 1)
    return keys


MAX_SHAPE = 4096  # hidden units, features or classes a shape may ask for (spec.validate bounds the rest)
MAX_LAYERS = 8  # recurrent layers a shape may ask for


def workload_spec(name: str) -> tuple[str, dict]:
    """(the name a workload goes by in tables and file names, its model spec) for one --workloads entry: a built-in
    workload (workload_specs()), a shape (SHAPE_HELP) or a model file, an rnnedge artifact (.safetensors) or a spec
    (.json), whose shape is measured with seeded weights (speed does not depend on their values; the error
    column compares every engine against PyTorch on those same weights). ValueError names what is wrong."""
    built_in = workload_specs()
    if name in built_in:
        return name, built_in[name]
    shape = SHAPE.fullmatch(name)
    if shape:
        cell, hidden, layers, bi, features, out, ext = shape.groups()
        sizes = {"hidden units": int(hidden), "layers": int(layers or 1), "features": int(features or 16),
                 "classes": int(out or 8)}
        for what, n in sizes.items():
            top = MAX_LAYERS if what == "layers" else MAX_SHAPE
            if not 1 <= n <= top:
                raise ValueError(f"workload {name!r}: {n} {what} is outside 1..{top}")
        try:
            keys = shape_extensions(cell, bool(bi), [e for e in ext.split("+") if e])
        except ValueError as exc:
            raise ValueError(f"workload {name!r}: {exc}") from None
        spec = {"version": specs.EXTENDED_VERSION if keys else 1,
                "input": dense_inputs(sizes["features"], seed=sizes["features"])[0],
                "layers": [{"cell": cell, "hidden": sizes["hidden units"], "bidirectional": bool(bi), **keys}
                           for _ in range(sizes["layers"])],
                "head": {"out": sizes["classes"], "on": "last_step" if bi else "every_step", "activation": "none"},
                "task": "classify"}
        return name, specs.validate(spec)
    path = Path(name)
    if path.suffix in (".json", ".safetensors"):
        if not path.is_file():
            raise ValueError(f"workload {name!r}: no such file")
        try:
            spec = (specs.loads(path.read_text()) if path.suffix == ".json" else artifact.read(path)[0])
        except Exception as exc:  # noqa: BLE001 (any unreadable file: one clear message, never a traceback)
            raise ValueError(f"workload {name!r}: not a model spec or rnnedge artifact ({exc})") from None
        if spec["input"].get("kind") != "dense":
            raise ValueError(f"workload {name!r}: token input; the peers harness feeds dense features only")
        extended = [f"layer {i}: {', '.join(k for k in specs.extensions(layer) if k in NOT_BUILT)}"
                    for i, layer in enumerate(spec["layers"]) if any(k in NOT_BUILT for k in specs.extensions(layer))]
        if extended:
            raise ValueError(f"workload {name!r}: ONNX layer extensions the peers are not built with "
                             f"({'; '.join(extended)})")
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", path.name.split(".")[0]) or "model"
        return (f"{stem}_file" if stem in built_in else stem), spec  # never taken for a built-in workload
    raise ValueError(f"unknown workload {name!r}: choose from {', '.join(built_in)}, {SHAPE_HELP}, or a model file "
                     "(.safetensors artifact or .json spec)")


def raw_inputs(spec: dict, batch: int, steps: int, seed: int) -> np.ndarray:
    """(batch, steps, F) float32 around the spec's statistics, as a device would feed them."""
    inp = spec["input"]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, inp["features"])) * np.asarray(inp["std"]) + np.asarray(inp["mean"])
    return x.astype(np.float32)


def build(folder: Path, name: str, spec: dict, steps: int, seq_steps: int, batch_steps: int, seed: int = 0) -> dict:
    """Write every file of one workload into folder; returns what the harness needs to know about it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(seed)
    model = RecurrentModel(spec).eval()
    spec = model.spec
    streams = specs.can_stream(spec)
    (folder / f"{name}.spec.json").write_text(json.dumps(spec))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / f"{name}.torch.safetensors"))
    tensors = canonical_tensors(model)
    np.savez(folder / f"{name}.weights.npz", **tensors)
    artifact.write(str(folder / f"{name}.f32.safetensors"), tensors, spec)
    qtensors, _ = quantize_int8w(spec, tensors)
    artifact.write(str(folder / f"{name}.int8w.safetensors"), qtensors, spec, precision="int8w")
    int8_cannot = specs.unsupported(spec, "int8")  # e.g. activation functions other than the cell's own
    if not int8_cannot:
        X_cal, lengths = calibration_slice(raw_inputs(spec, 1, CALIBRATION_STEPS, CALIBRATION_SEED))
        ranges = calibrate(model, X_cal, lengths, where=f"{name} calibration stream")
        q8tensors, _ = quantize_int8(spec, tensors, ranges)
        artifact.write(str(folder / f"{name}.int8.safetensors"), q8tensors, spec, precision="int8")
    onnx.save(build_sequence_graph(spec, tensors), folder / f"{name}.onnx")
    quantize_dynamic(folder / f"{name}.onnx", folder / f"{name}.qdq.onnx", weight_type=QuantType.QInt8)
    if streams:
        onnx.save(build_step_graph(spec, tensors), folder / f"{name}.step.onnx")
        quantize_dynamic(folder / f"{name}.step.onnx", folder / f"{name}.step.qdq.onnx", weight_type=QuantType.QInt8)

    arrays = {"seq": raw_inputs(spec, 1, seq_steps, seed), "seq32": raw_inputs(spec, SEQ_BATCH, seq_steps, seed + 1)}
    if streams:
        arrays["step"] = raw_inputs(spec, 1, steps, seed + 2)
        arrays["batch"] = raw_inputs(spec, max(BATCHES), batch_steps, seed + 3)
    with torch.inference_mode():
        refs = {f"ref_{k}": model(torch.from_numpy(v)).numpy() for k, v in arrays.items()}
    np.savez(folder / f"{name}.inputs.npz", **arrays, **refs)
    # a small calibration set for converters that quantise activations (LiteRT full-int8)
    np.savez(folder / f"{name}.calibration.npz", x=raw_inputs(spec, 1, 200, CALIBRATION_SEED)[0])
    # engine -> why it cannot run this workload (benchmarks.peers leaves it out and says so)
    left_out = {"rnnedge_int8": "int8 cannot run it: " + "; ".join(int8_cannot)} if int8_cannot else {}
    extended = sorted({k for layer in spec["layers"] for k in specs.extensions(layer)})
    if extended:  # the reference forward runs such a layer as a Python loop over steps (train/model.py OnnxLayer)
        left_out["torch"] = f"PyTorch's nn.LSTM / nn.GRU / nn.RNN have no {', '.join(extended)}"
    return {"streams": streams, "spec": spec, "parameters": sum(p.numel() for p in model.parameters()),
            "left_out": left_out}
