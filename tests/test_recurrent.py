"""RNN and LSTM: PyTorch oracle (outputs, final states, every gradient), gradcheck,
long sequences, per-time-step factors, and errors."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn.recurrent import LSTM, RNN
from minigrad.ops import recurrent as R
from tests.conftest import require_torch

pytestmark = pytest.mark.usefixtures("kernel_path")  # every test on the reference and the fast kernels

KINDS = ["tanh", "relu", "lstm"]
TOL = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=1e-4, atol=2e-5)}


# ------------------------------------------------------------------ helpers
def make_models(kind, input_size, hidden, layers, batch_first, bias=True, dtype=np.float64, device="cpu", seed=0):
    """A torch module and a minigrad module with identical weights."""
    torch = require_torch()
    torch.manual_seed(seed)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    if kind == "lstm":
        tm = torch.nn.LSTM(input_size, hidden, layers, bias=bias, batch_first=batch_first)
        mm = LSTM(input_size, hidden, layers, bias=bias, batch_first=batch_first, dtype=dtype)
    else:
        tm = torch.nn.RNN(input_size, hidden, layers, nonlinearity=kind, bias=bias, batch_first=batch_first)
        mm = RNN(input_size, hidden, layers, nonlinearity=kind, bias=bias, batch_first=batch_first, dtype=dtype)
    tm = tm.to(tdtype)
    mm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, mm.to(device)


def run_both(tm, mm, kind, x, state, weights, dtype, device="cpu"):
    """Forward + backward of sum(w_out * output) + sum(w_h * h_n) (+ sum(w_c * c_n)) on both sides.

    ``state``: None or (h0,) / (h0, c0) numpy arrays; ``weights``: dict with any of
    "output", "h_n", "c_n" (the loss terms). Returns (torch results, minigrad results),
    each a dict of numpy arrays.
    """
    torch = require_torch()
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    t_in = [torch.tensor(a, dtype=tdtype, requires_grad=True) for a in (x,) + tuple(state or ())]
    m_in = [mg.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in (x,) + tuple(state or ())]

    def call(model, inputs, wrap):
        xin, st = inputs[0], inputs[1:]
        if kind == "lstm":
            out, (h_n, c_n) = model(xin, tuple(st) if st else None)
        else:
            out, h_n = model(xin, st[0] if st else None)
            c_n = None
        finals = {"output": out, "h_n": h_n, "c_n": c_n}
        loss = None
        for name, w in weights.items():
            term = (finals[name] * wrap(w)).sum()
            loss = term if loss is None else loss + term
        loss.backward()
        return finals

    t_fin = call(tm, t_in, lambda w: torch.tensor(w, dtype=tdtype))
    m_fin = call(mm, m_in, lambda w: mg.tensor(w, dtype=dtype, device=device))
    labels = ["x", "h0", "c0"][:len(t_in)]
    t_res = {k: v.detach().numpy() for k, v in t_fin.items() if v is not None}
    m_res = {k: v.numpy() for k, v in m_fin.items() if v is not None}
    for label, tt, mt in zip(labels, t_in, m_in):
        t_res["grad_" + label] = tt.grad.numpy()
        m_res["grad_" + label] = mg.backend.to_numpy(mt.grad)
    t_params = dict(tm.named_parameters())
    for name, p in mm.named_parameters():
        t_res["grad_" + name] = t_params[name].grad.numpy()
        m_res["grad_" + name] = mg.backend.to_numpy(p.grad)
    return t_res, m_res


def inputs(rng, kind, n, steps, input_size, hidden, layers, batch_first, with_state):
    x = rng.standard_normal((n, steps, input_size) if batch_first else (steps, n, input_size))
    state = None
    if with_state:
        state = tuple(rng.standard_normal((layers, n, hidden)) for _ in range(2 if kind == "lstm" else 1))
    out_shape = x.shape[:2] + (hidden,)
    weights = {"output": rng.standard_normal(out_shape), "h_n": rng.standard_normal((layers, n, hidden))}
    if kind == "lstm":
        weights["c_n"] = rng.standard_normal((layers, n, hidden))
    return x, state, weights


def assert_same(t_res, m_res, dtype):
    assert set(t_res) == set(m_res)
    for key in t_res:
        assert m_res[key].shape == t_res[key].shape, key
        np.testing.assert_allclose(m_res[key], t_res[key], err_msg=key, **TOL[dtype])


# ------------------------------------------------------------------ oracle
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_torch(kind, layers, batch_first, with_state, dtype, device, rng):
    n, steps, input_size, hidden = 3, 6, 4, 5
    tm, mm = make_models(kind, input_size, hidden, layers, batch_first, dtype=dtype, device=device)
    x, state, weights = inputs(rng, kind, n, steps, input_size, hidden, layers, batch_first, with_state)
    assert_same(*run_both(tm, mm, kind, x, state, weights, dtype, device), dtype)


@pytest.mark.parametrize("kind,term", [(k, t) for k in KINDS for t in ("output", "h_n")] + [("lstm", "c_n")])
def test_loss_on_one_result_only(kind, term, device, rng):
    """Losses that see only the outputs, only h_n or only c_n (other adjoints absent)."""
    tm, mm = make_models(kind, 3, 4, 2, True, device=device)
    x, state, weights = inputs(rng, kind, 2, 5, 3, 4, 2, True, True)
    assert_same(*run_both(tm, mm, kind, x, state, {term: weights[term]}, np.float64, device), np.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_without_bias_matches_torch(kind, device, rng):
    tm, mm = make_models(kind, 3, 4, 2, True, bias=False, device=device)
    assert [n for n, _ in mm.named_parameters()] == ["weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"]
    x, state, weights = inputs(rng, kind, 2, 4, 3, 4, 2, True, True)
    assert_same(*run_both(tm, mm, kind, x, state, weights, np.float64, device), np.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input_matches_torch(kind, rng):
    """(T, input_size) inputs with (num_layers, H) states, as PyTorch accepts them."""
    layers, hidden = 2, 4
    tm, mm = make_models(kind, 3, hidden, layers, False)
    x = rng.standard_normal((5, 3))
    state = tuple(rng.standard_normal((layers, hidden)) for _ in range(2 if kind == "lstm" else 1))
    weights = {"output": rng.standard_normal((5, hidden)), "h_n": rng.standard_normal((layers, hidden))}
    t_res, m_res = run_both(tm, mm, kind, x, state, weights, np.float64)
    assert m_res["output"].shape == (5, hidden) and m_res["h_n"].shape == (layers, hidden)
    assert_same(t_res, m_res, np.float64)


def test_parameters_follow_torch_names_shapes_and_init():
    torch = require_torch()
    mg.manual_seed(0)  # unseeded, an 8-float bias fails the spread check below in ~0.6% of draws
    for kind in KINDS:
        hidden = 8
        if kind == "lstm":
            tm, mm = torch.nn.LSTM(5, hidden, 2), LSTM(5, hidden, 2)
        else:
            tm, mm = torch.nn.RNN(5, hidden, 2, nonlinearity=kind), RNN(5, hidden, 2, nonlinearity=kind)
        ours = [(n, p.shape) for n, p in mm.named_parameters()]
        assert ours == [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
        bound = 1 / np.sqrt(hidden)
        for _, p in mm.named_parameters():
            assert p.dtype == np.float32 and np.abs(p.numpy()).max() <= bound
            assert p.numpy().std() > bound / 4  # actually spread over U(-bound, bound)


def test_seeded_init_is_reproducible():
    mg.manual_seed(3)
    a = LSTM(3, 4).state_dict()
    mg.manual_seed(3)
    b = LSTM(3, 4).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_frozen_weights_still_give_input_and_state_gradients(rng):
    tm, mm = make_models("lstm", 3, 4, 1, True)
    for p in mm.parameters():
        p.requires_grad_(False)
    x, state, weights = inputs(rng, "lstm", 2, 4, 3, 4, 1, True, True)
    t_res, m_res = run_both(tm, mm, "lstm", x, state, weights, np.float64)
    for key in ("output", "h_n", "c_n", "grad_x", "grad_h0", "grad_c0"):
        np.testing.assert_allclose(m_res[key], t_res[key], rtol=1e-9, atol=1e-11)
    assert all(p.grad is None for p in mm.parameters())


def test_no_grad_records_nothing(rng):
    model = LSTM(3, 4, dtype=np.float64)
    with mg.no_grad():
        out, (h_n, c_n) = model(mg.tensor(rng.standard_normal((2, 5, 3)), dtype=np.float64))
    assert not (out.requires_grad or h_n.requires_grad or c_n.requires_grad)


def test_separate_backwards_through_retained_graph_accumulate(rng):
    """Two losses on different results of one forward, each backward on its own, add up."""
    x = rng.standard_normal((2, 4, 3))
    m1 = LSTM(3, 4, dtype=np.float64)
    m2 = LSTM(3, 4, dtype=np.float64)
    m2.load_state_dict(m1.state_dict())
    out, (_, c_n) = m1(mg.tensor(x, dtype=np.float64))
    out.sum().backward(retain_graph=True)
    (c_n * 2.0).sum().backward()
    out2, (_, c_n2) = m2(mg.tensor(x, dtype=np.float64))
    (out2.sum() + (c_n2 * 2.0).sum()).backward()
    for (name, p1), (_, p2) in zip(m1.named_parameters(), m2.named_parameters()):
        np.testing.assert_allclose(p1.grad, p2.grad, rtol=1e-12, atol=1e-14, err_msg=name)


# ---------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_tiny(kind, device, rng):
    layers, n, steps, input_size, hidden = 2, 2, 3, 2, 3
    cls = LSTM if kind == "lstm" else RNN
    extra = {} if kind == "lstm" else {"nonlinearity": kind}
    model = cls(input_size, hidden, layers, batch_first=True, dtype=np.float64, **extra).to(device)
    x = mg.tensor(rng.standard_normal((n, steps, input_size)), dtype=np.float64, device=device, requires_grad=True)
    h0 = mg.tensor(rng.standard_normal((layers, n, hidden)), dtype=np.float64, device=device, requires_grad=True)
    c0 = mg.tensor(rng.standard_normal((layers, n, hidden)), dtype=np.float64, device=device, requires_grad=True)

    def fn(x, h0, c0, *params):
        if kind == "lstm":
            out, (h_n, c_n) = model(x, (h0, c0))
            return mg.concatenate([out.reshape(-1), h_n.reshape(-1), c_n.reshape(-1)])
        out, h_n = model(x, h0)
        return mg.concatenate([out.reshape(-1), h_n.reshape(-1), (c0 * 0).reshape(-1)])

    assert mg.gradcheck(fn, x, h0, c0, *model.parameters())


# ---------------------------------------------------------- long sequences
@pytest.mark.parametrize("kind", ["tanh", "lstm"])
def test_thousand_steps_match_torch(kind, rng):
    """Backprop through T = 1000 steps: no recursion, same gradients as PyTorch."""
    tm, mm = make_models(kind, 3, 4, 1, True)
    x, state, weights = inputs(rng, kind, 2, 1000, 3, 4, 1, True, True)
    t_res, m_res = run_both(tm, mm, kind, x, state, weights, np.float64)
    assert_same(t_res, m_res, np.float64)


# ------------------------------------------------------------------ factors
def _loss(kind, out, finals, weights, device):
    w = lambda a: mg.tensor(a, dtype=np.float64, device=device)  # noqa: E731
    loss = (out * w(weights["output"])).sum() + (finals[0] * w(weights["h_n"])).sum()
    if kind == "lstm":
        loss = loss + (finals[1] * w(weights["c_n"])).sum()
    return loss


def _forward(model, kind, x, state):
    if kind == "lstm":
        out, (h_n, c_n) = model(x, state)
        return out, (h_n, c_n)
    out, h_n = model(x, None if state is None else state[0])
    return out, (h_n,)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_factors_reconstruct_every_weight_gradient(kind, batch_first, device, rng):
    n, steps, input_size, hidden, layers = 3, 5, 4, 6, 2
    width = (4 if kind == "lstm" else 1) * hidden
    _, model = make_models(kind, input_size, hidden, layers, batch_first, device=device)
    x, state, weights = inputs(rng, kind, n, steps, input_size, hidden, layers, batch_first, True)
    xt = mg.tensor(x, dtype=np.float64, device=device)
    st = tuple(mg.tensor(s, dtype=np.float64, device=device) for s in state)
    with mg.capture_factors(model) as factors:
        out, finals = _forward(model, kind, xt, st)
        _loss(kind, out, finals, weights, device).backward()
    weight_names = [f"weight_{s}_l{k}" for k in range(layers) for s in ("ih", "hh")]
    assert list(factors) == weight_names  # biases are not multiplied: no factors
    params = dict(model.named_parameters())
    for name in weight_names:
        f = factors[name]
        fan_in = input_size if name == "weight_ih_l0" else hidden
        assert f.A.shape == (n, steps, fan_in) and f.D.shape == (n, steps, width), name
        A, D = mg.backend.to_numpy(f.A), mg.backend.to_numpy(f.D)
        np.testing.assert_allclose(np.einsum("npo,npi->oi", D, A), mg.backend.to_numpy(params[name].grad),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(mg.backend.to_numpy(f.gradient()), mg.backend.to_numpy(params[name].grad),
                                   rtol=1e-10, atol=1e-12, err_msg=name)


def test_weight_hh_factor_starts_with_the_initial_state(rng):
    model = RNN(2, 3, dtype=np.float64)
    h0 = rng.standard_normal((1, 2, 3))
    with mg.capture_factors(model) as factors:
        out, _ = model(mg.tensor(rng.standard_normal((2, 4, 2)), dtype=np.float64), mg.tensor(h0, dtype=np.float64))
        out.sum().backward()
    A = factors["weight_hh_l0"].A
    np.testing.assert_array_equal(A[:, 0], h0[0])           # A_0 = h_{-1}
    np.testing.assert_array_equal(A[:, 1:], out.numpy()[:, :-1])  # A_t = h_{t-1}


@pytest.mark.parametrize("kind", KINDS)
def test_per_sample_factors_match_one_backward_per_sample(kind, rng):
    n, steps, input_size, hidden, layers = 3, 4, 3, 4, 2
    _, model = make_models(kind, input_size, hidden, layers, True)
    x, state, weights = inputs(rng, kind, n, steps, input_size, hidden, layers, True, True)
    with mg.capture_factors(model) as factors:
        out, finals = _forward(model, kind, mg.tensor(x, dtype=np.float64),
                               tuple(mg.tensor(s, dtype=np.float64) for s in state))
        _loss(kind, out, finals, weights, "cpu").backward()
    for i in range(n):
        model.zero_grad()
        one = {"output": weights["output"][i:i + 1], "h_n": weights["h_n"][:, i:i + 1]}
        if kind == "lstm":
            one["c_n"] = weights["c_n"][:, i:i + 1]
        out, finals = _forward(model, kind, mg.tensor(x[i:i + 1], dtype=np.float64),
                               tuple(mg.tensor(s[:, i:i + 1], dtype=np.float64) for s in state))
        _loss(kind, out, finals, one, "cpu").backward()
        for name, f in factors.items():
            share = np.einsum("po,pi->oi", f.D[i], f.A[i])
            np.testing.assert_allclose(share, dict(model.named_parameters())[name].grad,
                                       rtol=1e-10, atol=1e-12, err_msg=f"{name}, sample {i}")


def _torch_unrolled_step_grads(torch, kind, tm, x, h0, c0, weights):
    """Per-step gradients of W_ih and W_hh from an unrolled torch loop with one weight copy per step."""
    w_ih, w_hh = tm.weight_ih_l0.detach(), tm.weight_hh_l0.detach()
    bias = (tm.bias_ih_l0 + tm.bias_hh_l0).detach()
    steps = x.shape[1]
    copies_ih = [w_ih.clone().requires_grad_() for _ in range(steps)]
    copies_hh = [w_hh.clone().requires_grad_() for _ in range(steps)]
    h, c = torch.tensor(h0[0]), torch.tensor(c0[0]) if c0 is not None else None
    outs = []
    for t in range(steps):
        z = torch.tensor(x[:, t]) @ copies_ih[t].T + h @ copies_hh[t].T + bias
        if kind == "lstm":
            i, f, g, o = z.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            h = torch.tanh(z) if kind == "tanh" else torch.relu(z)
        outs.append(h)
    loss = (torch.stack(outs, 1) * torch.tensor(weights["output"])).sum() + (h * torch.tensor(weights["h_n"][0])).sum()
    if kind == "lstm":
        loss = loss + (c * torch.tensor(weights["c_n"][0])).sum()
    loss.backward()
    return [w.grad.numpy() for w in copies_ih], [w.grad.numpy() for w in copies_hh]


@pytest.mark.parametrize("kind", KINDS)
def test_per_time_step_shares_match_unrolled_weight_copies(kind, rng):
    """einsum over one step t gives step t's share of the gradient; the shares sum to it."""
    torch = require_torch()
    n, steps, input_size, hidden = 3, 5, 3, 4
    tm, model = make_models(kind, input_size, hidden, 1, True)
    x, state, weights = inputs(rng, kind, n, steps, input_size, hidden, 1, True, True)
    with mg.capture_factors(model) as factors:
        out, finals = _forward(model, kind, mg.tensor(x, dtype=np.float64),
                               tuple(mg.tensor(s, dtype=np.float64) for s in state))
        _loss(kind, out, finals, weights, "cpu").backward()
    expected_ih, expected_hh = _torch_unrolled_step_grads(
        torch, kind, tm, x, state[0], state[1] if kind == "lstm" else None, weights)
    for name, expected in (("weight_ih_l0", expected_ih), ("weight_hh_l0", expected_hh)):
        f = factors[name]
        shares = [np.einsum("no,ni->oi", f.D[:, t], f.A[:, t]) for t in range(steps)]
        for t in range(steps):
            np.testing.assert_allclose(shares[t], expected[t], rtol=1e-9, atol=1e-12, err_msg=f"{name}, t={t}")
        np.testing.assert_allclose(sum(shares), dict(model.named_parameters())[name].grad, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize("cls", [RNN, LSTM])
def test_wrong_input_rank_and_features(cls):
    model = cls(3, 4)
    for shape in [(3,), (2, 2, 5, 3)]:
        with pytest.raises(ValueError, match="expects input of shape"):
            model(mg.zeros(*shape))
    with pytest.raises(ValueError, match="input_size=3"):
        model(mg.zeros(2, 5, 4))
    with pytest.raises(TypeError, match="minigrad Tensor"):
        model(np.zeros((2, 5, 3)))
    with pytest.raises(TypeError, match="float input"):
        model(mg.tensor(np.zeros((2, 5, 3), dtype=np.int64)))
    with pytest.raises(TypeError, match="dtype"):
        model(mg.zeros(2, 5, 3, dtype=np.float64))


def test_wrong_initial_state_shapes():
    rnn = RNN(3, 4, num_layers=2)
    x = mg.zeros(5, 7, 3)
    for bad in [(1, 5, 4), (2, 4, 4), (2, 5, 3), (5, 4)]:
        with pytest.raises(ValueError, match=r"initial state hx must have shape \(num_layers, N, H\) = \(2, 5, 4\)"):
            rnn(x, mg.zeros(*bad))
    lstm = LSTM(3, 4)
    with pytest.raises(TypeError, match="pair"):
        lstm(x, mg.zeros(1, 5, 4))
    with pytest.raises(TypeError, match="pair"):
        lstm(x, (mg.zeros(1, 5, 4),))
    with pytest.raises(ValueError, match="c_0 must have shape"):
        lstm(x, (mg.zeros(1, 5, 4), mg.zeros(1, 5, 5)))
    with pytest.raises(ValueError, match=r"\(num_layers, H\)"):
        lstm(mg.zeros(7, 3), (mg.zeros(1, 5, 4), mg.zeros(1, 5, 4)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(NotImplementedError, match="bidirectional"):
        LSTM(3, 4, bidirectional=True)
    with pytest.raises(NotImplementedError, match="dropout"):
        RNN(3, 4, num_layers=2, dropout=0.5)
    for bad in [dict(hidden_size=0), dict(input_size=-1), dict(num_layers=0), dict(hidden_size=2.5)]:
        args = dict(input_size=3, hidden_size=4, num_layers=1) | bad
        with pytest.raises(ValueError, match="positive integer"):
            LSTM(**args)


def test_op_level_errors():
    x = mg.zeros(2, 3, 4)
    w_ih, w_hh = mg.zeros(8, 4), mg.zeros(8, 2)
    with pytest.raises(ValueError, match="weight_hh must have shape"):
        R.lstm(x, None, None, w_ih, mg.zeros(8, 3))
    with pytest.raises(ValueError, match="weight_ih must have shape"):
        R.lstm(x, None, None, mg.zeros(4, 4), w_hh)
    with pytest.raises(ValueError, match="bias_ih must have shape"):
        R.lstm(x, None, None, w_ih, w_hh, mg.zeros(7))
    with pytest.raises(ValueError, match="at least one step"):
        R.lstm(mg.zeros(2, 0, 4), None, None, w_ih, w_hh)
    with pytest.raises(ValueError, match="h0 must have shape"):
        R.rnn(x, mg.zeros(3, 2), mg.zeros(2, 4), mg.zeros(2, 2))
    with pytest.raises(ValueError, match="nonlinearity"):
        R.rnn(x, None, mg.zeros(2, 4), mg.zeros(2, 2), nonlinearity="gelu")


# ------------------------------------------------------------------ tied positions are time steps
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "gelu"])
def test_rnn_tied_positions_are_time_steps_for_every_activation(activation):
    """Tied position p is time step t for every activation (the fused tanh/relu layer and the
    unrolled sigmoid/gelu one): weight_ih has A_t = x_t, weight_hh has A_t = h_{t-1}, h_{-1} = 0."""
    from minigrad.factors import capture_factors
    from models import ElmanRNN

    N, T, F, H = 3, 5, 2, 4
    mg.manual_seed(0)
    model = ElmanRNN(F, hidden=(H,), activation=activation, task="classify", n_classes=2).double()
    x = mg.tensor(np.random.default_rng(0).standard_normal((N, T, F)), dtype="float64")
    with capture_factors(model) as factors:
        model(x).sum().backward()
    h, _ = model.encoder[0](x)
    A_ih, A_hh = factors["encoder.0.weight_ih_l0"].A, factors["encoder.0.weight_hh_l0"].A
    assert A_ih.shape[1] == A_hh.shape[1] == T
    np.testing.assert_allclose(A_ih, x.numpy(), atol=1e-14)
    np.testing.assert_array_equal(A_hh[:, 0], 0.0)
    np.testing.assert_allclose(A_hh[:, 1:], h.numpy()[:, :-1], atol=1e-14)


def test_unrolled_and_fused_rnn_hand_out_the_same_factors_per_position():
    """Same weights, same activation (tanh): every position's A and D agree between the two."""
    from minigrad.factors import capture_factors
    from models import UnrolledRNN

    mg.manual_seed(1)
    fused = RNN(3, 4, nonlinearity="tanh", batch_first=True).double()
    unrolled = UnrolledRNN(3, 4, "tanh").double()
    unrolled.load_state_dict(fused.state_dict())
    x = np.random.default_rng(2).standard_normal((2, 6, 3))
    caught = []
    for layer in (fused, unrolled):
        with capture_factors(layer) as factors:
            out, _ = layer(mg.tensor(x, dtype="float64"))
            (out * out).sum().backward()
        caught.append({n: (f.A, f.D) for n, f in factors.items()})
    for name in ("weight_ih_l0", "weight_hh_l0"):
        for a, b in zip(caught[0][name], caught[1][name]):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-12, err_msg=name)
