"""Loops that are recurrent layers (issue 12): `rewrite_loops(model)` replaces each ONNX `Loop` whose body is one
standard cell step by the ONNX RNN / GRU node it equals, before the mapper reads the graph.

tf2onnx writes Keras SimpleRNN, GRU(reset_after=False) and Keras 3's GRU as the TF while-loop: the Loop carries a
step counter t (from 0, +1 per step), the state h and pass-through constants (the weights, the length T); its body
reads x_t = Gather(seq, t) from the outer graph, computes one step (export.onnx_in.loop_cells matches it against
the cell equations) and emits the new h as its one scan output, (T, B, H). Bidirectional layers add a second Loop
over ReverseSequence(seq) whose scan output is read in reversed time.

What is checked, and how:
  - the body, structurally: its new state is one RNN / GRU step of x_t and h with constant weights (loop_cells);
    x_t is the sequence at the counter (or the iteration number), the scan output is the new state;
  - the trip count, by running ONNX Runtime on the original graph at two input sizes: the scan output has as many
    steps as the sequence (however the condition and trip count are written), and every ReverseSequence length
    is the full length (a reversal of the whole sequence);
  - a reversed direction's output is followed through Transpose / Shape to the nodes that undo or read its time
    order (ReverseSequence over the full length; Slice / Gather of its first or last step), which are rewritten to
    read ONNX's reverse direction in forward time.
Anything else stays a Loop; the mapper refuses it with loop_refusal(node), which says what did not match. The
replaced Loop's condition / trip-count arithmetic and reversals are removed once nothing else reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rnnedge.export.onnx_in.loop_cells import Atom, BodyEvaluator, Cell, NotACell, body_constants, match_cell

_REASON = "rnnedge.loop: "  # marks the doc_string of a Loop left in place with why it was not recognised
_INT_MAX = np.iinfo(np.int64).max
_SAMPLE_SIZES = ((2, 3), (3, 7))  # dynamic input dims of the two trip-count runs


@dataclass
class LoopLayer:
    """A recognised Loop: one direction of a recurrent layer."""

    node: onnx.NodeProto
    cell: Cell
    seq: str  # the (T, B, F) sequence the body reads (a reversal's input when reversed)
    h0: str  # the initial state (B, H)
    scan: str  # the Loop's scan output (T, B, H)
    final: str | None  # the Loop's final state output when the graph reads it
    reversed_by: onnx.NodeProto | None = None  # the ReverseSequence the body reads through
    edits: list = field(default_factory=list)  # how the reversed output's readers are rewritten


def rewrite_loops(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """model with each recognised Loop replaced by an ONNX RNN / GRU node, and notes saying which. The input model
    is not changed; a Loop that is not one cell step stays, its doc_string saying why (loop_refusal)."""
    if not any(n.op_type == "Loop" for n in model.graph.node):
        return model, []
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    opset = next((o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), 1)
    consts = _outer_constants(graph)
    reasons: dict[int, str] = {}
    plans: dict[int, dict] = {}
    for i, node in enumerate(graph.node):
        if node.op_type == "Loop":
            try:
                plans[i] = _protocol(graph, node, consts)
            except NotACell as e:
                reasons[i] = str(e)
    runs = _probe(model, plans) if plans else []
    layers: dict[int, LoopLayer] = {}
    for i, plan in plans.items():
        try:
            layers[i] = _recognise(graph, plan, runs, opset)
        except NotACell as e:
            reasons[i] = str(e)
    for i, reason in reasons.items():  # before _emit moves the nodes
        graph.node[i].doc_string = _REASON + reason
    notes = [_emit(graph, group, opset) for group in _directions(layers)]
    _drop_dead(graph, model.graph)
    _sort(graph)
    return out, notes


def loop_refusal(node: onnx.NodeProto) -> str:
    """Why a Loop / Scan left in the graph cannot be mapped, and what would be needed."""
    why = node.doc_string[len(_REASON):] if node.doc_string.startswith(_REASON) else (
        "rnnedge recognises Loop bodies only" if node.op_type == "Scan" else "")
    return (f"a {node.op_type} runs its body once per time step (tf2onnx writes Keras SimpleRNN and GRU(reset_after="
            f"False), and Keras 3's GRU, this way); rnnedge maps ONNX's RNN / LSTM / GRU operators, and a Loop whose "
            f"body is one standard RNN or GRU step: converting this node would need its body recognised as one "
            f"standard cell step, but {why or 'it was not'}")


# -- the Loop's protocol: counter, state, constants, the step read, the scan output ------------------------------
def _protocol(graph, node, consts) -> dict:
    body = next((a.g for a in node.attribute if a.name == "body"), None)
    if body is None:
        raise NotACell("it has no body")
    carried = len(node.input) - 2
    if len(body.output) - 1 - carried != 1 or len(node.output) != carried + 1:
        raise NotACell(f"the body has {len(body.output) - 1 - carried} scan outputs; a cell step has one (the new "
                       f"state)")
    producers = {o: n for n in body.node for o in n.output}
    iteration = body.input[0].name
    counters, state, body_consts = {iteration}, [], body_constants(body)
    for k in range(carried):
        name_in, name_out = body.input[2 + k].name, _through_identity(body.output[1 + k].name, producers)
        outer = node.input[2 + k]
        if name_out == name_in:
            if outer in consts:
                body_consts[name_in] = consts[outer]
        elif _is_increment(producers.get(name_out), name_in, body_consts) and outer in consts and np.array_equal(
                consts[outer], 0):
            counters.add(name_in)
        else:
            state.append(k)
    if len(state) != 1:
        raise NotACell(f"the body carries {len(state)} values that change every step; an RNN / GRU step carries one "
                       f"(the state h)")
    (k,) = state
    new_h = _through_identity(body.output[1 + k].name, producers)
    if _through_identity(body.output[-1].name, producers) != new_h:
        raise NotACell("its scan output is not the new state")
    inside = {n for n in body_consts} | {i.name for i in body.input} | set(producers)
    reads = [n for n in body.node if n.op_type == "Gather" and n.input[0] not in inside]
    steps = [n for n in reads if n.input[1] in counters and _axis(n) == 0]
    if len(steps) != 1 or len(reads) != 1:
        raise NotACell("the body must read the outer sequence once, at the step (Gather(seq, t) along time)")
    used = _used_names(graph)
    for j, name in enumerate(node.output[:carried]):
        if name in used and j != k:
            raise NotACell(f"the graph reads the loop's final value {name!r}, which is not the state")
    final = node.output[k] if node.output[k] in used else None
    cone = _cone(body, new_h, producers)
    return {"node": node, "h_in": body.input[2 + k].name, "h_out": new_h, "h0": node.input[2 + k],
            "seq": steps[0].input[0], "step_read": steps[0], "consts": body_consts, "nodes": cone,
            "scan": node.output[-1], "final": final, "reversal": _reversal(graph, steps[0].input[0])}


def _through_identity(name: str, producers) -> str:
    while name in producers and producers[name].op_type == "Identity":
        name = producers[name].input[0]
    return name


def _is_increment(node, name: str, consts) -> bool:
    if node is None or node.op_type != "Add" or name not in node.input:
        return False
    other = node.input[1] if node.input[0] == name else node.input[0]
    return other in consts and consts[other].size == 1 and consts[other].reshape(-1)[0] == 1


def _axis(node) -> int:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)


def _cone(body, name: str, producers) -> list:
    """The body nodes the new state depends on, in body order."""
    needed, todo = set(), [name]
    while todo:
        node = producers.get(todo.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            todo.extend(node.input)
    return [n for n in body.node if id(n) in needed]


def _reversal(graph, seq: str):
    node = next((n for n in graph.node if seq in n.output), None)
    if node is not None and node.op_type == "ReverseSequence":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("time_axis", 0) == 0 and attrs.get("batch_axis", 1) == 1:
            return node
    return None


# -- the trip count, measured ------------------------------------------------------------------------------------
def _probe(model, plans) -> list[dict[str, np.ndarray]]:
    """ONNX Runtime's values of every Loop's sequence and scan output and of every ReverseSequence's data and
    lengths, on the original graph at two input sizes."""
    import onnxruntime as ort

    wanted = {n for p in plans.values() for n in (p["seq"], p["scan"])}
    wanted |= {n for node in model.graph.node if node.op_type == "ReverseSequence" for n in node.input}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in sorted(wanted - have))
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    try:
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        runs = []
        for sizes in _SAMPLE_SIZES:
            feeds = {i.name: _sample(i, sizes) for i in inputs}
            names = [o.name for o in session.get_outputs()]
            runs.append(dict(zip(names, session.run(None, feeds))))
        return runs
    except Exception as e:  # noqa: BLE001
        return [{"error": f"ONNX Runtime could not run the graph to measure the loops' trip counts: {e}"}]


def _sample(value_info, sizes) -> np.ndarray:
    t = value_info.type.tensor_type
    dynamic = iter(sizes * 4)
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else next(dynamic) for d in t.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
    if dtype.kind == "f":
        return np.random.default_rng(0).standard_normal(dims).astype(dtype)
    return np.zeros(dims, dtype)


def _full_reversal(node, runs) -> bool:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    time_axis = attrs.get("time_axis", 0)
    return all(node.input[0] in run and np.all(run[node.input[1]] == run[node.input[0]].shape[time_axis])
               for run in runs)


# -- recognition -------------------------------------------------------------------------------------------------
def _recognise(graph, plan, runs, opset) -> LoopLayer:
    if "error" in runs[0]:
        raise NotACell(runs[0]["error"])
    for run in runs:
        seq, scan = run[plan["seq"]], run[plan["scan"]]
        if seq.ndim != 3 or scan.ndim != 3 or scan.shape[:2] != seq.shape[:2]:
            raise NotACell(f"it ran {scan.shape[0]} steps over a sequence of shape {list(seq.shape)}; a recurrent "
                           f"layer runs one step per time step of its (T, B, F) sequence")
    F, H = runs[0][plan["seq"]].shape[2], runs[0][plan["scan"]].shape[2]
    x, h = Atom("x", F), Atom("h", H)
    evaluator = BodyEvaluator(plan["consts"], x, h, plan["h_in"], lambda n: n is plan["step_read"], opset)
    evaluator.run(plan["nodes"])
    try:
        cell = match_cell(evaluator.value(plan["h_out"]), x, h)
    except KeyError:
        raise NotACell("its new state is not computed from x_t and h") from None
    reversal = plan["reversal"]
    layer = LoopLayer(plan["node"], cell, plan["seq"], plan["h0"], plan["scan"], plan["final"])
    if reversal is not None and _full_reversal(reversal, runs):
        layer.seq, layer.reversed_by = reversal.input[0], reversal
        layer.edits = _unreverse(graph, plan["scan"], 0, runs)
    return layer


def _unreverse(graph, name: str, axis: int, runs) -> list:
    """How to rewrite the readers of `name`, a tensor in reversed time along `axis`, once it holds forward time:
    [(node, replacement kind, details)]; NotACell names a reader that needs the reversed order."""
    if name in {o.name for o in graph.output} or any(
            name in _outer_reads(a.g) for n in graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH):
        raise NotACell(f"the reversed direction's output {name!r} is returned, or read inside a subgraph, in reversed "
                       f"time order")
    edits = []
    for node in graph.node:
        if name not in node.input:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        if op == "Shape":
            continue
        if op in ("Identity", "Cast"):
            edits += _unreverse(graph, node.output[0], axis, runs)
        elif op == "Transpose" and "perm" in attrs:
            edits += _unreverse(graph, node.output[0], list(attrs["perm"]).index(axis), runs)
        elif op == "ReverseSequence" and node.input[0] == name and attrs.get("time_axis", 0) == axis and (
                _full_reversal(node, runs)):
            edits.append((node, "identity", None))
        elif op == "Slice" and node.input[0] == name and _step_slice(graph, node, axis) is not None:
            edits.append((node, "slice", _step_slice(graph, node, axis)))
        else:
            raise NotACell(f"the reversed direction's output is read in reversed time order by node {node.name!r} "
                           f"({op}); rnnedge follows it through Transpose / Shape to a full-length ReverseSequence "
                           f"or a Slice of its first or last step")
    return edits


def _step_slice(graph, node, axis):
    """'first' / 'last' when a Slice takes just the first / last step along axis (and nothing else), else None."""
    consts = _outer_constants(graph)
    if any(n not in consts for n in node.input[1:] if n):
        return None
    starts, ends = consts[node.input[1]].reshape(-1), consts[node.input[2]].reshape(-1)
    axes = consts[node.input[3]].reshape(-1) if len(node.input) > 3 and node.input[3] else np.arange(len(starts))
    steps = consts[node.input[4]].reshape(-1) if len(node.input) > 4 and node.input[4] else np.ones(len(starts))
    if len(starts) != 1 or axes[0] != axis or steps[0] != 1:
        return None
    if starts[0] == -1 and ends[0] >= np.iinfo(np.int32).max:
        return "last"
    if starts[0] == 0 and ends[0] == 1:
        return "first"
    return None


def _directions(layers: dict[int, LoopLayer]) -> list[list[LoopLayer]]:
    """Recognised loops grouped into layers: a forward loop and a reversed one over the same sequence with the same
    cell form make one bidirectional node."""
    groups, paired = [], set()
    for i, layer in layers.items():
        if layer.reversed_by is not None or i in paired:
            continue
        partner = next((j for j, other in layers.items() if j not in paired and other.reversed_by is not None
                        and other.seq == layer.seq and other.cell.op == layer.cell.op
                        and other.cell.attributes == layer.cell.attributes and other.cell.R.shape == layer.cell.R.shape),
                       None)
        paired.add(i)
        if partner is not None:
            paired.add(partner)
            groups.append([layer, layers[partner]])
        else:
            groups.append([layer])
    groups += [[layer] for j, layer in layers.items() if j not in paired]
    return groups


# -- the rewrite -------------------------------------------------------------------------------------------------
def _emit(graph, group: list[LoopLayer], opset: int) -> str:
    """Replace the group's Loop(s) by one RNN / GRU node; the Loops' outputs keep their names."""
    names = _Names(graph)
    first = group[0]
    cell = first.cell
    hidden = cell.R.shape[1]
    direction = "bidirectional" if len(group) == 2 else "reverse" if first.reversed_by is not None else "forward"
    base = first.node.name or "loop"
    W, R, B = (names.initializer(f"{base}/{what}", np.stack([getattr(g.cell, what) for g in group]).astype(np.float32))
               for what in ("W", "R", "B"))
    nodes = []
    states = []
    for g in group:
        states.append(names.fresh(f"{base}/initial_h"))
        nodes.append(_leading_axis(g.h0, states[-1], hidden, names, opset))
    initial_h = states[0]
    if len(states) == 2:
        initial_h = names.fresh(f"{base}/initial_h")
        nodes.append(helper.make_node("Concat", states, [initial_h], axis=0))
    Y, Y_h = names.fresh(f"{base}/Y"), names.fresh(f"{base}/Y_h")
    activations = [a for g in group for a in g.cell.activations]
    attributes = dict(cell.attributes)
    clipped = activations.count("HardSigmoid")  # a clip to [0, 1]: the weights hold its slope and offset
    if clipped:
        attributes.update(activation_alpha=[1.0] * clipped, activation_beta=[0.0] * clipped)
    nodes.append(helper.make_node(cell.op, [first.seq, W, R, B, "", initial_h], [Y, Y_h],
                                  name=names.fresh(f"{base}/{cell.op}"), hidden_size=hidden, direction=direction,
                                  activations=activations, **attributes))
    for d, g in enumerate(group):
        nodes += _direction_output(Y, g.scan, 1, d, len(group), names, opset)
        if g.final:
            nodes += _direction_output(Y_h, g.final, 0, d, len(group), names, opset)
        for node, kind, which in g.edits:
            _apply_edit(graph, node, kind, which, names)
    position = list(graph.node).index(first.node)
    for g in group:
        graph.node.remove(g.node)
    for k, node in enumerate(nodes):
        graph.node.insert(position + k, node)  # before the readers of a later Loop's outputs: _sort orders those
    loops = " and ".join(repr(g.node.name) for g in group)
    form = f"{cell.op}({', '.join(cell.activations)}" + "".join(f", {k}={v}" for k, v in cell.attributes.items())
    return (f"Loop {loops}: the body is one {form}) step of {hidden} units; read as an ONNX {cell.op} node "
            f"({direction}) with the body's weights")


def _direction_output(Y: str, name: str, axis: int, d: int, dirs: int, names, opset) -> list:
    """name = direction d of Y (the direction axis `axis` dropped)."""
    if dirs == 1:
        return [_squeeze(Y, name, axis, names, opset)]
    one = names.fresh(f"{name}/direction")
    slice_inputs = [names.initializer(f"{name}/{what}", np.array([v], np.int64))
                    for what, v in (("start", d), ("end", d + 1), ("axis", axis))]
    return [helper.make_node("Slice", [Y] + slice_inputs, [one]), _squeeze(one, name, axis, names, opset)]


def _apply_edit(graph, node, kind: str, which, names) -> None:
    if kind == "identity":
        replacement = helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name)
    else:
        start, end = (-1, _INT_MAX) if which == "first" else (0, 1)
        inputs = list(node.input)
        inputs[1] = names.initializer(f"{node.name}/start", np.array([start], np.int64))
        inputs[2] = names.initializer(f"{node.name}/end", np.array([end], np.int64))
        replacement = helper.make_node("Slice", inputs, list(node.output), name=node.name)
    node.CopyFrom(replacement)


def _squeeze(x: str, y: str, axis: int, names, opset) -> onnx.NodeProto:
    if opset >= 13:
        return helper.make_node("Squeeze", [x, names.initializer(f"{y}/axes", np.array([axis], np.int64))], [y])
    return helper.make_node("Squeeze", [x], [y], axes=[axis])


def _leading_axis(x: str, y: str, hidden: int, names, opset) -> onnx.NodeProto:
    """(B, H) -> (1, B, H): Unsqueeze, or before opset 13 (axes an attribute) Reshape, which reads alike in every
    opset."""
    if opset >= 13:
        return helper.make_node("Unsqueeze", [x, names.initializer(f"{y}/axes", np.array([0], np.int64))], [y])
    return helper.make_node("Reshape", [x, names.initializer(f"{y}/shape", np.array([1, -1, hidden], np.int64))], [y])


class _Names:
    def __init__(self, graph):
        self.graph = graph
        self.taken = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output} | {
            n.name for n in graph.node} | {i.name for i in graph.input}

    def fresh(self, stem: str) -> str:
        name, k = f"{stem}_rnnedge", 0
        while name in self.taken:
            k += 1
            name = f"{stem}_rnnedge{k}"
        self.taken.add(name)
        return name

    def initializer(self, stem: str, value: np.ndarray) -> str:
        name = self.fresh(stem)
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        return name


# -- graph housekeeping ------------------------------------------------------------------------------------------
def _outer_constants(graph) -> dict[str, np.ndarray]:
    return body_constants(graph)


def _used_names(graph) -> set[str]:
    """Every tensor name a node reads (its inputs and its subgraphs' outer-scope references) or the graph returns."""
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(node.input)
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                used |= _used_names(a.g)
    return used


def _live(graph) -> set[str]:
    """Output names of the nodes the graph's outputs depend on."""
    producers = {o: n for n in graph.node for o in n.output}
    live, todo, seen = set(), [o.name for o in graph.output], set()
    while todo:
        node = producers.get(todo.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        live.update(node.output)
        todo.extend(node.input)
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                todo.extend(_used_names(a.g))
    return live


def _drop_dead(graph, original) -> None:
    """Remove the nodes the rewrite left unread (condition and trip-count arithmetic, reversals of the input); nodes
    the original graph already left unread stay, for the mapper to judge as before."""
    was_live = _live(original)
    live = _live(graph)
    keep = [n for n in graph.node if any(o in live for o in n.output) or not any(o in was_live for o in n.output)]
    del graph.node[:]
    graph.node.extend(keep)
    read, was_read = _used_names(graph), _used_names(original)
    kept = [t for t in graph.initializer if t.name in read or t.name not in was_read]
    if len(kept) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


def _sort(graph) -> None:
    """Topological order, keeping the original order where it already is one."""
    available = {t.name for t in graph.initializer} | {i.name for i in graph.input} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        for k, node in enumerate(pending):
            needs = set(node.input)
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    needs |= _outer_reads(a.g)
            if needs <= available:
                ordered.append(pending.pop(k))
                available.update(node.output)
                break
        else:
            ordered.extend(pending)  # a cycle or a missing input: the mapper names it as before
            break
    del graph.node[:]
    graph.node.extend(ordered)


def _outer_reads(body) -> set[str]:
    inside = {i.name for i in body.input} | {t.name for t in body.initializer}
    inside |= {o for n in body.node for o in n.output}
    return {n for n in _used_names(body) if n not in inside}
