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


def target_cpu() -> str:
    """The CPU LLVM compiles the kernels for: NUMBA_CPU_NAME where set (a portable cache), else this host's, as
    llvmlite names it ("znver3", "skylake-avx512", ...). numba's cache keeps compiled code per this name, so a
    kernel whose code depends on it (fused_int8_simd.explicit_gathers, fused_float.float_copy) never crosses over."""
    from llvmlite import binding as llvm
    from numba import config

    return config.CPU_NAME or llvm.get_host_cpu_name()
