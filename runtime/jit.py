"""JIT options for every runtime kernel, in one place.

- cache=True: compiled machine code is kept beside the module, so a warm process starts fast.
- nogil=True: independent streams can step in threads; weights are shared and read-only.
- error_model="numpy": no Python exception machinery (and its checks) inside the loops.
- FAST_MATH, for the mat-vec and activation loops only: "contract" lets LLVM fuse multiply-add (FMA),
  "reassoc" lets it reorder sums so loops vectorise. Neither assumes away NaN or infinity, and division
  stays exact (no "arcp"). The parity tests (<= 1e-5 against PyTorch) keep these honest.
"""

from numba import njit

FAST_MATH = {"contract", "reassoc"}

kernel = njit(cache=True, nogil=True, error_model="numpy")
fast_kernel = njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST_MATH)
# small scalar helpers (exp): inlined into the calling loop in numba's IR so the loop vectorises
fast_inline = njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST_MATH, inline="always")
# integer scalar primitives (runtime/int8_math.py): inlined the same way, so the int8 kernels' per-row loops
# are straight-line code that LLVM can vectorise
int_inline = njit(cache=True, nogil=True, error_model="numpy", inline="always")


def _probe():
    return 0


def _entry_options() -> dict:
    """{"_nrt": False} where this numba takes the option (every release since 0.4x; it is numba's own, named
    privately), else nothing."""
    try:
        njit(_nrt=False)(_probe)  # wrapping checks the option; nothing is compiled
    except KeyError:
        return {}
    return {"_nrt": False}


# the specialised steps and whole-sequence passes Python calls (runtime/fused_int8.py, fused_float*.py): compiled
# without numba's reference-counting runtime (NRT), which they do not need: they allocate nothing (a kernel that
# did would not compile) and return a status. Each array argument is then unboxed without the reference-counted
# wrapper numba allocates and frees per array per call, and the views they take are not counted with atomic
# instructions. Zen 3, from Python: kws int8 step 2.68 -> 2.52 us, har int8w 2.36 -> 2.16, kws f32 5.12 -> 5.01.
# The same code otherwise; a numba without the option gets the ordinary kernels.
ENTRY_OPTIONS = _entry_options()
entry_kernel = njit(cache=True, nogil=True, error_model="numpy", **ENTRY_OPTIONS)
fast_entry = njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST_MATH, **ENTRY_OPTIONS)


def target_cpu() -> str:
    """The CPU LLVM compiles the kernels for: NUMBA_CPU_NAME where set (a portable cache), else this host's, as
    llvmlite names it ("znver3", "skylake-avx512", ...). numba's cache keeps compiled code per this name, so a
    kernel whose code depends on it (fused_int8_simd.explicit_gathers, fused_float.float_copy) never crosses over."""
    from llvmlite import binding as llvm
    from numba import config

    return config.CPU_NAME or llvm.get_host_cpu_name()
