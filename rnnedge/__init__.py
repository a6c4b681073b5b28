"""rnnedge: recurrent models to the edge. One package, three parts:

    rnnedge.runtime   the device side: load a weight file, stream one step per call (numpy + numba only)
    rnnedge.export    checkpoint / nn.Module / ONNX -> ONNX, weight files, C sources, parity report (`train` extra)
    rnnedge.train     data sets, training, checkpoints (`train` extra)

and one command, `rnnedge` (rnnedge.runtime.umbrella). The repository keeps the three parts at its root (runtime/,
export/, train/); the wheel maps them into this package (pyproject.toml [tool.setuptools] package-dir).
"""

from pathlib import Path

# A checkout (tests, `python -m rnnedge.runtime` from the repository root): the parts are this folder's siblings.
# Installed, they are inside it and this adds nothing.
_root = Path(__file__).resolve().parent.parent
if not (Path(__file__).parent / "runtime").is_dir() and (_root / "runtime" / "__init__.py").is_file():
    __path__.append(str(_root))
