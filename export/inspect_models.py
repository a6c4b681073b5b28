"""`rnnedge inspect` of the files that need the training extra: an rnnedge checkpoint (torch) and an ONNX file
(onnx; the spec it maps to needs export/from_onnx.py, hence torch too). The facts have the keys of
runtime/inspect_facts.py's weight-file facts that apply, plus where to go next; torch and onnx are imported only
here, so runtime/ never imports them.
"""

from __future__ import annotations

import math

from rnnedge.runtime import spec as specs
from rnnedge.runtime.inspect_facts import InspectError, cost_facts, file_facts, firmware_ram, spec_facts


def checkpoint_facts(path: str, target: str | None = None) -> dict:
    """Facts about an rnnedge checkpoint (train/checkpoint.py reads it with torch.load(weights_only=True)); with
    `target`, the predicted cost of a step on it in every precision it runs (inspect_facts.cost_facts)."""
    try:
        from rnnedge.train.checkpoint import CheckpointError, load_checkpoint
    except ImportError as e:
        raise InspectError(_needs_extra(path, "an rnnedge checkpoint", e)) from None
    try:
        model, metrics = load_checkpoint(path)
    except CheckpointError as e:
        raise InspectError(str(e)) from None
    spec = specs.validate(model.spec)
    facts = {"file": file_facts(path, "rnnedge checkpoint (PyTorch)"), "precision": "float32 (PyTorch)",
             **spec_facts(spec)}
    facts["bytes"] = {"weights_in_file": 4 * facts["parameters"]}
    facts["firmware_ram"] = firmware_ram(spec)
    if target is not None:
        facts["cost"] = cost_facts(spec, target)
    facts["metrics"] = {k: metrics[k] for k in ("metric", "val_metric", "test_metric", "kept_epoch") if k in metrics}
    facts["next"] = f"rnnedge export {path} --precision f32,int8w,int8 --out DIR"
    return facts


def onnx_facts(path: str, target: str | None = None) -> dict:
    """Facts about an ONNX file: the graph's recurrent nodes, and the rnnedge spec export/from_onnx.py maps it to
    (without the proof against ONNX Runtime, which rnnedge export runs); with `target`, the predicted cost of a step
    of that spec on it (InspectError when the file maps to no spec)."""
    try:
        import onnx
    except ImportError as e:
        raise InspectError(_needs_extra(path, "an ONNX file", e)) from None
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError and others for a damaged file
        raise InspectError(f"{path}: not a readable ONNX model: {type(e).__name__}: {e}") from None
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    facts = {"file": file_facts(path, "ONNX model"), "onnx": {
        "ir_version": model.ir_version, "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import}, "nodes": ops,
        "initializer_values": sum(math.prod(t.dims) for t in model.graph.initializer)}}
    try:
        from rnnedge.export.from_module import MappingError
        from rnnedge.export.from_onnx import map_onnx
    except ImportError as e:
        facts["mapping"] = f"not tried: {_needs_extra(path, 'mapping an ONNX file', e)}"
        return _no_spec(facts, target)
    try:
        mapping = map_onnx(model, prove=False, where=path)
    except MappingError as e:
        facts["mapping"] = f"refused: {e}"
        return _no_spec(facts, target)
    facts["mapping"] = "maps to the rnnedge spec below (rnnedge export proves it against ONNX Runtime)"
    facts.update(spec_facts(mapping.spec))
    facts["precision"] = "float32 (ONNX)"
    facts["firmware_ram"] = firmware_ram(mapping.spec)
    if target is not None:
        facts["cost"] = cost_facts(mapping.spec, target)
    facts["next"] = f"rnnedge export {path} --precision f32,int8w,int8 --out DIR"
    return facts


def _no_spec(facts: dict, target: str | None) -> dict:
    if target is not None:
        raise InspectError(f"{facts['file']['path']}: --target {target} needs the rnnedge spec the file maps to: "
                           f"{facts['mapping']}")
    return facts


def _needs_extra(path: str, what: str, error: ImportError) -> str:
    missing = (error.name or "a module").split(".")[0]
    return (f"{path}: reading {what} needs the training extra ({missing} is not installed here): "
            'pip install "rnnedge[train]"')
