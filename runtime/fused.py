"""Which step a stream runs: a step compiled for the loaded model (runtime/specialize.py) where a generator for
the model's precision can build one, else the generic kernels that read the layout's tables.

    step = specialised(model)      # a Specialised, or None: the generic kernels serve this model
    model.kernel_info              # what runs here, for people (rnnedge inspect) and tests

A generator (one per precision, in a module of MODULES that registers it in GENERATORS when a model of that
precision first needs it) takes a Model and returns a Specialised or None (a model part it does not cover: the
generic kernels then run it, and `kernel_info` says why). Its kernel is called exactly as the generic one is,
`kernel(*stream_args, x, *weights) -> status`, on the same stream buffers: the state sits where the layout puts it
(so reset, `stream.state` and run() read it alike); a kernel that needs more working memory than the layout's
scratch says so in `scratch(batch)`. Unlike a generic kernel, it checks x's shape itself: its stream's buffer ends
with one more element, the batch, and an x of any other shape (of the right ndim) returns BAD_SHAPE before anything
is read or written, so the stream's Python checks only x's ndim (stream_call.py). RNNEDGE_SPECIALISE=0 turns the
specialised steps off (the generic kernels run everything), for comparisons and for a fault in a generated kernel.
A process imports the generators and the generic kernels of its models' precisions only (stream.GENERIC, for the
stream steps and model.run()): less to import before a first output.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnedge.runtime.layout import F_ACTIVATIONS, F_CLIP, F_INPUT_FORGET, F_PEEPHOLES, F_RESET_BEFORE


@dataclass(frozen=True)
class Specialised:
    kernel: Callable  # kernel(*stream_args, x, *weights) -> 0 or the kernels' BAD_VALUE / BAD_TOKEN / BAD_SHAPE
    weights: tuple  # the arrays passed after x, packed for this kernel (shared, read-only)
    scratch: Callable[[int], int]  # batch -> elements of the stream buffer's scratch part the kernel needs
    info: dict  # what kernel_info shows: {"path": ..., "source": ...} and anything a person should know
    # run(X, lengths, valid) -> model.run()'s output on this step's arithmetic (valid (B, T) bool, None when every
    # sequence has all T steps), or None
    run: Callable | None = None
    # whether run() finds a dense input whose normalised value is not finite itself (inside its compiled pass over
    # the inputs, raising model.run()'s ValueError): model.run() then skips its own pass over X before the call
    run_checks: bool = False
    # (from_batch, kernel): a stream of at least from_batch streams runs this kernel instead (the same call, the same
    # numbers; compiled only when such a stream is made), or None
    wide: tuple[int, Callable] | None = None
    # batch -> where in the stream buffer's scratch part the kernel writes y (B, out) as float32 bits, for a kernel
    # that takes no y array (int8's: stream_args is (buf,), one array less to pass per call); None: y is an array
    # of stream_args, as the generic kernels take it
    y_at: Callable[[int], int] | None = None

    def kernel_for(self, batch: int) -> Callable:
        """The kernel a stream of `batch` streams runs."""
        return self.wide[1] if self.wide is not None and batch >= self.wide[0] else self.kernel


def time_major(model, X: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """run()'s X, (B, T, F) float32 or (B, T) token ids, as the float run()s step it: (T, B, F) or (T, B),
    C-contiguous, the inputs past a length (valid false; None: none) replaced by harmless ones (the mean, or token
    0; token ids checked by model._check_tokens). At B = 1 a reshape, no copy."""
    B, T = X.shape[0], X.shape[1]
    if not model.dense:
        return np.ascontiguousarray(model._check_tokens(X, valid).T)
    if valid is not None:
        X = np.where(valid[..., None], X, model._mean).astype(np.float32, copy=False)
    return X.reshape(T, 1, X.shape[2]) if B == 1 else np.ascontiguousarray(X.transpose(1, 0, 2))


def batch_major(Y: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Every step's outputs (T, B, O) as run() returns them: (B, T, O), C-contiguous, zero past each length (valid
    false; None: none). At B = 1 a reshape, no copy."""
    T, B = Y.shape[0], Y.shape[1]
    Y = Y.reshape(1, T, Y.shape[2]) if B == 1 else np.ascontiguousarray(Y.transpose(1, 0, 2))
    if valid is not None:
        Y[~valid] = 0.0
    return Y


def refused(model, X, valid) -> None:
    """Raise model.run()'s ValueError for the dense input X (B, T, F) float32 a compiled run() returned status 1 for
    (a normalised value not finite within the lengths; valid (B, T) or None, as run's): numpy's pass says where."""
    if model.dense:
        model._check_normalised(X, valid)
    raise RuntimeError("a compiled run() refused X, and numpy finds every normalised value within the lengths "
                       "finite")  # not reached: the same float32 arithmetic both ways


# the ONNX layer extensions that change a step's arithmetic (layout.F_STEP), as a refusal names them
_EXTENSIONS = ((F_RESET_BEFORE, "linear_before_reset false"), (F_INPUT_FORGET, "input_forget"),
               (F_PEEPHOLES, "peepholes"), (F_CLIP, "clip"),
               (F_ACTIVATIONS, "activation functions other than the defaults"))


def extensions_refused(l: int, flags: int, covered: int = 0, what: str = "layer") -> str | None:
    """Why the specialised step leaves layer (or layer-direction) l to the generic kernels for its ONNX
    extensions (the layout row's flags), naming each one it does not cover (covered: the flags it does); None if
    it covers them all."""
    names = [name for bit, name in _EXTENSIONS if flags & bit and not covered & bit]
    if not names:
        return None
    return (f"{what} {l} has the ONNX extension{'s' if len(names) > 1 else ''} {', '.join(names)}, which the "
            "specialised step does not cover: the generic kernels run it")


def shape_refused(dense: bool, features: int) -> str:
    """The generated entries' test of x against their stream's shape, as source text (x and the stream buffer `buf`
    as the entries name them): true where x must be refused with BAD_SHAPE, its batch not the one the buffer's last
    element holds, or (dense) its features not the model's. The one text every generator's entry runs first."""
    return "x.shape[0] != buf[buf.shape[0] - 1]" + (f" or x.shape[1] != {features}" if dense else "")


# precision -> generator(model) -> Specialised | None; each generator module registers itself here when imported
GENERATORS: dict[str, Callable] = {}
# precision -> the module with its generator, imported when a model of that precision first asks for its step: a
# process imports what its models need (an f32 model's start imports none of the int8 step's modules)
MODULES = {"f32": "rnnedge.runtime.fused_float", "int8w": "rnnedge.runtime.fused_float",
           "int8": "rnnedge.runtime.fused_int8"}


def generator(precision: str) -> Callable | None:
    """The precision's generator, its module imported on first use; None where it has none."""
    if precision not in GENERATORS and precision in MODULES:
        importlib.import_module(MODULES[precision])
    return GENERATORS.get(precision)


def enabled() -> bool:
    return os.environ.get("RNNEDGE_SPECIALISE", "1") != "0"


_BUILDING = threading.Lock()  # one generator at a time: f32's rewrites the layout's blob (its panels) once


def specialised(model) -> Specialised | None:
    """The model's specialised step, built once per model (None: the generic kernels run it), also when threads
    ask for it at once."""
    if "_specialised" not in model.__dict__:
        with _BUILDING:
            if "_specialised" not in model.__dict__:
                make = generator(model.precision) if enabled() else None
                model.__dict__["_specialised"] = make(model) if make is not None else None
    return model.__dict__["_specialised"]


def kernel_info(model) -> dict:
    """{"step": "specialised" | "generic", "precision": ..., plus the specialised step's own facts}."""
    step = specialised(model)
    if step is None:
        reason = ("RNNEDGE_SPECIALISE=0" if not enabled() else
                  "no specialised step for this precision yet" if model.precision not in MODULES else
                  model.__dict__.get("_specialised_why", "a model part the specialised step does not cover"))
        return {"step": "generic", "precision": model.precision, "why": reason}
    return {"step": "specialised", "precision": model.precision, **step.info}

