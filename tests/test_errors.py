"""Bad input gets a clear error naming the problem, never a deep NumPy traceback or silent wrong output."""
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend, nn, optim
from minigrad.nn import functional as F


def t(*shape, requires_grad=False):
    return mg.tensor(np.ones(shape), requires_grad=requires_grad)


# ------------------------------------------------------------------------- shapes
def test_mismatched_shapes_in_arithmetic():
    with pytest.raises(ValueError, match=r"add: shapes \(3, 4\), \(3,\) cannot be broadcast"):
        t(3, 4) + t(3)
    with pytest.raises(ValueError, match=r"mul: shapes \(2, 3\), \(4, 3\)"):
        t(2, 3) * np.ones((4, 3))
    with pytest.raises(ValueError, match="where: shapes"):
        mg.where(np.ones((2, 2), bool), t(3), t(3))


def test_mismatched_shapes_in_matmul():
    with pytest.raises(ValueError, match=r"matmul shape mismatch: \(3, 4\) @ \(5, 2\).*4 and 5"):
        t(3, 4) @ t(5, 2)
    with pytest.raises(ValueError, match=r"matmul \(batch axes\): shapes \(2,\), \(3,\)"):
        t(2, 3, 4) @ t(3, 4, 5)
    with pytest.raises(ValueError, match="at least one dimension"):
        mg.matmul(mg.tensor(2.0), t(3))


def test_mismatched_shapes_in_linear_and_layers():
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"linear expects input \(\.\.\., 4\), got shape \(2, 5\)"):
        lin(t(2, 5))
    with pytest.raises(ValueError, match=r"linear bias must have shape \(3,\)"):
        F.linear(t(2, 4), lin.weight, t(4))
    with pytest.raises(ValueError, match="layer_norm"):
        nn.LayerNorm(4)(t(2, 3))
    with pytest.raises(ValueError, match="cannot reshape a tensor of shape"):
        t(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match="not a permutation"):
        t(2, 3, 4).transpose((0, 0, 1))
    with pytest.raises(ValueError, match="cannot squeeze axis 0 of size 2"):
        t(2, 3).squeeze(0)
    with pytest.raises(IndexError, match=r"invalid for a tensor of shape \(2, 3\)"):
        t(2, 3)[5]
    with pytest.raises(ValueError, match="cannot concatenate shapes"):
        mg.concatenate([t(2, 3), t(3, 2)], axis=0)
    with pytest.raises(ValueError, match="stack needs tensors of one shape"):
        mg.stack([t(2), t(3)])
    with pytest.raises(TypeError, match="sequence of Tensors"):
        mg.concatenate([t(2), np.ones(2)])
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        t(2, 3).sum(3)


def test_loss_input_errors():
    with pytest.raises(ValueError, match="prediction shape .* and target shape .* differ"):
        F.mse_loss(t(3, 2), np.ones((2, 3)))
    with pytest.raises(TypeError, match="integer class targets"):
        F.cross_entropy(t(3, 4), np.zeros(3))
    with pytest.raises(ValueError, match=r"target classes must lie in \[0, 4\)"):
        F.cross_entropy(t(3, 4), np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="do not match logits"):
        F.cross_entropy(t(3, 4), np.array([0, 1]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.mse_loss(t(2), np.ones(2), reduction="avg")
    with pytest.raises(ValueError, match="differ"):
        F.binary_cross_entropy_with_logits(t(2, 2), np.ones(4))
    with pytest.raises(IndexError, match=r"embedding indices must lie in \[0, 3\)"):
        nn.Embedding(3, 2)(np.array([0, 3]))
    with pytest.raises(TypeError, match="embedding indices must be integers"):
        nn.Embedding(3, 2)(np.array([0.0, 1.0]))


# --------------------------------------------------------------------- state dicts
def test_wrong_state_dict_keys_and_shapes():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(KeyError, match=r"missing keys \['0.bias'\].*unexpected keys \['0.b'\]"):
        model.load_state_dict({"0.weight": np.zeros((2, 3)), "0.b": np.zeros(2)})
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(3, 2\) in the given state but \(2, 3\) in the model"):
        model.load_state_dict({"0.weight": np.zeros((3, 2)), "0.bias": np.zeros(2)})
    with pytest.raises(TypeError, match="'0.bias' has non-numeric dtype"):
        model.load_state_dict({"0.weight": np.zeros((2, 3)), "0.bias": np.array(["a", "b"])})


# ------------------------------------------------------------------------ autograd
def test_backward_on_a_non_scalar_without_seed():
    y = t(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"non-scalar tensor of shape \(2, 3\) needs a seed gradient"):
        y.backward()
    with pytest.raises(ValueError, match=r"seed gradient has shape \(3,\), expected \(2, 3\)"):
        y.backward(np.ones(3))


def test_backward_without_graph_or_twice():
    with pytest.raises(RuntimeError, match="does not require grad"):
        t(1).sum().backward()
    x = t(2, requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="already used and freed.*retain_graph=True"):
        loss.backward()


def test_requires_grad_on_an_int_tensor():
    with pytest.raises(TypeError, match="only float tensors can require grad, got dtype int64"):
        mg.tensor(np.array([1, 2]), requires_grad=True)
    with pytest.raises(TypeError, match="only float tensors can require grad"):
        mg.tensor(np.array([1, 2])).requires_grad_()
    with pytest.raises(TypeError, match="only float tensors"):
        mg.zeros(2, dtype=np.int32, requires_grad=True)


def test_truth_value_of_a_multi_element_tensor_is_ambiguous():
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t(3) > 0)
    assert bool(mg.tensor(2.0) > 1)


def test_where_needs_a_boolean_condition():
    with pytest.raises(TypeError, match="condition must be boolean"):
        mg.where(np.ones(2), t(2), t(2))


def test_gradcheck_input_errors():
    with pytest.raises(ValueError, match="float64"):
        mg.gradcheck(lambda x: x * 2, t(2, requires_grad=True))
    with pytest.raises(ValueError, match="requires_grad=True"):
        mg.gradcheck(lambda x: x * 2, mg.tensor(np.ones(2), dtype=np.float64))
    x = mg.tensor(np.ones(2), dtype=np.float64, requires_grad=True)
    with pytest.raises(AssertionError, match="gradcheck failed for input 0"):
        mg.gradcheck(lambda x: mg.tensor(np.ones(2), dtype=np.float64) * x.detach() + x * 0, x)


def test_optimizer_and_layer_argument_errors():
    lin = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="learning rate must be a non-negative number"):
        optim.SGD(lin.parameters(), lr=-1)
    with pytest.raises(ValueError, match="nesterov momentum needs momentum > 0"):
        optim.SGD(lin.parameters(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(lin.parameters(), betas=(1.0, 0.9))
    with pytest.raises(TypeError, match="must be Tensors"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\)"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="Linear sizes must be positive"):
        nn.Linear(0, 3)


# ------------------------------------------------------------------------- devices
@pytest.fixture
def no_cupy(monkeypatch):
    """Make CuPy unimportable, whatever this machine has."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(backend, "_cupy", None)


def test_cuda_without_cupy_raises_a_clear_device_error(no_cupy):
    with pytest.raises(mg.DeviceError, match="device 'cuda' needs CuPy, which is not installed"):
        mg.tensor([1.0], device="cuda")
    with pytest.raises(mg.DeviceError, match="needs CuPy"):
        t(2).to("cuda")
    with pytest.raises(mg.DeviceError, match="needs CuPy"):
        nn.Linear(2, 2).to("cuda")
    with pytest.raises(mg.DeviceError, match="needs CuPy"):
        nn.Linear(2, 2, device="cuda")
    assert issubclass(mg.DeviceError, RuntimeError)


def test_cuda_without_a_gpu_raises_a_clear_device_error(monkeypatch):
    class FakeRuntime:
        @staticmethod
        def getDeviceCount():
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    class FakeCupy:
        class cuda:
            runtime = FakeRuntime

    monkeypatch.setitem(sys.modules, "cupy", FakeCupy)
    monkeypatch.setattr(backend, "_cupy", None)
    with pytest.raises(mg.DeviceError, match="no usable GPU was found"):
        mg.tensor([1.0], device="cuda")


def test_unknown_devices_and_a_bogus_environment_variable(monkeypatch, no_cupy):
    with pytest.raises(mg.DeviceError, match="unknown device 'tpu': use 'cpu' or 'cuda'"):
        mg.tensor([1.0], device="tpu")
    monkeypatch.setenv("MINIGRAD_DEVICE", "bogus")
    with pytest.raises(mg.DeviceError, match="MINIGRAD_DEVICE='bogus' is not a device"):
        mg.tensor([1.0])
    with pytest.raises(mg.DeviceError, match="MINIGRAD_DEVICE"):
        nn.Linear(2, 2)
    monkeypatch.setenv("MINIGRAD_DEVICE", "cuda")
    with pytest.raises(mg.DeviceError, match="needs CuPy"):
        mg.tensor([1.0])
    monkeypatch.setenv("MINIGRAD_DEVICE", "cpu")
    assert mg.tensor([1.0]).device == "cpu"


def test_optimizer_state_that_does_not_fit_is_named():
    lin = nn.Linear(3, 2)
    opt = optim.Adam(lin.parameters())
    good = {"lr": 1e-3, "t": 1, "state": {0: {"exp_avg": np.zeros((2, 3)), "exp_avg_sq": np.zeros((2, 3))}}}
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(3, 2\), the parameter \(2, 3\)"):
        opt.load_state_dict({**good, "state": {0: {"exp_avg": np.zeros((3, 2)), "exp_avg_sq": np.zeros((3, 2))}}})
    with pytest.raises(ValueError, match="names parameter 5, but there are 2"):
        opt.load_state_dict({**good, "state": {5: good["state"][0]}})
    with pytest.raises(KeyError, match="expected \\['momentum_buffer'\\]"):
        optim.SGD(lin.parameters(), lr=0.1, momentum=0.9).load_state_dict(good)
    assert opt.t == 0 and opt.state == {}  # nothing changed by the failed loads
    opt.load_state_dict(good)
    assert opt.t == 1 and set(opt.state) == {0}
