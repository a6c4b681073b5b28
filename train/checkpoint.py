"""Checkpoints: the model's state_dict plus its spec, never a pickled object.

    {"format": "rnnedge-checkpoint", "version": 1, "spec": {...}, "state_dict": {...}, "metrics": {...},
     "split": {...}}

"split" (train/splits.py record: method, seed, SHA-256 of the data and of the test indices) says which sequences
the model never trained on; checkpoints written before it existed lack it, so their held-out part is unverifiable.

Written with torch.save, read with torch.load(weights_only=True).
"""

from __future__ import annotations

import os
import re

import torch

from rnnedge.runtime import spec as specs
from rnnedge.train.model import RecurrentModel

CHECKPOINT_FORMAT = "rnnedge-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not an rnnedge checkpoint, or one this version cannot read."""


def save_checkpoint(path: str | os.PathLike, model: RecurrentModel, metrics: dict | None = None,
                    split: dict | None = None) -> None:
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "spec": model.spec,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metrics": metrics or {},
    }
    if split is not None:
        ckpt["split"] = split
    torch.save(ckpt, path)


def load_split(path: str | os.PathLike) -> dict | None:
    """The checkpoint's split record (train/splits.py), or None for a checkpoint written without one. Raises
    FileNotFoundError, or CheckpointError for a file that is not a loadable rnnedge checkpoint."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 -- torch raises many types for corrupt or pickled files
        raise CheckpointError(f"{path}: not a loadable rnnedge checkpoint: {_load_failure(e)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an rnnedge checkpoint (no format tag {CHECKPOINT_FORMAT!r})")
    split = ckpt.get("split")
    if split is None:
        return None
    fields = {"method": str, "data_sha256": str, "test_sha256": str, "sequences": int, "test_sequences": int}
    if (not isinstance(split, dict) or any(not isinstance(split.get(k), t) for k, t in fields.items())
            or not (split.get("seed") is None or (isinstance(split["seed"], int) and 0 <= split["seed"] < 2**32))):
        raise CheckpointError(f"{path}: its split record is not one rnnedge writes (method, seed, data_sha256, "
                              f"test_sha256, sequences, test_sequences)")
    return split


def load_checkpoint(path: str | os.PathLike) -> tuple[RecurrentModel, dict]:
    """Rebuild the model from a checkpoint (in eval mode); returns (model, metrics)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 -- torch raises many types for corrupt or pickled files
        raise CheckpointError(f"{path}: not a loadable rnnedge checkpoint: {_load_failure(e)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an rnnedge checkpoint (no format tag {CHECKPOINT_FORMAT!r})")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')!r} is not supported")
    if "spec" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: checkpoint lacks its 'spec' or 'state_dict'")
    _check_shapes(path, ckpt["spec"], ckpt["state_dict"])
    model = _build(path, ckpt["spec"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the checkpoint's spec: {e}") from None
    return model.eval(), ckpt.get("metrics", {})


def _load_failure(e: Exception) -> str:
    """torch.load's reason in one line. A weights_only refusal is a page that suggests weights_only=False (running
    the file's code): only its unpickler reason is kept."""
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)", str(e), re.DOTALL)
    if found:
        return f"it holds something other than tensors and plain values ({' '.join(found.group(1).split())})"
    return " ".join(str(e).split())[:300]


SIZE_FIELDS = ("features", "vocab", "embed_dim", "hidden", "out", "units")  # the spec's fields that size tensors
MAX_SPEC_DEPTH = 8  # a spec nests four levels (head.hidden[k].units); anything far deeper is not a spec


def _check_shapes(path, spec, state_dict) -> None:
    """The spec describes the state_dict's tensors, checked before anything the spec sizes is allocated: the
    model is built on torch's meta device (no memory) after every size field is bounded by the tensors' dims
    (validating the spec itself allocates input.mean and std of `features` values)."""
    if not isinstance(spec, dict) or not isinstance(state_dict, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise CheckpointError(f"{path}: 'spec' must be a dict and 'state_dict' a dict of named tensors")
    largest = max((d for v in state_dict.values() for d in v.shape), default=0)
    for where, value in _size_fields(spec, "spec", 0, path):
        if value > largest:
            raise CheckpointError(f"{path}: {where} = {value} exceeds every dimension of the checkpoint's tensors "
                                  f"(the largest is {largest}): the spec does not describe these weights")
    with torch.device("meta"):
        expected = _build(path, spec).state_dict()
    for name, tensor in expected.items():
        if name in state_dict and tuple(state_dict[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(state_dict[name].shape)}, the spec "
                                  f"needs {tuple(tensor.shape)}")


def _build(path, spec: dict) -> RecurrentModel:
    """The model of a checkpoint's spec; a spec it cannot build is the file's error (CheckpointError)."""
    try:
        return RecurrentModel(spec)
    except specs.SpecError as e:
        raise CheckpointError(f"{path}: its spec is not valid: {e}") from None
    except (TypeError, ValueError, KeyError, IndexError) as e:  # a value of a type the spec rules did not expect
        raise CheckpointError(f"{path}: its spec cannot build a model: {type(e).__name__}: {e}") from None


def _size_fields(value, where: str, depth: int, path):
    if depth > MAX_SPEC_DEPTH:
        raise CheckpointError(f"{path}: {where} nests deeper than any spec")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        inner = f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"
        if key in SIZE_FIELDS and isinstance(item, int) and not isinstance(item, bool):
            yield inner, item
        elif isinstance(item, (dict, list)):
            yield from _size_fields(item, inner, depth + 1, path)
