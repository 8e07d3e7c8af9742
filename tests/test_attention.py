"""Attention, MultiheadAttention and TransformerEncoder(Layer) against PyTorch, gradchecks, factors."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn.attention import MultiheadAttention
from minigrad.nn.transformer import TransformerEncoder, TransformerEncoderLayer
from minigrad.ops import attention as att
from tests.conftest import close, padding_mask, require_torch

pytestmark = pytest.mark.usefixtures("kernel_path")  # every test on the reference and the fast kernels

TOL = {np.float64: 1e-10, np.float32: 2e-4}


def torch_attention(torch, q, k, v, mask=None, drop=None):
    """Reference softmax(q k^T / sqrt(d)) v on torch tensors (N, H, L, d); mask bool (N, Lk)."""
    s = q @ k.transpose(-1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(torch.as_tensor(mask)[:, None, None, :], -float("inf"))
    p = s.softmax(-1)
    if drop is not None:
        p = p * torch.as_tensor(drop)
    return p @ v, p


# ------------------------------------------------------------------------ the attention op
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_matches_torch(device, dtype, masked, rng):
    torch = require_torch()
    n, h, lq, lk, d, dv = 3, 2, 5, 7, 4, 3
    arrays = [rng.standard_normal(s) for s in ((n, h, lq, d), (n, h, lk, d), (n, h, lk, dv))]
    mask = padding_mask(n, lk, rng) if masked else None
    mq, mk, mv = (mg.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in arrays)
    out, w = att.scaled_dot_product_attention(mq, mk, mv, key_padding_mask=mask, need_weights=True)
    g_out, g_w = rng.standard_normal(out.shape), rng.standard_normal(w.shape)
    loss = (out * mg.tensor(g_out, dtype=dtype, device=device)).sum() + \
        (w * mg.tensor(g_w, dtype=dtype, device=device)).sum()
    loss.backward()

    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in arrays)
    t_out, t_w = torch_attention(torch, tq, tk, tv, mask)
    ((t_out * torch.tensor(g_out)).sum() + (t_w * torch.tensor(g_w)).sum()).backward()
    tol = TOL[dtype]
    close(out.numpy(), t_out.detach().numpy(), tol, "output")
    close(w.numpy(), t_w.detach().numpy(), tol, "weights")
    for name, m, t in (("q", mq, tq), ("k", mk, tk), ("v", mv, tv)):
        close(mg.backend.to_numpy(m.grad), t.grad.numpy(), tol, f"grad {name}")
    if masked:
        assert np.all(w.numpy()[np.broadcast_to(mask[:, None, None, :], w.shape)] == 0)


def test_sdpa_large_and_loose_scores_match_torch(rng):
    """Scores near exp's overflow, and a score bound so loose that rows fall back to the exact max."""
    torch = require_torch()
    n, h, length, d = 2, 1, 6, 4
    q = rng.standard_normal((n, h, length, d)) * 6
    k = rng.standard_normal((n, h, length, d)) * 6          # scores of order 100: exp(100) overflows float32
    v = rng.standard_normal((n, h, length, d))
    k_loose = k.copy()
    q_loose = q.copy()
    q_loose[1, ..., 0] = 0                                   # sample 1: q orthogonal to one huge key
    k_loose[1, 0, 0] = [3e3, 0, 0, 0]                        # bound |q| |k| >> true row max
    for qa, ka in ((q, k), (q_loose, k_loose)):
        for dtype in (np.float64, np.float32):
            tensors = [mg.tensor(a, dtype=dtype, requires_grad=True) for a in (qa, ka, v)]
            out = att.scaled_dot_product_attention(*tensors)
            g = rng.standard_normal(out.shape)
            (out * mg.tensor(g, dtype=dtype)).sum().backward()
            tq, tk, tv = (torch.tensor(a.astype(dtype), requires_grad=True) for a in (qa, ka, v))
            t_out, _ = torch_attention(torch, tq, tk, tv)
            (t_out * torch.tensor(g.astype(dtype))).sum().backward()
            assert np.all(np.isfinite(out.numpy()))
            tol = 1e-9 if dtype == np.float64 else 1e-3
            close(out.numpy(), t_out.detach().numpy(), tol, f"output {dtype.__name__}")
            for m, t in zip(tensors, (tq, tk, tv)):
                close(m.grad, t.grad.numpy(), tol, f"grad {dtype.__name__}")


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_gradcheck(masked, rng):
    n, h, lq, lk, d = 2, 2, 3, 4, 2
    mask = np.array([[False] * lk, [False, False, True, True]]) if masked else None
    q, k, v = (mg.tensor(rng.standard_normal(s), dtype=np.float64, requires_grad=True)
               for s in ((n, h, lq, d), (n, h, lk, d), (n, h, lk, 3)))

    def fn(q, k, v):
        out, w = att.scaled_dot_product_attention(q, k, v, key_padding_mask=mask, need_weights=True)
        return out.sum(axis=-1) + (w * w).sum(axis=-1)

    assert mg.gradcheck(fn, q, k, v)


def test_dropout_matches_torch_with_the_same_mask(rng):
    """Attention dropout with a padding mask: outputs, weights and all adjoints."""
    torch = require_torch()
    n, h, length, d, p = 2, 2, 5, 3, 0.4
    arrays = [rng.standard_normal((n, h, length, d)) for _ in range(3)]
    mask = np.array([[False] * length, [False, False, False, True, True]])
    tensors = [mg.tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]
    out, w = att.scaled_dot_product_attention(*tensors, key_padding_mask=mask, dropout_p=p, need_weights=True,
                                              generator=np.random.default_rng(7))
    drop = (np.random.default_rng(7).random((n, h, length, length)) >= p) / (1 - p)
    g = rng.standard_normal(out.shape)
    ((out * mg.tensor(g, dtype=np.float64)).sum() + w.sum()).backward()
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in arrays)
    t_out, t_w = torch_attention(torch, tq, tk, tv, mask, drop)
    ((t_out * torch.tensor(g)).sum() + t_w.sum()).backward()
    close(out.numpy(), t_out.detach().numpy(), 1e-10, "output")
    close(w.numpy(), t_w.detach().numpy(), 1e-10, "weights")
    for m, t in zip(tensors, (tq, tk, tv)):
        close(m.grad, t.grad.numpy(), 1e-10, "grad")
    # no dropout outside training
    q, k, v = (mg.tensor(a, dtype=np.float64) for a in arrays)
    evaluated = att.scaled_dot_product_attention(q, k, v, dropout_p=p, training=False)
    close(evaluated.numpy(), att.scaled_dot_product_attention(q, k, v).numpy(), 0, "eval output")


def test_dropout_gradcheck(rng):
    q, k, v = (mg.tensor(rng.standard_normal((2, 1, 3, 2)), dtype=np.float64, requires_grad=True) for _ in range(3))

    def fn(q, k, v):  # a fresh generator per call: the same dropout mask each time
        return att.scaled_dot_product_attention(q, k, v, dropout_p=0.3, generator=np.random.default_rng(3))

    assert mg.gradcheck(fn, q, k, v)


def test_packed_and_split_head_ops_gradcheck(rng):
    e, heads = 4, 2
    qkv = mg.tensor(rng.standard_normal((2, 3, 3 * e)), dtype=np.float64, requires_grad=True)
    mask = np.array([[False, False, False], [False, True, True]])
    assert mg.gradcheck(lambda t: att.packed_self_attention(t, heads, key_padding_mask=mask), qkv)
    assert mg.gradcheck(lambda t: att.packed_self_attention(t, heads, need_weights=True)[1], qkv)
    q = mg.tensor(rng.standard_normal((2, 2, e)), dtype=np.float64, requires_grad=True)
    k = mg.tensor(rng.standard_normal((2, 3, e)), dtype=np.float64, requires_grad=True)
    v = mg.tensor(rng.standard_normal((2, 3, 2 * heads)), dtype=np.float64, requires_grad=True)
    assert mg.gradcheck(lambda q, k, v: att.multi_head_attention(q, k, v, heads, key_padding_mask=mask), q, k, v)


def test_threads_give_the_same_result(rng, monkeypatch, split_everything):
    from minigrad.kernels import attention as fast_attention

    qkv = mg.tensor(rng.standard_normal((6, 40, 12)), dtype=np.float32, requires_grad=True)
    out = att.packed_self_attention(qkv, 2)
    out.backward(np.ones(out.shape, np.float32))
    expected_out, expected_grad = out.numpy(), qkv.grad.copy()
    monkeypatch.setattr(fast_attention, "CHUNK_BYTES", 1)  # one sample per chunk: several chunks for the workers
    split_everything(2)
    qkv.grad = None
    out = att.packed_self_attention(qkv, 2)
    out.backward(np.ones(out.shape, np.float32))
    close(out.numpy(), expected_out, 1e-6, "output")
    close(qkv.grad, expected_grad, 1e-6, "grad")


# --------------------------------------------------------------------------- MultiheadAttention
def _twin_mha(torch, e, heads, dtype, device, bias=True, batch_first=True):
    t_mha = torch.nn.MultiheadAttention(e, heads, bias=bias, batch_first=batch_first).double()
    with torch.no_grad():  # nonzero biases, so their gradients and effect are tested
        for p in t_mha.parameters():
            if p.ndim == 1:
                p.normal_()
    m_mha = MultiheadAttention(e, heads, bias=bias, batch_first=batch_first, dtype=dtype, device=device)
    m_mha.load_state_dict({k: v.detach().numpy() for k, v in t_mha.state_dict().items()})
    return m_mha, t_mha


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("inputs", ["self", "kv-shared", "distinct"])
def test_mha_matches_torch(device, dtype, heads, inputs, rng):
    torch = require_torch()
    n, lq, e = 3, 5, 8
    lk = lq if inputs == "self" else 6
    m_mha, t_mha = _twin_mha(torch, e, heads, dtype, device)
    mask = padding_mask(n, lk, rng) if heads != 2 else None
    arrays = {"q": rng.standard_normal((n, lq, e)), "k": rng.standard_normal((n, lk, e)),
              "v": rng.standard_normal((n, lk, e))}
    names = {"self": "qqq", "kv-shared": "qkk", "distinct": "qkv"}[inputs]
    m_in = {k: mg.tensor(a, dtype=dtype, device=device, requires_grad=True) for k, a in arrays.items()}
    t_in = {k: torch.tensor(a, requires_grad=True) for k, a in arrays.items()}
    average = heads != 4
    out, w = m_mha(*(m_in[c] for c in names), key_padding_mask=mask, average_attn_weights=average)
    t_out, t_w = t_mha(*(t_in[c] for c in names), key_padding_mask=None if mask is None else torch.tensor(mask),
                       average_attn_weights=average)
    g_out, g_w = rng.standard_normal(out.shape), rng.standard_normal(w.shape)
    ((out * mg.tensor(g_out, dtype=dtype, device=device)).sum()
     + (w * mg.tensor(g_w, dtype=dtype, device=device)).sum()).backward()
    ((t_out * torch.tensor(g_out)).sum() + (t_w * torch.tensor(g_w)).sum()).backward()
    tol = TOL[dtype]
    close(out.numpy(), t_out.detach().numpy(), tol, "output")
    close(w.numpy(), t_w.detach().numpy(), tol, "weights")
    t_params = dict(t_mha.named_parameters())
    for name, p in m_mha.named_parameters():
        close(mg.backend.to_numpy(p.grad), t_params[name].grad.numpy(), tol, f"grad {name}")
    for c in set(names):
        close(mg.backend.to_numpy(m_in[c].grad), t_in[c].grad.numpy(), tol, f"grad input {c}")


@pytest.mark.parametrize("batch_first", [True, False])
def test_mha_layout_options_match_torch(batch_first, rng):
    torch = require_torch()
    m_mha, t_mha = _twin_mha(torch, 6, 3, np.float64, "cpu", bias=False, batch_first=batch_first)
    assert [n for n, _ in m_mha.named_parameters()] == ["in_proj_weight", "out_proj.weight"]
    x = rng.standard_normal((4, 2, 6))
    mx, tx = mg.tensor(x, dtype=np.float64, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, w = m_mha(mx, mx, mx, need_weights=False)
    t_out, _ = t_mha(tx, tx, tx, need_weights=False)
    assert w is None
    (out * out).sum().backward()
    (t_out * t_out).sum().backward()
    close(out.numpy(), t_out.detach().numpy(), 1e-10, "output")
    close(mx.grad, tx.grad.numpy(), 1e-10, "grad input")
    close(m_mha.in_proj_weight.grad, t_mha.in_proj_weight.grad.numpy(), 1e-10, "grad in_proj_weight")


def test_mha_parameters_follow_pytorch(rng):
    torch = require_torch()
    t_mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    mg.manual_seed(0)
    m_mha = MultiheadAttention(8, 2)
    t_shapes = {k: tuple(v.shape) for k, v in t_mha.state_dict().items()}
    assert {k: v.shape for k, v in m_mha.state_dict().items()} == t_shapes
    assert list(m_mha.state_dict()) == list(t_shapes)
    assert np.all(m_mha.in_proj_bias.numpy() == 0) and np.all(m_mha.out_proj.bias.numpy() == 0)
    bound = np.sqrt(6 / (8 + 24))  # xavier_uniform on (3E, E)
    assert np.abs(m_mha.in_proj_weight.numpy()).max() <= bound


# ------------------------------------------------------------------------ encoder layers
def _twin_encoder(torch, dtype, device, num_layers=None, norm_first=False, activation="gelu", d=8, heads=2, ff=12):
    torch.manual_seed(1)
    t_layer = torch.nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation=activation, batch_first=True,
                                               norm_first=norm_first)
    m_layer = TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation=activation, norm_first=norm_first,
                                      dtype=dtype, device=device)
    if num_layers is None:
        t_model, m_model = t_layer.double(), m_layer
    else:
        t_model = torch.nn.TransformerEncoder(t_layer, num_layers, enable_nested_tensor=False).double()
        m_model = TransformerEncoder(m_layer, num_layers)
    with torch.no_grad():  # break the symmetry of zero biases, unit norms and equal layer copies
        for p in t_model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    state = {k: v.detach().numpy() for k, v in t_model.state_dict().items()}
    assert list(state) == [n for n, _ in m_model.named_parameters()]
    m_model.load_state_dict(state)
    return m_model, t_model


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_first,activation", [(False, "gelu"), (True, "relu")])
def test_encoder_layer_matches_torch(device, dtype, norm_first, activation, rng):
    torch = require_torch()
    m_layer, t_layer = _twin_encoder(torch, dtype, device, norm_first=norm_first, activation=activation)
    x = rng.standard_normal((3, 6, 8))
    mask = padding_mask(3, 6, rng)
    mx = mg.tensor(x, dtype=dtype, device=device, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    g = rng.standard_normal(x.shape)
    out = m_layer(mx, src_key_padding_mask=mask)
    t_out = t_layer(tx, src_key_padding_mask=torch.tensor(mask))
    (out * mg.tensor(g, dtype=dtype, device=device)).sum().backward()
    (t_out * torch.tensor(g)).sum().backward()
    tol = TOL[dtype]
    close(out.numpy(), t_out.detach().numpy(), tol, "output")
    close(mg.backend.to_numpy(mx.grad), tx.grad.numpy(), tol, "grad input")
    t_params = dict(t_layer.named_parameters())
    for name, p in m_layer.named_parameters():
        close(mg.backend.to_numpy(p.grad), t_params[name].grad.numpy(), tol, f"grad {name}")


def test_two_layer_encoder_matches_torch(device, rng):
    torch = require_torch()
    m_enc, t_enc = _twin_encoder(torch, np.float64, device, num_layers=2)
    x = rng.standard_normal((2, 5, 8))
    mx = mg.tensor(x, dtype=np.float64, device=device, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    out, t_out = m_enc(mx), t_enc(tx)
    (out * out).sum().backward()
    (t_out * t_out).sum().backward()
    close(out.numpy(), t_out.detach().numpy(), 1e-10, "output")
    close(mg.backend.to_numpy(mx.grad), tx.grad.numpy(), 1e-10, "grad input")
    t_params = dict(t_enc.named_parameters())
    for name, p in m_enc.named_parameters():
        close(mg.backend.to_numpy(p.grad), t_params[name].grad.numpy(), 1e-10, f"grad {name}")


def test_encoder_copies_or_builds_layers():
    layer = TransformerEncoderLayer(8, 2, 16, generator=np.random.default_rng(0))
    copied = TransformerEncoder(layer, 3)
    names = [n for n, _ in copied.named_parameters()]
    assert names[0] == "layers.0.self_attn.in_proj_weight" and names[-1] == "layers.2.norm2.bias"
    w0, w2 = copied.layers[0].linear1.weight, copied.layers[2].linear1.weight
    assert w0 is not w2 and np.array_equal(w0.numpy(), w2.numpy())   # deep copies start equal
    assert copied.layers[0].dropout.generator is copied.layers[2].dropout.generator is layer.dropout.generator
    built = TransformerEncoder(lambda: TransformerEncoderLayer(8, 2, 16), 2)
    assert not np.array_equal(built.layers[0].linear1.weight.numpy(), built.layers[1].linear1.weight.numpy())


def test_encoder_layer_dropout_is_active_only_in_training(rng):
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.5, generator=np.random.default_rng(0))
    x = mg.tensor(rng.standard_normal((2, 5, 8)))
    assert not np.allclose(layer(x).numpy(), layer(x).numpy())
    layer.eval()
    assert np.array_equal(layer(x).numpy(), layer(x).numpy())


# ------------------------------------------------------------------------------------ factors
PROJECTIONS = ("self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight", "linear2.weight")


def _encoder_and_data(rng, n=3, length=5):
    mg.manual_seed(2)
    enc = TransformerEncoder(lambda: TransformerEncoderLayer(8, 2, 12, dropout=0.0, dtype=np.float64), 2)
    x = rng.standard_normal((n, length, 8))
    mask = padding_mask(n, length, rng)
    target = rng.standard_normal((n, length, 8))
    return enc, x, mask, target


def _per_sample_loss_sum(enc, x, mask, target):
    out = enc(mg.tensor(x, dtype=np.float64), src_key_padding_mask=mask)
    return (out * mg.tensor(target, dtype=np.float64)).sum()   # a sum of per-sample losses


def test_encoder_factors_give_the_gradients(rng):
    enc, x, mask, target = _encoder_and_data(rng)
    with mg.capture_factors(enc) as factors:
        _per_sample_loss_sum(enc, x, mask, target).backward()
    params = dict(enc.named_parameters())
    for layer in ("layers.0.", "layers.1."):
        for name in PROJECTIONS:
            f = factors[layer + name]
            w = params[layer + name]
            assert f.A.shape == (3, 5, w.shape[1]) and f.D.shape == (3, 5, w.shape[0]), name
            close(np.einsum("npo,npi->oi", f.D, f.A), w.grad, 1e-12, layer + name)


def test_per_sample_factors_match_one_backward_per_sample(rng):
    enc, x, mask, target = _encoder_and_data(rng)
    with mg.capture_factors(enc) as factors:
        _per_sample_loss_sum(enc, x, mask, target).backward()
    kept = {name: (factors[name].A.copy(), factors[name].D.copy()) for name in factors}
    params = dict(enc.named_parameters())
    for i in range(3):
        enc.zero_grad()
        _per_sample_loss_sum(enc, x[i:i + 1], mask[i:i + 1], target[i:i + 1]).backward()
        for layer in ("layers.0.", "layers.1."):
            for name in PROJECTIONS:
                A, D = kept[layer + name]
                close(D[i].T @ A[i], params[layer + name].grad, 1e-12, f"sample {i} {layer + name}")


@pytest.mark.parametrize("inputs", ["kv-shared", "distinct"])
def test_distinct_inputs_hand_out_padded_blocks(inputs, rng):
    mha = MultiheadAttention(6, 2, dtype=np.float64)
    n, lq, lk = 2, 3, 4
    q = mg.tensor(rng.standard_normal((n, lq, 6)), dtype=np.float64)
    k = mg.tensor(rng.standard_normal((n, lk, 6)), dtype=np.float64)
    v = k if inputs == "kv-shared" else mg.tensor(rng.standard_normal((n, lk, 6)), dtype=np.float64)
    with mg.capture_factors(mha) as factors:
        out, _ = mha(q, k, v, need_weights=False)
        (out * out).sum().backward()
    f = factors["in_proj_weight"]
    assert len(f.uses) == 3 and f.A.shape == (n, lq + 2 * lk, 6) and f.D.shape == (n, lq + 2 * lk, 18)
    close(np.einsum("npo,npi->oi", f.D, f.A), mha.in_proj_weight.grad, 1e-12, "in_proj_weight")
    # each use only fills its own block of rows
    for j, (_, D) in enumerate(f.uses):
        outside = np.delete(D, np.s_[6 * j:6 * (j + 1)], axis=2)
        assert not outside.any()
    close(factors["out_proj.weight"].gradient(), mha.out_proj.weight.grad, 1e-12, "out_proj.weight")


def test_self_attention_hands_out_one_packed_use(rng):
    mha = MultiheadAttention(6, 3, dtype=np.float64)
    x = mg.tensor(rng.standard_normal((2, 4, 6)), dtype=np.float64)
    with mg.capture_factors(mha) as factors:
        out, _ = mha(x, x, x)
        out.sum().backward()
    f = factors["in_proj_weight"]
    assert len(f.uses) == 1 and f.A.shape == (2, 4, 6) and f.D.shape == (2, 4, 18)
    close(f.gradient(), mha.in_proj_weight.grad, 1e-12, "in_proj_weight")


# ------------------------------------------------------------------------------------- errors
def test_bad_construction_is_refused():
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="num_heads"):
        MultiheadAttention(8, 0)
    with pytest.raises(ValueError, match="dropout"):
        MultiheadAttention(8, 2, dropout=1.0)
    with pytest.raises(ValueError, match="divisible"):
        TransformerEncoderLayer(10, 4)
    with pytest.raises(ValueError, match="dim_feedforward"):
        TransformerEncoderLayer(8, 2, dim_feedforward=0)
    with pytest.raises(ValueError, match="unknown activation"):
        TransformerEncoderLayer(8, 2, activation="swishy")
    with pytest.raises(ValueError, match="num_layers"):
        TransformerEncoder(TransformerEncoderLayer(8, 2, 16), 0)
    with pytest.raises(TypeError, match="Module"):
        TransformerEncoder("layer", 2)


def test_bad_inputs_are_refused(rng):
    mha = MultiheadAttention(8, 2)
    x = mg.tensor(rng.standard_normal((2, 5, 8)))
    with pytest.raises(ValueError, match="3-D"):
        mha(x[0], x[0], x[0])
    with pytest.raises(ValueError, match="8 features"):
        y = mg.tensor(rng.standard_normal((2, 5, 6)))
        mha(y, y, y)
    with pytest.raises(TypeError, match="Tensor"):
        mha(x.numpy(), x.numpy(), x.numpy())
    with pytest.raises(ValueError, match="batch size"):
        mha(x, mg.tensor(rng.standard_normal((3, 5, 8))), mg.tensor(rng.standard_normal((3, 5, 8))))
    with pytest.raises(ValueError, match="same length"):
        mha(x, x, mg.tensor(rng.standard_normal((2, 4, 8))))
    with pytest.raises(ValueError, match=r"shape \(batch, key length\) = \(2, 5\)"):
        mha(x, x, x, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(TypeError, match="bool"):
        mha(x, x, x, key_padding_mask=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"every key of sample\(s\) \[1\]"):
        mha(x, x, x, key_padding_mask=np.array([[False] * 5, [True] * 5]))
    layer = TransformerEncoderLayer(8, 2, 16)
    with pytest.raises(ValueError, match="d_model=8"):
        layer(mg.tensor(rng.standard_normal((2, 5, 4))))
    with pytest.raises(TypeError):
        layer(x, np.zeros((2, 5), bool))   # PyTorch's positional src_mask is not supported


def test_bad_op_arguments_are_refused(rng):
    q = mg.tensor(rng.standard_normal((2, 2, 3, 4)))
    with pytest.raises(ValueError, match="4-D"):
        att.scaled_dot_product_attention(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="k must have shape"):
        att.scaled_dot_product_attention(q, mg.tensor(rng.standard_normal((2, 2, 3, 5))), q)
    with pytest.raises(ValueError, match="v must have shape"):
        att.scaled_dot_product_attention(q, q, mg.tensor(rng.standard_normal((2, 2, 4, 4))))
    with pytest.raises(TypeError, match="one dtype"):
        att.scaled_dot_product_attention(q, q, mg.tensor(q.numpy(), dtype=np.float64))
    with pytest.raises(ValueError, match="dropout"):
        att.scaled_dot_product_attention(q, q, q, dropout_p=-0.1)
    with pytest.raises(ValueError, match="3E"):
        att.packed_self_attention(mg.tensor(rng.standard_normal((2, 3, 8))), 2)
    with pytest.raises(ValueError, match="divisible"):
        att.multi_head_attention(*(mg.tensor(rng.standard_normal((2, 3, 6))),) * 3, num_heads=4)
