"""--module heads beyond one nn.Linear: log_softmax outputs and dense layers (ReLU, Tanh, GELU both ways, Sigmoid,
Dropout, Identity between nn.Linear layers), written with modules, nn.Sequential or functional calls; each proven
against the user's forward(), and what the head contract cannot express refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnedge import runtime
from rnnedge.export.from_module import MappingError, ProofError, export_module, map_module, prove_mapping, random_input
from rnnedge.runtime import spec as specs
from tests.export import user_models as um
from tests.export import user_models_heads as uh

torch.set_num_threads(1)


def built(cls, *args, seed=0):
    torch.manual_seed(seed)
    return cls(*args).eval()


def dense(*layers):
    return [{"units": units, "activation": activation} for units, activation in layers]


HEADS = {  # (class, init args): the spec head it maps to
    (uh.NLLTagger, ()): {"out": 4, "on": "every_step", "activation": "log_softmax"},
    (uh.LogSoftmaxVariants, ("torch",)): {"out": 3, "on": "last_step", "activation": "log_softmax"},
    (uh.LogSoftmaxVariants, ("method",)): {"out": 3, "on": "last_step", "activation": "log_softmax"},
    (uh.LogSoftmaxVariants, ("module",)): {"out": 3, "on": "last_step", "activation": "log_softmax"},
    (uh.MLPClassifier, ()): {"out": 3, "on": "last_step", "activation": "none", "hidden": dense((8, "relu"))},
    (uh.GELUSequentialTagger, ()): {"out": 4, "on": "every_step", "activation": "softmax",
                                    "hidden": dense((7, "gelu"), (6, "gelu_tanh"))},
    (uh.FunctionalHead, ()): {"out": 2, "on": "last_step", "activation": "sigmoid",
                              "hidden": dense((6, "relu"), (6, "tanh"), (6, "relu"), (6, "sigmoid"),
                                              (6, "gelu_tanh"), (6, "none"))},
    (uh.PackedNLLTagger, ()): {"out": 4, "on": "every_step", "activation": "log_softmax",
                               "hidden": dense((8, "tanh"))},
}


@pytest.mark.parametrize("key", HEADS, ids=lambda k: f"{k[0].__name__}{''.join(k[1])}")
def test_heads_map_to_the_head_contract_and_the_proof_passes(key):
    cls, args = key
    mapping = map_module(built(cls, *args))
    assert mapping.spec["head"] == HEADS[key]
    assert mapping.spec["version"] == specs.HEAD_VERSION
    assert mapping.max_abs_diff <= 1e-5
    shapes = specs.tensor_shapes(mapping.spec)
    assert all(tuple(mapping.state_dict[name].shape) == shapes[name] for name in shapes if name.startswith("head."))


def test_a_hidden_layers_weights_sit_at_the_spec_columns_the_user_reads():
    """The first dense layer reads torch.cat((h[-2], h[-1])) of a bidirectional GRU: its columns are the spec's
    [forward | backward] final state, in that order, so its weight is the user's as it is."""
    module = built(uh.MLPClassifier)
    mapping = map_module(module)
    assert torch.equal(mapping.state_dict["head.hidden.0.weight"], module.fc1.weight.detach())
    assert torch.equal(mapping.state_dict["head.weight"], module.fc2.weight.detach())


def test_the_proof_tells_gelus_two_forms_apart():
    module = built(uh.GELUSequentialTagger)
    with torch.no_grad():  # larger pre-activations, where the two forms differ by more than 1e-5 after the softmax
        for k in (0, 2, 5):
            module.head[k].weight.mul_(10)
    mapping = map_module(module)
    assert mapping.max_abs_diff <= 1e-5
    mapping.spec["head"]["hidden"][1]["activation"] = "gelu"  # the user's second GELU is approximate="tanh"
    with pytest.raises(ProofError, match="max abs difference"):
        prove_mapping(module, mapping)


def test_a_wrong_hidden_bias_is_caught_by_the_proof():
    module = built(uh.FunctionalHead)
    mapping = map_module(module, prove=False)
    mapping.state_dict["head.hidden.2.bias"] = mapping.state_dict["head.hidden.2.bias"] + 1e-2
    with pytest.raises(ProofError):
        prove_mapping(module, mapping)


@pytest.mark.parametrize("cls, names", [
    (uh.SoftplusBetween, ["'head.1'", "nn.Softplus", "ReLU, Tanh, GELU, Sigmoid"]),
    (uh.LeakyReluBetween, ["'leaky_relu'", "F.leaky_relu", "between them"]),
    (uh.TimeSoftmax, ["log_softmax over dim 1", "the last axis (dim=-1)"]),
    (uh.EndsInRelu, ["returns relu of 'fc'", "goes between linear layers"]),
    (uh.SelfAttentive, ["'attention'", "nn.MultiheadAttention"]),
    (uh.NormBetweenLayers, ["'norm'", "nn.LayerNorm"]),
    (um.Projected, ["proj_size=4"]),
    (um.ReluBeforeHead, ["'relu'", "torch.relu", "comes after an nn.Linear"]),
])
def test_what_the_head_contract_cannot_express_is_refused_by_name(cls, names):
    with pytest.raises(MappingError) as e:
        map_module(built(cls))
    for part in names:
        assert part in str(e.value)


END_TO_END = {"nll_tagger": uh.NLLTagger, "mlp_classifier": uh.MLPClassifier, "packed_nll_tagger": uh.PackedNLLTagger,
              "gelu_sequential_tagger": uh.GELUSequentialTagger, "functional_head": uh.FunctionalHead}


def _runtime_output_matches_forward(module, mapping, model) -> float:
    """The runtime's output on fresh random input vs the user's forward(), within each length."""
    X = random_input(mapping.spec, 3, 9, torch.Generator().manual_seed(5))
    lengths = torch.tensor([9, 4, 6]) if mapping.lengths else None
    user_x = X.transpose(0, 1) if mapping.input_time_major else X
    with torch.no_grad():
        want = module(user_x) if lengths is None else module(user_x, lengths)
    got = mapping.user_output(torch.from_numpy(model.run(X.numpy(), lengths)), lengths)
    if lengths is not None and got.dim() == 3:
        valid = torch.arange(9)[None, :] < lengths[:, None]
        want, got = want[valid], got[valid]
    return float((want - got).abs().max())


@pytest.mark.parametrize("name", END_TO_END)
def test_new_head_patterns_export_in_every_precision_and_the_runtime_runs_them_like_forward(name, tmp_path):
    module = built(END_TO_END[name])
    mapping = map_module(module)
    assert [specs.unsupported(mapping.spec, p) for p in specs.PRECISIONS] == [[]] * len(specs.PRECISIONS)
    result = export_module(module, tmp_path / "out", precisions=specs.PRECISIONS, steps=20)
    assert result["passed"], result["failures"]
    assert result["spec"]["head"] == mapping.spec["head"]
    model = runtime.load(tmp_path / "out" / "model.f32.safetensors")
    assert _runtime_output_matches_forward(module, mapping, model) <= 1e-5
    assert np.isfinite(mapping.max_abs_diff)
