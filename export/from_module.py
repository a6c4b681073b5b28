"""A user's own `nn.Module` -> an rnnedge spec and RecurrentModel weights, proven equal on random inputs.

Users write their models the way tutorials do (nn.Embedding -> nn.RNN/LSTM/GRU -> nn.Linear) and should not
rewrite them in our spec. `map_module` traces the module's forward() with torch.fx, reads what the graph does
with each value, maps it to a spec plus a `RecurrentModel` state_dict, and then **proves** the mapping: it runs
the user's forward() and the mapped RecurrentModel on random inputs (several batch sizes and lengths, eval
mode) and refuses (ProofError, with the measured max abs difference) when they differ by more than 1e-5.
`export_module` writes the mapped model as an ordinary rnnedge checkpoint (`model.pt`, train/checkpoint.py)
plus `module_mapping.json` and runs the usual `export_checkpoint` on it.

What maps (anything else is refused with a MappingError naming the node or module):

  input      the forward's first argument; through an nn.Embedding (max_norm unset) -> tokens input (vocab,
             embed_dim, padding_idx); straight into the first RNN -> dense input (mean 0, std 1)
  layers     nn.RNN (tanh, relu), nn.LSTM (proj_size 0), nn.GRU; any num_layers, batch_first, bias (bias=False
             -> zero biases), bidirectional; several recurrent modules chained output -> input; an initial
             state made with torch.zeros / new_zeros (the default) is accepted
  glue       nn.Dropout / F.dropout / nn.Identity (identity at inference), .contiguous() .float() .to(...),
             transpose(0, 1) / permute(1, 0[, 2]) of sequences (the layout is followed: a batch_first=False
             model takes (T, B[, F]) input and, per step, returns (T, B, out), exactly as its forward() does)
  reading    `output` (every step), `output[:, t, a:b]` with t = -1 or 0 (`output[t]` time-major),
             `h_n[k]` of the LAST recurrent layer (h_n[-1], h_n[-2]; c_n is refused), `.squeeze(0)` of a
             one-entry h_n, torch.cat of those along the feature dim
  lengths    forward(x, lengths) (lengths required, or optional with a name containing "len"): lengths given to
             nn.utils.rnn.pack_padded_sequence (as given, .cpu(), .to(...), .tolist()), enforce_sorted either way,
             batch_first either way; packed outputs into the next recurrent module or pad_packed_sequence (with
             total_length=x.size(...) or without: padded to the longest); h_n is each sequence's final state;
             output[torch.arange(x.size(0)), lengths - 1] (each last true step; forward directions, packed or
             forward-only layers). Maps to the runtime's run(X, lengths) (export/module_packing.py); the proof feeds
             random lengths
  head       nn.Linear layers (bias or not) with ReLU / Tanh / GELU (exact or approximate="tanh") / Sigmoid / nothing
             (Dropout, Identity) between them, as modules, in nn.Sequential or functional (F.relu, torch.tanh,
             x.relu(), F.gelu, torch.sigmoid ...) -> spec head "hidden" layers then the final linear layer
             (export/module_heads.py); no nn.Linear -> an identity head
  activation softmax or log_softmax over the last axis (dim=-1, or its number), sigmoid (torch., F., Tensor
             methods, nn.Softmax / nn.LogSoftmax / nn.Sigmoid)

Which head the spec gets. The spec's `last_step` head reads each direction's *final* state: the forward
direction at t = T-1 and, for a bidirectional layer, the backward direction at t = 0 (runtime/spec.py,
RecurrentModel.final_state). So `h_n[-1]`, `torch.cat((h_n[-2], h_n[-1]), 1)`, `output[:, -1, :H]` and
`output[:, 0, H:]` (and any mix) map to `last_step`; the head's weight columns are placed at the spec
columns the user's features come from (columns the user never reads get zero weight).

The pitfall: for a bidirectional RNN, `output[:, -1, :]` is the forward direction at T-1 concatenated with
the backward direction at T-1, and the backward direction at T-1 has seen ONE token (the last). That is not
the spec's `last_step` (backward at 0), and no `last_step` head can express it. We keep the user's semantics
exactly instead of silently "fixing" them: the model is mapped to an `every_step` head with the user's
weights, and the user's forward() is the mapped model's (and the runtime's) output at the LAST step,
`runtime.load(...).run(X)[:, -1]` (`Mapping.read_step == "last"`; `output[:, 0, :]` likewise maps to step 0).
The proof compares exactly that, export's parity report checks the every-step outputs (which include it),
and a warning explains the pitfall and the usual fix (`torch.cat((h_n[-2], h_n[-1]), dim=1)`, or
`output[:, 0, H:]` for the backward half), which would map to `last_step`. The price: such a model's runtime
output has a time axis, and the every-step head does T times the head's work.

Layout: `Mapping.input_time_major` says the user's forward takes (T, B[, F]) and `output_time_major` that a
per-step output comes back (T, B, out); the rnnedge model and the runtime always use (B, T[, F]).
"""

from __future__ import annotations

import json
import warnings

from torch import nn

from rnnedge.export.module_heads import build
from rnnedge.export.module_loading import load_user_module
from rnnedge.export.module_proof import PROOF_SHAPES, mapped_model, prove_mapping, random_input
from rnnedge.export.module_values import PROOF_TOLERANCE, Mapping, MappingError, PitfallWarning, ProofError
from rnnedge.export.module_walk import Mapper
from rnnedge.export.rules import FLOAT_RTOL
from rnnedge.train.checkpoint import save_checkpoint

__all__ = ["CHECKPOINT_FILE", "MAPPING_FILE", "PROOF_SHAPES", "PROOF_TOLERANCE", "Mapping", "MappingError",
           "PitfallWarning", "ProofError", "export_module", "load_user_module", "map_module", "mapped_model",
           "prove_mapping", "random_input"]

MAPPING_FILE = "module_mapping.json"
CHECKPOINT_FILE = "model.pt"


# -- the public API ----------------------------------------------------------------------------------------------
def map_module(module: nn.Module, *, task: str = "classify", prove: bool = True, seed: int = 0) -> Mapping:
    """Map a user's module to (spec, RecurrentModel state_dict, warnings) and prove it (see the module docstring).

    Raises MappingError naming what cannot be mapped, ProofError (a MappingError) when the mapped model differs
    from the module's forward() by more than PROOF_TOLERANCE. The returned Mapping unpacks as
    `spec, state_dict, warnings = map_module(m)` and carries the proof's `max_abs_diff`.
    """
    if not isinstance(module, nn.Module):
        raise MappingError(f"expected a torch.nn.Module, got {type(module).__name__}")
    mapper = Mapper(module)
    head, name = mapper.run()
    mapping = build(head, name, task)
    mapper.apply_packing(mapping, head)
    if prove:
        mapping.max_abs_diff = prove_mapping(module, mapping, seed=seed)
    return mapping


def export_module(module: nn.Module, out_dir, *, task: str = "classify", precisions=("f32",), data=None,
                  tolerance: float = 1e-5, steps: int = 1000, seed: int = 0, calibration=None, on_warning=None,
                  source: str | None = None, rtol: float = FLOAT_RTOL, single_header: bool = False) -> dict:
    """Map and prove a user's module, write `model.pt` (an rnnedge checkpoint) and `module_mapping.json` into
    out_dir, then export_checkpoint it there. Returns the report (with report["module"] = the mapping).

    on_warning(message) receives each pitfall warning; default: warnings.warn(message, PitfallWarning).
    """
    from rnnedge.export.pipeline import export_checkpoint, export_file_names, module_source, refuse_non_finite
    from rnnedge.train import outputs

    refuse_non_finite(module.state_dict(), source or type(module).__name__)
    mapping = map_module(module, task=task, seed=seed)
    for message in mapping.warnings:
        if on_warning is None:
            warnings.warn(message, PitfallWarning, stacklevel=2)
        else:
            on_warning(message)
    described = {"module": source or type(module).__name__, **mapping.describe()}
    # staged beside out_dir and moved in only once verified (export_checkpoint): out_dir is untouched on failure
    with outputs.Staging(out_dir, outputs.EXPORT, writes=export_file_names(precisions, CHECKPOINT_FILE, MAPPING_FILE),
                         source=module_source(source or f"{type(module).__module__}:{type(module).__qualname__}")) as stage:
        save_checkpoint(stage.dir / CHECKPOINT_FILE, mapped_model(mapping),
                        metrics={"from_module": json.dumps(described)})
        (stage.dir / MAPPING_FILE).write_text(json.dumps(described, indent=2) + "\n")
        return export_checkpoint(stage.dir / CHECKPOINT_FILE, out_dir, data=data, tolerance=tolerance, steps=steps,
                                 seed=seed, precisions=precisions, calibration=calibration, module=described,
                                 stage=stage, rtol=rtol, single_header=single_header)
