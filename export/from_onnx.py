"""An ONNX file made by any tool -> an rnnedge spec and canonical float32 tensors, proven against ONNX Runtime.

Issues 7 and 12. `map_onnx(model_proto)` walks the graph's nodes in order (export/onnx_in/mapper.py), evaluates
constant and shape arithmetic (export/onnx_in/values.py: values computed from the input's run-time sizes are
evaluated at sample sizes, so a zero state built from the batch size folds to zeros whatever nodes build it),
follows what happens to the input sequence (glue.py), and maps one or more stacked ONNX `RNN` / `LSTM` / `GRU`
nodes (recurrent.py; as the ONNX operator spec defines them), or plain RNN steps unrolled over time (unrolled.py;
torch's dynamo exporter writes nn.RNN so), and the head behind them (heads.py) to a spec plus the canonical
tensors of an f32 artifact (export/weights.py names, PyTorch gate order). It then **proves** the mapping
(export/onnx_in/proof.py): ONNX Runtime runs the ORIGINAL graph (a layout=1 node as layout=0 between Transposes:
ORT implements layout 0 only) and the rnnedge runtime runs the converted f32 tensors on random inputs of several
batch sizes and lengths (and random sequence lengths when the graph takes them); a max abs difference above 1e-5
is refused (ProofError) with the measured difference. `export_onnx` writes the mapped model as an ordinary rnnedge
checkpoint (`model.pt`) plus `onnx_mapping.json` and runs the usual `export_checkpoint`, whose report carries
report["module"]["source"] == "onnx". A file with external data (`model.onnx` + `model.onnx.data`, as the
dynamo exporter writes) loads from the file's folder.

Gate order (the reverse of export/onnx_graphs.py): rows of W, R and each half of B are blocks of
hidden_size rows, one per gate:

    onnx LSTM: i o f c   ->   torch: i f g o      (ONNX's c is torch's g)
    onnx GRU:  z r h     ->   torch: r z n        (ONNX's h is torch's n)
    RNN: one gate

B is [Wb; Rb] = [b_ih; b_hh]; no B means zero biases.

What maps (anything else is refused; every node that cannot be handled is listed in one MappingError with its op
type and name):

  recurrent  RNN, LSTM, GRU with direction forward, reverse ("reverse") or bidirectional; layout 0 or 1; optional
             B; activations (any of Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh,
             HardSigmoid, Elu, Softsign, Softplus, per direction) with activation_alpha / beta aligned as ONNX
             Runtime aligns them (RecurrentOps._functions): RNN Tanh / Relu alone -> cell rnn_tanh / rnn_relu, anything
             else the spec's "activations"; clip; LSTM input_forget and peepholes P (all-zero P: none); GRU
             linear_before_reset 0 ("linear_before_reset": false) and 1; initial_h / initial_c constants equal over
             the batch ("initial_state", zeros: none); sequence_lens absent, a constant of the full fixed length,
             or a graph input (the converted model takes it as model.run(X, lengths); OnnxMapping.lengths_name);
             Y and Y_h. Refused by name: per-batch initial states, initial states or P given at run time, other
             activation functions, a used Y_c (rnnedge heads read h), layers reading different sequence_lens.
  unrolled   plain RNN steps h_n = Tanh|Relu(h_{n-1} W_hh^T + b_hh + (X W_ih^T + b_ih)[t]) over a fixed number of
             steps, forward and backward (torch.flip), from a zero state; Y = Concat of every step, h_n = the last
  input      a dense float input straight into the first layer (optionally Sub mean, Div std: the
             normalisation rnnedge writes), or int64 token ids through Gather(table, ids) (an embedding)
  shapes     any operator on constants and on values computed from the input's sizes (evaluated at sample sizes;
             what is the same at every size is a constant, e.g. a zero initial state); a dynamic input axis the
             graph fixes (a Reshape to a number where that axis goes) is pinned at that size for the proof
  glue       Transpose keeping the features last, Squeeze / Unsqueeze of size-1 step and direction axes, Reshape
             that merges or splits the direction axis into or out of the features, merges batch and time for a
             per-row head and splits them back, or drops size-1 axes (Flatten likewise); Slice / Gather of the
             last (or first) time step and of directions (constant or computed indices), Slice of the features at
             direction boundaries (torch's output[..., :H] / output[..., H:]); Concat of directions along the
             features and of several layers' final states along the direction axis (torch's h_n, then h_n[-1] /
             h_n[-2]); Identity, Cast, Dropout
  head       MatMul [+ Add] or Gemm (transA=0) on the last layer's output (every step) or final state
             (last_step), then Softmax or LogSoftmax over the last axis, or Sigmoid; no head -> an identity head.
             One time step of Y where a direction is not at its final state (a bidirectional Y[-1], torch's
             output[:, -1]: the backward half after ONE step) -> an every_step head; the graph's output is the
             converted model's run(X)[:, -1] (OnnxMapping.read_step; a PitfallWarning names the usual fix, as the
             --module path does). The proof and the report's "original ONNX" rows compare exactly that step.
  sums       Add of one layer's directions along the features (Keras' Bidirectional merge_mode "sum", torch's
             h_n[-2] + h_n[-1]), times or divided by a constant scalar ("ave": Mul 0.5 / Div 2), read by a dense head
             or the next recurrent layer -> that reader gets the directions concatenated and its weight repeated,
             [W, W] x scale (the same numbers); read by anything else, refused naming the node
  loops      a Loop over the input (or over the reversed input) whose body is one standard cell step -- a plain
             RNN (tf2onnx's Keras SimpleRNN) or a GRU with the reset before or after the recurrent product (Keras 2's
             GRU(reset_after=False), Keras 3's GRU) -- recognised structurally and rewritten to the equivalent RNN /
             GRU node before mapping (export/onnx_in/loops.py, loop_cells.py; the proof still runs the original
             graph); any other Loop, and Scan, is refused naming the body node that does not fit
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from rnnedge.export.from_module import MappingError, PitfallWarning, ProofError
from rnnedge.export.onnx_in.checks import check_model
from rnnedge.export.onnx_in.mapper import PROOF_TOLERANCE, Mapper, OnnxMapping
from rnnedge.export.onnx_in.proof import PROOF_SHAPES, original_graph, ort_graph, prove_mapping, random_input
from rnnedge.export.onnx_in.recurrent import ONNX_GATES, TORCH_GATES
from rnnedge.export.rules import FLOAT_RTOL
from rnnedge.runtime import spec as specs
from rnnedge.runtime.command import regular_file

__all__ = ["CHECKPOINT_FILE", "MAPPING_FILE", "ONNX_GATES", "PROOF_SHAPES", "PROOF_TOLERANCE", "TORCH_GATES",
           "MappingError", "OnnxMapping", "ProofError", "export_onnx", "load_onnx", "map_onnx", "original_graph",
           "ort_graph", "prove_mapping", "random_input", "state_dict_from_tensors"]

MAPPING_FILE = "onnx_mapping.json"
CHECKPOINT_FILE = "model.pt"


def load_onnx(path) -> onnx.ModelProto:
    """The ONNX file at `path`, checked (export/onnx_in/checks.py) before any tensor is read. MappingError else."""
    try:
        path = regular_file(path, "ONNX file")
    except (OSError, ValueError) as e:
        raise MappingError(str(e)) from None
    try:
        model = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001
        raise MappingError(f"{path}: not a readable ONNX model: {type(e).__name__}: {e}") from None
    check_model(model, str(path))
    return model


def map_onnx(model: onnx.ModelProto, *, task: str | None = None, prove: bool = True, seed: int = 0,
             where: str = "the ONNX model") -> OnnxMapping:
    """ONNX model -> OnnxMapping (unpacks as spec, canonical float32 tensors, notes), proven against ONNX Runtime.

    task: the spec's task; None takes it from the graph's `rnnedge.spec` metadata if rnnedge wrote the graph,
    else "classify". Fields that do not change what the graph computes (task, padding_idx, chars) are taken from
    that metadata too. Raises MappingError (every unsupported node in one message; `where` names the model in
    refusals of its opsets, tensors and metadata) or ProofError.
    """
    check_model(model, where)
    with _malformed_graphs_refused(model, where):
        mapping = Mapper(model).run()
    written = _written_spec(model, where)
    if written is not None:
        if mapping.spec["input"]["kind"] == "tokens" and isinstance(written.get("input"), dict):
            for key in ("padding_idx", "chars"):
                if key in written["input"]:
                    mapping.spec["input"][key] = written["input"][key]
        if task is None and written.get("task") in specs.TASKS:
            task = written["task"]
        mapping.notes.append("task and token padding_idx / chars taken from the graph's rnnedge.spec metadata")
    mapping.spec["task"] = task or "classify"
    try:
        mapping.spec = specs.validate(mapping.spec)
    except specs.SpecError as e:
        raise MappingError(f"the mapped model is not a valid rnnedge spec: {e}") from None
    if prove:
        with _malformed_graphs_refused(model, where):
            prove_mapping(model, mapping, seed=seed)
    return mapping


@contextlib.contextmanager
def _malformed_graphs_refused(model: onnx.ModelProto, where: str):
    """An exception the mapper or the proof did not foresee is bad input (MappingError) when onnx's own checker
    refuses the graph (a type mismatch, a node with missing inputs, ...), and an rnnedge bug otherwise (re-raised).
    The checker is asked only then: graphs of old IR versions that it refuses may still map correctly."""
    try:
        yield
    except MappingError:
        raise
    except Exception as e:  # re-raised unless the checker names the graph as malformed
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as complaint:  # noqa: BLE001 - ValidationError, InferenceError, ...
            reason = " ".join(str(complaint).split())[:300]
            raise MappingError(f"{where}: not a valid ONNX graph ({reason}); rnnedge cannot map it "
                               f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
        raise


def _written_spec(model: onnx.ModelProto, where: str) -> dict | None:
    """The graph's rnnedge.spec metadata (rnnedge wrote the graph) as a dict, None without it. Metadata that is
    not a JSON object is refused (MappingError) rather than ignored: the task it names decides the metric."""
    text = next((p.value for p in model.metadata_props if p.key == "rnnedge.spec"), None)
    if text is None:
        return None
    try:
        written = json.loads(text)
    except RecursionError:
        raise MappingError(f"{where}: metadata rnnedge.spec nests too deeply to be a spec") from None
    except ValueError as e:  # not JSON, or an integer of more than 4300 digits (Python's own limit)
        reason = str(e).split(";")[0][:200]
        raise MappingError(f"{where}: metadata rnnedge.spec is not readable JSON: {reason}") from None
    if not isinstance(written, dict):
        raise MappingError(f"{where}: metadata rnnedge.spec must be a JSON object, got {type(written).__name__}")
    return written


def state_dict_from_tensors(spec: dict, tensors: dict[str, np.ndarray]):
    """Canonical tensors -> a RecurrentModel (eval mode) holding them (the inverse of weights.canonical_tensors)."""
    import torch

    from rnnedge.train.model import RecurrentModel

    model = RecurrentModel(spec)
    sd = model.state_dict()
    if "embedding.weight" in tensors:
        sd["embedding.weight"] = torch.from_numpy(tensors["embedding.weight"].copy())
    for l, layer in enumerate(spec["layers"]):
        for d, suffix in (("fwd", ""), ("bwd", "_reverse"))[: specs.directions(layer)]:
            for ours, theirs in (("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"),
                                 ("b_hh", "bias_hh"), ("p", "peephole"), ("h0", "h0"), ("c0", "c0")):
                if f"layers.{l}.{d}.{ours}" in tensors:  # p, h0, c0: extensions (train/model.py's OnnxLayer)
                    sd[f"layers.{l}.{theirs}_l0{suffix}"] = torch.from_numpy(tensors[f"layers.{l}.{d}.{ours}"].copy())
    for name, value in tensors.items():  # head.weight / head.bias and head.hidden.{k}.*: the state_dict's own names
        if name.startswith("head."):
            sd[name] = torch.from_numpy(value.copy())
    model.load_state_dict(sd)
    return model.eval()


def export_onnx(path, out_dir, *, task: str | None = None, precisions=("f32",), data=None, tolerance: float = 1e-5,
                steps: int = 1000, seed: int = 0, calibration=None, on_warning=None, rtol: float = FLOAT_RTOL, single_header: bool = False) -> dict:
    """Map and prove an ONNX file, write `model.pt` (an rnnedge checkpoint) and `onnx_mapping.json` into out_dir,
    then export_checkpoint it there. Returns the report (report["module"]: the mapping, source "onnx").
    on_warning(message) receives each pitfall the graph has (OnnxMapping.warnings, reproduced exactly); default:
    warnings.warn(message, PitfallWarning)."""
    from rnnedge.export.pipeline import export_checkpoint, export_file_names, onnx_source, refuse_non_finite
    from rnnedge.train import outputs
    from rnnedge.train.checkpoint import save_checkpoint

    path = Path(path)
    model = load_onnx(path)
    refuse_non_finite({i.name: numpy_helper.to_array(i) for i in model.graph.initializer
                       if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)},
                      str(path))
    mapping = map_onnx(model, task=task, seed=seed, where=str(path))
    for message in mapping.warnings:
        if on_warning is None:
            warnings.warn(message, PitfallWarning, stacklevel=2)
        else:
            on_warning(message)
    reference_graph, why_not = original_graph(model, mapping)
    described = {"onnx_file": str(path), **mapping.describe(), "original_parity": why_not or "measured"}
    # staged beside out_dir and moved in only once verified (export_checkpoint): out_dir is untouched on failure,
    # and the source file is never written over (an input of the export)
    with outputs.Staging(out_dir, outputs.EXPORT, inputs=[path],
                         writes=export_file_names(precisions, CHECKPOINT_FILE, MAPPING_FILE),
                         source=onnx_source(path)) as stage:
        save_checkpoint(stage.dir / CHECKPOINT_FILE, state_dict_from_tensors(mapping.spec, mapping.tensors),
                        metrics={"from_onnx": json.dumps(described)})
        (stage.dir / MAPPING_FILE).write_text(json.dumps(described, indent=2) + "\n")
        result = export_checkpoint(stage.dir / CHECKPOINT_FILE, out_dir, data=data, tolerance=tolerance,
                                   steps=steps, seed=seed, precisions=precisions, calibration=calibration,
                                   module=described, reference_graph=reference_graph, stage=stage, rtol=rtol,
                                   single_header=single_header)
        with open(stage.dir / "report.md", "a") as f:
            f.write(f"\nSource: ONNX file `{path}`, mapped by export/from_onnx.py; {mapping.proof_reference} on the "
                    f"original graph vs the rnnedge f32 runtime on random inputs: max abs difference "
                    f"{mapping.max_abs_diff:.3g}.\n")
            if mapping.read_step:
                step = -1 if mapping.read_step == "last" else 0
                f.write(f"\nThe graph returns one time step of the converted every_step model: its output is the "
                        f"runtime's run(X)[:, {step}] (the \"original ONNX\" rows compare exactly that). "
                        f"{mapping.warnings[0] if mapping.warnings else ''}\n")
            if why_not:
                f.write(f"\nThe artifacts were not measured against the original graph: {why_not}.\n")
    return result
