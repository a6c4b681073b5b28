"""rnnedge-export never touches a user's files (issue 12) and its folders are atomic and self-describing (issue 13):
one group of tests per entry point (positional checkpoint, --module, .onnx)."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from rnnedge.export import cli, pipeline
from rnnedge.train import outputs
from rnnedge.train.checkpoint import save_checkpoint
from rnnedge.train.model import RecurrentModel

STEPS = ["--stream-steps", "20"]


def tree(folder) -> dict[str, str]:
    """{relative path: SHA-256} of every file under folder: two equal trees are byte-identical folders."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = outputs.sha256_file(path)
    return found


def assert_manifest_is_the_folder(folder, by_export=None) -> dict:
    """The folder's manifest lists exactly its files, with their bytes' SHA-256; returns its files."""
    manifest = json.loads((folder / outputs.MANIFEST).read_text())
    files = tree(folder)
    del files[outputs.MANIFEST]
    assert {name: entry["sha256"] for name, entry in manifest["files"].items()} == files
    if by_export is not None:
        assert {n for n, e in manifest["files"].items() if e["by"] == outputs.EXPORT} == by_export
    return manifest["files"]


def assert_no_staging_left(parent):
    assert not [p for p in os.listdir(parent) if outputs.STAGING in p]


def user_checkpoint(path, seed=0, cell="gru"):
    spec = {"version": 1, "input": {"kind": "dense", "features": 3, "mean": [0.5] * 3, "std": [2.0] * 3},
            "layers": [{"cell": cell, "hidden": 6, "bidirectional": False}],
            "head": {"out": 2, "on": "every_step", "activation": "softmax"}, "task": "classify"}
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, RecurrentModel(spec).eval())
    return path


def trained_folder(folder, seed=0):
    """A folder as rnnedge-train leaves it: model.pt, metrics.json and the manifest that lists them."""
    with outputs.Staging(folder, outputs.TRAIN, writes=("model.pt", "metrics.json")) as stage:
        user_checkpoint(stage.dir / "model.pt", seed)
        (stage.dir / "metrics.json").write_text("{}\n")
    return folder / "model.pt"


# -- a positional rnnedge checkpoint --------------------------------------------------------------------------------
def test_a_checkpoint_rnnedge_did_not_write_needs_out_and_nothing_is_written_beside_it(tmp_path, capsys):
    ckpt = user_checkpoint(tmp_path / "mine" / "model.pt")
    before = tree(tmp_path / "mine")
    assert cli.main([str(ckpt), *STEPS]) == 2
    err = capsys.readouterr().err
    assert "was not written by rnnedge" in err and "give --out" in err and "nothing was written" in err
    assert tree(tmp_path / "mine") == before
    assert_no_staging_left(tmp_path)


def test_exporting_rnnedge_trains_folder_without_out_keeps_its_checkpoint_and_can_be_run_again(tmp_path, capsys):
    ckpt = trained_folder(tmp_path / "run")
    checkpoint_bytes = ckpt.read_bytes()
    assert cli.main([str(ckpt), "--precision", "f32,int8w", *STEPS]) == 0
    assert f"to {tmp_path / 'run'}" in capsys.readouterr().out
    first = tree(tmp_path / "run")
    assert "model.int8w.safetensors" in first and "firmware/int8w/model_data.c" in first
    files = assert_manifest_is_the_folder(tmp_path / "run")
    assert files["model.pt"]["by"] == outputs.TRAIN and files["model.onnx"]["by"] == outputs.EXPORT
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["removed"] == [] and set(report["manifest"]) == set(first) - {"report.json", "report.md",
                                                                               "report.html", "model.pt", "metrics.json",
                                                                               outputs.MANIFEST}
    for name, entry in report["manifest"].items():
        assert entry["sha256"] == first[name]

    assert cli.main([str(ckpt), *STEPS]) == 0  # again, f32 only: int8w's files of the first run are stale
    assert ckpt.read_bytes() == checkpoint_bytes
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert {"model.int8w.safetensors", "model.int8w.vectors.safetensors",
            "firmware/int8w/model_data.c"} <= set(report["removed"])
    assert not (tmp_path / "run" / "model.int8w.safetensors").exists()
    assert not (tmp_path / "run" / "firmware" / "int8w").exists()
    assert "files of the previous export: " in capsys.readouterr().out
    assert_manifest_is_the_folder(tmp_path / "run")
    assert_no_staging_left(tmp_path)


def test_a_foreign_file_in_out_is_refused_and_kept_and_force_writes_beside_it(tmp_path, capsys):
    ckpt = user_checkpoint(tmp_path / "in" / "m.pt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli.main([str(ckpt), "--out", str(out), *STEPS]) == 2
    err = capsys.readouterr().err
    assert "holds files rnnedge did not write: notes.txt" in err and "--force" in err
    assert tree(out) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}

    assert cli.main([str(ckpt), "--out", str(out), "--force", *STEPS]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.onnx").is_file()
    manifest = json.loads((out / outputs.MANIFEST).read_text())
    assert "notes.txt" not in manifest["files"]
    assert cli.main([str(ckpt), "--out", str(out), "--force", *STEPS]) == 0  # a re-run keeps it too
    assert (out / "notes.txt").read_text() == "mine"


def test_a_user_file_with_a_name_rnnedge_writes_is_refused_even_with_force(tmp_path, capsys):
    ckpt = user_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"my": "report"}')
    assert cli.main([str(ckpt), "--out", str(out), "--force", *STEPS]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'report.json'} is not rnnedge's" in err and "not even with --force" in err
    assert tree(out) == {"report.json": hashlib.sha256(b'{"my": "report"}').hexdigest()}


def test_a_file_rnnedge_wrote_and_the_user_changed_is_theirs(tmp_path, capsys):
    ckpt = user_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "out"
    assert cli.main([str(ckpt), "--out", str(out), *STEPS]) == 0
    (out / "report.md").write_text("my notes on this export")
    assert cli.main([str(ckpt), "--out", str(out), "--force", *STEPS]) == 2
    assert f"{out / 'report.md'} is not rnnedge's" in capsys.readouterr().err
    assert (out / "report.md").read_text() == "my notes on this export"


@pytest.mark.parametrize("failure", ["exception", "int8 refused"])
def test_a_failing_export_leaves_the_previous_export_byte_identical(tmp_path, monkeypatch, capsys, failure):
    """Issue 13 defect 2: model A exported with three precisions, then model B into the same folder fails int8."""
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")
    out = tmp_path / "out"
    a, b = user_checkpoint(tmp_path / "a.pt", seed=0), user_checkpoint(tmp_path / "b.pt", seed=1, cell="lstm")
    assert cli.main([str(a), "--out", str(out), "--precision", "f32,int8w,int8", *STEPS]) == 0
    before = tree(out)

    def fails(*args, **kwargs):
        if failure == "exception":
            raise RuntimeError("a bug in the int8 quantiser")
        raise ValueError("a bias no int32 holds")

    monkeypatch.setattr(pipeline, "quantize_int8", fails)
    code = cli.main([str(b), "--out", str(out), "--precision", "f32,int8w,int8", *STEPS])
    err = capsys.readouterr().err
    if failure == "exception":
        assert code == 3 and "internal error: RuntimeError: a bug in the int8 quantiser" in err
        assert "Traceback" not in err and "the traceback is in" in err
        os.remove(err.rsplit("the traceback is in ", 1)[1].strip())
    else:
        assert code == 2 and "cannot quantise to int8: a bias no int32 holds" in err
    assert f"nothing was written: {out} is as it was" in err
    assert tree(out) == before
    assert json.loads((out / "report.json").read_text())["checkpoint"] == str(a)
    assert_no_staging_left(tmp_path)


def test_a_parity_failure_is_a_completed_export_moved_into_place(tmp_path, monkeypatch, capsys):
    build = pipeline.build_sequence_graph

    def off(spec, tensors):
        bias = tensors["head.bias"].copy()
        bias[0] += np.float32(1e-2)
        return build(spec, dict(tensors, **{"head.bias": bias}))

    ckpt = user_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "out"
    assert cli.main([str(ckpt), "--out", str(out), *STEPS]) == 0
    monkeypatch.setattr(pipeline, "build_sequence_graph", off)
    assert cli.main([str(ckpt), "--out", str(out), *STEPS]) == 1
    report = json.loads((out / "report.json").read_text())
    assert not report["passed"] and report["failures"]
    assert_manifest_is_the_folder(out)


def test_nan_weights_are_refused_by_tensor_name_before_anything_is_written(tmp_path, capsys):
    ckpt = user_checkpoint(tmp_path / "m.pt")
    saved = torch.load(ckpt, weights_only=True)
    saved["state_dict"]["head.weight"][0, 1] = float("nan")
    saved["state_dict"]["head.bias"][0] = float("inf")
    torch.save(saved, ckpt)
    assert cli.main([str(ckpt), "--out", str(tmp_path / "out"), *STEPS]) == 2
    err = capsys.readouterr().err
    assert "tensor 'head.weight' holds 1 non-finite value(s) (NaN or inf)" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert_no_staging_left(tmp_path)


def test_an_export_never_overwrites_the_checkpoint_rnnedge_train_wrote(tmp_path, capsys):
    trained = trained_folder(tmp_path / "run")
    trained_bytes = trained.read_bytes()
    state = tmp_path / "state.pt"
    torch.manual_seed(0)
    torch.save(TinyGRU().state_dict(), state)
    code = cli.main(["--module", "tests.export.test_outputs_cli:TinyGRU", "--state-dict", str(state),
                     "--out", str(tmp_path / "run"), *STEPS])
    assert code == 2
    assert "was written by rnnedge-train, and rnnedge-export does not replace it" in capsys.readouterr().err
    assert trained.read_bytes() == trained_bytes


# -- --module ---------------------------------------------------------------------------------------------------
class TinyGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0])


OTHER_TINY = '''
from torch import nn

class TinyGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0])
'''


def user_project(tmp_path, seed=0):
    """The data-loss case of issue 12: the user's sources and their state_dict saved as model.pt."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "models.py").write_text(OTHER_TINY)
    torch.manual_seed(seed)
    torch.save(TinyGRU().state_dict(), project / "model.pt")
    return project


def test_module_export_without_out_writes_a_folder_named_after_the_class_and_not_a_byte_beside_the_input(
        tmp_path, monkeypatch, capsys):
    project = user_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = tree(project)
    argv = ["--module", "tests.export.test_outputs_cli:TinyGRU", "--state-dict", str(project / "model.pt"), *STEPS]
    assert cli.main(argv) == 0
    assert "no --out given: writing into rnnedge-out/TinyGRU" in capsys.readouterr().err
    assert tree(project) == before
    out = tmp_path / "rnnedge-out" / "TinyGRU"
    files = assert_manifest_is_the_folder(out)
    assert {"model.pt", "module_mapping.json", "model.onnx", "report.json"} <= set(files)
    report = json.loads((out / "report.json").read_text())
    assert report["checkpoint"] == os.path.join("rnnedge-out", "TinyGRU", "model.pt") and "model.pt" in report["manifest"]

    assert cli.main(argv) == 0  # the same command again updates the same folder
    assert os.listdir(tmp_path / "rnnedge-out") == ["TinyGRU"]
    assert tree(project) == before

    other = ["--module", f"{project / 'models.py'}:TinyGRU", "--state-dict", str(project / "model.pt"), *STEPS]
    assert cli.main(other) == 0  # another class of the same name: a folder of its own
    assert sorted(os.listdir(tmp_path / "rnnedge-out")) == ["TinyGRU", "TinyGRU-2"]
    assert tree(project) == before
    assert_no_staging_left(tmp_path / "rnnedge-out")


def test_module_export_into_the_users_folder_is_refused_and_force_never_overwrites_their_model_pt(tmp_path, capsys):
    project = user_project(tmp_path)
    before = tree(project)
    argv = ["--module", "tests.export.test_outputs_cli:TinyGRU", "--state-dict", str(project / "model.pt"),
            "--out", str(project), *STEPS]
    for force in ([], ["--force"]):
        assert cli.main([*argv, *force]) == 2
        err = capsys.readouterr().err
        assert f"{project / 'model.pt'} is an input of rnnedge-export" in err and "would overwrite it" in err
        assert tree(project) == before
    (project / "model.pt").rename(project / "state.pt")
    argv[3] = str(project / "state.pt")
    assert cli.main(argv) == 2
    assert "holds files rnnedge did not write: models.py, state.pt" in capsys.readouterr().err
    assert cli.main([*argv, "--force"]) == 0  # beside them, never over them
    assert (project / "models.py").read_text() == OTHER_TINY and (project / "model.pt").is_file()
    assert "state.pt" not in json.loads((project / outputs.MANIFEST).read_text())["files"]


def test_module_with_nan_weights_is_refused_by_tensor_name(tmp_path, capsys):
    project = user_project(tmp_path)
    state = torch.load(project / "model.pt", weights_only=True)
    state["rnn.weight_hh_l0"][2, 3] = float("nan")
    torch.save(state, project / "nan.pt")
    code = cli.main(["--module", "tests.export.test_outputs_cli:TinyGRU", "--state-dict", str(project / "nan.pt"),
                     "--out", str(tmp_path / "out"), *STEPS])
    assert code == 2
    assert "tensor 'rnn.weight_hh_l0' holds 1 non-finite value(s)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- an .onnx file ----------------------------------------------------------------------------------------------
def onnx_file(path):
    module = TinyGRU().eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.onnx.export(module, (torch.randn(2, 4, 3),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "time"}})
    except Exception as e:  # noqa: BLE001 - an exporter that is not there, or not in this torch
        pytest.skip(f"torch.onnx.export (dynamo=False) is unavailable: {type(e).__name__}: {e}")
    return path


@pytest.mark.filterwarnings("ignore")
def test_onnx_export_without_out_writes_a_folder_named_after_the_file_and_can_be_run_again(tmp_path, monkeypatch,
                                                                                            capsys):
    source = onnx_file(tmp_path / "src" / "model.onnx")
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path / "src")
    assert cli.main([str(source), *STEPS]) == 0
    assert cli.main([str(source), *STEPS]) == 0
    assert tree(tmp_path / "src") == before
    assert os.listdir(tmp_path / "rnnedge-out") == ["model"]
    files = assert_manifest_is_the_folder(tmp_path / "rnnedge-out" / "model")
    assert {"model.pt", "onnx_mapping.json", "model.onnx", "report.md"} <= set(files)


@pytest.mark.filterwarnings("ignore")
def test_onnx_export_into_its_own_folder_would_overwrite_it_and_is_refused_even_with_force(tmp_path, capsys):
    source = onnx_file(tmp_path / "model.onnx")
    before = tree(tmp_path)
    assert cli.main([str(source), "--out", str(tmp_path), "--force", *STEPS]) == 2
    assert "would overwrite it" in capsys.readouterr().err
    assert tree(tmp_path) == before


@pytest.mark.filterwarnings("ignore")
def test_onnx_file_with_an_inf_initializer_is_refused_by_tensor_name(tmp_path, capsys):
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_file(tmp_path / "src" / "model.onnx")))
    first = next(i for i in graph.graph.initializer if i.data_type == onnx.TensorProto.FLOAT)
    values = numpy_helper.to_array(first).copy()
    values.flat[0] = np.inf
    first.CopyFrom(numpy_helper.from_array(values, first.name))
    onnx.save_model(graph, str(tmp_path / "src" / "inf.onnx"))
    assert cli.main([str(tmp_path / "src" / "inf.onnx"), "--out", str(tmp_path / "out"), *STEPS]) == 2
    assert f"tensor '{first.name}' holds 1 non-finite value(s)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
