"""minigrad.nn and minigrad.optim against PyTorch: names and state dicts, layers, losses,
inits and optimizers with identical weights."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.nn import functional as F

from conftest import require_torch

pytestmark = pytest.mark.usefixtures("kernel_path")  # every test on the reference and the fast kernels

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}
DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


def _torch_dtype(torch, dtype):
    return {np.float64: torch.float64, np.float32: torch.float32}[dtype]


def _copy_weights(mg_model, torch_model):
    """Load the torch model's parameters into the minigrad model (PyTorch names and layouts)."""
    mg_model.load_state_dict({k: v.detach().numpy() for k, v in torch_model.state_dict().items()})
    return mg_model


def _grad(t):
    return mg.backend.to_numpy(t.grad)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        self.norm = nn.LayerNorm(2)
        self.embed = nn.Embedding(5, 4)
        self.head = nn.Linear(2, 1, bias=False)

    def forward(self, tokens):
        return self.head(self.norm(self.encoder(self.embed(tokens))))


def _torch_net():
    torch = require_torch()

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
            self.norm = torch.nn.LayerNorm(2)
            self.embed = torch.nn.Embedding(5, 4)
            self.head = torch.nn.Linear(2, 1, bias=False)

        def forward(self, tokens):
            return self.head(self.norm(self.encoder(self.embed(tokens))))

    torch.manual_seed(0)
    return TorchNet().double()


# ------------------------------------------------------------------ Module basics
def test_parameter_names_shapes_and_order_follow_pytorch():
    model, tmodel = Net(), _torch_net()
    names = [(n, p.shape) for n, p in model.named_parameters()]
    expected = [(n, tuple(p.shape)) for n, p in tmodel.named_parameters()]
    assert names == expected
    assert list(model.state_dict()) == list(tmodel.state_dict())
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())


def test_whole_model_matches_torch_after_load_state_dict(device):
    torch = require_torch()
    tmodel = _torch_net()
    model = _copy_weights(Net(), tmodel).double().to(device)
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    tokens = np.array([[0, 3, 3], [4, 1, 0]])
    out = model(mg.tensor(tokens, device=device))
    tout = tmodel(torch.from_numpy(tokens))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    tout.sum().backward()
    tparams = dict(tmodel.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(_grad(p), tparams[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_state_dict_is_a_copy_and_round_trips():
    model = Net()
    state = model.state_dict()
    before = model.encoder[0].weight.numpy().copy()
    state["encoder.0.weight"][:] = 7.0
    np.testing.assert_array_equal(model.encoder[0].weight.numpy(), before)
    other = Net()
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.encoder[0].weight.numpy(), 7.0)
    state["encoder.0.weight"][:] = 1.0  # the loaded model holds its own copy
    np.testing.assert_array_equal(other.encoder[0].weight.numpy(), 7.0)
    # minigrad tensors are accepted as values too
    third = Net().load_state_dict({k: mg.tensor(v) for k, v in other.state_dict().items()})
    np.testing.assert_array_equal(third.encoder[0].weight.numpy(), 7.0)


def test_load_state_dict_rejects_wrong_keys_and_shapes_without_touching_the_model():
    model = Net()
    good = model.state_dict()
    before = {k: v.copy() for k, v in good.items()}
    missing = dict(good)
    missing.pop("norm.weight")
    with pytest.raises(KeyError, match="missing keys.*norm.weight"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match="unexpected keys.*extra.weight"):
        model.load_state_dict({**good, "extra.weight": np.zeros(3)})
    bad_shape = {k: v + 1 for k, v in good.items()}
    bad_shape["head.weight"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"head.weight.*\(2, 2\).*\(1, 2\)"):
        model.load_state_dict(bad_shape)
    for k, v in model.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(v, before[k])
    nan_state = dict(good, **{"head.weight": np.full((1, 2), np.nan)})
    with pytest.raises(ValueError, match="NaN"):
        model.load_state_dict(nan_state)
    model.load_state_dict({"head.weight": np.ones((1, 2))}, strict=False)
    np.testing.assert_array_equal(model.head.weight.numpy(), 1.0)


def test_train_eval_zero_grad_and_to_dtype():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Sequential(nn.Tanh(), nn.Linear(3, 1)))
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    x = mg.tensor(np.ones((2, 3)))
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    params = list(model.parameters())
    model.double()
    assert [p for p in model.parameters()] == params and all(p.dtype == np.float64 for p in params)
    assert model.float() is model and all(p.dtype == np.float32 for p in params)


def test_sequential_indexing_iteration_and_repr():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert "Linear(in_features=2, out_features=3, bias=True)" in repr(seq)
    with pytest.raises(TypeError, match="Sequential takes Modules"):
        nn.Sequential(a, "relu")
    lst = nn.ModuleList([a, c])
    assert len(lst) == 2 and lst[1] is c
    holder = nn.Module()
    holder.add_module("layers", lst)
    assert [n for n, _ in holder.named_parameters()][0] == "layers.0.weight"


def test_reassigning_a_parameter_keeps_its_place():
    lin = nn.Linear(2, 2)
    lin.weight = nn.Parameter(np.zeros((2, 2)))
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]


# ------------------------------------------------------------------ layers vs torch
@DTYPES
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)], ids=["2d", "3d", "1d"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_linear_matches_torch(shape, bias, dtype, device):
    torch = require_torch()
    tdt = _torch_dtype(torch, dtype)
    torch.manual_seed(1)
    tlin = torch.nn.Linear(4, 3, bias=bias).to(tdt)
    lin = _copy_weights(nn.Linear(4, 3, bias=bias, dtype=dtype), tlin).to(device)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    mx = mg.tensor(x, dtype=dtype, device=device, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    out, tout = lin(mx), tlin(tx)
    assert out.dtype == dtype and out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **TOL[dtype])
    seed = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    out.backward(seed)
    tout.backward(torch.tensor(seed))
    np.testing.assert_allclose(_grad(mx), tx.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(_grad(lin.weight), tlin.weight.grad.numpy(), **TOL[dtype])
    if bias:
        np.testing.assert_allclose(_grad(lin.bias), tlin.bias.grad.numpy(), **TOL[dtype])
        assert lin.bias.grad.dtype == dtype


def test_linear_gradcheck(device):
    lin = nn.Linear(3, 2, dtype=np.float64).to(device)
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 4, 3)), dtype=np.float64, device=device,
                  requires_grad=True)
    assert mg.gradcheck(lambda x, w, b: F.linear(x, w, b), x, lin.weight, lin.bias)


@DTYPES
@pytest.mark.parametrize("name", ["ReLU", "Tanh", "Sigmoid", "GELU", "Softmax", "Identity"])
def test_activation_modules_match_torch(name, dtype, device):
    torch = require_torch()
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(dtype)
    module = getattr(nn, name)()
    tmodule = getattr(torch.nn, name)(**({"dim": -1} if name == "Softmax" else {}))
    mx = mg.tensor(x, dtype=dtype, device=device, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    out, tout = module(mx), tmodule(tx)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **TOL[dtype])
    seed = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    out.backward(seed)
    tout.backward(torch.tensor(seed))
    np.testing.assert_allclose(_grad(mx), tx.grad.numpy(), **TOL[dtype])


def test_activation_by_name():
    assert isinstance(nn.activation("ReLU"), nn.ReLU) and isinstance(nn.activation("gelu"), nn.GELU)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        nn.activation("swish")


def test_dropout_train_eval_and_seeding(device):
    x = mg.tensor(np.ones((200, 100)), device=device, requires_grad=True)
    drop = nn.Dropout(0.3)
    drop.eval()
    assert drop(x) is x
    drop.train()
    mg.manual_seed(7)
    y = drop(x)
    kept = y.numpy() != 0
    assert abs(1 - kept.mean() - 0.3) < 0.02
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)
    mg.manual_seed(7)
    np.testing.assert_array_equal(drop(x).numpy(), y.numpy())
    assert not np.array_equal(drop(x).numpy(), y.numpy())  # the generator moved on
    y.sum().backward()
    np.testing.assert_allclose(_grad(x), y.numpy(), rtol=1e-6)  # same mask, same scale in backward
    assert nn.Dropout(0.0)(x) is x
    gen_a, gen_b = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(nn.Dropout(0.5, generator=gen_a)(x).numpy(),
                                  nn.Dropout(0.5, generator=gen_b)(x).numpy())


@DTYPES
def test_layernorm_matches_torch(dtype, device):
    torch = require_torch()
    tln = torch.nn.LayerNorm(4).to(_torch_dtype(torch, dtype))
    with torch.no_grad():
        tln.weight.copy_(torch.linspace(0.5, 2.0, 4))
        tln.bias.copy_(torch.linspace(-1.0, 1.0, 4))
    ln = _copy_weights(nn.LayerNorm(4, dtype=dtype), tln).to(device)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(dtype) * 3 + 1
    mx = mg.tensor(x, dtype=dtype, device=device, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    out, tout = ln(mx), tln(tx)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **TOL[dtype])
    seed = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    out.backward(seed)
    tout.backward(torch.tensor(seed))
    np.testing.assert_allclose(_grad(mx), tx.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(_grad(ln.weight), tln.weight.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(_grad(ln.bias), tln.bias.grad.numpy(), **TOL[dtype])


def test_layernorm_gradcheck_and_no_affine(device):
    ln = nn.LayerNorm((3, 4), dtype=np.float64).to(device)
    ln.load_state_dict({"weight": np.linspace(0.5, 1.5, 12).reshape(3, 4), "bias": np.full((3, 4), 0.1)})
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 3, 4)), dtype=np.float64, device=device,
                  requires_grad=True)
    assert mg.gradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), x, ln.weight, ln.bias)
    plain = nn.LayerNorm(4, elementwise_affine=False)
    assert list(plain.named_parameters()) == [] and plain.weight is None
    y = plain(mg.tensor(np.arange(8.0).reshape(2, 4), device=device))
    np.testing.assert_allclose(y.numpy().mean(-1), 0, atol=1e-6)


@DTYPES
def test_embedding_matches_torch_with_repeated_indices(dtype, device):
    torch = require_torch()
    temb = torch.nn.Embedding(6, 3).to(_torch_dtype(torch, dtype))
    emb = _copy_weights(nn.Embedding(6, 3, dtype=dtype), temb).to(device)
    idx = np.array([[1, 1, 5], [0, 1, 5]])
    out, tout = emb(mg.tensor(idx, device=device)), temb(torch.from_numpy(idx))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **TOL[dtype])
    seed = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    out.backward(seed)
    tout.backward(torch.tensor(seed))
    np.testing.assert_allclose(_grad(emb.weight), temb.weight.grad.numpy(), **TOL[dtype])


# ------------------------------------------------------------------------- losses
def _loss_inputs(kind, dtype):
    rng = np.random.default_rng(0)
    if kind == "mse":
        return rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal((4, 3)).astype(dtype)
    if kind == "ce":
        return rng.standard_normal((5, 4)).astype(dtype), rng.integers(0, 4, size=5)
    if kind == "ce_nlc":
        return rng.standard_normal((2, 4, 3)).astype(dtype), rng.integers(0, 4, size=(2, 3))
    return rng.standard_normal((4, 3)).astype(dtype), rng.uniform(0, 1, size=(4, 3)).astype(dtype)


LOSSES = {
    "mse": (F.mse_loss, "mse_loss"),
    "ce": (F.cross_entropy, "cross_entropy"),
    "ce_nlc": (F.cross_entropy, "cross_entropy"),
    "bce": (F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits"),
}


@DTYPES
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", list(LOSSES))
def test_losses_match_torch(kind, reduction, dtype, device):
    torch = require_torch()
    fn, tname = LOSSES[kind]
    pred, target = _loss_inputs(kind, dtype)
    mp = mg.tensor(pred, dtype=dtype, device=device, requires_grad=True)
    tp = torch.tensor(pred, requires_grad=True)
    loss = fn(mp, mg.tensor(target, device=device) if kind.startswith("ce") else target, reduction=reduction)
    tloss = getattr(torch.nn.functional, tname)(tp, torch.from_numpy(target), reduction=reduction)
    assert loss.dtype == dtype and loss.shape == tuple(tloss.shape)
    np.testing.assert_allclose(loss.numpy(), tloss.detach().numpy(), **TOL[dtype])
    seed = np.random.default_rng(1).standard_normal(loss.shape).astype(dtype)
    loss.backward(seed)
    tloss.backward(torch.tensor(seed))
    assert mp.grad.dtype == dtype
    np.testing.assert_allclose(_grad(mp), tp.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("kind", list(LOSSES))
def test_losses_gradcheck(kind, reduction, device):
    fn, _ = LOSSES[kind]
    pred, target = _loss_inputs(kind, np.float64)
    mp = mg.tensor(pred, dtype=np.float64, device=device, requires_grad=True)
    assert mg.gradcheck(lambda p: fn(p, target, reduction=reduction), mp)


def test_mse_target_that_requires_grad_gets_the_opposite_gradient(device):
    torch = require_torch()
    a, b = _loss_inputs("mse", np.float64)
    ma, mb = (mg.tensor(v, dtype=np.float64, device=device, requires_grad=True) for v in (a, b))
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    F.mse_loss(ma, mb).backward()
    torch.nn.functional.mse_loss(ta, tb).backward()
    np.testing.assert_allclose(_grad(mb), tb.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(_grad(ma), -_grad(mb), rtol=1e-12)


def test_loss_modules_equal_the_functions():
    rng = np.random.default_rng(0)
    logits = mg.tensor(rng.standard_normal((4, 3)))
    labels = np.array([0, 2, 1, 2])
    assert nn.CrossEntropyLoss()(logits, labels).item() == F.cross_entropy(logits, labels).item()
    assert nn.MSELoss("sum")(logits, np.zeros((4, 3))).item() == F.mse_loss(logits, np.zeros((4, 3)), "sum").item()
    probs = rng.uniform(size=(4, 3))
    assert nn.BCEWithLogitsLoss()(logits, probs).item() == F.binary_cross_entropy_with_logits(logits, probs).item()


# -------------------------------------------------------------------------- inits
def test_linear_init_follows_pytorch_bounds_and_statistics():
    mg.manual_seed(0)
    lin = nn.Linear(500, 400)
    bound = 1 / math.sqrt(500)  # kaiming_uniform(a=sqrt(5)) and the bias rule both give 1/sqrt(fan_in)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    assert w.dtype == np.float32 and w.shape == (400, 500)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.mean()) < 0.01 * bound and abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert np.abs(b).max() <= bound and b.std() > 0.4 * bound
    torch = require_torch()
    tw = torch.nn.Linear(500, 400).weight.detach().numpy()
    assert abs(tw.std() - w.std()) < 0.01 * bound  # the same distribution as PyTorch's


def test_inits_are_seedable_and_respect_dtype():
    mg.manual_seed(3)
    a = nn.Linear(5, 4)
    mg.manual_seed(3)
    b = nn.Linear(5, 4)
    c = nn.Linear(5, 4)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    assert not np.array_equal(b.weight.numpy(), c.weight.numpy())
    gen = np.random.default_rng(11)
    d = nn.Linear(5, 4, generator=gen)
    e = nn.Linear(5, 4, generator=np.random.default_rng(11))
    np.testing.assert_array_equal(d.weight.numpy(), e.weight.numpy())
    assert nn.Linear(3, 2, dtype=np.float64).weight.dtype == np.float64
    emb = nn.Embedding(300, 200)
    assert abs(emb.weight.numpy().std() - 1) < 0.02 and abs(emb.weight.numpy().mean()) < 0.02
    ln = nn.LayerNorm(3)
    np.testing.assert_array_equal(ln.weight.numpy(), 1)
    np.testing.assert_array_equal(ln.bias.numpy(), 0)
    assert nn.init.fan_in_and_out((8, 3, 5, 5)) == (75, 200)
    xb = nn.init.xavier_uniform((30, 20), generator=np.random.default_rng(0))
    assert np.abs(xb).max() <= math.sqrt(6 / 50)


def test_default_dtype_switch():
    try:
        mg.set_default_dtype(np.float64)
        assert nn.Linear(2, 2).weight.dtype == np.float64 and mg.tensor([1.0]).dtype == np.float64
    finally:
        mg.set_default_dtype(np.float32)
    assert mg.tensor([1.0]).dtype == np.float32
    with pytest.raises(ValueError, match="float32 or float64"):
        mg.set_default_dtype(np.int32)


# --------------------------------------------------------------------- optimizers
OPTIMIZERS = {
    "sgd": (dict(lr=0.1), dict(lr=0.1)),
    "sgd_momentum": (dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9)),
    "sgd_momentum_wd": (dict(lr=0.05, momentum=0.8, weight_decay=0.01), dict(lr=0.05, momentum=0.8, weight_decay=0.01)),
    "sgd_nesterov": (dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001),
                     dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001)),
    "adam": (dict(lr=0.01), dict(lr=0.01)),
    "adam_wd_betas": (dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
                      dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizers_match_torch_over_several_steps(name, device):
    torch = require_torch()
    mg_kwargs, torch_kwargs = OPTIMIZERS[name]
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    _copy_weights(model, tmodel).to(device)
    cls = optim.Adam if name.startswith("adam") else optim.SGD
    tcls = torch.optim.Adam if name.startswith("adam") else torch.optim.SGD
    opt, topt = cls(model.parameters(), **mg_kwargs), tcls(tmodel.parameters(), **torch_kwargs)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
    mx, my = mg.tensor(x, dtype=np.float64, device=device), mg.tensor(y, dtype=np.float64, device=device)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(5):
        opt.zero_grad()
        topt.zero_grad()
        F.mse_loss(model(mx), my).backward()
        torch.nn.functional.mse_loss(tmodel(tx), ty).backward()
        opt.step()
        topt.step()
    tparams = dict(tmodel.named_parameters())
    for pname, p in model.named_parameters():
        np.testing.assert_allclose(p.numpy(), tparams[pname].detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=pname)


def test_optimizer_keeps_float32_and_skips_params_without_grad():
    lin = nn.Linear(3, 2)
    frozen = lin.bias.numpy().copy()
    opt = optim.SGD(lin.parameters(), lr=np.float64(0.1), momentum=np.float64(0.5))
    (lin.weight * 2).sum().backward()
    opt.step()
    assert lin.weight.dtype == np.float32
    np.testing.assert_array_equal(lin.bias.numpy(), frozen)
    opt.zero_grad()
    assert lin.weight.grad is None


@pytest.mark.parametrize("kind", list(LOSSES))
def test_losses_backpropagate_twice_with_retain_graph(kind, device):
    """Losses may reuse their saved buffers on a graph's last backward, never on a retained one."""
    fn, _ = LOSSES[kind]
    pred, target = _loss_inputs(kind, np.float64)
    mp = mg.tensor(pred, dtype=np.float64, device=device, requires_grad=True)
    loss = fn(mp, target)
    loss.backward(retain_graph=True)
    first = _grad(mp).copy()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(_grad(mp), 3 * first, rtol=1e-12)
