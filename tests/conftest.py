"""Shared test fixtures.

``device``: the backends a backend-generic test runs on. Always "cpu"; also
"cuda" when ``MINIGRAD_TEST_DEVICE=cuda`` is set (the GPU run of issue 8).
With ``MINIGRAD_TEST_DEVICE=cuda`` and no usable GPU, cuda cases skip cleanly.
"""
import os

# Tests run in parallel workers (pytest -n 2) on 2 cores, and notebooks in child kernels:
# one BLAS/OpenMP thread per process avoids oversubscription that slows shared cores ~10x.
# (OPENBLAS_CORETYPE, where set, is left alone.)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

try:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
except ImportError:  # pragma: no cover
    pass

import minigrad  # noqa: E402

minigrad.set_num_threads(1)  # minigrad's own worker pool too

TEST_DEVICES = ["cpu"]
if os.environ.get("MINIGRAD_TEST_DEVICE", "cpu").lower().startswith("cuda"):
    TEST_DEVICES.append("cuda")


def gpu_available():
    """True when CuPy imports and sees a GPU (never imports CuPy otherwise needlessly)."""
    try:
        import cupy  # noqa: F401

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.fixture(params=TEST_DEVICES)
def device(request):
    """Backend device name for backend-parametrized tests."""
    if request.param == "cuda" and not gpu_available():
        pytest.skip("MINIGRAD_TEST_DEVICE=cuda but no usable GPU/CuPy here")
    return request.param


@pytest.fixture
def xp(device):
    """The array module (numpy or cupy) for ``device``."""
    from minigrad.backend import xp_for

    return xp_for(device)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def close(actual, expected, tol, what=""):
    """max |a - b| <= tol * (1 + max |b|), with a message naming the quantity."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = np.abs(actual - expected).max() if actual.size else 0.0
    assert err <= tol * (1 + np.abs(expected).max()), f"{what}: max error {err:.3g}"


def padding_mask(n, length, rng):
    """Bool (n, length) with True = ignore; sample 0 keeps everything, the others lose a random tail."""
    mask = np.zeros((n, length), dtype=bool)
    for i in range(1, n):
        mask[i, rng.integers(1, length):] = True
    return mask


def require_torch():
    """Import torch for oracle tests: under CI a missing torch fails, elsewhere it skips."""
    try:
        import torch

        return torch
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("torch (test oracle) not installed: pip install -r requirements-test.txt")


def introspected_mse_step(model, spec, opt, x, target, labels=None):
    """One SGD step on the MSE loss with ``spec`` recording it; returns the caught factors
    {weight name: (A, D)} as host arrays, to check the record against."""
    from minigrad import nn

    loss = nn.functional.mse_loss(model(x), target)
    opt.zero_grad()
    with minigrad.capture_factors(model) as factors:
        with spec.step(groups=labels, loss=loss):
            loss.backward()
    opt.step()
    return {n: (minigrad.backend.to_numpy(f.A), minigrad.backend.to_numpy(f.D)) for n, f in factors.items()}


@pytest.fixture
def split_everything(monkeypatch):
    """Split even tiny arrays (``MIN_SPLIT_BYTES`` = 0); returns ``set_threads(n, workers=n)``, which
    sets minigrad's thread count and its pool's size whatever the policy would say (BLAS's threads
    unchanged: they do not change results). Everything is put back after the test."""
    from minigrad.kernels import threads

    blas = [(lib, lib.get_num_threads()) for lib in threads._cached_blas()]
    monkeypatch.setattr(threads, "MIN_SPLIT_BYTES", 0)
    for key in ("n", "workers"):  # put back after the test, whatever changes them
        monkeypatch.setitem(threads._state, key, threads._state[key])

    def set_threads(n, workers=None):
        monkeypatch.setitem(threads._state, "n", n)
        monkeypatch.setitem(threads._state, "workers", n if workers is None else workers)

    yield set_threads
    pool = threads._state["pool"]
    if pool is not None:  # a pool the test may have grown: the next split starts a fresh one
        pool.shutdown(wait=True)
    threads._state.update(pool=None, pool_capacity=0)
    for lib, n in blas:
        lib.set_num_threads(n)


@pytest.fixture(params=["reference", "fast"])
def kernel_path(request):
    """Runs a test once on the reference kernels and once on the fast ones (issue 14).

    Op and layer test modules opt in for every test with
    ``pytestmark = pytest.mark.usefixtures("kernel_path")``. Under ``MINIGRAD_KERNELS=reference``
    only the reference path runs, so that run never touches a fast kernel.
    """
    from minigrad.kernels import dispatch

    if os.environ.get(dispatch.ENVIRONMENT_VARIABLE, "").strip().lower() == "reference" and request.param == "fast":
        pytest.skip("MINIGRAD_KERNELS=reference: fast kernels are not used in this run")
    with dispatch.use_kernels(request.param):
        yield request.param
