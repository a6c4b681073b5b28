"""rnnedge runtime: run an exported recurrent model one time step per call. numpy + numba only.

    import runtime
    model = runtime.load("artifacts/watch/model.f32.safetensors")
    stream = model.stream(batch=1)   # preallocated state and output; one thread at a time (StreamInUseError)
    y = stream.step(x)               # one time step; no allocation in steady state
    stream.reset()
    Y = model.run(X)                 # whole sequences (also bidirectional models)
    text = model.generate("ROMEO:", 200, temperature=0.8, top_k=20, seed=0)  # character models
"""

from runtime import spec
from runtime.artifact import ArtifactError
from runtime.model import Model, Stream, StreamInUseError, load
from runtime.sampler import Sampler
from runtime.spec import SpecError

__all__ = ["ArtifactError", "Model", "Sampler", "SpecError", "Stream", "StreamInUseError", "load", "spec"]
