"""minigrad.kernels.threads (thread count, split elementwise work) and the fast float32 erf/GELU."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.kernels import layout, threads
from minigrad.nn import functional as F
from minigrad.kernels import attention
from minigrad.kernels.erf import erf


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_set_num_threads_rejects_non_positive_integers(bad):
    with pytest.raises(ValueError, match="positive integer"):
        mg.set_num_threads(bad)


def test_set_num_threads_sets_blas_and_workers(split_everything):
    for n in (1, 2):
        mg.set_num_threads(n)
        assert mg.get_num_threads() == n
        assert all(lib.get_num_threads() == n for lib in threads._cached_blas())
        assert threads.pool_threads() == threads.pool_size(n, threads._available_cores(), n)


def test_set_num_threads_applies_the_pool_policy(split_everything, monkeypatch):
    mg.set_num_threads(1)
    assert threads.pool_threads() == 1
    monkeypatch.setattr(threads, "_available_cores", lambda: 2)
    mg.set_num_threads(2)
    assert mg.get_num_threads() == 2
    assert threads.pool_threads() == 1  # 2 + 1 BLAS worker do not fit on 2 cores: BLAS owns them
    assert threads.parts_for(1 << 30) == 1
    monkeypatch.setattr(threads, "_available_cores", lambda: 8)
    mg.set_num_threads(3)
    assert threads.pool_threads() == 3 == threads.parts_for(1 << 30)  # 3 + 2 fit on 8 cores


@pytest.mark.parametrize("n, cores, blas, expected", [(1, 1, 1, 1), (2, 2, 2, 1), (2, 2, 1, 2), (2, 4, 2, 2),
                                                      (4, 4, 4, 1), (4, 8, 4, 4), (8, 8, 8, 1)])
def test_pool_size_leaves_the_cores_to_blas_when_both_pools_do_not_fit(n, cores, blas, expected):
    assert threads.pool_size(n, cores, blas) == expected


def _blas_on_two_threads():
    """The BLAS controllers, each set to 2 threads (``split_everything`` puts their threads back);
    the test skips where there are none."""
    libs = threads._cached_blas()
    if not libs:
        pytest.skip("no BLAS controller")
    for lib in libs:
        lib.set_num_threads(2)
    return libs


def test_blas_single_threaded_only_while_the_pool_splits(split_everything):
    libs = _blas_on_two_threads()
    split_everything(2, workers=2)
    with threads.blas_single_threaded():
        assert all(lib.get_num_threads() == 1 for lib in libs)
    assert all(lib.get_num_threads() == 2 for lib in libs)
    split_everything(2, workers=1)  # the pool stands down: BLAS keeps its threads
    with threads.blas_single_threaded():
        assert all(lib.get_num_threads() == 2 for lib in libs)


def test_erf_float32_is_within_1e7_of_scipy_on_a_dense_grid():
    from scipy.special import erf as scipy_erf

    x = np.linspace(-7, 7, 1_400_001, dtype=np.float32)
    exact = scipy_erf(x.astype(np.float64))
    got = erf(x)
    assert got.dtype == np.float32
    assert np.abs(got - exact).max() < 1e-7
    small = (np.abs(x) < 1e-3) & (x != 0)
    assert np.abs(got[small] / x[small] - 2 / np.sqrt(np.pi)).max() < 1e-6  # relative accuracy near 0
    special = erf(np.array([np.nan, np.inf, -np.inf, 0.0], np.float32))
    assert np.isnan(special[0]) and special[1] == 1 and special[2] == -1 and special[3] == 0


def test_erf_float64_is_scipys():
    from scipy.special import erf as scipy_erf

    x = np.linspace(-5, 5, 1001)
    np.testing.assert_array_equal(erf(x), scipy_erf(x))


def test_gelu_float32_matches_the_float64_exact_gelu(rng):
    x64 = rng.standard_normal((300, 70)) * 3
    g64 = rng.standard_normal(x64.shape)
    outs = {}
    for dtype in (np.float32, np.float64):
        x = mg.tensor(x64, dtype=dtype, requires_grad=True)
        y = F.gelu(x)
        y.backward(g64.astype(dtype))
        assert y.dtype == dtype and x.grad.dtype == dtype
        outs[dtype] = (y.numpy().astype(np.float64), x.grad.astype(np.float64))
    for a, b in zip(outs[np.float32], outs[np.float64]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


def _run(fn, inputs, set_threads, count):
    """fn's output and input gradients (loss: sum of output * fixed weights) with ``count`` threads."""
    set_threads(count)
    tensors = [mg.tensor(a, requires_grad=True) for a in inputs]
    out = fn(*tensors)
    weights = np.random.default_rng(7).standard_normal(out.shape).astype(out.dtype)
    out.backward(weights)
    return [out.numpy()] + [t.grad for t in tensors]


CASES = {
    "relu": (lambda x: F.relu(x), [(5, 6, 7)]),
    "gelu": (lambda x: F.gelu(x), [(40, 33)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (12,), w, b), [(9, 300, 12), (12,), (12,)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), [(7, 5, 6), (4, 6), (4,)]),
    "linear_wide": (lambda x, w, b: F.linear(x, w, b), [(7, 3), (9, 3), (9,)]),  # bias inside the GEMM
    "mse_loss": (lambda x, t: F.mse_loss(F.relu(x), t), [(6, 7, 5), (6, 7, 5)]),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding=1), [(5, 3, 9, 8), (4, 3, 3, 3), (4,)]),
    "conv2d_chain": (lambda x, w: F.max_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2),
                     [(6, 2, 8, 8), (4, 2, 3, 3)]),
    "max_pool2d_overlap": (lambda x: F.max_pool2d(x, 3, stride=2, padding=1), [(4, 5, 9, 9)]),
    "conv_transpose2d": (lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2), [(5, 3, 4, 4), (3, 2, 3, 3), (2,)]),
    "upsample_then_conv": (lambda x, w: F.conv2d(F.upsample_nearest(x, 2), w, padding=1),
                           [(3, 4, 5, 5), (2, 4, 3, 3)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2, padding=1, count_include_pad=False), [(3, 4, 7, 7)]),
    "attention": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [(5, 2, 6, 4)] * 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_split_work_gives_the_single_thread_result(split_everything, name, monkeypatch):
    from minigrad.kernels import unfold

    monkeypatch.setattr(unfold, "CACHE_BLOCK_BYTES", 64)  # several sample blocks in col2im
    monkeypatch.setattr(attention, "CHUNK_BYTES", 1)      # one sample per attention chunk
    fn, shapes = CASES[name]
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    single = _run(fn, inputs, split_everything, 1)
    split = _run(fn, inputs, split_everything, 3)
    for a, b in zip(single, split):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_elementwise_splits_with_broadcast_operands(split_everything):
    split_everything(3)
    a = np.arange(24.0).reshape(4, 6)
    out = threads.elementwise(lambda o, x, b: np.add(x, b, out=o), np.empty_like(a), a, np.ones((4, 1)))
    np.testing.assert_array_equal(out, a + 1)
    column_major = np.asfortranarray(a)
    assert threads.split_axis(column_major, 3) == 1  # the outer axis in memory
    out = threads.elementwise(lambda o, x, s: np.multiply(x, s, out=o),
                               layout.empty_like_order(column_major), column_major, 2.0)
    np.testing.assert_array_equal(out, 2 * a)


def test_run_parts_reraises_and_does_not_nest(split_everything):
    split_everything(2)

    def failing(i):
        if i == 1:
            raise RuntimeError("worker failed")

    with pytest.raises(RuntimeError, match="worker failed"):
        threads.run_parts(failing, 2)
    seen = []

    def outer(i):
        assert threads.parts_for(1 << 30) == 1  # inside a share, work is not split again
        threads.run_parts(lambda j: seen.append((i, j)), 2)

    threads.run_parts(outer, 2)
    assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_keep_freed_memory_toggles_malloc_settings():
    import platform

    kept = threads.keep_freed_memory()
    try:
        assert isinstance(kept, bool)
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            assert kept
        a = np.ones((512, 1024), np.float32)  # allocations still work either way
        assert float(a.sum()) == 512 * 1024
    finally:
        assert threads.keep_freed_memory(False) == kept
        threads.keep_freed_memory()  # back to the setting import makes


@pytest.mark.parametrize("count", [1, 3])
def test_matmul_split_inner_equals_the_plain_product(split_everything, count):
    split_everything(count)
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 5000))
    b = rng.standard_normal((2, 5000)).T  # a transposed view, as conv's backward passes it
    np.testing.assert_allclose(threads.matmul_split_inner(a, b), a @ b, rtol=1e-12, atol=1e-12)
    small = rng.standard_normal((4, 10))
    np.testing.assert_array_equal(threads.matmul_split_inner(small, small.T), small @ small.T)


@pytest.mark.parametrize("method", ["auto", "topk", "direct"])
def test_group_spectra_on_threads_equal_one_thread(split_everything, method):
    """The batch's and the groups' spectra run on minigrad's threads (one BLAS thread each);
    the record must not depend on it."""
    import autospec
    from minigrad import nn, optim

    def record(threads):
        split_everything(threads)
        rng = np.random.default_rng(2)
        X = rng.random((90, 40), dtype=np.float32)
        labels = np.array(["HC", "SZ", "SZ"] * 30)
        mg.manual_seed(0)
        model = nn.Sequential(nn.Linear(40, 6), nn.ReLU(), nn.Linear(6, 40))
        opt = optim.SGD(model.parameters(), lr=0.5)
        spec = autospec.Introspector(model, k=3 if method == "topk" else None, method=method)
        for _ in range(4):
            loss = F.mse_loss(model(mg.tensor(X)), X)
            opt.zero_grad()
            with spec.step(groups=labels, loss=loss):
                loss.backward()
            opt.step()
        return spec.record

    one, many = record(1), record(3)
    for layer in ("0.weight", "2.weight"):
        for q in ("G", "A", "D"):
            for group in (None, "HC", "SZ"):
                np.testing.assert_allclose(many.series(layer, q, group=group), one.series(layer, q, group=group),
                                           rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("blas_env", [None, "1"])
def test_the_policy_is_set_at_import(blas_env):
    """A fresh process that only imports minigrad gets the policy for its cores and BLAS threads."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    if blas_env is not None:
        env["OPENBLAS_NUM_THREADS"] = blas_env
    code = ("import json, minigrad as mg; from minigrad.kernels import threads as t; "
            "print(json.dumps([mg.get_num_threads(), t.pool_threads(), t._available_cores(), t._blas_threads_now()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    n, workers, cores, blas = json.loads(out.stdout)
    assert n == cores
    assert workers == threads.pool_size(n, cores, blas)
    if blas_env == "1":
        assert workers == cores  # BLAS on one thread leaves the cores to minigrad's pool


def test_import_keeps_freed_memory():
    """In a fresh process that imported minigrad, three freed 16 MiB arrays stay in the heap for
    reuse (glibc's own settings give back what exceeds twice the largest freed block)."""
    import os
    import platform
    import subprocess
    import sys

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    code = ("import os, numpy as np, minigrad\n"
            "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
            "start = rss()\n"
            "for _ in range(3):\n"
            "    arrays = [np.ones(4 << 20, np.float32) for _ in range(3)]\n"
            "    del arrays\n"
            "print(rss() - start)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kept = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              cwd=root).stdout)
    assert kept >= 40 << 20


@pytest.mark.parametrize("count", [1, 2, 3])
def test_run_large_parts_runs_every_part_on_one_blas_thread_each(split_everything, count):
    blas_before = [lib.get_num_threads() for lib in _blas_on_two_threads()]
    seen = {}

    def work(i):
        seen[i] = [lib.get_num_threads() for lib in threads._cached_blas()]

    threads.run_large_parts(work, count)
    assert sorted(seen) == list(range(count))
    if count > 1:
        assert all(n == 1 for counts in seen.values() for n in counts)
    assert [lib.get_num_threads() for lib in threads._cached_blas()] == blas_before


def test_run_large_parts_passes_on_a_helpers_error_after_every_part_ends(split_everything):
    blas_before = [lib.get_num_threads() for lib in _blas_on_two_threads()]
    ended = []

    def work(i):
        if i == 1:
            raise FloatingPointError("part 1")
        ended.append(i)

    with pytest.raises(FloatingPointError, match="part 1"):
        threads.run_large_parts(work, 3)
    assert sorted(ended) == [0, 2]
    assert [lib.get_num_threads() for lib in threads._cached_blas()] == blas_before


def test_large_parts_follow_threads_and_cores(monkeypatch):
    monkeypatch.setattr(threads, "_available_cores", lambda: 2)
    monkeypatch.setitem(threads._state, "n", 4)
    assert threads.large_parts() == 2
    monkeypatch.setitem(threads._state, "n", 1)
    assert threads.large_parts() == 1
