"""The ONNX conversion corpus (issue 12): PyTorch recurrent models as torch.onnx.export writes them, with the
default dynamo exporter (fixed shapes, and dynamic_shapes) and the TorchScript one (dynamo=False), over a grid of
cells, layers, directions, batch_first, heads and output activations; seeded random weights, small sizes. Each
`<name>.onnx` (the dynamo exporter writes its weights beside it as `<name>.onnx.data`) comes with `<name>.npz`: an
input and ONNX Runtime's output on the original file.

    python -m tests.export.onnx_corpus --table [--out DIR]

builds the corpus (in a temporary folder unless --out), converts every file with map_onnx (proved against ONNX
Runtime) and prints the exporter x pattern table (and the Keras / tf2onnx fixtures' rows), in markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FEATURES, HIDDEN, OUT = 3, 5, 4
EXAMPLE_BATCH, EXAMPLE_STEPS = 3, 6  # the example input the exporters trace (fixed-shape graphs keep these sizes)
EXPORTERS = {"dynamo": "torch.onnx.export (dynamo, fixed shapes)",
             "dynamo-dynamic": "torch.onnx.export (dynamo, dynamic_shapes batch and time)",
             "torchscript": "torch.onnx.export(dynamo=False) (dynamic_axes batch and time)"}
HEADS = {"output": "`output` (every step)", "last": "`output[:, -1]`", "h_last": "`h_n[-1]`",
         "h_cat": "`cat((h_n[-2], h_n[-1]), 1)`", "mlp": "`fc2(act(fc1(h_n[-1])))`"}
BETWEEN = ("relu", "gelu", "tanh", "sigmoid", "gelu_tanh")  # act of the mlp head, rotating
HIDDEN_UNITS = 6
CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
ACTIVATIONS = ("softmax", "sigmoid", "none", "log_softmax")
KERAS_FIXTURES = Path(__file__).parent / "fixtures" / "keras"


@dataclass(frozen=True)
class Case:
    exporter: str
    cell: str
    layers: int
    bidirectional: bool
    batch_first: bool
    head: str
    activation: str
    between: str = "none"  # the mlp head's function between its two dense layers

    @property
    def name(self) -> str:
        head = f"mlp_{self.between}" if self.head == "mlp" else self.head
        return (f"{self.exporter}-{self.cell}-{self.layers}l-{'bi' if self.bidirectional else 'uni'}-"
                f"{'bf' if self.batch_first else 'tf'}-{head}-{self.activation}")

    @property
    def refusal(self) -> str | None:
        """What the refusal of this case says, or None: it converts. The refusal is inherent: h_n[-2] and h_n[-1]
        of a one-direction stack are two layers' states, and rnnedge's head reads the last layer. (A bidirectional
        output[:, -1], which reads the backward direction after one step, converts to an every_step head whose
        output at the last step is the graph's: OnnxMapping.read_step.)"""
        if self.head == "h_cat" and not self.bidirectional:
            return "joins the final states of recurrent layers"
        return None


def cases(variants: int = 3) -> list[Case]:
    """The grid: every exporter x head pattern, `variants` models each that rotate through the cells, 1-3 layers,
    both directions, batch_first and the output activations."""
    found = []
    for e, exporter in enumerate(EXPORTERS):
        for h, head in enumerate(HEADS):
            for k in range(variants):
                bidirectional = (k + h + e) % 2 == 1
                if head == "h_cat":  # h_n[-2] of a one-layer one-direction model does not exist
                    bidirectional = k != variants - 1
                layers = 1 + (k + e + h) % 3
                if head == "h_cat" and not bidirectional:
                    layers = max(layers, 2)
                cell = CELLS[(k + h + e) % 4]
                between = BETWEEN[(k + variants * e) % len(BETWEEN)] if head == "mlp" else "none"
                found.append(Case(exporter, cell, layers, bidirectional, (k + e) % 2 == 0, head,
                                  ACTIVATIONS[(k + h + e) % 4], between))
    return found


def torch_model(case: Case):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            kind = {"rnn_tanh": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[case.cell]
            extra = {"nonlinearity": case.cell[4:]} if case.cell.startswith("rnn") else {}
            self.rnn = kind(FEATURES, HIDDEN, num_layers=case.layers, bidirectional=case.bidirectional,
                            batch_first=case.batch_first, **extra)
            dirs = 2 if case.bidirectional else 1
            width = {"output": dirs, "last": dirs, "h_last": 1, "h_cat": 2, "mlp": 1}[case.head] * HIDDEN
            if case.head == "mlp":
                act = {"relu": nn.ReLU(), "gelu": nn.GELU(), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(),
                       "gelu_tanh": nn.GELU(approximate="tanh")}[case.between]
                self.fc = nn.Sequential(nn.Linear(width, HIDDEN_UNITS), act, nn.Linear(HIDDEN_UNITS, OUT))
            else:
                self.fc = nn.Linear(width, OUT)

        def forward(self, x):
            output, h_n = self.rnn(x)
            if isinstance(h_n, tuple):
                h_n = h_n[0]
            if case.head == "output":
                z = output
            elif case.head == "last":
                z = output[:, -1] if case.batch_first else output[-1]
            elif case.head in ("h_last", "mlp"):
                z = h_n[-1]
            else:
                z = torch.cat((h_n[-2], h_n[-1]), 1)
            z = self.fc(z)
            if case.activation == "softmax":
                return torch.softmax(z, -1)
            if case.activation == "log_softmax":
                return torch.log_softmax(z, -1)
            if case.activation == "sigmoid":
                return torch.sigmoid(z)
            return z

    torch.manual_seed(sum(map(ord, case.name)))
    return Net().eval()


def export(case: Case, path: Path) -> None:
    """torch.onnx.export of the case's model to path."""
    import torch

    model = torch_model(case)
    shape = (EXAMPLE_BATCH, EXAMPLE_STEPS) if case.batch_first else (EXAMPLE_STEPS, EXAMPLE_BATCH)
    x = torch.randn(*shape, FEATURES)
    batch_axis, time_axis = (0, 1) if case.batch_first else (1, 0)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if case.exporter == "torchscript":
            torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {batch_axis: "batch", time_axis: "time"}})
        elif case.exporter == "dynamo-dynamic":
            dims = {batch_axis: torch.export.Dim("batch"), time_axis: torch.export.Dim("time")}
            torch.onnx.export(model, (x,), str(path), dynamo=True, dynamic_shapes=(dims,), verbose=False)
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)


def build(folder: Path, selected: list[Case] | None = None) -> list[Case]:
    """Export every case into folder with its expected ONNX Runtime output (checked against PyTorch), and a
    manifest.json of the cases."""
    import onnxruntime as ort
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    selected = cases() if selected is None else selected
    rng = np.random.default_rng(0)
    for case in selected:
        path = folder / f"{case.name}.onnx"
        export(case, path)
        shape = (EXAMPLE_BATCH, EXAMPLE_STEPS) if case.batch_first else (EXAMPLE_STEPS, EXAMPLE_BATCH)
        x = rng.standard_normal((*shape, FEATURES)).astype(np.float32)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {session.get_inputs()[0].name: x})
        with torch.no_grad():
            want = torch_model(case)(torch.from_numpy(x)).numpy()
        if not np.abs(y - want).max() <= 1e-5:
            raise AssertionError(f"{case.name}: ONNX Runtime on the exported file differs from PyTorch by "
                                 f"{np.abs(y - want).max():.3g}")
        np.savez(folder / f"{case.name}.npz", x=x, y=y)
    manifest = {"torch": torch.__version__, "onnxruntime": ort.__version__,
                "cases": [{"name": c.name, **asdict(c)} for c in selected]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return selected


def convert(path: Path):
    """(the mapping, None) or (None, the MappingError's message)."""
    from rnnedge.export.from_module import MappingError
    from rnnedge.export.from_onnx import load_onnx, map_onnx

    try:
        return map_onnx(load_onnx(path)), None
    except MappingError as e:
        return None, str(e)


def _reason(message: str) -> str:
    """The first refused node's reason, shortened for a table cell."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    line = next((ln for ln in lines if ln.startswith("node ")), lines[-1])
    line = line.split("): ", 1)[-1] if line.startswith("node ") else line
    return line.split("; ")[0].split(". ")[0].split(": refusing")[0].replace("|", "/")


def table(folder: Path, selected: list[Case]) -> str:
    results: dict[tuple[str, str], list] = {}
    for case in selected:
        mapping, why = convert(folder / f"{case.name}.onnx")
        results.setdefault((case.exporter, case.head), []).append((case, why))
    lines = ["| exporter | " + " | ".join(HEADS.values()) + " |", "|---" * (len(HEADS) + 1) + "|"]
    for exporter, title in EXPORTERS.items():
        cells = []
        for head in HEADS:
            got = results.get((exporter, head), [])
            ok = [c for c, why in got if why is None]
            cell = f"{len(ok)}/{len(got)} converted"
            stepped = [c for c in ok if c.head == "last" and c.bidirectional]
            if stepped:
                cell += (f" ({len(stepped)} bidirectional: an every_step head whose output at the last step is the "
                         f"graph's, with the pitfall warning)")
            for c, why in got:
                if why is not None:
                    what = f"{c.cell} {c.layers}-layer {'bidirectional' if c.bidirectional else 'unidirectional'}"
                    cell += f"; refused ({what}): {_reason(why)}"
            cells.append(cell)
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    if KERAS_FIXTURES.is_dir():
        lines += ["", "| tf2onnx (Keras fixtures, tests/export/fixtures/keras) | result |", "|---|---|"]
        for path in sorted(KERAS_FIXTURES.glob("*.onnx")):
            mapping, why = convert(path)
            result = (f"converted ({mapping.spec['head']['on']}, proof {mapping.max_abs_diff:.1g})" if why is None
                      else f"refused: {_reason(why)}")
            lines.append(f"| {path.stem} | {result} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="convert every file and print the markdown table")
    parser.add_argument("--out", type=Path, help="build the corpus here (default: a temporary folder)")
    parser.add_argument("--variants", type=int, default=3, help="models per exporter and head pattern (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        start = time.perf_counter()
        selected = build(folder, cases(args.variants))
        print(f"built {len(selected)} graphs in {folder} ({time.perf_counter() - start:.0f} s)")
        if args.table:
            print(table(folder, selected))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
