"""The cold-start floor of any numba program, for benchmarks.peers: import numba, load one cached tiny kernel,
call it once. rnnedge's own cold start is measured against this (issue 15's target: <= 1.2x with a warm cache)."""

from numba import njit


@njit(cache=True)
def tiny(x):
    return x.sum()
