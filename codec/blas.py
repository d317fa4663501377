"""Single-threaded float64 GEMM for the exact networks (codec/fixed.py), and the few threads that split them.

Why single-threaded: OpenBLAS's own threads spin-wait for each other at every call; on a shared 2-core machine, with
another process holding one core, a 3x3 conv done as 9 accumulated GEMMs took 100 ms instead of 23 ms (measured,
median of 5 decodes of a 512² CT slice). So the exact networks call scipy's BLAS (a library of its own beside numpy's, used by
nothing else here) set to one thread, and split the work themselves: each of `threads()` Python threads takes a
band of rows, and waits only at the end of a stage.

Exactness does not depend on any of this: every GEMM sums integers below 2**53, so the result is the same in any
order, on any BLAS, with or without threads.
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_STATE: dict = {}
_LOCK = threading.Lock()


def _one_thread() -> bool:
    """scipy's bundled OpenBLAS to one thread (process-wide; numpy's BLAS is another library and keeps its own)."""
    import scipy

    libs = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(scipy.__file__))), "scipy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(1)
                return True
    return False  # another scipy build: correct results all the same, only slower under load


def dgemm():
    """scipy.linalg.blas.dgemm (Fortran order: C = alpha A B + beta C), its BLAS set to one thread on first use.
    Call it before numba code that uses np.dot (numba calls the same BLAS, through scipy.linalg.cython_blas)."""
    if "dgemm" not in _STATE:
        with _LOCK:
            if "dgemm" not in _STATE:
                from scipy.linalg.blas import dgemm as fn

                _STATE["one_thread"] = _one_thread()
                _STATE["dgemm"] = fn
    return _STATE["dgemm"]


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool = False) -> np.ndarray:
    """out (m, n) = a (m, k) @ b (k, n) [+ out], all C-contiguous rows: the transposes are Fortran-ordered, so no copy."""
    r = dgemm()(1.0, b.T, a.T, beta=1.0 if accumulate else 0.0, c=out.T, overwrite_c=1)
    if not np.shares_memory(r, out):  # the wrapper copied (an unusual layout): the result is still the right one
        out[...] = r.T
    return out


def threads() -> int:
    """Threads that split one exact network: the cores this process may use, at most 4."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(4, int(os.environ.get("MEDZIP_EXACT_THREADS", n))))


def _pool(n: int) -> ThreadPoolExecutor:
    with _LOCK:
        pool = _STATE.get("pool")
        if pool is None or _STATE["pool_n"] < n:
            pool = _STATE["pool"] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="medzip-exact")
            _STATE["pool_n"] = n
        return pool


def split_rows(fn, rows: int, min_rows: int = 1) -> None:
    """fn(r0, r1, band) over bands 0, 1, ... covering range(rows): one band per thread (the last on this one), bands
    of at least min_rows. Returns when every band is done; re-raises a band's exception."""
    n = max(1, min(threads(), rows // max(1, min_rows)))
    if n == 1:
        fn(0, rows, 0)
        return
    cuts = [rows * i // n for i in range(n + 1)]
    futures = [_pool(n - 1).submit(fn, cuts[i], cuts[i + 1], i) for i in range(n - 1)]
    fn(cuts[n - 1], cuts[n], n - 1)
    for f in futures:
        f.result()
