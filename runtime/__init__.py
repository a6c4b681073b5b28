"""rnnedge runtime: run an exported recurrent model one time step per call. numpy + numba only.

    from rnnedge import runtime
    model = runtime.load("artifacts/watch/model.f32.safetensors")
    stream = model.stream(batch=1)   # preallocated state and output; one thread at a time (StreamInUseError)
    y = stream.step(x)               # one time step; no allocation in steady state
    stream.reset()
    Y = model.run(X)                 # whole sequences (also bidirectional models)
    text = model.generate("ROMEO:", 200, temperature=0.8, top_k=20, seed=0)  # character models

The names below are imported on first use, so that `rnnedge --version` and a command's option errors
(runtime/umbrella.py, runtime/command.py) answer without loading numba.
"""

import importlib

_WHERE = {"ArtifactError": "rnnedge.runtime.artifact", "Model": "rnnedge.runtime.model",
          "Stream": "rnnedge.runtime.stream", "StreamInUseError": "rnnedge.runtime.stream",
          "load": "rnnedge.runtime.model", "Sampler": "rnnedge.runtime.sampler",
          "SpecError": "rnnedge.runtime.spec"}

__all__ = ["ArtifactError", "Model", "Sampler", "SpecError", "Stream", "StreamInUseError", "load", "spec"]


def __getattr__(name: str):
    if name == "spec":
        return importlib.import_module("rnnedge.runtime.spec")
    if name not in _WHERE:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
