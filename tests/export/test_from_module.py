"""A user's own nn.Module -> spec + weights, proven against its forward(), exported, run in the runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnedge import runtime
from rnnedge.export import cli
from rnnedge.export.from_module import MappingError, PitfallWarning, ProofError, export_module, map_module
from tests.export import user_models as um

torch.set_num_threads(1)


def built(cls, *args, seed=0, **kwargs):
    torch.manual_seed(seed)
    return cls(*args, **kwargs).eval()


SUPPORTED = {
    "rnn_classifier": (lambda: built(um.RNNClassifier, 40, 6, 7, 4), "every_step", "last"),
    "fixed_classifier": (lambda: built(um.FixedRNNClassifier, 40, 6, 7, 4), "last_step", None),
    "lstm_tagger": (lambda: built(um.LSTMTagger), "every_step", None),
    "gru_last_hidden_no_bias": (lambda: built(um.GRULastHidden), "last_step", None),
    "dense_lstm_sigmoid": (lambda: built(um.DenseLSTMClassifier), "last_step", None),
    "transposed_time_major": (lambda: built(um.TransposedTimeMajor), "last_step", None),
    "chained_backward_only": (lambda: built(um.ChainedBackwardOnly), "last_step", None),
    "final_slices_softmax": (lambda: built(um.FinalSlices), "last_step", None),
    "zero_initial_state": (lambda: built(um.ZeroInitialState), "last_step", None),
}


@pytest.mark.parametrize("name", SUPPORTED)
def test_supported_modules_map_and_the_proof_passes(name):
    make, on, read_step = SUPPORTED[name]
    mapping = map_module(make())
    spec, state_dict, _ = mapping
    assert spec["head"]["on"] == on and mapping.read_step == read_step
    assert mapping.max_abs_diff <= 1e-5
    assert {"head.weight", "head.bias"} <= set(state_dict)


def test_mapped_specs_follow_the_modules():
    tagger = map_module(built(um.LSTMTagger))
    assert tagger.input_time_major and tagger.output_time_major  # batch_first=False: (T, B) in, (T, B, tags) out
    assert [layer["cell"] for layer in tagger.spec["layers"]] == ["lstm", "lstm"]
    assert tagger.spec["head"]["activation"] == "softmax"
    gru = map_module(built(um.GRULastHidden))
    assert gru.spec["input"]["kind"] == "dense" and len(gru.spec["layers"]) == 2
    assert all(not v.any() for k, v in gru.state_dict.items() if ".bias" in k)  # bias=False -> zero biases
    dense = map_module(built(um.DenseLSTMClassifier))
    assert dense.spec["head"]["activation"] == "sigmoid"
    fixed = map_module(built(um.FixedRNNClassifier, 40, 6, 7, 4))
    assert fixed.spec["layers"] == [{"cell": "rnn_relu", "hidden": 7, "bidirectional": True}] * 2
    assert fixed.spec["input"]["padding_idx"] == 0


def test_a_mapping_that_does_not_reproduce_forward_is_refused_with_the_difference():
    module = built(um.GRULastHidden)
    mapping = map_module(module, prove=False)
    mapping.state_dict["head.bias"] = mapping.state_dict["head.bias"] + 1e-3
    from rnnedge.export.from_module import prove_mapping
    with pytest.raises(ProofError, match=r"max abs difference 0\.001") as e:
        prove_mapping(module, mapping)
    assert e.value.max_abs_diff == pytest.approx(1e-3, rel=1e-2)


@pytest.mark.parametrize("cls, names", [
    (um.ConvFrontEnd, ["'conv'", "nn.Conv1d"]),
    (um.MeanPooled, ["'mean'", "mean over dim 1", "one time step or every step"]),
    (um.Projected, ["'lstm'", "proj_size=4"]),
    (um.Normed, ["'norm'", "nn.LayerNorm"]),
    (um.FirstLayerState, ["layer 0 of 'gru'", "last layer only"]),
    (um.ReluBeforeHead, ["'relu'", "torch.relu"]),
    (um.CellStateHead, ["cell state c_n"]),
])
def test_unsupported_modules_are_named(cls, names):
    with pytest.raises(MappingError) as e:
        map_module(built(cls))
    for part in names:
        assert part in str(e.value)


def test_rnn_classifier_warns_and_the_runtime_reproduces_its_forward(tmp_path):
    module = built(um.RNNClassifier, 40, 6, 7, 4)
    with pytest.warns(PitfallWarning, match=r"output\[:, -1, :\].*seen only the last token.*hidden\[-2\]"):
        result = export_module(module, tmp_path, steps=30)
    assert result["passed"], result["failures"]
    assert result["module"]["read_step"] == "last"
    assert json.loads((tmp_path / "module_mapping.json").read_text())["read_step"] == "last"
    model = runtime.load(tmp_path / "model.f32.safetensors")
    rng = np.random.default_rng(1)
    for batch, steps in ((1, 1), (3, 9), (2, 33)):
        X = rng.integers(0, 40, size=(batch, steps)).astype(np.int64)
        with torch.no_grad():
            want = module(torch.from_numpy(X)).numpy()
        got = model.run(X)[:, -1]  # the user's output[:, -1, :] semantics: the runtime's output at the last step
        assert np.abs(got - want).max() <= 1e-5


def test_fixed_classifier_runs_as_a_last_step_model(tmp_path):
    module = built(um.FixedRNNClassifier, 40, 6, 7, 4)
    assert export_module(module, tmp_path, steps=20)["passed"]
    X = np.random.default_rng(2).integers(0, 40, size=(3, 12)).astype(np.int64)
    with torch.no_grad():
        want = module(torch.from_numpy(X)).numpy()
    assert np.abs(runtime.load(tmp_path / "model.f32.safetensors").run(X) - want).max() <= 1e-5


USER_FILE = '''
import torch
from torch import nn

class Tagger(nn.Module):
    def __init__(self, features, hidden, tags):
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, tags)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(out)
'''


def user_file(tmp_path):
    path = tmp_path / "mymodels.py"
    path.write_text(USER_FILE)
    import importlib.util
    spec = importlib.util.spec_from_file_location("mymodels_for_weights", path)
    py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(py)
    torch.manual_seed(0)
    torch.save(py.Tagger(3, 5, 2).state_dict(), tmp_path / "state.pt")
    return path


def test_cli_exports_a_module_from_a_file(tmp_path, capsys):
    path = user_file(tmp_path)
    out = tmp_path / "out"
    code = cli.main(["--module", f"{path}:Tagger", "--state-dict", str(tmp_path / "state.pt"),
                     "--init-args", '{"features": 3, "hidden": 5, "tags": 2}', "--stream-steps", "40", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "every_step" in captured.out and "differ by at most" in captured.out
    assert (out / "model.pt").is_file() and (out / "model.f32.safetensors").is_file()
    assert json.loads((out / "report.json").read_text())["module"]["module"] == f"{path}:Tagger"


def test_cli_exports_a_module_by_import_path(tmp_path, monkeypatch, capsys):
    user_file(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code = cli.main(["--module", "mymodels:Tagger", "--state-dict", str(tmp_path / "state.pt"),
                     "--init-args", '{"features": 3, "hidden": 5, "tags": 2}', "--stream-steps", "20"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "rnnedge-out" / "Tagger" / "model.f32.safetensors").is_file()  # default: named after the class
    assert not (tmp_path / "model.pt").exists()  # nothing beside the user's files


@pytest.mark.parametrize("argv, message", [
    (["--module", "no_such_pkg_xyz:Tagger"], "cannot import"),
    (["--module", "{file}:Missing"], "has no 'Missing'"),
    (["--module", "{file}:Tagger", "--init-args", "{not json"], "not valid JSON"),
    (["--module", "{file}:Tagger", "--init-args", '{"features": 4, "hidden": 5, "tags": 2}'], "does not fit"),
    (["--module", "{file}:Tagger", "--init-args", '{"nope": 1}'], "cannot build"),
    (["model.pt", "--module", "{file}:Tagger"], "not both"),
    (["--init-args", "{}", "--state-dict", "{state}"], "go with --module"),
    ([], "give a CHECKPOINT"),
])
def test_cli_bad_module_input_exits_2(tmp_path, capsys, argv, message):
    path = user_file(tmp_path)
    state = str(tmp_path / "state.pt")
    argv = [a.replace("{file}", str(path)).replace("{state}", state) for a in argv]
    if "--module" in argv and "--state-dict" not in argv and "model.pt" not in argv:
        argv += ["--state-dict", state]
    if "--module" in argv and "--init-args" not in argv:
        argv += ["--init-args", '{"features": 3, "hidden": 5, "tags": 2}']
    assert cli.main(argv + ["--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_cli_refuses_an_unsupported_module_with_exit_2(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(um.MeanPooled().state_dict(), tmp_path / "state.pt")
    code = cli.main(["--module", "tests.export.user_models:MeanPooled", "--state-dict", str(tmp_path / "state.pt"),
                     "--out", str(tmp_path / "out")])
    assert code == 2
    assert "node 'mean'" in capsys.readouterr().err
