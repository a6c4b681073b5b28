"""`rnnedge run` given a file that is no weight file says what it is and what to do; batch CSV rows name their
stream."""

import csv
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from rnnedge.runtime import cli, sniff
from tests.helpers import make_model, make_spec, random_inputs, torch_forward, write_artifact


def onnx_file(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, producer_name="a tool"), path)
    return path


def refused(capsys, model, *inputs) -> str:
    assert cli.main([str(model), *map(str, inputs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_an_onnx_file_is_named_and_the_export_command_given(tmp_path, capsys):
    path = onnx_file(tmp_path / "model.onnx")
    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.float32))
    err = refused(capsys, path, tmp_path / "x.npy")
    assert err.startswith(f"rnnedge run: error: {path} is an ONNX file, not an rnnedge weight file; export it first: "
                          f"rnnedge export {path} --out DIR, then give DIR/model.f32.safetensors")
    assert "header says" not in err


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_a_pytorch_checkpoint_is_named_and_both_export_commands_given(tmp_path, capsys, legacy):
    path = tmp_path / "model.pt"
    torch.save({"spec": {}, "state_dict": {"w": torch.zeros(2)}}, path, _use_new_zipfile_serialization=not legacy)
    err = refused(capsys, path, "--generate", "a")
    assert f"{path} is a PyTorch file (torch.save), not an rnnedge weight file" in err
    assert f"rnnedge export {path} --out DIR" in err and f"--state-dict {path} --out DIR" in err


@pytest.mark.parametrize("kind, write, says", [
    ("npy", lambda p: np.save(p, np.zeros(3)), "is a numpy .npy array file, not an rnnedge weight file"),
    ("npz", lambda p: np.savez(p, X=np.zeros(3)), "is a numpy .npz array file, not an rnnedge weight file"),
    ("text", lambda p: p.write_text("sequence_id,a,label\ns,1,0\n"), "is a text file, not an rnnedge weight file"),
    ("unknown", lambda p: p.write_bytes(bytes(range(256)) * 4), "is not a file rnnedge knows, not an rnnedge weight"),
    ("empty", lambda p: p.write_bytes(b""), "is empty, not an rnnedge weight file"),
])
def test_other_files_are_named_by_kind(tmp_path, capsys, kind, write, says):
    path = tmp_path / f"model.{kind}"
    write(path)
    path = next(tmp_path.iterdir())  # np.savez appends .npz
    assert sniff.kind(path) == kind
    np.save(tmp_path / "x.npy", np.zeros((4, 5), np.float32))
    assert f"{path} {says}" in refused(capsys, path, tmp_path / "x.npy")


def test_a_weight_file_is_recognised_as_safetensors_and_runs(tmp_path, capsys):
    path = write_artifact(make_model(make_spec("gru")), tmp_path / "m.safetensors")
    assert sniff.kind(path) == "safetensors" and sniff.advice(path, "MODEL") is None


def test_batch_csv_output_starts_each_row_with_its_streams_index(tmp_path, capsys):
    spec = make_spec("lstm")
    model = make_model(spec)
    path = write_artifact(model, tmp_path / "m.safetensors")
    X = random_inputs(spec, 3, 7)
    np.save(tmp_path / "x.npy", X)
    assert cli.main([path, str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.csv")]) == 0
    rows = np.loadtxt(tmp_path / "y.csv", delimiter=",")
    assert rows.shape == (3 * 7, 1 + spec["head"]["out"])
    assert rows[:, 0].tolist() == [b for b in range(3) for _ in range(7)]
    expected = torch_forward(model, X).reshape(3 * 7, -1)
    assert np.abs(rows[:, 1:] - expected).max() <= 1e-5
    assert cli.main([path, str(tmp_path / "x.npy")]) == 0  # stdout: the same rows
    printed = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",")
    assert np.array_equal(printed, rows)


def test_single_stream_csv_output_has_no_stream_column(tmp_path, capsys):
    spec = make_spec("gru")
    path = write_artifact(make_model(spec), tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", random_inputs(spec, 1, 6)[0])
    assert cli.main([path, str(tmp_path / "x.npy")]) == 0
    assert np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",").shape == (6, spec["head"]["out"])


def write_training_csv(path, sequences: dict[str, np.ndarray]) -> None:
    """rnnedge train's CSV: sequence_id, the features, a label column and a split column, one row per step."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sequence_id", "a", "b", "label", "c", "d", "e", "split"])
        for name, X in sequences.items():
            for x in X.tolist():
                writer.writerow([name, repr(x[0]), repr(x[1]), 1, *map(repr, x[2:]), "test"])


def test_a_training_csv_streams_each_sequence_and_names_it_on_every_output_row(tmp_path, capsys):
    spec = make_spec("gru")
    model = make_model(spec)
    path = write_artifact(model, tmp_path / "m.safetensors")
    X = random_inputs(spec, 3, 9).astype(np.float64)
    sequences = {"walk-01": X[0, :9], "run,07": X[1, :4], 'say "hi"': X[2, :6]}  # different lengths
    write_training_csv(tmp_path / "data.csv", sequences)
    assert cli.main([path, str(tmp_path / "data.csv"), "--out", str(tmp_path / "y.csv")]) == 0
    assert "3 stream(s), 19 steps in all, streamed one step per call" in capsys.readouterr().err
    with open(tmp_path / "y.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows] == ["walk-01"] * 9 + ["run,07"] * 4 + ['say "hi"'] * 6
    got = np.array([[float(v) for v in r[1:]] for r in rows])
    expected = np.concatenate([torch_forward(model, s[None].astype(np.float32))[0] for s in sequences.values()])
    assert np.abs(got - expected).max() <= 1e-5


def test_a_training_csv_of_unequal_sequences_is_refused_as_one_npy(tmp_path, capsys):
    path = write_artifact(make_model(make_spec("gru")), tmp_path / "m.safetensors")
    write_training_csv(tmp_path / "data.csv", {"a": np.zeros((3, 5)), "b": np.zeros((2, 5))})
    assert cli.main([path, str(tmp_path / "data.csv"), "--out", str(tmp_path / "y.npy")]) == 2
    assert ("the streams have different lengths, which one .npy array cannot hold; write a .csv"
            in capsys.readouterr().err)
    assert not (tmp_path / "y.npy").exists()
    write_training_csv(tmp_path / "same.csv", {"a": np.zeros((3, 5)), "b": np.ones((3, 5))})
    assert cli.main([path, str(tmp_path / "same.csv"), "--out", str(tmp_path / "y.npy")]) == 0
    assert np.load(tmp_path / "y.npy").shape == (2, 3, 4)


def test_a_training_csv_value_that_is_not_a_number_is_named_by_line_and_column(tmp_path, capsys):
    path = write_artifact(make_model(make_spec("gru")), tmp_path / "m.safetensors")
    (tmp_path / "data.csv").write_text("sequence_id,a,b,c,d,e,label\ns,1,2,3,4,5,0\ns,1,2,x,4,5,0\n")
    err = refused(capsys, path, tmp_path / "data.csv")
    assert err == f"rnnedge run: error: {tmp_path / 'data.csv'}:3 (column c): 'x' is not a number\n"


def test_quiet_leaves_stderr_empty_and_the_outputs_unchanged(tmp_path, capsys):
    spec = make_spec("gru")
    path = write_artifact(make_model(spec), tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", random_inputs(spec, 2, 5))
    assert cli.main([path, str(tmp_path / "x.npy")]) == 0
    loud = capsys.readouterr()
    assert cli.main([path, str(tmp_path / "x.npy"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and loud.err.startswith("rnnedge run: 2 stream(s), 10 steps in all")
    assert quiet.out == loud.out


def test_a_weight_file_cut_inside_its_header_is_still_read_as_one_and_called_truncated(tmp_path, capsys):
    path = write_artifact(make_model(make_spec("gru")), tmp_path / "m.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(Path(path).read_bytes()[:200])
    assert sniff.kind(cut) == "safetensors"
    np.save(tmp_path / "x.npy", np.zeros((4, 5), np.float32))
    assert "truncated" in refused(capsys, cut, tmp_path / "x.npy")
