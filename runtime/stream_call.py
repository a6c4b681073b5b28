"""How Stream.step reaches its compiled kernel with as little Python as possible per call (runtime/stream.py).

    entry = compiled_entry(kernel, args, x_at)  # the machine code for these argument types, x of any strides
    stream.step = step_function(stream)         # the stream's step(x): checks, ownership token, kernel, status

A step at batch 1 takes 2-8 us, so the Python around the kernel call counts: `kernel(*args, x, *weights)` builds
a tuple per call (~0.13 us on Zen 3) and every `self.` attribute is a dictionary read. step_function returns a
closure over the stream's arrays and bound methods, its kernel call written out for the argument count the
stream has (one text, STEP_SOURCE, compiled once per count and shape check): the same checks in the same order as
Stream.step's docstring gives: 0.1-0.27 us less per call than the method it replaces (Zen 3: kws int8 3.52 ->
3.26 us, har int8w 2.94 -> 2.75). The entry takes x as an array of any layout, so no stride is checked per call
(`x.strides` builds a tuple: the closure's own Python 0.41-0.43 -> 0.34-0.37 us on Zen 3).
The stream and its step refer to each other (its error paths call the stream's methods): Python's cycle
collector frees them together.
"""

from __future__ import annotations

import numpy as np

# step(x) for a stream whose kernel takes {args} buffer arrays, x, then {weights} weight arrays (names a0.., w0..);
# {shape_check}: x's shape against the stream's, or only its ndim where the kernel checks the shape (SHAPE_CHECKS)
STEP_SOURCE = '''
def step(x):
    if x.__class__ is not ndarray or x.dtype is not x_dtype or {shape_check}:
        me._refuse(x)
    try:
        take()
    except IndexError:
        raise me._busy("step()") from None
    try:
        status = entry({call})
    finally:
        give(True)
    if status:
        me._refuse_values(x, status)
    return y
'''
# the shape check in Python: the whole shape (x.shape builds a tuple: ~50 ns), or, for a specialised step that checks
# x's shape itself against its stream's batch (fused.py; BAD_SHAPE), only the ndim its machine code was compiled for
# (~25 ns; an x of another ndim must never reach it). Zen 4, a step at B = 1 (medians of 5 alternating processes):
# har int8w 1.50 -> 1.45 us, har int8 1.12 -> 1.08, har f32 1.91 -> 1.89, kws int8 1.70 -> 1.68
SHAPE_CHECKS = {False: "x.shape != x_shape", True: "x.ndim != x_ndim"}
_COMPILED: dict[tuple[int, int, bool], object] = {}


def compiled_entry(kernel, args: tuple, x_at: int):
    """The machine code numba compiled (or loaded from its cache) for these argument types, args[x_at] (the input x)
    typed as an array of any layout, called without the dispatcher's type resolution of every argument (~0.25 us
    of a ~3 us step). The stream calls it only with an x of the dtype and shape it was compiled for (checked before
    the call; the buffers and weights are the stream's own); any strides are right for an array of any layout (x
    is read ~F values a step: a contiguous x costs the same). A kernel that is not a numba dispatcher (or a numba
    that keeps its entry points elsewhere) gets the kernel itself."""
    try:
        import numba

        signature = [numba.typeof(a) for a in args]
        signature[x_at] = signature[x_at].copy(layout="A")
        signature = tuple(signature)
        kernel.compile(signature)
        return kernel.overloads[signature].entry_point
    except (AttributeError, KeyError, TypeError):
        return kernel


def step_function(stream):
    """The stream's step(x) (Stream.step's contract), a closure over what it reads at every call."""
    key = (len(stream._args), len(stream._weights), stream._checks_shape)
    code = _COMPILED.get(key)
    if code is None:
        names = [f"a{i}" for i in range(key[0])] + ["x"] + [f"w{i}" for i in range(key[1])]
        code = compile(STEP_SOURCE.format(call=", ".join(names), shape_check=SHAPE_CHECKS[key[2]]),
                       f"<rnnedge step, {key[0]} + x + {key[1]}>", "exec")
        _COMPILED[key] = code
    scope = {f"a{i}": a for i, a in enumerate(stream._args)}
    scope.update({f"w{i}": w for i, w in enumerate(stream._weights)})
    scope.update(ndarray=np.ndarray, x_dtype=stream._x_dtype, x_shape=stream._x_shape, x_ndim=len(stream._x_shape),
                 entry=stream._entry, take=stream._token.pop, give=stream._token.append,
                 y=stream.y, me=stream)
    # a closure's variables are read from its globals here: a dict of its own per stream, looked up by name
    # like a module's, no `self.` attribute reads
    exec(code, scope)  # noqa: S102  (our own STEP_SOURCE, compiled above: no outside text)
    step = scope["step"]
    step.__doc__ = type(stream).step.__doc__
    step.__qualname__ = "Stream.step"
    return step
