"""What an ONNX file must be before any of its tensors is read or its graph run: refusals that name the part.

- its opsets: the default domain (ai.onnx) at a version from OPSET_MIN to OPSET_MAX, ai.onnx.ml at a version the
  installed onnx defines, and no other domain (the graph's own local functions excepted; the mapper names any
  node that calls one). A graph stamped with opset 99 would otherwise be read by today's operator semantics;
- its IR version: one the installed onnx defines; its inputs' fixed sizes: at most MAX_INPUT_VALUES values;
- every tensor it holds (initializers, Constant values and tensor attributes, in every subgraph and function):
  dims that are not negative, a known data type, and exactly the data its dims declare (raw_data bytes, or
  the typed field's values). numpy_helper.to_array trusts the dims: a tensor claiming more data than it holds
  fails deep inside numpy, or, with zero data, allocates what the dims claim.
Each refusal is a MappingError (export's bad input: exit 2).
"""

from __future__ import annotations

import math

import onnx
from onnx import TensorProto, helper

from rnnedge.export.module_values import MappingError

# ONNX Runtime guarantees opsets 7 and above (it warns below, and lacks kernels for some older operators);
# OPSET_MAX: the newest opset the installed onnx defines, which the installed ONNX Runtime also runs (a test
# checks both ends, so an upgrade of either package that breaks this range fails CI rather than a user's export)
OPSET_MIN = 7
OPSET_MAX = onnx.defs.onnx_opset_version()
ML_OPSET_MAX = helper.VERSION_TABLE[-1][3]  # the newest ai.onnx.ml opset of the newest onnx release listed
DEFAULT_DOMAINS = ("", "ai.onnx")
SUB_BYTE_BITS = {name: bits for name, bits in (("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2),
                                               ("UINT2", 2), ("FLOAT6E2M3", 6), ("FLOAT6E3M2", 6))
                 if hasattr(TensorProto, name)}


MAX_INPUT_VALUES = 10**7  # the proof runs the graph on random inputs of the sizes its inputs fix


def supported_opsets() -> str:
    return f"ai.onnx opsets {OPSET_MIN} to {OPSET_MAX} (ai.onnx.ml 1 to {ML_OPSET_MAX})"


def check_model(model: onnx.ModelProto, where: str) -> None:
    """Refuse (MappingError) a model whose opsets, IR version or tensors rnnedge cannot trust; see the docstring."""
    _check_opsets(model, where)
    if not 1 <= model.ir_version <= onnx.IR_VERSION:
        raise MappingError(f"{where}: IR version {model.ir_version} is not one the installed onnx reads "
                           f"(1 to {onnx.IR_VERSION})")
    for value in model.graph.input:
        fixed = [d.dim_value for d in value.type.tensor_type.shape.dim if d.HasField("dim_value")]
        if math.prod(fixed) > MAX_INPUT_VALUES:
            raise MappingError(f"{where}: graph input {value.name!r} fixes sizes {fixed}, {math.prod(fixed):,} values "
                               f"a run; rnnedge runs the graph to prove its mapping, at most {MAX_INPUT_VALUES:,}")
    _check_graph_tensors(model.graph, where, "")
    for function in model.functions:
        for node in function.node:
            _check_node_tensors(node, where, f" in function {function.name!r}")


def _check_opsets(model: onnx.ModelProto, where: str) -> None:
    local = {f.domain for f in model.functions}
    default = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not default:
        raise MappingError(f"{where}: the model declares no ai.onnx opset; rnnedge reads {supported_opsets()}")
    if len(set(default)) > 1:
        raise MappingError(f"{where}: the model declares the ai.onnx opset twice, at versions "
                           f"{', '.join(map(str, sorted(set(default))))}")
    for o in model.opset_import:
        if o.domain in DEFAULT_DOMAINS:
            low, high = OPSET_MIN, OPSET_MAX
        elif o.domain == "ai.onnx.ml":
            low, high = 1, ML_OPSET_MAX
        elif o.domain in local:
            continue
        else:
            raise MappingError(f"{where}: the model declares operator domain {o.domain!r} (version {o.version}), "
                               f"which rnnedge does not read; it reads {supported_opsets()}")
        if not low <= o.version <= high:
            name = o.domain or "ai.onnx"
            raise MappingError(f"{where}: the model declares {name} opset {o.version}; rnnedge reads "
                               f"{supported_opsets()} (what the installed onnx {onnx.__version__} defines and "
                               f"ONNX Runtime runs)")


def _check_graph_tensors(graph: onnx.GraphProto, where: str, inside: str) -> None:
    for tensor in graph.initializer:
        check_tensor(tensor, where, f"initializer {tensor.name!r}{inside}")
    if len(graph.sparse_initializer):
        raise MappingError(f"{where}: sparse initializer {graph.sparse_initializer[0].values.name!r}{inside}: "
                           f"sparse tensors are not supported")
    for node in graph.node:
        _check_node_tensors(node, where, inside)


def _check_node_tensors(node: onnx.NodeProto, where: str, inside: str) -> None:
    for a in node.attribute:
        what = f"attribute {a.name!r} of node {node.name or node.op_type!r}{inside}"
        if a.HasField("t"):
            check_tensor(a.t, where, what)
        for t in a.tensors:
            check_tensor(t, where, what)
        if a.HasField("sparse_tensor") or len(a.sparse_tensors):
            raise MappingError(f"{where}: {what}: sparse tensors are not supported")
        if a.HasField("g"):
            _check_graph_tensors(a.g, where, f" in the body of node {node.name or node.op_type!r}{inside}")
        for g in a.graphs:
            _check_graph_tensors(g, where, f" in a body of node {node.name or node.op_type!r}{inside}")


def check_tensor(tensor: onnx.TensorProto, where: str, what: str) -> None:
    """Dims, data type and the amount of data of one tensor, before numpy_helper.to_array reads it."""
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise MappingError(f"{where}: {what} has negative dims {dims}")
    try:
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
        field = helper.tensor_dtype_to_field(tensor.data_type)
    except (KeyError, ValueError):
        raise MappingError(f"{where}: {what} has unknown data type {tensor.data_type}") from None
    type_name = helper.tensor_dtype_to_string(tensor.data_type).removeprefix("TensorProto.")
    if tensor.data_location == TensorProto.EXTERNAL:
        # onnx.load reads external data into raw_data (and bounds it by the file); one still outside was not loaded
        raise MappingError(f"{where}: {what} keeps its data in an external file that was not loaded")
    n = math.prod(dims)
    if tensor.data_type == TensorProto.STRING:
        have, unit, need = len(tensor.string_data), "strings in string_data", n
    elif tensor.HasField("raw_data"):
        bits = SUB_BYTE_BITS.get(type_name, dtype.itemsize * 8)
        have, unit, need = len(tensor.raw_data), "bytes of raw_data", math.ceil(n * bits / 8)
    else:
        values = getattr(tensor, field)
        if type_name in SUB_BYTE_BITS:  # packed: one byte per int32_data entry
            need = math.ceil(n * SUB_BYTE_BITS[type_name] / 8)
        else:
            need = n * (2 if tensor.data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128) else 1)
        have, unit = len(values), f"values in {field}"
    if have != need:
        raise MappingError(f"{where}: {what} declares dims {dims} ({n:,} {type_name} values: {need:,} {unit}) but "
                           f"holds {have:,} {unit}")
