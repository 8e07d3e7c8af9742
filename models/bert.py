"""A small BERT-style encoder over a sequence of feature vectors (e.g. ICA time courses)."""

from minigrad import nn
from minigrad.nn import init
from minigrad.nn.module import new_parameter

from .options import check_activation, check_classes, check_hidden, check_positive, check_task


def _transformer():
    from minigrad.nn import transformer

    return transformer


def default_heads(d_model):
    """The most heads (4, else 2, else 1) that divide d_model."""
    return next(h for h in (4, 2, 1) if d_model % h == 0)


class BERT(nn.Module):
    """Post-LN transformer encoder (BERT) on (N, T, features).

    ``embed`` (a Linear projection of each time step to d_model) plus a learned positional
    embedding ``position`` (T, d_model), LayerNorm ``embed_norm``, then ``len(hidden)`` encoder
    layers of width d_model = hidden[0] (all widths must be equal) with ``ff_mult * d_model``
    feed-forward units and ``activation`` in the feed-forward block.
    classify: mean over time steps, then the linear ``head``.
    autoencode: a per-time-step linear ``readout`` back to the features.
    """

    def __init__(self, input_size, seq_len, hidden=(32,), n_classes=None, activation="relu", task="classify",
                 nhead=None, ff_mult=4, dropout=0.0):
        super().__init__()
        self.input_size = check_positive("input_size", input_size)
        self.seq_len = check_positive("seq_len", seq_len)
        self.hidden = check_hidden(hidden)
        if len(set(self.hidden)) != 1:
            raise ValueError(f"BERT layers share one width d_model; got different widths {self.hidden}")
        self.task = check_task(task)
        self.n_classes = check_classes(self.task, n_classes)
        self.activation = check_activation(activation)
        d_model = self.hidden[0]
        nhead = default_heads(d_model) if nhead is None else check_positive("nhead", nhead)
        if d_model % nhead:
            raise ValueError(f"nhead={nhead} must divide the width d_model={d_model}")
        check_positive("ff_mult", ff_mult)
        self.d_model, self.nhead = d_model, nhead
        self.embed = nn.Linear(input_size, d_model)
        self.position = new_parameter(init.normal((seq_len, d_model), std=0.02))
        self.embed_norm = nn.LayerNorm(d_model)
        T = _transformer()
        self.encoder = T.TransformerEncoder(
            lambda: T.TransformerEncoderLayer(d_model, nhead, dim_feedforward=ff_mult * d_model, dropout=dropout,
                                              activation=self.activation, batch_first=True),
            num_layers=len(self.hidden))
        if self.task == "classify":
            self.head = nn.Linear(d_model, self.n_classes)
        else:
            self.readout = nn.Linear(d_model, input_size)

    def forward(self, x):
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[1] > self.seq_len:
            raise ValueError(f"BERT expects input (N, T <= {self.seq_len}, {self.input_size}), got shape {x.shape}")
        h = self.embed(x) + self.position[: x.shape[1]]
        h = self.encoder(self.embed_norm(h))
        if self.task == "classify":
            return self.head(h.mean(axis=1))
        return self.readout(h)

    def extra_repr(self):
        return (f"task={self.task!r}, d_model={self.d_model}, layers={len(self.hidden)}, nhead={self.nhead}, "
                f"activation={self.activation!r}")


