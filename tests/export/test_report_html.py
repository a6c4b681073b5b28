"""report.html (export/report_html.py): one self-contained page with the parity table and the plots, opened in
headless Chromium without console errors; a screenshot is kept in artifacts/test-screenshots/ (CI's test artifact).

Chromium, its driver (Debian `chromium`, `chromium-driver`, installed by .ci/run) and selenium (the dev extra) are
needed for the browser test: missing, it skips, and fails under CI=true."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnedge.export import report_html
from rnnedge.export.pipeline import export_checkpoint
from rnnedge.train.checkpoint import save_checkpoint
from rnnedge.train.data import Dataset, SequenceData
from rnnedge.train.model import RecurrentModel

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "test-screenshots"
FIGURES = ("outputs of one held-out stream", "error distribution per precision", "int8 ranges against their formats")


@pytest.fixture(autouse=True)
def no_footprint(monkeypatch):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")  # the Cortex-M footprint has its own tests


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A classifier on every step, exported in every precision against a small data set."""
    tmp = tmp_path_factory.mktemp("html")
    spec = {"version": 1, "input": {"kind": "dense", "features": 3, "mean": [0.0] * 3, "std": [1.0] * 3},
            "layers": [{"cell": "lstm", "hidden": 8, "bidirectional": False}],
            "head": {"out": 3, "on": "every_step", "activation": "softmax"}, "task": "tag"}
    torch.manual_seed(0)
    model = RecurrentModel(spec).eval()
    save_checkpoint(tmp / "m.pt", model)
    rng = np.random.default_rng(0)

    def part(n):
        return SequenceData(rng.standard_normal((n, 40, 3)).astype(np.float32), np.full(n, 40, np.int64),
                            rng.integers(0, 3, (n, 40)))

    data = Dataset(name="html", task="tag", input_kind="dense", features=3, vocab=None, out=3, head_on="every_step",
                   train=part(20), val=part(4), test=part(24), source="tests/export/test_report_html.py")
    report = export_checkpoint(tmp / "m.pt", tmp / "out", data=data, precisions=("f32", "int8w", "int8"))
    assert report["passed"], report["failures"]
    return tmp / "out"


def test_report_html_is_one_self_contained_page_with_the_table_and_every_plot(exported):
    page = (exported / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "PASS: every artifact meets its precision" in page
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)  # nothing beside the page
    assert "<script" not in page
    for name in ("model.onnx", "model.f32.safetensors", "model.int8w.safetensors", "model.int8.safetensors"):
        assert f"<td>{name}</td>" in page
    for alt in FIGURES:
        assert alt in page
    assert "int8 ranges and saturation" in page and "<td>pre-activation</td>" in page
    manifest = (exported / "rnnedge-manifest.json").read_text()
    assert "report.html" in manifest  # written, moved and listed like every file of the export


def test_a_model_that_cannot_stream_says_why_there_is_no_stream_plot():
    result = {"artifacts": [], "passed": True}
    assert "does not stream" in report_html._stream_section(result, {"reference": None})


def _browser():
    """(chromium, chromedriver, selenium webdriver module) or a skip (a failure under CI=true) naming what is
    missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    missing = [name for name, found in (("chromium", chromium), ("chromedriver (chromium-driver)", driver),
                                        ("selenium", webdriver)) if not found]
    if missing:
        message = f"the report.html browser test needs {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: .ci/run installs them)")
        pytest.skip(message)
    return chromium, driver, webdriver


def test_report_html_renders_in_headless_chromium_without_console_errors(exported):
    chromium, driver_path, webdriver = _browser()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(argument)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get((exported / "report.html").as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
        assert sorted(f for f in FIGURES for alt, *_ in images if alt.startswith(f)) == sorted(FIGURES)
        assert len(images) == len(FIGURES)
        for alt, complete, width, height in images:
            assert complete and width > 300 and height > 100, alt  # decoded, not a broken image
        assert driver.get_log("browser") == []  # no console message at all, errors or warnings
        assert driver.title.startswith("rnnedge export report")
        driver.set_window_size(1200, int(driver.execute_script("return document.body.scrollHeight")))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "report.html.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()
