"""The ONNX conversion corpus (tests/export/onnx_corpus.py, issue 12): torch 2.13's exporters (dynamo with fixed and
dynamic shapes, TorchScript) over the pattern grid. Every graph converts and is proved against ONNX Runtime on the
original file, or is refused for the reason its case names; every graph that converts goes through the whole
export (f32, int8w, int8) and passes the report's rules against ORT on the original file. The corpus is built once per session (most of the time is the dynamo exporter)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from rnnedge.export.from_onnx import export_onnx, load_onnx, map_onnx
from rnnedge.runtime.model import Model
from tests.export import onnx_corpus

# two models per exporter x head (the README's table, `python -m tests.export.onnx_corpus --table`, has three):
# every exporter, cell, head, activation, depth, direction and batch_first value still appears (test below)
CASES = onnx_corpus.cases(variants=2)
CONVERTING = [c for c in CASES if c.refusal is None]
ORT_TOLERANCE = 1e-5  # the mapper's proof tolerance, here against the recorded ORT output


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx_corpus")
    onnx_corpus.build(folder, CASES)
    return folder


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_graph_converts_and_matches_ort_or_is_refused_for_its_reason(corpus, case):
    mapping, why = onnx_corpus.convert(corpus / f"{case.name}.onnx")
    if case.refusal is not None:
        assert why is not None and case.refusal in why, why
        return
    assert why is None, why
    assert mapping.max_abs_diff <= ORT_TOLERANCE
    if case.head == "mlp":  # Linear -> act -> Linear: one hidden layer with that function
        assert mapping.spec["head"]["hidden"] == [{"units": onnx_corpus.HIDDEN_UNITS, "activation": case.between}]
    assert mapping.spec["head"]["activation"] == case.activation
    with np.load(corpus / f"{case.name}.npz", allow_pickle=False) as recorded:
        x, want = recorded["x"], recorded["y"]
    if case.head == "last" and case.bidirectional:  # the pitfall: an every_step model read at its last step
        assert mapping.spec["head"]["on"] == "every_step" and mapping.read_step == "last"
        assert any("has seen only the last step" in w for w in mapping.warnings), mapping.warnings
    else:
        assert mapping.read_step is None
    got = Model(mapping.spec, "f32", mapping.tensors).run(np.swapaxes(x, 0, 1) if mapping.input_time_major else x)
    np.testing.assert_allclose(mapping.user_output(got), want, rtol=0, atol=ORT_TOLERANCE)


def test_the_corpus_covers_every_exporter_cell_head_and_activation_and_so_do_its_converting_graphs():
    for field, values in (("exporter", onnx_corpus.EXPORTERS), ("cell", onnx_corpus.CELLS),
                          ("head", onnx_corpus.HEADS), ("activation", onnx_corpus.ACTIVATIONS)):
        assert {getattr(c, field) for c in CASES} == set(values), field
        assert {getattr(c, field) for c in CONVERTING} == set(values), field
    assert {c.layers for c in CASES} == {1, 2, 3} and {c.bidirectional for c in CASES} == {False, True}
    assert {c.batch_first for c in CASES} == {False, True}
    assert {c.between for c in CONVERTING if c.head == "mlp"} == set(onnx_corpus.BETWEEN)


@pytest.mark.filterwarnings("ignore")
def test_the_dynamo_exporter_writes_external_data_and_it_loads(corpus):
    case = next(c for c in CASES if c.exporter == "dynamo" and c.refusal is None)
    assert (corpus / f"{case.name}.onnx.data").is_file()
    assert map_onnx(load_onnx(corpus / f"{case.name}.onnx")).max_abs_diff <= ORT_TOLERANCE


@pytest.mark.filterwarnings("ignore")
def test_a_graph_saved_with_onnx_external_data_loads_from_its_own_folder(corpus, tmp_path, monkeypatch):
    case = next(c for c in CASES if c.exporter == "torchscript" and c.refusal is None)
    model = onnx.load(str(corpus / f"{case.name}.onnx"))
    onnx.save(model, str(tmp_path / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    assert (tmp_path / "model.onnx.data").stat().st_size > 0
    monkeypatch.chdir(corpus)  # not the file's folder: the data is found beside the file
    assert map_onnx(load_onnx(tmp_path / "model.onnx")).max_abs_diff <= ORT_TOLERANCE


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", CONVERTING, ids=lambda c: c.name)
def test_corpus_graph_exports_in_every_precision_and_passes_against_the_original(corpus, case, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")
    source = tmp_path / "src"
    source.mkdir()
    for suffix in (".onnx", ".onnx.data"):
        if (corpus / f"{case.name}{suffix}").is_file():
            shutil.copy(corpus / f"{case.name}{suffix}", source / f"{case.name}{suffix}")
    report = export_onnx(source / f"{case.name}.onnx", tmp_path / "out", precisions=("f32", "int8w", "int8"),
                         steps=60)
    assert report["passed"], json.dumps([r for r in report["artifacts"] if not r.get("passed", True)])[:2000]
    rows = [r for r in report["artifacts"] if r.get("reference")]
    if report["module"]["original_parity"] == "measured":
        assert {r["name"] for r in rows} >= {"original_runtime_run", "original_runtime_int8_run"}
        assert all(r["passed"] for r in rows)
    else:  # fixed-shape graphs cannot take the parity streams; the proof ran ORT on the original at its shape
        assert "fixed" in report["module"]["original_parity"]
        assert report["module"]["proof_max_abs_diff"] <= ORT_TOLERANCE


@pytest.mark.filterwarnings("ignore")
def test_a_bidirectional_last_step_graph_exports_with_original_rows_at_the_step_it_reads(corpus, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")
    case = next(c for c in CASES if c.exporter == "torchscript" and c.head == "last" and c.bidirectional)
    warned = []
    report = export_onnx(corpus / f"{case.name}.onnx", tmp_path / "out", precisions=("f32", "int8w", "int8"),
                         steps=60, on_warning=warned.append)
    assert report["passed"]
    assert report["module"]["read_step"] == "last" and report["module"]["spec_head_on"] == "every_step"
    assert len(warned) == 1 and "torch.cat((h_n[-2], h_n[-1]), dim=1)" in warned[0]
    rows = {r["name"]: r for r in report["artifacts"] if r.get("reference")}
    assert set(rows) == {"original_runtime_run", "original_runtime_int8w_run", "original_runtime_int8_run"}
    assert all(r["passed"] and r["comparison"].endswith("run()[:, -1]") for r in rows.values())
    assert rows["original_runtime_run"]["max_abs_diff"] <= ORT_TOLERANCE
    assert "run(X)[:, -1]" in (tmp_path / "out" / "report.md").read_text()
