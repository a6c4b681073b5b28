"""A model's streams: preallocated state and output for `batch` independent sequences, one time step per call.

Model.stream() makes one (runtime/model.py); its step() is stream_call.step_function's closure over the stream's
arrays, calling the model's compiled step (the specialised one of runtime/fused.py where there is one, else the
generic kernels of the precision).
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from rnnedge.runtime import fused
from rnnedge.runtime.kernels_f32 import BAD_SHAPE, BAD_TOKEN, BAD_VALUE
from rnnedge.runtime.layout import line_zeros
from rnnedge.runtime.stream_call import compiled_entry, step_function

if TYPE_CHECKING:
    from rnnedge.runtime.model import Model


class StreamInUseError(RuntimeError):
    """A stream was stepped or reset while another thread was stepping or resetting it (Stream's thread contract)."""


# precision -> the generic kernels' module and its dense-input and token-input steps (model.run() imports the same
# module for its whole-sequence kernels)
GENERIC = {"f32": ("rnnedge.runtime.kernels_f32_model", "model_step_dense_f32", "model_step_tokens_f32"),
           "int8w": ("rnnedge.runtime.kernels_int8w", "model_step_dense_int8w", "model_step_tokens_int8w"),
           "int8": ("rnnedge.runtime.kernels_int8_model", "model_step_dense_int8", "model_step_tokens_int8")}
# the most streams one Stream holds: its batch, kept in its buffer's last element for a specialised step (fused.py),
# is exact in float32 up to here (and such a stream's buffers would take tens of GB)
MAX_BATCH = 2**24


class Stream:
    """Preallocated state and output for `batch` streams; `step()` allocates nothing.

    Thread contract: independent streams, of one model or of several, may step in parallel threads (the kernels
    release the GIL; the weights are shared and read-only). One stream belongs to one thread at a time: its state
    and output buffer are its own. A step() or reset() that finds the stream busy in another thread raises
    StreamInUseError and changes nothing, so a shared stream never computes from a half-written state; the call
    under way completes normally. Use one stream per thread (model.stream() is cheap), or guard a shared one with
    your own threading.Lock. y (the output buffer step() returns) and state are overwritten by the next step:
    copy them before handing them to another thread. The check costs ~40 ns a step: one ownership token per
    stream, taken and put back around each kernel call with list operations that are atomic with the GIL and
    without it (free-threaded Python), so two threads can never both hold it.
    """

    def __init__(self, model: Model, batch: int):
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)):
            raise TypeError(f"batch must be an int (the number of independent sequences), got "
                            f"{type(batch).__name__} {batch!r}")
        if batch < 1 or batch > MAX_BATCH:
            raise ValueError(f"batch must be a positive integer up to {MAX_BATCH}, got {batch!r}")
        batch = int(batch)
        lay = model.layout
        self.model = model
        self.batch = batch
        # the thread contract's check: one token, taken (list.pop, atomic with or without the GIL) for each step or
        # reset and put back after; an empty list means another thread holds the stream. A threading.Lock does
        # the same at 3x the cost (acquire(False) parses its arguments: ~100 ns against ~30 ns a step, measured)
        self._token = [True]
        n_y, n_state = batch * model.out, batch * lay.state_size
        step = fused.specialised(model)
        # the scratch: the layout's, or as much as the specialised kernel needs (y and state stay where the generic
        # kernels keep them)
        size = n_y + n_state + (lay.scratch_size if step is None else max(lay.scratch_size, step.scratch(batch)))
        # a specialised step checks x's shape itself, against the batch held by one more element at the buffer's end
        # (fused.py): the step's Python then checks only x's ndim (stream_call.py)
        self._checks_shape = step is not None
        size += self._checks_shape
        self._ybuf = None
        if model.precision == "int8":
            # float32 y; one int32 buffer for the integer logits, state and scratch (kernels_int8)
            self._buf = line_zeros(size, np.int32)
            self.logits_q = self._buf[:n_y].reshape(batch, model.out)  # the last step's integer logits
            if step is not None and step.y_at is not None:  # y's float32 bits in the buffer: one array less a call
                y0 = n_y + n_state + step.y_at(batch)
                self.y = self._buf[y0 : y0 + n_y].view(np.float32).reshape(batch, model.out)
                self._args = (self._buf,)
            else:
                self._ybuf = np.zeros(n_y, dtype=np.float32)
                self.y = self._ybuf.reshape(batch, model.out)
                self._args = (self.y, self._buf)
            self._weights = (lay.qblob, lay.iblob, lay.blob, lay.table)
        else:
            # one buffer, so a step passes one array for all of them (see kernels_f32_model.stream_buffers)
            self._buf = line_zeros(size, np.float32)
            self.y = self._buf[:n_y].reshape(batch, model.out)  # the last step's output
            self._args = (self._buf,)
            if model.precision == "int8w":
                self._weights = (lay.qblob, lay.blob, lay.table)
            else:
                self._weights = (lay.blob, lay.table)
        if model.dense:
            self._x_shape, self._x_dtype = (batch, model.features), np.dtype(np.float32)
        else:
            self._x_shape, self._x_dtype = (batch,), np.dtype(np.int64)
        if step is None:  # the generic kernels, imported only for a model the specialised steps do not serve
            module, dense, tokens = GENERIC[model.precision]
            self._kernel = getattr(importlib.import_module(module), dense if model.dense else tokens)
        else:
            self._kernel, self._weights = step.kernel_for(batch), step.weights
        if self._checks_shape:
            self._buf[-1] = batch  # exact in int32 and in float32 (MAX_BATCH)
        # every layer's h (and c): float32, or int32 holding int16 values (int8)
        self.state = self._buf[n_y : n_y + n_state].reshape(batch, -1)
        self._reset_state()
        self._entry = compiled_entry(self._kernel, (*self._args, np.zeros(self._x_shape, self._x_dtype),
                                                    *self._weights), len(self._args))
        self.step = step_function(self)  # this method as a closure over the stream's arrays (stream_call.py)

    @property
    def nbytes(self) -> int:
        """Bytes this stream holds beyond the model: state, output and scratch."""
        return self._buf.nbytes + (self._ybuf.nbytes if self._ybuf is not None else 0)

    def step(self, x: np.ndarray) -> np.ndarray:
        """Advance every stream one time step: x (B, F) float32 or (B,) int64 -> y (B, out) float32.

        Returns the stream's own output buffer, overwritten by the next step: copy it to keep it.
        A refused input (wrong shape or dtype; NaN or infinity, or a finite value whose normalised
        (x - mean) / std overflows to infinity; a token id out of range) raises ValueError or TypeError and leaves
        the state as it was. Called while another thread steps or resets this stream: StreamInUseError, nothing
        changed (class docstring).
        """
        return self.__dict__["step"](x)  # the instance's own step: stream_call.step_function, set at __init__

    def reset(self) -> None:
        """Back to the initial state (zeros, or the layers' h0/c0 for a spec with initial_state): the next step
        starts a new sequence. Called while another thread steps or resets this stream: StreamInUseError."""
        with self._claimed("reset()"):
            self._reset_state()

    @contextmanager
    def _claimed(self, what: str):
        """Hold the stream for a caller that steps or resets it through _step_claimed / _reset_state (Sampler)."""
        try:
            self._token.pop()
        except IndexError:
            raise self._busy(what) from None
        try:
            yield
        finally:
            self._token.append(True)

    def _step_claimed(self, x: np.ndarray) -> None:
        """step() of a valid x (dtype, shape) by a caller inside _claimed()."""
        status = self._entry(*self._args, x, *self._weights)  # x of the dtype and shape the entry takes
        if status:
            self._refuse_values(x, status)

    def _reset_state(self) -> None:
        if self.model.initial_state is None:
            self.state[:] = 0
        else:
            self.state[:] = self.model.initial_state

    def _busy(self, what: str) -> StreamInUseError:
        return StreamInUseError(
            f"{what} refused: this stream is being stepped or reset by another thread right now. One stream belongs "
            "to one thread at a time (its state and output buffer are its own); use one stream per thread "
            "(model.stream() is cheap) or guard a shared stream with a threading.Lock. Nothing was changed.")

    def _refuse(self, x) -> None:
        if isinstance(x, np.ndarray) and x.dtype == self._x_dtype and x.shape == self._x_shape:
            return  # an equal dtype that is not numpy's cached instance: nothing wrong after all
        what = "float32 array of shape (batch, features)" if self.model.dense else "int64 array of shape (batch,)"
        if not isinstance(x, np.ndarray):
            raise TypeError(f"step() takes a numpy {what} = {self._x_shape}, got {type(x).__name__}")
        if x.dtype != self._x_dtype:
            raise TypeError(f"step() input has dtype {x.dtype}; expected {self._x_dtype} "
                            f"(convert once with x.astype(np.{self._x_dtype}))")
        raise ValueError(f"step() input has shape {x.shape}; expected {self._x_shape}: a {what} "
                         f"(this stream has batch={self.batch})")

    def _refuse_values(self, x: np.ndarray, status: int) -> None:
        if status == BAD_VALUE:
            bad = np.argwhere(~np.isfinite(self.model._normalised(x)))
            where = tuple(bad[0]) if len(bad) else None  # None: x changed after the kernel read it
            raise ValueError(_non_finite_message(x, where, self.model._mean, self.model._std, "step() input")
                             + "; the state is unchanged (the step was not taken)")
        if status == BAD_TOKEN:
            bad = x[(x < 0) | (x >= self.model.vocab)]
            raise ValueError(f"token id {int(bad[0])} is outside the vocabulary [0, {self.model.vocab}); "
                             "the state is unchanged (the step was not taken)")
        if status == BAD_SHAPE:
            self._refuse(x)  # raises for an x of another shape than the stream's
        raise RuntimeError(f"kernel returned unknown status {status}")


def _non_finite_message(x: np.ndarray, where: tuple | None, mean: np.ndarray, std: np.ndarray, name: str) -> str:
    """Why x[where] (x (..., F) float32) was refused: NaN or infinity itself, or a normalised value that is not."""
    if where is None:
        return f"{name} holds NaN or infinity, or a value whose normalised (x - mean) / std is not finite"
    value, f = x[where], where[-1]
    at = f"{name}[{', '.join(str(int(i)) for i in where)}]"
    if not np.isfinite(value):
        return f"{at} = {value}, refused: NaN or infinity"
    return (f"{at} = {value:g} is finite, but its normalised value (x - mean) / std = ({value:g} - {mean[f]:g}) / "
            f"{std[f]:g} overflows float32 (|x| up to {np.finfo(np.float32).max:g}); such an input is refused, as it "
            "would turn the state into NaN")
