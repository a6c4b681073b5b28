"""forward(x, lengths) with pack_padded_sequence / pad_packed_sequence -> a model the runtime runs as
run(X, lengths), proven on random lengths; other uses of a second argument are refused, saying what maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnedge import runtime
from rnnedge.export.from_module import MappingError, ProofError, export_module, map_module, prove_mapping
from rnnedge.train.data import Dataset, SequenceData
from tests.export import user_models_packed as um

torch.set_num_threads(1)


def built(cls, seed=0):
    torch.manual_seed(seed)
    return cls().eval()


PACKED = {  # model: (spec head, enforce_sorted, padded_to)
    um.PackedTagger: ("every_step", False, "input"),
    um.PackedBiGRUClassifier: ("last_step", True, None),
    um.PackedTimeMajor: ("every_step", False, "longest"),
    um.PackedStacked: ("last_step", False, None),
    um.PackedRepacked: ("every_step", False, "input"),
    um.OptionalLengths: ("last_step", False, None),
    um.LengthsGather: ("last_step", False, None),
    um.PackedGathered: ("last_step", False, None),
}


@pytest.mark.parametrize("cls", PACKED, ids=lambda c: c.__name__)
def test_packed_modules_map_to_a_lengths_model_and_the_proof_passes_on_random_lengths(cls):
    on, enforce_sorted, padded_to = PACKED[cls]
    mapping = map_module(built(cls))
    assert mapping.lengths in ("lengths", "seq_lengths")
    assert (mapping.spec["head"]["on"], mapping.enforce_sorted, mapping.padded_to) == (on, enforce_sorted, padded_to)
    assert mapping.max_abs_diff <= 1e-5
    assert any("run(X, lengths)" in note for note in mapping.notes)
    assert mapping.spec["layers"][0]["cell"] in ("lstm", "gru", "rnn_tanh")
    assert mapping.describe()["lengths_input"] == mapping.lengths


def test_the_packed_proof_reports_a_difference_with_the_lengths_it_fed():
    module = built(um.PackedTagger)
    mapping = map_module(module, prove=False)
    mapping.state_dict["head.bias"] = mapping.state_dict["head.bias"] + 1e-3
    with pytest.raises(ProofError, match=r"max abs difference 0\.001 .* with lengths \[\d+(, \d+)*\]"):
        prove_mapping(module, mapping)


def test_the_packed_proof_ignores_the_heads_output_on_padding_only():
    """A per-step head gives head(0) on the padding; the runtime gives zeros there. Only in-length steps count,
    and the time-major model's steps are matched to their own sequence."""
    module = built(um.PackedTimeMajor)
    mapping = map_module(module, prove=False)
    assert prove_mapping(module, mapping, shapes=((5, 9), (3, 30))) <= 1e-5
    x, lengths = torch.randn(9, 2, 3), torch.tensor([9, 4])
    with torch.no_grad():
        padding = module(x, lengths)[4:, 1]
    assert torch.allclose(padding, module.fc.bias.expand_as(padding))  # forward()'s own output past a length


@pytest.mark.parametrize("cls, names", [
    (um.MaskedMean, ["'mask'", "node 'unsqueeze'", "packing is supported", "run(X, lengths)"]),
    (um.MaskArgument, ["torch.arange(...) other than as the batch index", "packing is supported"]),
    (um.BidirectionalGathered, ["module 'gru' is bidirectional", "runs over the padding"]),
    (um.PackedLastPadded, ["step -1", "padding", "h_n[-1]"]),
    (um.PackedThenUnpacked, ["module 'second'", "unpacked", "pack 'second''s input"]),
    (um.ThreeInputs, ["needs 3 inputs", "speaker", "packing is supported"]),
    (um.StateArgument, ["'h0'", "node 'gru'", "packing is supported"]),
])
def test_other_uses_of_a_second_argument_are_refused_saying_what_maps(cls, names):
    with pytest.raises(MappingError) as e:
        map_module(built(cls))
    for part in names:
        assert part in str(e.value)


def _runtime_matches_forward(module, mapping, model, X, lengths):
    with torch.no_grad():
        want = module(torch.from_numpy(X), torch.from_numpy(lengths)).numpy()
    got = model.run(X, list(lengths))  # the runtime takes the lengths as a list or an array
    if mapping.spec["head"]["on"] == "every_step":
        valid = np.arange(X.shape[1])[None, :] < lengths[:, None]
        got, want = got[valid], want[valid]
    return float(np.abs(got - want).max())


def test_packed_tagger_exports_on_random_streams_and_the_runtime_reproduces_forward_with_lengths(tmp_path):
    module = built(um.PackedTagger)
    result = export_module(module, tmp_path, steps=20)
    assert result["passed"], result["failures"]
    assert result["module"]["lengths_input"] == "lengths"
    model = runtime.load(tmp_path / "model.f32.safetensors")
    rng = np.random.default_rng(3)
    X = rng.integers(1, 30, size=(4, 11)).astype(np.int64)
    lengths = np.array([3, 11, 1, 7])
    assert _runtime_matches_forward(module, map_module(module), model, X, lengths) <= 1e-5


def test_sorted_packed_classifier_exports_on_a_data_set_with_lengths(tmp_path):
    rng = np.random.default_rng(4)

    def split(n):
        lengths = np.sort(rng.integers(2, 13, size=n))[::-1].copy()
        X = rng.integers(1, 30, size=(n, 12)).astype(np.int64) * (np.arange(12)[None, :] < lengths[:, None])
        return SequenceData(X, lengths, rng.integers(0, 3, size=n))

    data = Dataset("toy-lengths", "classify", "tokens", None, 30, 3, "last_step", split(16), split(8), split(8),
                   "random, for this test")
    module = built(um.PackedBiGRUClassifier)
    result = export_module(module, tmp_path, data=data, steps=12)
    assert result["passed"], result["failures"]
    model = runtime.load(tmp_path / "model.f32.safetensors")
    assert _runtime_matches_forward(module, map_module(module), model, data.test.X, data.test.lengths) <= 1e-5


def test_cli_exports_a_packed_module_and_says_the_runtime_takes_the_lengths(tmp_path, capsys):
    from rnnedge.export import cli

    torch.manual_seed(0)
    torch.save(um.PackedTagger().state_dict(), tmp_path / "state.pt")
    code = cli.main(["--module", "tests.export.user_models_packed:PackedTagger", "--state-dict",
                     str(tmp_path / "state.pt"), "--stream-steps", "20", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "forward(x, lengths) packs its sequences" in captured.out and "run(X, lengths)" in captured.out
