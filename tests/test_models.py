"""The paper's models: shapes, mirrored decoders, variants, factor hand-out, errors."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from models import BERT, CNN2D, MLP, ElmanRNN, UnrolledRNN, build_model, hidden_sizes

# One small sample shape per architecture, in the layout the model reads.
SHAPES = {"mlp": (12,), "cnn1d": (5, 9), "cnn2d": (1, 7, 6), "cnn3d": (1, 5, 4, 6), "rnn": (6, 3),
          "lstm": (6, 3), "bert": (6, 4)}


def _input(shape, n=4, device="cpu", seed=0):
    return mg.tensor(np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32), device=device)


@pytest.mark.parametrize("arch", sorted(SHAPES))
@pytest.mark.parametrize("task", ["classify", "autoencode"])
def test_every_model_runs_both_tasks_and_hands_out_factors(arch, task, device):
    x = _input(SHAPES[arch], device=device)
    model = build_model(arch, task, SHAPES[arch], n_classes=3).to(device)
    with mg.capture_factors(model) as factors:
        out = model(x)
        loss = (out * out).mean()
        loss.backward()
    assert out.shape == ((4, 3) if task == "classify" else x.shape)
    params = dict(model.named_parameters())
    assert all(p.grad is not None for p in params.values()), [n for n, p in params.items() if p.grad is None]
    # every matrix weight hands out factors whose product is its gradient (paper eq. 1)
    for name, f in factors.items():
        grad = params[name].grad
        g = f.gradient()
        assert g.size == grad.size
        if name.startswith("decoder") and "cnn" in arch:  # ConvTranspose: weight (c_in, c_out, *k), G transposed
            g = g.T
        np.testing.assert_allclose(mg.backend.to_numpy(g).reshape(grad.shape), mg.backend.to_numpy(grad),
                                   rtol=1e-4, atol=1e-6, err_msg=name)
    assert any(n.startswith("encoder") for n in factors)
    assert all(not n[0].isdigit() for n in params), "parameter names should name their submodule"


@pytest.mark.parametrize("arch", sorted(SHAPES))
def test_deep_thin_variant_and_activations(arch):
    for activation in ("relu", "tanh", "sigmoid"):
        model = build_model(arch, "autoencode", SHAPES[arch], width=8, depth=3, activation=activation)
        out = model(_input(SHAPES[arch]))
        assert out.shape == (4,) + SHAPES[arch]
        assert model.hidden == (8, 8, 8)
    assert hidden_sizes(8, 3) == (8, 8, 8) and hidden_sizes() == (32,)


def test_mlp_autoencoder_mirrors_its_encoder():
    model = MLP(20, hidden=(16, 8, 4), task="autoencode", activation="tanh")
    enc = [p.shape for n, p in model.named_parameters() if n.startswith("encoder") and n.endswith("weight")]
    dec = [p.shape for n, p in model.named_parameters() if n.startswith("decoder") and n.endswith("weight")]
    assert enc == [(16, 20), (8, 16), (4, 8)]
    assert dec == [(8, 4), (16, 8), (20, 16)]
    assert isinstance(model.encoder[1], nn.Tanh)
    assert not isinstance(model.decoder[len(model.decoder) - 1], (nn.Tanh, nn.ReLU))  # linear output


def test_cnn_decoder_restores_odd_sizes_exactly():
    model = CNN2D(2, (7, 10), hidden=(4, 4, 4), task="autoencode")
    assert model(_input((2, 7, 10), n=2)).shape == (2, 2, 7, 10)
    assert model.feature_size == (1, 2)


def test_unrolled_rnn_matches_the_fused_rnn():
    """The unrolled Elman layer (used for sigmoid) equals nn.RNN for tanh, values and gradients."""
    from minigrad.nn.recurrent import RNN

    mg.manual_seed(3)
    fused = RNN(3, 5, nonlinearity="tanh", batch_first=True).double()
    unrolled = UnrolledRNN(3, 5, "tanh").double()
    unrolled.load_state_dict({k: v for k, v in fused.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 6, 3))
    outs = []
    for layer in (fused, unrolled):
        xt = mg.tensor(x, requires_grad=True, dtype="float64")
        out, h = layer(xt)
        (out.sum() + (h * h).sum()).backward()
        outs.append((out.numpy(), h.numpy(), xt.grad, {n: p.grad for n, p in layer.named_parameters()}))
    np.testing.assert_allclose(outs[0][0], outs[1][0], atol=1e-12)
    np.testing.assert_allclose(outs[0][1], outs[1][1], atol=1e-12)
    np.testing.assert_allclose(outs[0][2], outs[1][2], atol=1e-12)
    for name in outs[0][3]:
        np.testing.assert_allclose(outs[0][3][name], outs[1][3][name], atol=1e-12, err_msg=name)


def test_elman_sigmoid_uses_the_unrolled_layer_and_keeps_pytorch_names():
    model = ElmanRNN(3, hidden=(4,), activation="sigmoid", task="classify", n_classes=2)
    assert isinstance(model.encoder[0], UnrolledRNN)
    assert [n for n, _ in model.named_parameters()][:2] == ["encoder.0.weight_ih_l0", "encoder.0.weight_hh_l0"]


def test_bert_shapes_and_checks():
    model = BERT(4, 6, hidden=(8, 8), task="classify", n_classes=2)
    assert model.nhead == 4 and len(model.encoder.layers) == 2
    assert model(_input((5, 4))).shape == (4, 2)  # shorter sequences use the first positions
    with pytest.raises(ValueError, match="share one width"):
        BERT(4, 6, hidden=(8, 16), task="autoencode")
    with pytest.raises(ValueError, match="divide"):
        BERT(4, 6, hidden=(6,), nhead=4, task="autoencode")


def test_training_lowers_the_loss():
    mg.manual_seed(0)
    x = _input((12,), n=32)
    model = build_model("mlp", "autoencode", (12,))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = nn.MSELoss()(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(arch="vgg"), "unknown model"),
    (dict(task="segment"), "unknown task"),
    (dict(activation="swish"), "unknown activation"),
    (dict(task="classify", n_classes=None), "n_classes"),
    (dict(width=0), "width"),
    (dict(input_shape=(3, 4)), "input_shape"),
])
def test_build_model_rejects_bad_arguments(kwargs, match):
    args = dict(arch="mlp", task="autoencode", input_shape=(12,), n_classes=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_model(args.pop("arch"), **args)


def test_forward_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"expects input \(N, 12\)"):
        build_model("mlp", "autoencode", (12,))(_input((10,)))
    with pytest.raises(ValueError, match="expects input"):
        build_model("cnn2d", "classify", (1, 7, 6), n_classes=2)(_input((1, 6, 6)))
