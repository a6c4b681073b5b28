"""The proof: the user's forward() and the mapped RecurrentModel on random inputs, compared."""

from __future__ import annotations

import torch
from torch import nn

from rnnedge.export.module_values import PROOF_TOLERANCE, Mapping, ProofError
from rnnedge.train.model import RecurrentModel

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


def random_lengths(batch: int, steps: int, generator: torch.Generator, descending: bool) -> torch.Tensor:
    """(B,) int64 lengths in [1, steps], sorted longest first when the user's packing has enforce_sorted=True."""
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    return lengths.sort(descending=True).values if descending else lengths


def _within_lengths(mapping: Mapping, want: torch.Tensor, got: torch.Tensor, lengths: torch.Tensor | None):
    """The compared entries: every step of a per-step output that lies within its sequence's length."""
    if lengths is None or mapping.read_step is not None or got.dim() != 3:
        return want, got
    steps = got.shape[0 if mapping.output_time_major else 1]
    valid = torch.arange(steps)[None, :] < lengths[:, None]  # (B, T)
    if mapping.output_time_major:
        valid = valid.T
    return want[valid], got[valid]


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
            lengths = (random_lengths(batch, steps, generator, mapping.enforce_sorted) if mapping.lengths
                       else None)
            try:
                want = module(user_x) if lengths is None else module(user_x, lengths)
            except Exception as e:  # noqa: BLE001 - the user's own forward failed on a valid input
                raise ProofError(f"{type(module).__name__}.forward() failed on a random input of shape "
                                 f"{tuple(user_x.shape)}{_with(lengths)}: {type(e).__name__}: {e}",
                                 float("inf")) from None
            got = mapping.user_output(model(x, lengths), lengths)
            if not isinstance(want, torch.Tensor) or tuple(want.shape) != tuple(got.shape):
                shape = tuple(want.shape) if isinstance(want, torch.Tensor) else type(want).__name__
                raise ProofError(f"{type(module).__name__}.forward() returned {shape} on input "
                                 f"{tuple(user_x.shape)}{_with(lengths)}; the mapped model gives {tuple(got.shape)}",
                                 float("inf"))
            want, got = _within_lengths(mapping, want, got, lengths)
            diff = float((want.float() - got).abs().max()) if want.numel() else 0.0
            if not diff <= tolerance:
                raise ProofError(f"the mapped rnnedge model does not reproduce {type(module).__name__}.forward(): "
                                 f"max abs difference {diff:.3g} > {tolerance:g} on random input of shape "
                                 f"{tuple(user_x.shape)}{_with(lengths)}; nothing was exported", diff)
            worst = max(worst, diff)
    finally:
        torch.set_num_threads(threads)
        module.train(was_training)
    return worst



def _with(lengths: torch.Tensor | None) -> str:
    return "" if lengths is None else f" with lengths {lengths.tolist()}"
