"""Conv/ConvTranspose 1-3D, pooling and upsampling: PyTorch oracle (outputs and every
gradient), hypothesis-generated geometries, gradcheck, per-position factors and errors."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad.nn import Flatten, Linear, ReLU, Sequential
from minigrad.nn.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from minigrad.nn.pool import AvgPool1d, AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d, MaxPool3d, Upsample
from minigrad.ops import conv as C
from minigrad.ops import pool as P
from tests.conftest import require_torch

pytestmark = pytest.mark.usefixtures("kernel_path")  # every test on the reference and the fast kernels

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}
CONV = {1: Conv1d, 2: Conv2d, 3: Conv3d}
CONV_T = {1: ConvTranspose1d, 2: ConvTranspose2d, 3: ConvTranspose3d}
MAXPOOL = {1: MaxPool1d, 2: MaxPool2d, 3: MaxPool3d}
AVGPOOL = {1: AvgPool1d, 2: AvgPool2d, 3: AvgPool3d}
SIZE = {1: 11, 2: 7, 3: 5}  # spatial size per dimension count, small enough for 3-D


def to_np(a):
    return mg.backend.to_numpy(a)


def torch_twin(mm, torch_module, dtype):
    """Copy the torch module's weights into the minigrad module and cast both to ``dtype``."""
    torch = require_torch()
    tm = torch_module.to(torch.float64 if dtype == np.float64 else torch.float32)
    mm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm


def run_both(mm, tm, x, dtype, device="cpu", seed=1):
    """Forward + backward of sum(u * module(x)) on both sides; returns (torch, minigrad) dicts of arrays."""
    torch = require_torch()
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    tx = torch.tensor(x, dtype=tdtype, requires_grad=True)
    mx = mg.tensor(x, dtype=dtype, device=device, requires_grad=True)
    tout = tm(tx)
    mout = mm(mx)
    u = np.random.default_rng(seed).standard_normal(tuple(tout.shape))
    (tout * torch.tensor(u, dtype=tdtype)).sum().backward()
    (mout * mg.tensor(u, dtype=dtype, device=device)).sum().backward()
    t_res = {"out": tout.detach().numpy(), "grad_x": tx.grad.numpy()}
    m_res = {"out": mout.numpy(), "grad_x": to_np(mx.grad)}
    t_params = dict(tm.named_parameters())
    for name, p in mm.named_parameters():
        t_res["grad_" + name] = t_params[name].grad.numpy()
        m_res["grad_" + name] = to_np(p.grad)
    return t_res, m_res


def assert_match(t_res, m_res, dtype):
    assert t_res.keys() == m_res.keys()
    for key in t_res:
        assert m_res[key].shape == t_res[key].shape, key
        np.testing.assert_allclose(m_res[key], t_res[key], **TOL[dtype], err_msg=key)


# ------------------------------------------------------------ PyTorch oracle: layers and options
CONV_OPTIONS = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(1, 2, 3), padding=(2, 0, 1), dilation=(2, 1, 1)),
    dict(padding="same", dilation=2, bias=False),
    dict(padding="valid", stride=3),
    dict(kernel_size=(2, 3, 1), padding="same"),  # even kernel: asymmetric 'same' padding
]


def _per_dim(options, d):
    """Trim 3-tuples in an options dict to ``d`` entries."""
    return {k: (v[:d] if isinstance(v, tuple) else v) for k, v in options.items()}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's note about itself
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", CONV_OPTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_matches_torch(d, options, dtype, device, rng):
    torch = require_torch()
    opts = _per_dim(options, d)
    kernel = opts.pop("kernel_size", 3)
    torch.manual_seed(0)
    tm = getattr(torch.nn, f"Conv{d}d")(3, 4, kernel, **opts)
    mm = CONV[d](3, 4, kernel, **opts, dtype=dtype)
    tm = torch_twin(mm, tm, dtype)
    x = rng.standard_normal((2, 3) + (SIZE[d],) * d)
    assert_match(*run_both(mm.to(device), tm, x, dtype, device), dtype)


CONV_T_OPTIONS = [
    dict(),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(1, 2, 3), padding=(1, 0, 2), output_padding=(0, 1, 2), dilation=(2, 1, 1)),
    dict(stride=2, dilation=3, output_padding=2, bias=False),  # output_padding >= stride, < dilation
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", CONV_T_OPTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_transpose_matches_torch(d, options, dtype, device, rng):
    torch = require_torch()
    opts = _per_dim(options, d)
    torch.manual_seed(0)
    tm = getattr(torch.nn, f"ConvTranspose{d}d")(3, 4, 3, **opts)
    mm = CONV_T[d](3, 4, 3, **opts, dtype=dtype)
    tm = torch_twin(mm, tm, dtype)
    x = rng.standard_normal((2, 3) + (SIZE[d] - 2,) * d)
    assert_match(*run_both(mm.to(device), tm, x, dtype, device), dtype)


POOL_OPTIONS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2, 2), stride=1, padding=(1, 0, 1)),
    dict(kernel_size=2, stride=3),  # gaps between windows
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", POOL_OPTIONS + [dict(kernel_size=3, stride=1, padding=1, dilation=2)])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_max_pool_matches_torch(d, options, dtype, device, rng):
    torch = require_torch()
    opts = _per_dim(options, d)
    tm = getattr(torch.nn, f"MaxPool{d}d")(**opts)
    x = rng.standard_normal((2, 3) + (SIZE[d] + 1,) * d)
    assert_match(*run_both(MAXPOOL[d](**opts), tm, x, dtype, device), dtype)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("options", POOL_OPTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_avg_pool_matches_torch(d, options, count_include_pad, device, rng):
    torch = require_torch()
    opts = _per_dim(options, d)
    tm = getattr(torch.nn, f"AvgPool{d}d")(**opts, count_include_pad=count_include_pad)
    x = rng.standard_normal((2, 3) + (SIZE[d] + 1,) * d)
    mm = AVGPOOL[d](**opts, count_include_pad=count_include_pad)
    assert_match(*run_both(mm, tm, x, np.float64, device), np.float64)


@pytest.mark.parametrize("scale", [2, 3, (1, 2, 3)])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_upsample_matches_torch(d, scale, device, rng):
    torch = require_torch()
    scale = scale[:d] if isinstance(scale, tuple) else scale
    tm = torch.nn.Upsample(scale_factor=scale, mode="nearest")
    x = rng.standard_normal((2, 3) + (4,) * d)
    for dtype in (np.float64, np.float32):
        assert_match(*run_both(Upsample(scale_factor=scale), tm, x, dtype, device), dtype)
    sized = (8,) * d if d > 1 else 8  # size= as an integer multiple of the input
    assert_match(*run_both(Upsample(size=sized), torch.nn.Upsample(size=sized), x, np.float64, device), np.float64)


def test_max_pool_ties_and_nan_follow_torch(device):
    """Ties route the gradient to the first maximum; a NaN is the maximum (the last NaN of a window)."""
    torch = require_torch()
    x = np.array([[[[1.0, 1.0, 0.0, 2.0, 5.0, np.nan],
                    [1.0, 0.0, 2.0, 2.0, np.nan, 5.0],
                    [3.0, 3.0, 3.0, 3.0, np.nan, np.nan],
                    [3.0, 3.0, 3.0, 3.0, 0.0, np.nan]]]])
    for opts in (dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1)):
        t_res, m_res = run_both(MaxPool2d(**opts), torch.nn.MaxPool2d(**opts), x, np.float64, device)
        np.testing.assert_array_equal(m_res["out"], t_res["out"])
        np.testing.assert_allclose(m_res["grad_x"], t_res["grad_x"], rtol=1e-12, atol=0)  # same routing


def test_max_pool_with_more_than_255_offsets_matches_torch(rng):
    torch = require_torch()
    x = rng.standard_normal((2, 2, 700))
    assert_match(*run_both(MaxPool1d(300, stride=100), torch.nn.MaxPool1d(300, stride=100), x, np.float64),
                 np.float64)


def test_blocked_col2im_matches_one_block(monkeypatch, rng):
    """The CPU path folds the columns back in blocks of samples; one sample per block gives the same."""
    torch = require_torch()
    torch.manual_seed(0)
    x = rng.standard_normal((5, 3, 6, 7))
    for tm, mm in [(torch.nn.Conv2d(3, 4, 3, stride=(1, 2), padding=1), Conv2d(3, 4, 3, (1, 2), 1, dtype=np.float64)),
                   (torch.nn.ConvTranspose2d(3, 4, 3, stride=2), ConvTranspose2d(3, 4, 3, 2, dtype=np.float64))]:
        tm = torch_twin(mm, tm, np.float64)
        monkeypatch.setattr("minigrad.kernels.unfold.CACHE_BLOCK_BYTES", 1)
        assert_match(*run_both(mm, tm, x, np.float64), np.float64)
        monkeypatch.undo()


def test_fold_is_the_adjoint_of_unfold(xp, rng):
    """<unfold(x), c> == <x, fold(c)> for any geometry (the identity backward relies on), on the
    active kernel path; the fast path's channel-major unfolding holds the same patches."""
    from minigrad.kernels import unfold as U

    geometries = [((2, 3, 7, 6), (3, 2), (2, 1), ((1, 0), (2, 1)), (1, 2)),
                  ((1, 2, 9), (4,), (3,), ((2, 2),), (2,)),
                  ((2, 1, 4, 5, 3), (2, 3, 1), (1, 2, 1), ((0, 1),) * 3, (1, 1, 1))]
    for shape, kernel, stride, padding, dilation in geometries:
        x = xp.asarray(rng.standard_normal(shape))
        out = U.output_shape(shape[2:], kernel, stride, padding, dilation)
        window = U.Window(kernel, stride, padding, dilation, shape[2:], out)
        A = U.unfold(x, window)
        assert A.shape == (shape[0], int(np.prod(out)), shape[1] * int(np.prod(kernel)))
        col = U.unfold_channel_major(x, window)
        assert col.shape == (shape[1],) + kernel + (shape[0],) + out
        np.testing.assert_array_equal(to_np(col.reshape(A.shape[2], shape[0], -1).transpose(1, 2, 0)), to_np(A))
        c = xp.asarray(rng.standard_normal(A.shape))
        back = U.fold(c, window)
        assert back.shape == shape
        assert float((A * c).sum()) == pytest.approx(float((x * back).sum()), rel=1e-12)


@pytest.mark.parametrize("blocks", ["one", "many"])
def test_fold_of_product_routes_match_the_definition(blocks, monkeypatch, rng):
    """fold_of_product folds w @ m (the definition) or, at stride 1 with F <= channels,
    correlates m with the flipped kernel; both must equal fold of the full product."""
    from minigrad.kernels import unfold as U

    if blocks == "many":
        monkeypatch.setattr(U, "CACHE_BLOCK_BYTES", 1)
    # (n, channels, F, kernel, in_shape, padding, dilation, extra): extra rows/cols of in_shape beyond
    # what the windows cover (ConvTranspose's output_padding)
    geometries = [(3, 5, 2, (3, 3), (6, 7), ((1, 1), (1, 1)), (1, 1), (0, 0)),
                  (2, 4, 4, (3, 2), (7, 5), ((2, 0), (0, 1)), (2, 1), (0, 0)),
                  (4, 3, 1, (4,), (9,), ((0, 0),), (1,), (1,)),
                  (2, 2, 2, (2, 3, 1), (3, 5, 2), ((1, 1), (0, 2), (0, 0)), (1, 2, 1), (0, 0, 0)),
                  (2, 3, 6, (3, 3), (5, 5), ((1, 1), (1, 1)), (1, 1), (0, 0))]  # F > channels: the fold
    taken = []
    real = U.flipped_correlation
    monkeypatch.setattr(U, "flipped_correlation", lambda *a: taken.append(1) or real(*a))
    for n, channels, f, kernel, in_shape, padding, dilation, extra in geometries:
        unit = (1,) * len(kernel)
        covered = tuple(i - e for i, e in zip(in_shape, extra))
        out_shape = U.output_shape(covered, kernel, unit, padding, dilation)
        w = rng.standard_normal((channels * int(np.prod(kernel)), f))
        m = rng.standard_normal((f, n * int(np.prod(out_shape))))
        cols = (w @ m).reshape(channels * int(np.prod(kernel)), n, -1).transpose(1, 2, 0)   # (n, P, C * K)
        expected = U.fold(cols, U.Window(kernel, unit, padding, dilation, covered, out_shape))
        expected = np.pad(expected, ((0, 0), (0, 0)) + tuple((0, e) for e in extra))
        got = U.fold_of_product(w, m, n, channels, U.Window(kernel, unit, padding, dilation, in_shape, out_shape))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert len(taken) == 4  # every geometry but the last took the correlation route


@pytest.mark.parametrize("layout", ["c_order", "channel_major"])
def test_unfold_by_flat_shifts_matches_the_reference(layout, monkeypatch, rng):
    """2-D stride-1 windows with rows as wide as the input are unfolded as one shifted run per
    kernel offset (the row ends then zeroed): the same patches as the reference, split over
    samples or not."""
    from minigrad.kernels import threads
    from minigrad.kernels import unfold as U

    # (shape, kernel, padding, dilation): every one keeps the output rows as wide as the input's
    geometries = [((3, 2, 5, 6), (3, 3), ((1, 1), (1, 1)), (1, 1)),
                  ((2, 3, 4, 5), (3, 2), ((0, 2), (1, 0)), (1, 1)),
                  ((2, 2, 6, 7), (2, 3), ((1, 1), (2, 2)), (2, 2)),
                  ((2, 1, 3, 4), (1, 5), ((0, 0), (4, 0)), (1, 1)),
                  ((2, 2, 4, 1), (3, 3), ((1, 1), (1, 1)), (1, 1))]
    for split in (False, True):
        if split:  # one range of samples per thread
            monkeypatch.setattr(threads, "parts_for", lambda nbytes, xp=np: 2)
        for shape, kernel, padding, dilation in geometries:
            n, c = shape[:2]
            x = rng.standard_normal(shape)
            if layout == "channel_major":
                x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
            out = U.output_shape(shape[2:], kernel, (1, 1), padding, dilation)
            window = U.Window(kernel, (1, 1), padding, dilation, shape[2:], out)
            assert U.rows_run_on(window) and out[1] == shape[3]
            col = U.unfold_channel_major(x, window)
            expected = U.unfold.reference(x, window)                 # (N, P, C * K)
            np.testing.assert_array_equal(col.reshape(expected.shape[2], n, -1).transpose(1, 2, 0), expected)


def test_shifted_fold_of_product_matches_the_definition(monkeypatch, rng):
    """At stride 1 the fold of w @ m runs as one contiguous add per kernel offset and sample
    (columns laid out with the padded input's pitches); with a kernel equal to the stride the
    fold copies instead of adding. Both equal fold of the full product, in 1-3 dimensions."""
    from minigrad.kernels import unfold as U

    monkeypatch.setattr(U, "correlation_pays", lambda *a: False)
    taken = []
    real = U.shifted_fold_of_product
    monkeypatch.setattr(U, "shifted_fold_of_product", lambda *a: taken.append(1) or real(*a))
    # (n, channels, F, kernel, stride, in_shape, padding, dilation, extra)
    geometries = [(3, 2, 5, (3, 3), (1, 1), (6, 7), ((1, 1), (1, 1)), (1, 1), (0, 0)),
                  (2, 4, 4, (3, 2), (1, 1), (7, 5), ((2, 0), (0, 1)), (2, 1), (0, 0)),
                  (4, 3, 1, (4,), (1,), (9,), ((0, 0),), (1,), (1,)),
                  (2, 2, 2, (2, 3, 1), (1, 1, 1), (3, 5, 2), ((1, 1), (0, 2), (0, 0)), (1, 2, 1), (0, 0, 0)),
                  (2, 3, 2, (3, 3), (1, 1), (6, 6), ((1, 1), (0, 0)), (1, 1), (0, 1)),
                  (3, 2, 3, (2, 2), (2, 2), (6, 4), ((0, 0), (0, 0)), (1, 1), (0, 0))]   # tiles: a copy
    for blocks in (1 << 21, 1):
        monkeypatch.setattr(U, "CACHE_BLOCK_BYTES", blocks)
        for n, channels, f, kernel, stride, in_shape, padding, dilation, extra in geometries:
            covered = tuple(i - e for i, e in zip(in_shape, extra))
            out_shape = U.output_shape(covered, kernel, stride, padding, dilation)
            w = rng.standard_normal((channels * int(np.prod(kernel)), f))
            m = rng.standard_normal((f, n * int(np.prod(out_shape))))
            cols = (w @ m).reshape(channels * int(np.prod(kernel)), n, -1).transpose(1, 2, 0)
            expected = U.fold(cols, U.Window(kernel, stride, padding, dilation, covered, out_shape))
            expected = np.pad(expected, ((0, 0), (0, 0)) + tuple((0, e) for e in extra))
            window = U.Window(kernel, stride, padding, dilation, in_shape, out_shape)
            assert U.tiles(window) == (stride != (1,) * len(stride))
            got = U.fold_of_product(w, m, n, channels, window)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert len(taken) == 2 * 5  # every stride-1 geometry, both block sizes


def test_unbatched_input_matches_torch(device, rng):
    torch = require_torch()
    torch.manual_seed(0)
    for mm, tm, shape in [
        (Conv2d(3, 2, 3, padding=1, dtype=np.float64), torch.nn.Conv2d(3, 2, 3, padding=1), (3, 5, 6)),
        (ConvTranspose1d(3, 2, 3, stride=2, dtype=np.float64), torch.nn.ConvTranspose1d(3, 2, 3, stride=2), (3, 5)),
        (MaxPool2d(2), torch.nn.MaxPool2d(2), (3, 4, 6)),
        (AvgPool1d(3, 1, 1), torch.nn.AvgPool1d(3, 1, 1), (3, 7)),
    ]:
        tm = torch_twin(mm, tm, np.float64)
        assert_match(*run_both(mm.to(device), tm, rng.standard_normal(shape), np.float64, device), np.float64)


def test_small_cnn_trains_like_torch(device):
    """Two SGD steps of a conv -> pool -> conv-transpose -> linear model match PyTorch (float32)."""
    torch = require_torch()
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                             torch.nn.ConvTranspose2d(4, 2, 2, stride=2), torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                             torch.nn.Linear(2 * 4 * 4, 3))
    mm = Sequential(Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), ConvTranspose2d(4, 2, 2, stride=2),
                    AvgPool2d(2), Flatten(), Linear(2 * 4 * 4, 3))
    mm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    mm.to(device)
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((6, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 6)
    topt, mopt = torch.optim.SGD(tm.parameters(), lr=0.1), mg.optim.SGD(mm.parameters(), lr=0.1)
    mx, mlabels = mg.tensor(x, device=device), mg.backend.to_device(labels, device)
    for _ in range(2):
        topt.zero_grad()
        mopt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(labels))
        mloss = mg.nn.functional.cross_entropy(mm(mx), mlabels)
        tloss.backward()
        mloss.backward()
        topt.step()
        mopt.step()
        assert mloss.item() == pytest.approx(tloss.item(), rel=1e-5)
    for name, p in mm.named_parameters():
        np.testing.assert_allclose(p.numpy(), tm.state_dict()[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


# ------------------------------------------------------------ hypothesis: arbitrary conv geometries
@st.composite
def conv_cases(draw, d, transposed):
    """(x shape, weight shape, options) of a valid (transposed) convolution with small sizes."""
    n, c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dims = st.integers(1, 3)
    kernel = tuple(draw(dims) for _ in range(d))
    stride = tuple(draw(dims) for _ in range(d))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(d))
    small = {1: 9, 2: 7, 3: 4}[d]
    if transposed:
        padding = tuple(draw(st.integers(0, dl * (k - 1))) for k, dl in zip(kernel, dilation))
        output_padding = tuple(draw(st.integers(0, max(s, dl) - 1)) for s, dl in zip(stride, dilation))
        size = []
        for k, s, p, op, dl in zip(kernel, stride, padding, output_padding, dilation):
            low = max(1, -(-(2 * p - dl * (k - 1) - op) // s) + 1)  # smallest input giving output >= 1
            size.append(draw(st.integers(low, max(low, small))))
        return (n, c_in) + tuple(size), (c_in, c_out) + kernel, dict(stride=stride, padding=padding,
                                                                    output_padding=output_padding, dilation=dilation)
    padding = tuple(draw(st.integers(0, 2)) for _ in range(d))
    size = tuple(draw(st.integers(max(1, dl * (k - 1) + 1 - 2 * p), max(1, dl * (k - 1) + 1 - 2 * p) + small))
                 for k, p, dl in zip(kernel, padding, dilation))
    return (n, c_in) + size, (c_out, c_in) + kernel, dict(stride=stride, padding=padding, dilation=dilation)


def _check_functional(x_shape, w_shape, opts, transposed, seed):
    torch = require_torch()
    rng = np.random.default_rng(seed)
    d = len(w_shape) - 2
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1] if transposed else w_shape[0])
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    mx, mw, mb = (mg.tensor(a, dtype=np.float64, requires_grad=True) for a in (x, w, b))
    tfn = getattr(torch.nn.functional, f"conv_transpose{d}d" if transposed else f"conv{d}d")
    mfn = getattr(C, f"conv_transpose{d}d" if transposed else f"conv{d}d")
    tout, mout = tfn(tx, tw, tb, **opts), mfn(mx, mw, mb, **opts)
    assert mout.shape == tuple(tout.shape)
    u = rng.standard_normal(mout.shape)
    (tout * torch.tensor(u)).sum().backward()
    (mout * mg.tensor(u, dtype=np.float64)).sum().backward()
    for mine, theirs in [(mout.numpy(), tout.detach()), (mx.grad, tx.grad), (mw.grad, tw.grad), (mb.grad, tb.grad)]:
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-10)


HYPOTHESIS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_geometries_match_torch(d):
    @HYPOTHESIS
    @given(case=conv_cases(d, transposed=False), seed=st.integers(0, 2**16))
    def check(case, seed):
        _check_functional(*case, transposed=False, seed=seed)

    check()


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_transpose_geometries_match_torch(d):
    @HYPOTHESIS
    @given(case=conv_cases(d, transposed=True), seed=st.integers(0, 2**16))
    def check(case, seed):
        _check_functional(*case, transposed=True, seed=seed)

    check()


# ------------------------------------------------------------ gradcheck on tiny cases
def _leaf(rng, shape, device="cpu"):
    return mg.tensor(rng.standard_normal(shape), dtype=np.float64, device=device, requires_grad=True)


def test_gradcheck_conv_and_transpose(rng):
    x, w, b = _leaf(rng, (2, 2, 5, 4)), _leaf(rng, (3, 2, 2, 3)), _leaf(rng, (3,))
    assert mg.gradcheck(lambda x, w, b: C.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)), x, w, b)
    x1, w1 = _leaf(rng, (2, 2, 6)), _leaf(rng, (2, 3, 3))
    assert mg.gradcheck(lambda x, w: C.conv_transpose1d(x, w, stride=2, padding=1, output_padding=1), x1, w1)
    x3, w3 = _leaf(rng, (1, 1, 3, 4, 3)), _leaf(rng, (2, 1, 2, 2, 2))
    assert mg.gradcheck(lambda x, w: C.conv3d(x, w, padding=(1, 0, 1)), x3, w3)


def test_gradcheck_pooling_and_upsample(rng):
    x = _leaf(rng, (2, 2, 5, 5))  # distinct random values: no ties for max pooling
    assert mg.gradcheck(lambda x: P.max_pool2d(x, 3, stride=2, padding=1), x)
    assert mg.gradcheck(lambda x: P.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False), x)
    assert mg.gradcheck(lambda x: P.upsample_nearest(x, (2, 3)), x)


# ------------------------------------------------------------ factors (paper eq. 1) per position
def _factor_model(d, transposed, dtype=np.float64):
    layer = (CONV_T if transposed else CONV)[d](2, 3, 2, stride=2, padding=1, dtype=dtype)
    mg.manual_seed(3)
    return Sequential(layer, ReLU(), Flatten())


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_factors_give_weight_gradient(d, device, rng):
    model = _factor_model(d, transposed=False).to(device)
    x = mg.tensor(rng.standard_normal((3, 2) + (5,) * d), dtype=np.float64, device=device)
    with mg.capture_factors(model) as factors:
        out = model(x)
        (out * mg.tensor(rng.standard_normal(out.shape), dtype=np.float64, device=device)).sum().backward()
    f = factors["0.weight"]
    positions = 3 ** d  # (5 + 2 - 2) // 2 + 1 = 3 per axis
    assert f.A.shape == (3, positions, 2 * 2 ** d) and f.D.shape == (3, positions, 3)
    grad = model[0].weight.grad
    np.testing.assert_allclose(np.einsum("npo,npi->oi", to_np(f.D), to_np(f.A)), to_np(grad).reshape(3, -1),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_np(f.gradient()), to_np(grad).reshape(3, -1), rtol=1e-10, atol=1e-12)
    assert "0.bias" not in factors  # biases are not multiplied: no factors


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_transpose_factors_map_to_weight_gradient(d, device, rng):
    """ConvTranspose: A = input per input position, D = im2col of the output adjoint;
    weight.grad (c_in, c_out, *k) == gradient().T reshaped."""
    model = _factor_model(d, transposed=True).to(device)
    x = mg.tensor(rng.standard_normal((3, 2) + (4,) * d), dtype=np.float64, device=device)
    with mg.capture_factors(model) as factors:
        out = model(x)
        (out * mg.tensor(rng.standard_normal(out.shape), dtype=np.float64, device=device)).sum().backward()
    f = factors["0.weight"]
    assert f.A.shape == (3, 4 ** d, 2) and f.D.shape == (3, 4 ** d, 3 * 2 ** d)
    weight = model[0].weight
    expected = to_np(weight.grad)
    np.testing.assert_allclose(to_np(f.gradient()).T.reshape(weight.shape), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.einsum("npo,npi->io", to_np(f.D), to_np(f.A)).reshape(weight.shape), expected,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("transposed", [False, True])
def test_per_sample_factors_match_one_backward_per_sample(transposed, rng):
    """Sample n's share sum_p D[n,p]^T A[n,p] is the gradient of a backward on sample n alone."""
    model = _factor_model(2, transposed)
    x = rng.standard_normal((4, 2, 5, 5))
    u = rng.standard_normal(model(mg.tensor(x, dtype=np.float64)).shape)
    with mg.capture_factors(model) as factors:
        (model(mg.tensor(x, dtype=np.float64)) * mg.tensor(u, dtype=np.float64)).sum().backward()
    A, D = factors["0.weight"].A, factors["0.weight"].D
    weight = model[0].weight
    full, total = weight.grad.copy(), np.zeros(weight.shape)
    for n in range(len(x)):
        model.zero_grad()
        (model(mg.tensor(x[n:n + 1], dtype=np.float64)) * mg.tensor(u[n:n + 1], dtype=np.float64)).sum().backward()
        share = np.einsum("po,pi->oi", D[n], A[n])
        share = share.T.reshape(weight.shape) if transposed else share.reshape(weight.shape)
        np.testing.assert_allclose(share, weight.grad, rtol=1e-10, atol=1e-12)
        total += weight.grad
    np.testing.assert_allclose(total, full, rtol=1e-10, atol=1e-12)  # the samples' shares add up


def test_factors_are_free_views_and_capture_is_off_by_default(rng):
    model = _factor_model(2, transposed=False)
    out = model(mg.tensor(rng.standard_normal((2, 2, 5, 5)), dtype=np.float64))
    out.sum().backward()  # no capture active: nothing is handed out, nothing fails
    assert model[0].weight.factor_sink is None and model[0].weight.grad is not None


# ------------------------------------------------------------ layers: layouts, init, repr
def test_parameter_layouts_and_default_init_follow_torch():
    for d in (1, 2, 3):
        conv, convt = CONV[d](4, 6, 3), CONV_T[d](4, 6, 3)
        assert conv.weight.shape == (6, 4) + (3,) * d and conv.bias.shape == (6,)
        assert convt.weight.shape == (4, 6) + (3,) * d and convt.bias.shape == (6,)
        for layer, fan_in in ((conv, 4 * 3 ** d), (convt, 6 * 3 ** d)):  # torch: fan_in from weight.shape[1]
            w_bound, b_bound = 1 / np.sqrt(fan_in), 1 / np.sqrt(fan_in)  # kaiming_uniform(a=sqrt 5) bound
            w, b = layer.weight.numpy(), layer.bias.numpy()
            assert w.dtype == np.float32 and np.abs(w).max() <= w_bound and np.abs(w).max() > 0.8 * w_bound
            assert np.abs(b).max() <= b_bound
    assert Conv2d(2, 3, 3, bias=False).bias is None
    assert [n for n, _ in Conv2d(2, 3, 3).named_parameters()] == ["weight", "bias"]
    mg.manual_seed(7)
    a = Conv2d(2, 3, 3).weight.numpy()
    mg.manual_seed(7)
    assert np.array_equal(a, Conv2d(2, 3, 3).weight.numpy())
    assert "kernel_size=(3, 3)" in repr(Conv2d(2, 3, 3)) and "output_padding" in repr(ConvTranspose2d(2, 3, 3, 2, 1, 1))


# ------------------------------------------------------------ errors
def _x(*shape):
    return mg.tensor(np.zeros(shape))


@pytest.mark.parametrize("make, x, match", [
    (lambda: Conv2d(3, 4, 3), _x(3, 8), "expects a 4-D input"),
    (lambda: Conv2d(3, 4, 3), _x(2, 3, 8), r"expects 3 input channels .* shape \(2, 3, 8\) with 2 channels"),
    (lambda: Conv2d(3, 4, 3), _x(1, 2, 3, 8, 8), "expects a 4-D input"),
    (lambda: Conv2d(3, 4, 3), _x(2, 5, 8, 8), "expects 3 input channels"),
    (lambda: Conv1d(3, 4, 5), _x(2, 3, 3), "larger than the padded input"),
    (lambda: Conv3d(1, 1, 3, padding=1, dilation=3), _x(1, 1, 4, 4, 4), "larger than the padded input"),
    (lambda: ConvTranspose2d(3, 4, 3), _x(2, 4, 5, 5), "expects 3 input channels"),
    (lambda: ConvTranspose1d(3, 4, 3, padding=3), _x(1, 3, 2), "padding .* is too large"),
    (lambda: MaxPool2d(2), _x(3, 8), "expects a 4-D input"),
    (lambda: MaxPool1d(4), _x(2, 3, 3), "larger than the padded input"),
    (lambda: AvgPool2d(3), _x(2, 3, 2, 8), "larger than the padded input"),
    (lambda: Upsample(scale_factor=2), _x(2, 3), "spatial"),
    (lambda: Upsample(size=5), _x(1, 1, 2, 2), "integer multiple"),
])
def test_bad_inputs_raise_clear_errors(make, x, match):
    with pytest.raises(ValueError, match=match):
        make()(x)


@pytest.mark.parametrize("make, match", [
    (lambda: Conv2d(4, 4, 3, groups=2), "groups=2 is not supported"),
    (lambda: ConvTranspose2d(4, 4, 3, groups=4), "groups=4 is not supported"),
    (lambda: Conv2d(4, 4, 3, padding_mode="reflect"), "padding_mode"),
    (lambda: Conv2d(0, 4, 3), "in_channels must be a positive int"),
    (lambda: Conv2d(1, 4, (3, 3, 3)), "kernel_size must be an int or a sequence of 2 ints"),
    (lambda: Conv2d(1, 4, 3, stride=0), "stride must be >= 1"),
    (lambda: Conv2d(1, 4, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
    (lambda: Conv2d(1, 4, 3, padding="full"), "padding must be"),
    (lambda: Conv2d(1, 4, 3, padding=-1), "padding must be >= 0"),
    (lambda: ConvTranspose2d(1, 4, 3, stride=2, output_padding=2), "output_padding"),
    (lambda: MaxPool2d(2, padding=2), "at most half"),
    (lambda: Upsample(scale_factor=1.5)(_x(1, 1, 2, 2)), "integer scale factors"),
    (lambda: Upsample(scale_factor=2, mode="bilinear"), "mode='bilinear'"),
    (lambda: Upsample(), "exactly one of size and scale_factor"),
])
def test_bad_layer_arguments_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_functional_errors_name_the_problem():
    x, w = _x(1, 2, 5, 5), mg.tensor(np.zeros((3, 2, 3, 3)))
    with pytest.raises(ValueError, match="groups=2 is not supported"):
        C.conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match="groups=3"):
        C.conv_transpose2d(x, mg.tensor(np.zeros((2, 3, 3, 3))), groups=3)
    with pytest.raises(TypeError, match="differs from weight dtype"):
        C.conv2d(x, mg.tensor(np.zeros((3, 2, 3, 3)), dtype=np.float64))
    with pytest.raises(TypeError, match="must be a minigrad Tensor"):
        C.conv2d(np.zeros((1, 2, 5, 5)), w)
    with pytest.raises(ValueError, match="needs a 4-D weight"):
        C.conv2d(x, mg.tensor(np.zeros((3, 2, 3))))
    with pytest.raises(ValueError, match="bias must have shape"):
        C.conv2d(x, w, mg.tensor(np.zeros(2)))
    with pytest.raises(ValueError, match="1, 2 or 3 spatial dimensions"):
        C.conv(x, mg.tensor(np.zeros((3, 2))))
