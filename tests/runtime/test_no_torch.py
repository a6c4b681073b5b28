"""runtime/ imports and runs where torch and onnx cannot be imported (a device)."""

import subprocess
import sys
import textwrap

import numpy as np
import torch

from tests.helpers import make_model, make_spec, write_artifact

BLOCKER = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "onnx", "onnxruntime"):
                raise ImportError(f"{name} is not on this device")
    sys.meta_path.insert(0, Block())
""")


def test_runtime_imports_and_streams_where_importing_torch_or_onnx_fails(tmp_path):
    model = make_model(make_spec("lstm", layers=2))
    path = write_artifact(model, tmp_path / "m.safetensors")
    program = BLOCKER + textwrap.dedent(f"""
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker did not work")
        import numpy as np
        from rnnedge import runtime
        m = runtime.load({str(path)!r})
        y = m.stream(1).step(np.full((1, 5), 0.25, np.float32))
        assert "torch" not in sys.modules and "onnx" not in sys.modules
        print(" ".join(repr(float(v)) for v in y.ravel()))
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    expected = model(torch.full((1, 1, 5), 0.25))[0, 0].detach().numpy()
    got = np.array([float(v) for v in done.stdout.split()])
    assert np.abs(got - expected).max() <= 1e-5
