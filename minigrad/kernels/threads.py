"""CPU threads: one policy for BLAS's threads and minigrad's own pool, set at import.

NumPy runs one ufunc or copy on one core, but releases the GIL while it does, so a
large elementwise pass split into a few contiguous chunks runs on several cores
from plain Python threads: minigrad's pool. BLAS has threads of its own, and
OpenBLAS's keep spinning for about 0.1 s after every multi-threaded product (there
is no call to shorten that, only the OPENBLAS_THREAD_TIMEOUT variable, read once
when NumPy loads it), so during training they never rest. The two pools fight when
their threads do not fit on the cores: the calling thread, the pool's workers and
BLAS's spinning workers then share them, and every split waits for its slowest share.

The policy (:func:`pool_size`): ``n`` threads go to BLAS; minigrad's pool uses them
too only where the calling thread, its n - 1 workers and BLAS's extra threads fit on
the cores this process may use; otherwise the pool stands down (work runs on the
calling thread, ``blas_single_threaded`` leaves BLAS its threads) and BLAS alone owns
the cores. On this project's 2-core machine at 2 threads (bench/engine.py's cases, one
process per run, runs during which other processes used < 0.3 cores), BLAS alone against
both pools: BERT-style encoder 63-67 against 78-103 ms, CNN autoencoder 44-55 against
54-69 ms, the MLPs and the CNN classifier the same within the noise; the pool alone (BLAS
on one thread) was slower still for the BERT-style encoder (107 ms; 66 ms on one thread).
A few large pieces of work (the recurrent layers' work over all time steps, cut into runs of
steps) go to :func:`run_large_parts` instead, which splits them whatever the pool's policy, with
BLAS on one thread for the duration, so that no BLAS thread is woken to spin beside them.
The policy is set when this module is imported (n = the cores this process may use,
BLAS's threads left at the BLAS library's own setting) and again by
``set_num_threads(n)``, which gives BLAS n threads. Only NumPy arrays above a size
threshold are split (below it the hand-off costs more than it saves); CuPy arrays never are.

Import also makes glibc's malloc keep freed memory (:func:`keep_freed_memory`; undo with
``keep_freed_memory(False)``): otherwise every step page-faults its large temporaries afresh,
on one core. In fresh processes at 2 threads, quiet machine, 20 steps after 3: MLP
autoencoder 9.5 -> 6.2 ms, CNN classifier 36 -> 25 ms, CNN autoencoder 58 -> 31-44 ms.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

# arrays (bytes) below this size are worked on by the calling thread alone: handing a share
# to a worker thread costs 50-100 us (measured on a 2-core VM), what a memory-bound pass over
# about 2 MiB costs
MIN_SPLIT_BYTES = 1 << 21


def _available_cores():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def pool_size(n, cores, blas_threads):
    """Threads minigrad's own pool splits work over (1 = the calling thread alone) when ``n``
    threads are asked for on ``cores`` cores while BLAS runs ``blas_threads`` threads: n when the
    calling thread, n - 1 workers and BLAS's blas_threads - 1 extra threads fit on the cores,
    else 1, leaving the cores to BLAS."""
    return n if n + blas_threads - 1 <= cores else 1


_state = {"n": 1, "workers": 1, "pool": None, "pool_capacity": 0}
_lock = threading.Lock()
_local = threading.local()  # .busy: this thread is already running a share of a split


def set_num_threads(n):
    """Use ``n`` threads: BLAS gets n, and minigrad's own pool n or 1 by :func:`pool_size`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of threads must be a positive integer, got {n!r}")
    n = int(n)
    _set_blas_threads(n)
    _apply_policy(n, blas_threads=n)


def get_num_threads():
    """The thread count set by :func:`set_num_threads` (default: the cores this process may use)."""
    return _state["n"]


def pool_threads():
    """Threads minigrad's own pool splits work over under the policy (1: it stands down)."""
    return _state["workers"]


def _apply_policy(n, blas_threads):
    workers = pool_size(n, _available_cores(), blas_threads)
    with _lock:
        _state.update(n=n, workers=workers)


def _blas_libraries():
    """threadpoolctl's controllers of the loaded BLAS libraries (empty without threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn/scipy stacks
        return []
    return ThreadpoolController().select(user_api="blas").lib_controllers


def _set_blas_threads(n):
    _blas_cache["libs"] = _blas_libraries()  # libraries loaded since the last look-up count too
    for lib in _blas_cache["libs"]:
        lib.set_num_threads(n)


def _pool():
    """The pool for a split over the policy's workers (the calling thread takes a share too), or
    None when it stands down."""
    return None if _state["workers"] == 1 else _executor(_state["workers"] - 1)


def _executor(threads_needed):
    """The one executor behind every split, with at least ``threads_needed`` threads (replaced by a
    larger one when a split needs more; its threads start only as work arrives)."""
    with _lock:
        if _state["pool"] is None or _state["pool_capacity"] < threads_needed:
            if _state["pool"] is not None:
                _state["pool"].shutdown(wait=False)
            _state.update(pool=ThreadPoolExecutor(threads_needed, thread_name_prefix="minigrad"),
                          pool_capacity=threads_needed)
        return _state["pool"]


def parts_for(nbytes, xp=np):
    """How many threads to split work over ``nbytes`` of NumPy data into (1: do not split)."""
    if xp is not np or nbytes < MIN_SPLIT_BYTES or getattr(_local, "busy", False):
        return 1
    return _state["workers"]


def large_parts(xp=np):
    """How many parts :func:`run_large_parts` splits work into: the threads set, at most the cores
    this process may use (1 for CuPy arrays or from inside a worker)."""
    if xp is not np or getattr(_local, "busy", False):
        return 1
    return max(1, min(_state["n"], _available_cores()))


def run_large_parts(work, count):
    """Call ``work(i)`` for i in range(count) at once, the first on this thread, the others on
    helper threads, with BLAS on one thread meanwhile; a helper's exception is re-raised here.

    For a few large pieces of work, each a handful of long NumPy or BLAS calls (e.g. the products
    and elementwise passes over all time steps of a recurrent layer, cut into runs of steps):
    unlike :func:`run_parts` it splits even where the pool stands down. The pool stands down where
    BLAS's threads own the cores, but OpenBLAS's threads spin after every product they share
    (about 0.1 s), so the core they spin on is lost to any other thread; here BLAS is on one
    thread for the duration and no BLAS thread is woken. Each thread's calls are long, so the GIL
    passes between the threads without waiting.
    """
    if count <= 1:
        for i in range(count):
            work(i)
        return
    with _BlasThreads(1):
        _run_on(_executor(count - 1), work, count)


def run_parts(work, count):
    """Call ``work(i)`` for i in range(count), the first on this thread, the others on the workers.

    Falls back to a plain loop with one thread or from inside a worker (no nested splitting);
    a worker's exception is re-raised here.
    """
    pool = _pool() if count > 1 and not getattr(_local, "busy", False) else None
    if pool is None:
        for i in range(count):
            work(i)
        return
    _run_on(pool, work, count)


def _run_on(executor, work, count):
    """``work(i)`` for i in range(count): i = 0 on this thread, the others on ``executor``'s
    threads (marked busy: no nested splitting); waits for all, re-raising a worker's exception."""
    def guarded(i):
        _local.busy = True
        try:
            work(i)
        finally:
            _local.busy = False

    futures = [executor.submit(guarded, i) for i in range(1, count)]
    try:
        guarded(0)
    finally:
        wait(futures)  # every part ends before any error is passed on
        for f in futures:
            f.result()


def run_items(work, items):
    """Call ``work(item)`` for every item, the items cut into one contiguous run per thread."""
    items = list(items)
    count = min(len(items), _state["workers"])
    if count <= 1:
        for item in items:
            work(item)
        return
    bounds = np.linspace(0, len(items), count + 1).astype(int)

    def share(i):
        for item in items[bounds[i]:bounds[i + 1]]:
            work(item)

    run_parts(share, count)


def run_ranges(work, length, nbytes, xp=np):
    """Call ``work(slice)`` over range(length): one contiguous slice per thread when ``nbytes`` of
    NumPy work is worth splitting (:func:`parts_for`), else one slice for all of it."""
    run_items(work, ranges(length, parts_for(nbytes, xp)))


def run_blocks(work, items, nbytes, xp=np):
    """Call ``work(item)`` for every item: on minigrad's threads, each thread's BLAS calls on one
    BLAS thread (the items' own products are too small to split well), when ``nbytes`` of NumPy
    work is worth splitting and there are several items; else in a plain loop."""
    items = list(items)
    if len(items) > 1 and parts_for(nbytes, xp) > 1:
        with blas_single_threaded():
            run_items(work, items)  # re-raises a worker's exception here
    else:
        for item in items:
            work(item)


def ranges(length, parts):
    """``parts`` contiguous slices covering range(length) (fewer when length is small)."""
    parts = max(1, min(parts, length))
    bounds = np.linspace(0, length, parts + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def split_axis(a, parts):
    """The axis to split ``a`` along: its outermost axis in memory with at least ``parts`` entries
    (slices along it are few large blocks of memory), or None when none is long enough."""
    for ax in sorted(range(a.ndim), key=lambda i: -abs(a.strides[i])):
        if a.shape[ax] >= parts and a.strides[ax] != 0:
            return ax
    return None


def elementwise(fn, out, *operands):
    """``fn(out, *operands)`` with every operand sliced alike, split over threads when ``out`` is large.

    ``fn`` writes its result into its first argument. Operands are arrays of ``out``'s
    shape (or broadcastable to it: an axis of size 1 is not sliced) or scalars; returns ``out``.
    """
    parts = parts_for(out.nbytes) if isinstance(out, np.ndarray) else 1  # CuPy arrays: in one go
    axis = split_axis(out, parts) if parts > 1 else None
    if axis is None:
        fn(out, *operands)
        return out
    chunks = ranges(out.shape[axis], parts)
    offset = out.ndim

    def sliced(a, sl):
        if not isinstance(a, np.ndarray) or a.ndim == 0:
            return a
        ax = axis - (offset - a.ndim)  # operands broadcast from the right
        if ax < 0 or a.shape[ax] == 1:
            return a
        index = (slice(None),) * ax + (sl,)
        return a[index]

    def work(i):
        sl = chunks[i]
        fn(sliced(out, sl), *(sliced(a, sl) for a in operands))

    run_parts(work, len(chunks))
    return out


# inner-dimension block of matmul_split_inner: both operands' blocks together about this size
_INNER_BLOCK_BYTES = 1 << 19


def matmul_split_inner(a, b):
    """``a @ b`` for 2-D NumPy arrays with a long inner dimension and a small result (e.g. a
    weight gradient summed over every position), in cache-sized blocks of the inner dimension.

    BLAS runs such skinny products several times below its speed on cache-sized blocks, and
    splits only the result's rows and columns over threads; here the blocks are multiplied
    one by one (on one BLAS thread each, the blocks split over minigrad's threads) and added.
    """
    m, k = a.shape
    n = b.shape[1]
    if not isinstance(a, np.ndarray) or m * n > k:
        return a @ b
    step = max(1024, _INNER_BLOCK_BYTES // ((m + n) * a.itemsize))
    if k < 2 * step:
        return a @ b
    parts = parts_for(a.nbytes + b.nbytes)
    shares = ranges(-(-k // step), parts)  # blocks of the inner dimension, a run per thread
    partial = [None] * len(shares)

    def work(i):
        blocks = shares[i]
        total = None
        for j in range(blocks.start, blocks.stop):
            sl = slice(j * step, min(k, (j + 1) * step))
            p = a[:, sl] @ b[sl]
            total = p if total is None else np.add(total, p, out=total)
        partial[i] = total

    with blas_single_threaded():
        run_parts(work, len(shares))
    total = partial[0]
    for p in partial[1:]:
        total += p
    return total


def blas_single_threaded():
    """A context for BLAS calls made from minigrad's workers at once: BLAS on one thread while the
    pool splits work, its threads left alone while the pool stands down (BLAS then owns the cores)."""
    return _BlasThreads(1 if _state["workers"] > 1 else None)


class _BlasThreads:
    def __init__(self, n):
        self.n = n
        self.libs = []

    def __enter__(self):
        if self.n is None:
            return self
        self.libs = [(lib, lib.get_num_threads()) for lib in _cached_blas()]
        for lib, _ in self.libs:
            lib.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        for lib, old in self.libs:
            lib.set_num_threads(old)
        return False


_blas_cache = {}


def _cached_blas():
    """The BLAS controllers, looked up once (threadpoolctl scans the loaded libraries)."""
    if "libs" not in _blas_cache:
        _blas_cache["libs"] = _blas_libraries()
    return _blas_cache["libs"]


def _blas_threads_now():
    """The most threads any loaded BLAS runs now (1 without threadpoolctl or BLAS controllers)."""
    return max([lib.get_num_threads() or 1 for lib in _cached_blas()] + [1])




_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters


def keep_freed_memory(enabled=True):
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the system.

    By default every array over a few hundred KiB is mapped fresh from the kernel and given
    back when freed, so each training step page-faults (and zero-fills) all its large
    temporaries again, on one core at a time. With ``enabled`` the heap serves arrays up to
    32 MiB and keeps up to 1 GiB of freed memory (the process's memory then stays at its
    peak); ``enabled=False`` puts back glibc's initial values (128 KiB each, without its
    self-tuning of the mapping threshold). Returns True when glibc accepted the settings, False
    where the C library has no ``mallopt`` (nothing changed). Process-wide: PyTorch's CPU
    tensors are affected alike.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if enabled:
        settings = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))
    else:
        settings = ((_M_MMAP_THRESHOLD, 128 << 10), (_M_TRIM_THRESHOLD, 128 << 10), (_M_TOP_PAD, 128 << 10))
    return all(mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1 for param, value in settings)


# the policy, set at import: the pool's size for the cores and BLAS's threads, and freed memory kept
_apply_policy(_available_cores(), blas_threads=_blas_threads_now())
keep_freed_memory()

__all__ = ["large_parts", "run_large_parts", "keep_freed_memory", "matmul_split_inner", "set_num_threads", "get_num_threads", "pool_size",
           "pool_threads", "elementwise", "run_parts", "run_items", "run_ranges", "run_blocks", "ranges", "parts_for", "split_axis",
           "blas_single_threaded", "MIN_SPLIT_BYTES"]
