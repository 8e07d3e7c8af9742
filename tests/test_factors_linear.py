"""Factor hand-out of Linear layers (paper eq. 1): grad W = einsum("npo,npi->oi", D, A)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F

from conftest import require_torch

pytestmark = pytest.mark.usefixtures("kernel_path")  # every test on the reference and the fast kernels


def _np(a):
    return mg.backend.to_numpy(a)


def _einsum_gradient(f):
    return np.einsum("npo,npi->oi", _np(f.D), _np(f.A))


def _mlp(device, dtype=np.float64):
    mg.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).to(device, dtype)


@pytest.mark.parametrize("shape", [(7, 6), (3, 4, 6)], ids=["2d", "3d"])
def test_linear_factors_give_the_weight_gradient(shape, device):
    lin = nn.Linear(6, 5, dtype=np.float64).to(device)
    x = mg.tensor(np.random.default_rng(0).standard_normal(shape), dtype=np.float64, device=device)
    with mg.capture_factors(lin) as factors:
        (lin(x) ** 2).sum().backward()
    assert list(factors) == ["weight"]  # biases are not multiplied: no factors
    f = factors["weight"]
    n, p = (shape[0], 1) if len(shape) == 2 else shape[:2]
    assert f.A.shape == (n, p, 6) and f.D.shape == (n, p, 5)
    assert (f.n_samples, f.n_positions) == (n, p)
    np.testing.assert_allclose(_einsum_gradient(f), _np(lin.weight.grad), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(f.gradient()), _np(lin.weight.grad), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(_np(f.A).reshape(shape), _np(x.data))  # A is the input itself


def test_mlp_factors_match_torch_activations_and_adjoints(device):
    """A = each layer's input, D = dLoss/d(pre-activation), checked against PyTorch."""
    torch = require_torch()
    model = _mlp(device)
    torch_model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4), torch.nn.Tanh(),
                                      torch.nn.Linear(4, 3)).double()
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(1)
    x, labels = rng.standard_normal((8, 6)), rng.integers(0, 3, size=8)

    with mg.capture_factors(model) as factors:
        F.cross_entropy(model(mg.tensor(x, dtype=np.float64, device=device)), labels).backward()

    inputs, pre = [], []
    h = torch.from_numpy(x)
    for layer in torch_model:
        if isinstance(layer, torch.nn.Linear):
            inputs.append(h.detach().numpy())
            h = layer(h)
            h.retain_grad()
            pre.append(h)
        else:
            h = layer(h)
    torch.nn.functional.cross_entropy(h, torch.from_numpy(labels)).backward()

    assert list(factors) == ["0.weight", "2.weight", "4.weight"]  # the model's order, not backward's
    for k, name in enumerate(factors):
        f = factors[name]
        np.testing.assert_allclose(_np(f.A)[:, 0], inputs[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(_np(f.D)[:, 0], pre[k].grad.numpy(), rtol=1e-10, atol=1e-14)
        layer = model[2 * k]
        np.testing.assert_allclose(_einsum_gradient(f), _np(layer.weight.grad), rtol=1e-10, atol=1e-14)


def test_no_sink_is_left_after_the_block_even_on_error(device):
    model = _mlp(device)
    x = mg.tensor(np.ones((2, 6)), dtype=np.float64, device=device)
    with mg.capture_factors(model):
        model(x).sum().backward()
    assert all(p.factor_sink is None for p in model.parameters())
    with pytest.raises(RuntimeError, match="boom"):
        with mg.capture_factors(model):
            raise RuntimeError("boom")
    assert all(p.factor_sink is None for p in model.parameters())


def test_without_capture_nothing_is_handed_out(device, monkeypatch):
    from minigrad.ops import linear as linear_ops

    model = _mlp(device)
    assert all(p.factor_sink is None for p in model.parameters())
    handed = []
    original = linear_ops.hand_out_factors
    monkeypatch.setattr(linear_ops, "hand_out_factors",
                        lambda w, A, D: (handed.append(w.factor_sink), original(w, A, D)))
    model(mg.tensor(np.ones((2, 6)), dtype=np.float64, device=device)).sum().backward()
    assert handed == [None, None, None]  # the op offers, no sink takes


def test_a_weight_used_twice_joins_both_uses(device):
    lin = nn.Linear(4, 4, dtype=np.float64).to(device)
    x = mg.tensor(np.random.default_rng(0).standard_normal((5, 4)), dtype=np.float64, device=device)
    with mg.capture_factors(lin) as factors:
        lin(lin(x).tanh()).sum().backward()
    f = factors["weight"]
    assert len(f.uses) == 2 and f.A.shape == (5, 2, 4) and f.D.shape == (5, 2, 4)
    np.testing.assert_allclose(_einsum_gradient(f), _np(lin.weight.grad), rtol=1e-12)
    assert "uses=2" in repr(f)


def test_uses_with_different_batch_sizes_still_sum_to_the_gradient(device):
    lin = nn.Linear(3, 2, dtype=np.float64).to(device)
    a = mg.tensor(np.ones((4, 3)), dtype=np.float64, device=device)
    b = mg.tensor(np.arange(6.0).reshape(2, 3), dtype=np.float64, device=device)
    with mg.capture_factors(lin) as factors:
        (lin(a).sum() + (lin(b) ** 2).sum()).backward()
    f = factors["weight"]
    assert f.A.shape == (1, 6, 3)
    np.testing.assert_allclose(_np(f.gradient()), _np(lin.weight.grad), rtol=1e-12)


def test_capture_selected_names_nested_captures_and_missing_keys(device):
    model = _mlp(device)
    x = mg.tensor(np.ones((3, 6)), dtype=np.float64, device=device)
    with mg.capture_factors(model) as outer:
        with mg.capture_factors(model, names=["2.weight"]) as inner:
            model(x).sum().backward()
    assert list(inner) == ["2.weight"] and list(outer) == ["0.weight", "2.weight", "4.weight"]
    with pytest.raises(KeyError, match="no factors were handed out for '0.bias'"):
        outer["0.bias"]
    with pytest.raises(KeyError, match="unknown parameter names"):
        with mg.capture_factors(model, names=["nope.weight"]):
            pass


def test_factor_hooks_stream_every_use(device):
    model = _mlp(device)
    seen = []
    with mg.factor_hooks(model, lambda name, A, D: seen.append((name, A.shape, D.shape))):
        model(mg.tensor(np.ones((2, 6)), dtype=np.float64, device=device)).sum().backward()
    assert seen == [("4.weight", (2, 1, 4), (2, 1, 3)), ("2.weight", (2, 1, 5), (2, 1, 4)),
                    ("0.weight", (2, 1, 6), (2, 1, 5))]


def test_factors_are_released_with_the_store(device):
    import gc
    import weakref

    model = _mlp(device)
    with mg.capture_factors(model) as factors:
        model(mg.tensor(np.ones((2, 6)), dtype=np.float64, device=device)).sum().backward()
    ref = weakref.ref(factors["0.weight"].D)
    del factors
    gc.collect()
    assert ref() is None, "a captured D outlived its store"


def test_a_weight_used_in_a_loop_hands_out_its_uses_in_forward_order():
    """An unrolled recurrence: position p of the joined factors is time step p."""
    rng = np.random.default_rng(3)
    lin = nn.Linear(4, 4).double()
    xs = [mg.tensor(rng.standard_normal((2, 4)), dtype=np.float64) for _ in range(3)]
    h = mg.tensor(np.zeros((2, 4)), dtype=np.float64)
    inputs = []
    for x in xs:
        inputs.append(h + x)
        h = mg.tanh(lin(inputs[-1]))
    with mg.capture_factors(lin) as factors:
        h.sum().backward()
    f = factors["weight"]
    assert f.A.shape == (2, 3, 4)
    for t, inp in enumerate(inputs):
        np.testing.assert_array_equal(f.A[:, t], inp.numpy())
    np.testing.assert_allclose(np.einsum("npo,npi->oi", f.D, f.A), lin.weight.grad, rtol=1e-12)
