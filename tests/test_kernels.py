"""minigrad.kernels: every fast kernel equals its reference; the reference path is complete.

The fast versions are checked against the reference on random inputs in float32 and
float64, on contiguous, channel-major and strided arrays, on one thread and split over
three (every array split); the attention and recurrent ops' kernels likewise. Under
``use_kernels("reference")`` every layer runs forward and backward with no fast kernel and
no thread split at all. (Each test here picks its kernels itself: none runs once per kernel path.)
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.kernels import Kernel, threads
from minigrad.kernels import buffers, elementwise, erf, gemm, normalization, pooling, reductions, unfold
from minigrad.nn.attention import MultiheadAttention
from minigrad.nn.recurrent import LSTM, RNN
from minigrad.nn.transformer import TransformerEncoderLayer
from minigrad.ops import attention as att
from minigrad.ops import recurrent as R
from tests.conftest import close, padding_mask

MODULES = (buffers, elementwise, erf, gemm, normalization, pooling, reductions, unfold)
TOL = {np.float64: dict(rtol=1e-11, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}
LAYOUTS = ("contiguous", "channel_major", "strided")
ATTENTION_TOL = {np.float64: 1e-10, np.float32: 2e-4}  # close()'s, as tests/test_attention.py's TOL
RECURRENT_KINDS = ["tanh", "relu", "lstm"]


def _fast_kernels():
    return {f"{m.__name__.rsplit('.', 1)[1]}.{k.__name__}": k for m in MODULES for k in vars(m).values()
            if isinstance(k, Kernel) and k.fast_version is not None and k.__module__ == m.__name__}


def _laid_out(a, layout):
    """``a`` with its values, in memory: C order, channel-major ((C, N, ...) seen as (N, C, ...)), or strided."""
    if layout == "channel_major" and a.ndim >= 2:
        return np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)
    if layout == "strided":
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        return wide[..., ::2]
    return a


def _window(shape, kernel, stride, padding, dilation):
    out = unfold.output_shape(shape[2:], kernel, stride, padding, dilation)
    return unfold.Window(kernel, stride, padding, dilation, tuple(shape[2:]), out)


WIN = _window((3, 4, 7, 6), (3, 2), (2, 1), ((1, 0), (1, 1)), (1, 2))
WIN_STRIDE1 = _window((3, 4, 6, 5), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1))
POOL = _window((3, 4, 7, 6), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1))
TILES = _window((3, 4, 6, 6), (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1))


def _positions(shape):
    return (3, int(np.prod(shape.out_shape)))


def _cases(r, dtype, layout):
    """{kernel name: list of argument tuples} for the fast kernels."""
    def arr(*shape, lay=layout):
        return _laid_out(r.standard_normal(shape).astype(dtype), lay)

    def cm_matrix(rows, cols):  # (rows, cols) whose transpose is C-contiguous, as unfold's patches
        return np.ascontiguousarray(r.standard_normal((cols, rows)).astype(dtype)).T

    with_ones = gemm.empty_with_ones_row(6, 10, dtype)
    with_ones[...] = r.standard_normal((6, 10))
    n, p = _positions(WIN)
    win_max_x = arr(3, 4, 7, 6)
    argmax = pooling.window_max.reference(win_max_x, POOL)[1]
    x_rows = arr(9, 12)
    _, xhat, rstd = normalization.layer_norm_rows.reference(x_rows, None, None, 1e-5)
    return {
        "gemm.affine": [(arr(7, 5), arr(9, 5), arr(9)), (arr(7, 9), arr(4, 9), arr(4)), (arr(7, 5), arr(4, 5)),
                        (cm_matrix(10, 6), arr(4, 6), arr(4)), (cm_matrix(10, 6), arr(4, 6)),
                        (with_ones.T, arr(4, 6), arr(4))],
        "gemm.affine_gradients": [(arr(7, 5), arr(7, 4), True), (arr(7, 5), arr(7, 4), False),
                                  (cm_matrix(3000, 3), cm_matrix(3000, 2), True),
                                  (cm_matrix(10, 6), arr(10, 4), False), (with_ones.T, arr(10, 4), True)],
        "gemm.column_sums": [(arr(7, 4),)],
        "gemm.matmul_long_inner": [(arr(3, 5000), arr(5000, 2)), (arr(3, 10), arr(10, 4))],
        "unfold.unfold": [(arr(3, 4, 7, 6), WIN), (arr(3, 4, 6, 5), WIN_STRIDE1), (arr(2, 3, 9), _window(
            (2, 3, 9), (4,), (3,), ((2, 2),), (2,)))],
        "unfold.fold_product": [(arr(n, p, 5, lay="contiguous"), arr(5, 4 * 6), WIN),
                                (arr(3, 30, 2, lay="contiguous"), arr(2, 4 * 9), WIN_STRIDE1),  # the correlation
                                (_laid_out(r.standard_normal((2, 3 * 30)).astype(dtype), "contiguous").T
                                 .reshape(3, 30, 2), arr(2, 4 * 9), WIN_STRIDE1)],
        "elementwise.relu": [(arr(3, 4, 5),)],
        "elementwise.relu_backward": [(arr(3, 4, 5), arr(3, 4, 5))],
        "elementwise.add_channel_bias": [(arr(3, 4, 5, 2), arr(4))],
        "elementwise.difference": [(arr(3, 4, 5), arr(3, 4, 5))],
        "elementwise.scale": [(arr(3, 4, 5), np.asarray(0.7, dtype))],
        "erf.erf": [(arr(3, 40, 5) * 3,), (np.array([np.nan, np.inf, -np.inf, 0.0], dtype),)],
        "erf.gelu": [(arr(3, 40, 5) * 3,)],
        "erf.gelu_backward": [(arr(3, 40, 5), arr(3, 40, 5), erf.gelu.reference(arr(3, 40, 5))[1])],
        "pooling.window_max": [(win_max_x, POOL), (arr(3, 4, 6, 6), TILES)],
        "pooling.window_max_backward": [(arr(3, 4, *POOL.out_shape), argmax, POOL)],
        "pooling.window_sum": [(arr(3, 4, 7, 6), POOL), (arr(3, 4, 6, 6), TILES)],
        "pooling.window_sum_backward": [(arr(3, 4, *POOL.out_shape), POOL), (arr(3, 4, 3, 3), TILES)],
        "pooling.upsample_nearest": [(arr(3, 4, 5, 2), (2, 3))],
        "pooling.upsample_nearest_backward": [(arr(3, 4, 10, 6), (2, 3)), (arr(3, 4, 10, 6), (1, 3)),
                                              (arr(2, 3, 4, 6, 3), (2, 3, 1)), (arr(3, 4, 9), (3,)),
                                              (arr(3, 4, 4, 2), (1, 1))],
        "normalization.layer_norm_rows": [(x_rows, arr(12), arr(12), 1e-5), (x_rows, None, None, 1e-5)],
        "normalization.layer_norm_rows_backward": [(arr(9, 12), xhat, rstd, arr(12), True, True, True),
                                                   (arr(9, 12), xhat, rstd, None, True, False, False)],
        "reductions.max_keepdims": [(arr(6, 5), -1), (arr(6, 50), -1), (arr(6, 5), 0)],
        "reductions.sum_keepdims": [(arr(6, 5), -1), (arr(6, 50), -1), (arr(6, 5), 0)],
        "reductions.sum_of_squares": [(arr(6, 5),)],
        "buffers.add_adjoints": [(arr(6, 5, lay="contiguous"), arr(6, 5), True), (arr(6, 5), arr(6, 5), False)],
        "buffers.leaf_gradient": [(arr(6, 5),)],
    }


@pytest.fixture(params=["one thread", "split"])
def thread_split(request, split_everything):
    """One thread, or three with every array split."""
    split_everything(1 if request.param == "one thread" else 3)


def _as_list(out):
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_fast_kernel_equals_its_reference(dtype, layout, thread_split):
    kernels = _fast_kernels()
    for seed_offset, name in enumerate(sorted(kernels)):
        k = kernels[name]
        cases = _cases(np.random.default_rng(seed_offset), dtype, layout)
        assert name in cases, f"fast kernel {name} has no test case here"
        for args in cases[name]:
            copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            expected = _as_list(k.reference(*copies))
            got = _as_list(k.fast_version(*args))
            assert len(got) == len(expected), name
            for e, g in zip(expected, got):
                if e is None:
                    assert g is None, name
                    continue
                g = np.asarray(g)
                assert g.shape == np.shape(e), name
                if np.asarray(e).dtype.kind == "f":  # (an argmax may come in a smaller integer type)
                    assert g.dtype == np.asarray(e).dtype, name
                np.testing.assert_allclose(g, e, err_msg=name, equal_nan=True, **TOL[dtype])


def test_fast_leaf_gradient_keeps_fresh_arrays_once_and_copies_views():
    a = np.ones(3)
    assert buffers.leaf_gradient.fast_version(a) is a                 # fresh: kept, no copy
    assert buffers.leaf_gradient.fast_version(a) is not a             # already some .grad: copied
    view = np.ones((2, 3))[0]
    assert buffers.leaf_gradient.fast_version(view).base is None      # a view: copied
    assert buffers.leaf_gradient.reference(np.ones(2)) is not None


def test_pending_adjoints_sum_in_place_only_into_their_own_sums():
    g1, g2, g3 = np.ones(2), np.full(2, 2.0), np.full(2, 3.0)
    with mg.use_kernels("fast"):
        pending = buffers.PendingAdjoints()
        pending.add("a", g1)
        pending.add("a", g2)
        pending.add("a", g3)
        total = pending.pop("a")
    np.testing.assert_array_equal(total, [6.0, 6.0])
    np.testing.assert_array_equal(g1, [1.0, 1.0])                     # the first adjoint is not written to
    assert pending.pop("a") is None and len(pending) == 0


# ------------------------------------------------------------------ attention and recurrent kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked, dropped", [(False, False), (True, False), (True, True)])
def test_fast_attend_agrees_with_reference(rng, dtype, masked, dropped):
    n, h, lq, lk, d, dv = 3, 2, 5, 7, 4, 3
    q, k = (rng.standard_normal((n, h, length, d)).astype(dtype) for length in (lq, lk))
    v = rng.standard_normal((n, h, lk, dv)).astype(dtype)
    keep = (~padding_mask(n, lk, rng)).astype(dtype) if masked else None
    drop = ((rng.random((n, h, lq, lk)) > 0.3) / 0.7).astype(dtype) if dropped else None
    g_out = rng.standard_normal((n, h, lq, dv)).astype(dtype)
    g_weights = rng.standard_normal((n, h, lq, lk)).astype(dtype)
    tol = ATTENTION_TOL[dtype]
    ref_out, ref_weights, ref_backward = att.attend.reference(q, k, v, keep, drop)
    out, weights, backward = att.attend.fast_version(q, k, v, keep, drop)
    close(out, ref_out, tol, "out")
    close(weights(), ref_weights(), tol, "weights")
    for adjoints in (dict(g_out=g_out), dict(g_weights=g_weights), dict(g_out=g_out, g_weights=g_weights)):
        for got, want, name in zip(backward(**adjoints), ref_backward(**adjoints), ("dq", "dk", "dv")):
            assert (got is None) == (want is None), name
            if want is not None:
                close(got, want, tol, f"{name} from {sorted(adjoints)}")


def test_fast_merge_heads_agrees_and_views_a_packed_adjoint(rng):
    n, length, h, d = 2, 5, 3, 4
    packed = rng.standard_normal((n, length, 3 * h * d))
    heads = [att.split_heads(block, h) for block in packed.reshape(n, length, 3, -1).transpose(2, 0, 1, 3)]
    merged = att.merge_heads.fast_version(*heads)
    np.testing.assert_array_equal(merged, att.merge_heads.reference(*heads))
    np.testing.assert_array_equal(merged, packed)
    assert np.shares_memory(merged, packed)  # the packed layout is merged without a copy
    apart = [np.ascontiguousarray(a) for a in heads]  # no common buffer: joined by a copy
    np.testing.assert_array_equal(att.merge_heads.fast_version(*apart), packed)
    np.testing.assert_array_equal(att.merge_heads.fast_version(heads[1]), packed[..., h * d:2 * h * d])


@pytest.fixture(params=[1, 3])
def step_runs(request, monkeypatch):
    """The fast kernels' work over all steps on one thread, or cut into 3 runs of steps on 3 threads."""
    monkeypatch.setattr(threads, "_available_cores", lambda: 3)
    monkeypatch.setitem(threads._state, "n", request.param)
    assert threads.large_parts() == request.param
    return request.param


def _cells(kind, forward_path, backward_path, inputs, g_out, g_hn, g_cn):
    """Forward then backward through one cell's kernels, each on the path named (reference or fast)."""
    xs, w_ih, bias, w_hh, h0, c0 = inputs
    pick = {"reference": lambda k: k.reference, "fast": lambda k: k.fast_version}
    if kind == "lstm":
        saved = pick[forward_path](R.lstm_forward_steps)(xs, w_ih, bias, w_hh, h0, c0)
        *back, sums = pick[backward_path](R.lstm_backward_steps)(*saved, xs, w_hh, g_out, g_hn, g_cn)
    else:
        saved = (pick[forward_path](R.rnn_forward_steps)(xs, w_ih, bias, w_hh, h0, kind),)
        *back, sums = pick[backward_path](R.rnn_backward_steps)(*saved, xs, w_hh, g_out, g_hn, kind)
    return (*saved, *back, *sums)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", RECURRENT_KINDS)
@pytest.mark.parametrize("with_outputs", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("paths", [("fast", "fast"), ("fast", "reference"), ("reference", "fast")])
def test_fast_cells_agree_with_reference(kind, dtype, with_outputs, with_bias, paths, step_runs):
    """Fast kernels against the reference, also handing each other's arrays on (fast forward ->
    reference backward and back: their outputs' memory layouts differ, their values may not)."""
    rng = np.random.default_rng(1)
    T, N, I, H = 7, 3, 4, 5
    width = 4 * H if kind == "lstm" else H
    xs = rng.standard_normal((T, N, I)).astype(dtype)
    w_ih = (rng.standard_normal((width, I)) / np.sqrt(I)).astype(dtype)
    w_hh = (rng.standard_normal((width, H)) / np.sqrt(H)).astype(dtype)
    bias = rng.standard_normal(width).astype(dtype) if with_bias else None
    h0, c0, g_hn, g_cn = (rng.standard_normal((N, H)).astype(dtype) for _ in range(4))
    g_out = None
    if with_outputs:  # the adjoint of a batch-first output, as the op passes it on: a (T, N, H) view
        g_out = np.ascontiguousarray(rng.standard_normal((T, N, H)).astype(dtype).transpose(1, 0, 2)).transpose(1, 0, 2)
    inputs = (xs, w_ih, bias, w_hh, h0, c0)
    want = _cells(kind, "reference", "reference", inputs, g_out, g_hn, g_cn)
    got = _cells(kind, *paths, inputs, g_out, g_hn, g_cn)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, **tol)


def test_fast_step_adjoints_are_laid_out_for_products_over_steps():
    """The fast backward's D, reshaped to (T N, G) as the op does for the input gradient, is a view
    whose transpose is contiguous (one BLAS product, no copy)."""
    rng = np.random.default_rng(2)
    T, N, I, H = 6, 3, 4, 5
    xs = rng.standard_normal((T, N, I))
    w_ih, w_hh = rng.standard_normal((4 * H, I)), rng.standard_normal((4 * H, H))
    h0 = c0 = g_hn = np.zeros((N, H))
    saved = R.lstm_forward_steps.fast_version(xs, w_ih, None, w_hh, h0, c0)
    D = R.lstm_backward_steps.fast_version(*saved, xs, w_hh, None, g_hn, None)[0]
    D2 = D.reshape(T * N, 4 * H)
    assert np.shares_memory(D, D2) and D2.T.flags.c_contiguous
    hs = saved[1]
    assert hs.flags.c_contiguous  # the op's output and h_{t-1} in the reference's layout


# ------------------------------------------------------------------ the reference path is complete
def _layers():
    """(name, layer, input shape) for every layer whose op lives in these kernels' ops."""
    f64 = dict(dtype=np.float64)
    return [
        ("Linear", nn.Linear(5, 4, **f64), (3, 2, 5)),
        ("Linear wide", nn.Linear(2, 9, **f64), (3, 2)),
        ("Conv1d", nn.Conv1d(3, 4, 3, padding=1, **f64), (2, 3, 7)),
        ("Conv2d", nn.Conv2d(3, 4, 3, stride=2, padding=1, **f64), (2, 3, 7, 6)),
        ("Conv3d", nn.Conv3d(2, 3, 2, **f64), (2, 2, 4, 3, 4)),
        ("ConvTranspose2d", nn.ConvTranspose2d(3, 2, 3, stride=2, **f64), (2, 3, 4, 4)),
        ("ConvTranspose1d", nn.ConvTranspose1d(3, 2, 3, **f64), (2, 3, 5)),
        ("MaxPool2d", nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 7)),
        ("AvgPool2d", nn.AvgPool2d(2, padding=1, count_include_pad=False), (2, 3, 5, 5)),
        ("Upsample", nn.Upsample(scale_factor=2), (2, 3, 3, 3)),
        ("LayerNorm", nn.LayerNorm(6, dtype=np.float64), (3, 4, 6)),
        ("ReLU", nn.ReLU(), (3, 5)),
        ("GELU", nn.GELU(), (3, 5)),
        ("Tanh", nn.Tanh(), (3, 5)),
        ("Sigmoid", nn.Sigmoid(), (3, 5)),
        ("Softmax", nn.Softmax(-1), (3, 5)),
        ("Flatten", nn.Flatten(), (3, 2, 2)),
        ("Dropout", nn.Dropout(0.3), (3, 5)),
    ]


@pytest.fixture
def fast_kernels_and_splits_forbidden(monkeypatch, split_everything):
    """Every fast kernel and every thread split raises; minigrad would split every array over 3 threads."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a fast kernel or a thread split ran on the reference path")

    for k in _fast_kernels().values():
        monkeypatch.setattr(k, "fast_version", forbidden)
    for name in ("run_parts", "run_items", "run_blocks", "elementwise", "matmul_split_inner"):
        monkeypatch.setattr(threads, name, forbidden)
    split_everything(3)


def test_reference_path_runs_every_layer_without_fast_kernels_or_threads(fast_kernels_and_splits_forbidden):
    rng = np.random.default_rng(0)
    with mg.use_kernels("reference"):
        for name, layer, shape in _layers():
            x = mg.tensor(rng.standard_normal(shape), dtype=np.float64, requires_grad=True)
            y = layer(x)
            (y * mg.tensor(rng.standard_normal(y.shape), dtype=np.float64)).sum().backward()
            assert x.grad is not None and x.grad.shape == x.shape, name
        emb = nn.Embedding(7, 3, dtype=np.float64)
        emb(np.array([[1, 2], [2, 6]])).sum().backward()
        logits = mg.tensor(rng.standard_normal((4, 3)), dtype=np.float64, requires_grad=True)
        losses = (nn.functional.mse_loss(logits, np.zeros((4, 3))),
                  nn.functional.cross_entropy(logits, np.array([0, 2, 1, 1])),
                  nn.functional.binary_cross_entropy_with_logits(logits, np.ones((4, 3))))
        sum(losses[1:], losses[0]).backward()
        assert emb.weight.grad is not None and logits.grad is not None


def test_reference_path_matches_the_fast_path_end_to_end():
    """A small CNN's loss and every gradient agree between the two paths (float64)."""
    def run(path):
        mg.manual_seed(3)
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, dtype=np.float64), nn.ReLU(), nn.MaxPool2d(2),
                              nn.ConvTranspose2d(4, 2, 2, stride=2, dtype=np.float64), nn.GELU(), nn.Flatten(),
                              nn.Linear(2 * 36, 3, dtype=np.float64))
        x = mg.tensor(np.random.default_rng(1).standard_normal((5, 2, 6, 6)), dtype=np.float64)
        with mg.use_kernels(path):
            loss = nn.functional.cross_entropy(model(x), np.array([0, 1, 2, 0, 1]))
            loss.backward()
        return [loss.numpy()] + [p.grad for p in model.parameters()]

    for ref, fast in zip(run("reference"), run("fast")):
        np.testing.assert_allclose(fast, ref, **TOL[np.float64])


def test_reference_path_runs_no_fast_attention_kernel(rng, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a fast kernel ran under use_kernels('reference')")

    for k in (att.attend, att.merge_heads):
        monkeypatch.setattr(k, "fast_version", refuse)
    layer = TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1, dtype=np.float64,
                                    generator=np.random.default_rng(0))
    mha = MultiheadAttention(8, 2, dtype=np.float64)
    x = mg.tensor(rng.standard_normal((2, 5, 8)), dtype=np.float64, requires_grad=True)
    y = mg.tensor(rng.standard_normal((2, 3, 8)), dtype=np.float64, requires_grad=True)
    with mg.use_kernels("reference"):
        out, weights = mha(y, x, x, key_padding_mask=padding_mask(2, 5, rng))
        (layer(x).sum() + out.sum() + weights.sum()).backward()
    assert x.grad is not None and y.grad is not None
    with pytest.raises(AssertionError, match="fast kernel ran"), mg.use_kernels("fast"):
        mha(x, x, x)


def test_reference_path_runs_no_fast_recurrent_kernel(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a fast kernel ran under use_kernels('reference')")

    for k in (R.rnn_forward_steps, R.rnn_backward_steps, R.lstm_forward_steps, R.lstm_backward_steps):
        monkeypatch.setattr(k, "fast_version", refuse)
    rng = np.random.default_rng(2)
    x = mg.tensor(rng.standard_normal((2, 4, 3)), dtype=np.float64, requires_grad=True)
    for module in (RNN(3, 5, dtype=np.float64), LSTM(3, 5, num_layers=2, dtype=np.float64)):
        with mg.use_kernels("reference"):
            out, _ = module(x)
            out.sum().backward()
        with pytest.raises(AssertionError, match="fast kernel ran"), mg.use_kernels("fast"):
            module(x)
    assert x.grad is not None


# ------------------------------------------------------------------ the switch
def test_use_kernels_as_a_context_manager_restores_the_previous_path():
    start = mg.active_kernels()
    with mg.use_kernels("reference"):
        assert mg.active_kernels() == "reference"
        with mg.use_kernels("fast"):
            assert mg.active_kernels() == "fast"
        assert mg.active_kernels() == "reference"
        with pytest.raises(RuntimeError, match="inside"):
            with mg.use_kernels("fast"):
                raise RuntimeError("inside")
        assert mg.active_kernels() == "reference"
    assert mg.active_kernels() == start
    with pytest.raises(ValueError, match="unknown kernel path 'quick'"):
        mg.use_kernels("quick")


def _python_with(variable, code):
    env = dict(os.environ, MINIGRAD_KERNELS=variable)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_environment_variable_sets_the_path_and_rejects_unknown_values():
    ok = _python_with("reference", "import minigrad; print(minigrad.active_kernels())")
    assert ok.returncode == 0 and ok.stdout.strip() == "reference", ok.stderr
    bad = _python_with("bogus", "import minigrad")
    assert bad.returncode != 0
    assert "ValueError: MINIGRAD_KERNELS='bogus' is not a kernel path: use one of reference, fast" in bad.stderr

