"""Checkpoints: the model's state_dict plus its spec, never a pickled object.

    {"format": "rnnedge-checkpoint", "version": 1, "spec": {...}, "state_dict": {...}, "metrics": {...}}

Written with torch.save, read with torch.load(weights_only=True).
"""

from __future__ import annotations

import os

import torch

from train.model import RecurrentModel

CHECKPOINT_FORMAT = "rnnedge-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not an rnnedge checkpoint, or one this version cannot read."""


def save_checkpoint(path: str | os.PathLike, model: RecurrentModel, metrics: dict | None = None) -> None:
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "spec": model.spec,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "metrics": metrics or {},
        },
        path,
    )


def load_checkpoint(path: str | os.PathLike) -> tuple[RecurrentModel, dict]:
    """Rebuild the model from a checkpoint (in eval mode); returns (model, metrics)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 -- torch raises many types for corrupt or pickled files
        raise CheckpointError(f"{path}: not a loadable rnnedge checkpoint: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an rnnedge checkpoint (no format tag {CHECKPOINT_FORMAT!r})")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')!r} is not supported")
    if "spec" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: checkpoint lacks its 'spec' or 'state_dict'")
    model = RecurrentModel(ckpt["spec"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the checkpoint's spec: {e}") from None
    return model.eval(), ckpt.get("metrics", {})
