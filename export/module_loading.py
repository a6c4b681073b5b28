"""Loading a user's nn.Module class and its state_dict (the CLI's --module / --checkpoint / --init-args)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from rnnedge.export.module_values import MappingError


def load_user_module(target: str, checkpoint, init_args: str | dict | None) -> nn.Module:
    """`pkg.mod:Class` or `path/to/file.py:Class`, built with init_args (a JSON object) and loaded with the
    state_dict in `checkpoint` (torch.load(weights_only=True); a bare state_dict, or a dict holding one under
    'state_dict' or 'model_state_dict'). Raises MappingError with a clear message on any bad input."""
    where, sep, cls_name = target.rpartition(":")
    if not sep or not where or not cls_name:
        raise MappingError(f"--module {target!r}: expected 'package.module:Class' or 'path/to/file.py:Class'")
    if isinstance(init_args, str):
        try:
            init_args = json.loads(init_args)
        except json.JSONDecodeError as e:
            raise MappingError(f"--init-args is not valid JSON: {e}") from None
    init_args = init_args or {}
    if not isinstance(init_args, dict):
        raise MappingError(f"--init-args must be a JSON object of keyword arguments, got {type(init_args).__name__}")
    try:
        if where.endswith(".py") or os.sep in where:
            path = Path(where)
            if not path.is_file():
                raise MappingError(f"--module {target!r}: file {path} not found")
            name = f"rnnedge_user_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(name, path)
            py = importlib.util.module_from_spec(spec)
            sys.modules[name] = py
            spec.loader.exec_module(py)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            py = importlib.import_module(where)
    except MappingError:
        raise
    except Exception as e:  # noqa: BLE001 - a user's module may raise anything on import
        raise MappingError(f"--module {target!r}: cannot import {where!r}: {type(e).__name__}: {e}") from None
    cls = getattr(py, cls_name, None)
    if cls is None:
        raise MappingError(f"--module {target!r}: {where!r} has no {cls_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise MappingError(f"--module {target!r}: {cls_name!r} is not a torch.nn.Module class")
    try:
        module = cls(**init_args)
    except Exception as e:  # noqa: BLE001
        raise MappingError(f"cannot build {cls_name}(**{json.dumps(init_args)}): {type(e).__name__}: {e}") from None
    path = Path(checkpoint)
    if not path.is_file():
        raise MappingError(f"--checkpoint {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise MappingError(f"--checkpoint {path}: not a loadable state_dict: {type(e).__name__}: {e}") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MappingError(f"--checkpoint {path}: not a state_dict (a dict of tensors)")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise MappingError(f"--checkpoint {path} does not fit {cls_name}(**{json.dumps(init_args)}): {e}") from None
    return module.eval()

