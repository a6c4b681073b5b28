"""The proof of a mapping: ONNX Runtime on the original graph (layout=1 nodes rewritten as layout 0, ORT runs only
those) vs the rnnedge f32 runtime on random inputs; and the original graph for the report's parity rows."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rnnedge.export.from_module import MappingError, ProofError
from rnnedge.export.onnx_in.mapper import PROOF_TOLERANCE, OnnxMapping
from rnnedge.runtime import spec as specs

PROOF_SHAPES = ((1, 1), (3, 5), (2, 17), (4, 40))  # (batch, steps) of the random proof inputs


def random_input(mapping: OnnxMapping, batch: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """Random (batch, steps[, features]) input in the rnnedge layout."""
    inp = mapping.spec["input"]
    if inp["kind"] == "tokens":
        return rng.integers(0, inp["vocab"], size=(batch, steps)).astype(np.int64)
    return rng.standard_normal((batch, steps, inp["features"])).astype(np.float32)


def prove_mapping(model: onnx.ModelProto, mapping: OnnxMapping, seed: int = 0, shapes=PROOF_SHAPES) -> float:
    """ONNX Runtime on the original graph vs the rnnedge runtime on the mapped f32 tensors, on random inputs (and
    random lengths, when the graph takes sequence_lens: compared within each length, ONNX pads past it). A graph
    that reads one step of an every_step model (mapping.read_step) is compared with the runtime at that step.
    Sets and returns mapping.max_abs_diff; raises ProofError above PROOF_TOLERANCE."""
    from rnnedge.runtime.model import Model

    session, reference = _reference_session(model, mapping)
    mapping.proof_reference = reference
    rt = Model(mapping.spec, "f32", mapping.tensors)
    elem = next(i for i in model.graph.input if i.name == mapping.input_name).type.tensor_type.elem_type
    dims = mapping.input_dims
    time_axis, batch_axis = (0, 1) if mapping.input_time_major else (1, 0)
    fixed_b, fixed_t = dims[batch_axis], dims[time_axis]
    rng = np.random.default_rng(seed)
    worst = 0.0
    seen = set()
    for batch, steps in shapes:
        batch, steps = fixed_b or batch, fixed_t or steps
        if (batch, steps) in seen:
            continue
        seen.add((batch, steps))
        x = random_input(mapping, batch, steps, rng)
        feed = np.swapaxes(x, 0, 1) if mapping.input_time_major else x
        if elem == onnx.TensorProto.INT32:
            feed = feed.astype(np.int32)
        feeds = {mapping.input_name: np.ascontiguousarray(feed)}
        lengths = None
        if mapping.lengths_name:
            lengths = rng.integers(1, steps + 1, size=batch)
            lengths[0] = steps
            feeds[mapping.lengths_name] = lengths.astype(np.int32)
        (want,) = session.run(None, feeds)
        got = mapping.user_output(rt.run(x, lengths))
        if got.shape != want.shape:
            raise ProofError(f"the mapped model returns shape {got.shape}, the ONNX graph {want.shape} "
                             f"(batch {batch}, {steps} steps)", float("inf"))
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        if lengths is not None and got.ndim == 3:
            valid = np.arange(steps)[None, :] < lengths[:, None]  # (B, T): only steps within each length count
            diff = diff[valid.T] if mapping.output_time_major else diff[valid]
        diff = float(np.max(diff)) if diff.size else 0.0
        if not np.isfinite(diff):
            diff = float("inf")
        worst = max(worst, diff)
    mapping.max_abs_diff = worst
    if not worst <= PROOF_TOLERANCE:
        raise ProofError(f"the mapped rnnedge model differs from {reference} on the original graph by {worst:.3g} "
                         f"(max abs, random inputs; tolerance {PROOF_TOLERANCE:g}): refusing to export", worst)
    return worst


def _reference_session(model: onnx.ModelProto, mapping: OnnxMapping):
    """(a session running the original graph, what it is). ONNX Runtime runs recurrent nodes of layout 0 only, so
    a graph with layout=1 nodes runs as ort_graph rewrites it (the same computation); onnx.reference is the
    fallback for graphs ORT cannot load at all, and only for a spec without extensions (its RNN/LSTM/GRU ignore
    clip, activations, sequence_lens, ...)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # graphs exported for one size declare it on their outputs: ORT warns
    graph, rewritten = ort_graph(model)
    try:
        session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - whatever ORT cannot load
        from onnx.reference import ReferenceEvaluator

        why = str(e).split("\n")[0][-200:]
        extended = [k for layer in mapping.spec["layers"] for k in specs.extensions(layer)]
        if extended or mapping.lengths_name:
            raise MappingError(f"ONNX Runtime cannot load the original graph ({why}), and onnx.reference does not "
                               f"implement {sorted(set(extended)) or 'sequence_lens'}: nothing can prove the "
                               f"mapping") from None
        try:
            session = ReferenceEvaluator(model)
        except Exception as e2:  # noqa: BLE001
            raise MappingError(f"neither ONNX Runtime ({why}) nor onnx.reference can load the original graph: "
                               f"{type(e2).__name__}: {e2}") from None
        mapping.notes.append(f"ONNX Runtime cannot run the original graph ({why}); the mapping is proven against "
                             f"onnx.reference.ReferenceEvaluator instead")
        return session, "onnx.reference.ReferenceEvaluator"
    if rewritten:
        note = (f"ONNX Runtime runs recurrent nodes of layout 0 only: the layout=1 node(s) {rewritten} run as layout=0 "
                f"between Transposes (the same computation)")
        if note not in mapping.notes:
            mapping.notes.append(note)
        return session, "ONNX Runtime (layout=1 nodes as layout=0 + Transpose)"
    return session, "ONNX Runtime"


def ort_graph(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """The graph with every layout=1 RNN/LSTM/GRU node as a layout=0 node between Transposes (ORT implements
    layout 0 only): X and initial_h / initial_c (B, T|D, .) -> (T|D, B, .); Y (T, D, B, H) -> (B, T, D, H);
    Y_h / Y_c (D, B, H) -> (B, D, H). Returns (graph, names of the rewritten nodes); the input is not changed."""
    if not any(n.op_type in ("RNN", "LSTM", "GRU") and any(a.name == "layout" and a.i == 1 for a in n.attribute)
               for n in model.graph.node):
        return model, []
    model = onnx.ModelProto.FromString(model.SerializeToString())
    nodes, rewritten = [], []
    for k, node in enumerate(model.graph.node):
        layout = next((a for a in node.attribute if a.name == "layout"), None)
        if node.op_type not in ("RNN", "LSTM", "GRU") or layout is None or layout.i != 1:
            nodes.append(node)
            continue
        name = node.name or f"{node.op_type}_{k}"
        rewritten.append(name)
        layout.i = 0
        for i in (0, 5, 6):  # X, initial_h, initial_c
            if i < len(node.input) and node.input[i] and not (i == 6 and node.op_type != "LSTM"):
                moved = f"{name}__layout0_in{i}"
                nodes.append(helper.make_node("Transpose", [node.input[i]], [moved], perm=[1, 0, 2],
                                              name=f"{name}__layout0_in{i}"))
                node.input[i] = moved
        after = []
        for i, out in enumerate(node.output):
            if out:
                moved = f"{name}__layout0_out{i}"
                after.append(helper.make_node("Transpose", [moved], [out], perm=[2, 0, 1, 3] if i == 0 else [1, 0, 2],
                                              name=f"{name}__layout0_out{i}"))
                node.output[i] = moved
        nodes += [node, *after]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model, rewritten


def original_graph(model: onnx.ModelProto, mapping: OnnxMapping):
    """(export.comparisons.OriginalGraph of the original file, None) for the report's "original ONNX" rows, or
    (None, why not) when the parity streams cannot feed it (a fixed time axis). A graph that returns one step of
    the converted every_step model (mapping.read_step) is held to the runtime's output at that step.

    The graph ONNX Runtime runs (ort_graph: layout=1 nodes as layout=0 + Transpose). A graph that takes its
    sequence lengths as an input gets them computed from X's shape instead, every sequence whole: the parity
    streams run the original in groups of equal length, each cut to that length."""
    from rnnedge.export.comparisons import OriginalGraph

    dims = mapping.input_dims
    time_axis, batch_axis = (0, 1) if mapping.input_time_major else (1, 0)
    if dims[time_axis] is not None:
        return None, f"its time axis is fixed at {dims[time_axis]} steps"
    graph, _ = ort_graph(model)
    if mapping.lengths_name:
        graph = _full_lengths_graph(graph, mapping.input_name, mapping.lengths_name, time_axis, batch_axis)
    elem = next(i for i in model.graph.input if i.name == mapping.input_name).type.tensor_type.elem_type
    return OriginalGraph(graph.SerializeToString(), mapping.input_name, mapping.input_time_major,
                         mapping.output_time_major, elem == onnx.TensorProto.INT32, dims[batch_axis],
                         mapping.read_step), None


def _full_lengths_graph(model: onnx.ModelProto, x: str, lengths: str, time_axis: int, batch_axis: int):
    """The graph with its lengths input replaced by X's full length for every sequence (int32 (B,))."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    kept = [i for i in g.input if i.name != lengths]
    del g.input[:]
    g.input.extend(kept)
    p = f"{lengths}__full"
    g.initializer.extend([numpy_helper.from_array(np.array(time_axis, np.int64), f"{p}_time_axis"),
                          numpy_helper.from_array(np.array([batch_axis], np.int64), f"{p}_batch_axis")])
    made = [helper.make_node("Shape", [x], [f"{p}_shape"], name=f"{p}_shape"),
            helper.make_node("Gather", [f"{p}_shape", f"{p}_time_axis"], [f"{p}_steps"], name=f"{p}_steps"),
            helper.make_node("Gather", [f"{p}_shape", f"{p}_batch_axis"], [f"{p}_batch"], name=f"{p}_batch"),
            helper.make_node("Expand", [f"{p}_steps", f"{p}_batch"], [f"{p}_int64"], name=f"{p}_expand"),
            helper.make_node("Cast", [f"{p}_int64"], [lengths], to=onnx.TensorProto.INT32, name=f"{p}_cast")]
    nodes = made + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return model
