"""The proof: the user's forward() and the mapped RecurrentModel on random inputs, compared."""

from __future__ import annotations

import torch
from torch import nn

from export.module_values import PROOF_TOLERANCE, Mapping, ProofError
from train.model import RecurrentModel

PROOF_SHAPES = ((1, 1), (3, 5), (2, 17), (4, 40))  # (batch, steps) of the random proof inputs


def mapped_model(mapping: Mapping) -> RecurrentModel:
    model = RecurrentModel(mapping.spec)
    model.load_state_dict(mapping.state_dict)
    return model.eval()


def random_input(spec: dict, batch: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """(B, T, F) float32 or (B, T) int64 ids in [0, vocab)."""
    inp = spec["input"]
    if inp["kind"] == "dense":
        return torch.randn(batch, steps, inp["features"], generator=generator)
    return torch.randint(0, inp["vocab"], (batch, steps), generator=generator)


@torch.no_grad()
def prove_mapping(module: nn.Module, mapping: Mapping, seed: int = 0, shapes=PROOF_SHAPES,
                  tolerance: float = PROOF_TOLERANCE) -> float:
    """Run the user's forward() and the mapped model on random inputs; the max abs difference, or ProofError."""
    model = mapped_model(mapping)
    was_training = module.training
    module.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    try:
        for batch, steps in shapes:
            x = random_input(mapping.spec, batch, steps, generator)
            user_x = x.transpose(0, 1).contiguous() if mapping.input_time_major else x
            try:
                want = module(user_x)
            except Exception as e:  # noqa: BLE001 - the user's own forward failed on a valid input
                raise ProofError(f"{type(module).__name__}.forward() failed on a random input of shape "
                                 f"{tuple(user_x.shape)}: {type(e).__name__}: {e}", float("inf")) from None
            got = mapping.user_output(model(x))
            if not isinstance(want, torch.Tensor) or tuple(want.shape) != tuple(got.shape):
                shape = tuple(want.shape) if isinstance(want, torch.Tensor) else type(want).__name__
                raise ProofError(f"{type(module).__name__}.forward() returned {shape} on input "
                                 f"{tuple(user_x.shape)}; the mapped model gives {tuple(got.shape)}", float("inf"))
            diff = float((want.float() - got).abs().max()) if want.numel() else 0.0
            if not diff <= tolerance:
                raise ProofError(f"the mapped rnnedge model does not reproduce {type(module).__name__}.forward(): "
                                 f"max abs difference {diff:.3g} > {tolerance:g} on random input of shape "
                                 f"{tuple(user_x.shape)}; nothing was exported", diff)
            worst = max(worst, diff)
    finally:
        torch.set_num_threads(threads)
        module.train(was_training)
    return worst

