"""rnnedge-run writes only the --out file it is given, and never over a file it reads (issue 12)."""

import numpy as np
import pytest

from rnnedge.runtime import cli
from rnnedge.train.outputs import sha256_file
from tests.helpers import make_model, make_spec, random_inputs, write_artifact


@pytest.mark.parametrize("role", ["input", "model"])
def test_rnnedge_run_refuses_an_out_that_is_the_file_it_reads_and_leaves_it_byte_identical(tmp_path, capsys, role):
    spec = make_spec("gru")
    model = write_artifact(make_model(spec), tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", random_inputs(spec, 1, 5)[0])
    target = tmp_path / "x.npy" if role == "input" else tmp_path / "m.safetensors"
    before = {p.name: sha256_file(p) for p in tmp_path.iterdir()}
    assert cli.main([model, str(tmp_path / "x.npy"), "--out", str(target)]) == 2
    assert f"is the {role} file; rnnedge run never writes over a file it reads" in capsys.readouterr().err
    assert {p.name: sha256_file(p) for p in tmp_path.iterdir()} == before


def test_rnnedge_run_without_out_writes_no_file(tmp_path, capsys):
    spec = make_spec("gru")
    model = write_artifact(make_model(spec), tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", random_inputs(spec, 1, 5)[0])
    before = {p.name: sha256_file(p) for p in tmp_path.iterdir()}
    assert cli.main([model, str(tmp_path / "x.npy")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5  # the outputs went to stdout
    assert {p.name: sha256_file(p) for p in tmp_path.iterdir()} == before
