"""Multi-layer perceptron: a classifier or a mirrored auto-encoder."""
from minigrad import nn

from .options import check_classes, check_hidden, check_positive, check_task, make_activation


def mirrored_sizes(in_size, hidden):
    """Decoder sizes that mirror an encoder in_size -> hidden[0] -> ... -> hidden[-1]."""
    return tuple(reversed(hidden[:-1])) + (in_size,)


class MLP(nn.Module):
    """Linear layers with an activation after each hidden layer.

    classify: ``encoder`` (in -> hidden...) then ``head`` (hidden[-1] -> n_classes, logits).
    autoencode: ``encoder`` then ``decoder`` mirroring it (hidden[-1] -> ... -> hidden[0] -> in),
    with a linear output layer. Parameter names: encoder.0.weight, encoder.2.weight, ...,
    decoder.0.weight, ..., head.weight.
    """

    def __init__(self, in_features, hidden=(32,), n_classes=None, activation="relu", task="classify"):
        super().__init__()
        self.in_features = check_positive("in_features", in_features)
        self.hidden = check_hidden(hidden)
        self.task = check_task(task)
        self.n_classes = check_classes(self.task, n_classes)
        self.activation = activation
        layers, prev = [], in_features
        for size in self.hidden:
            layers += [nn.Linear(prev, size), make_activation(activation)]
            prev = size
        self.encoder = nn.Sequential(*layers)
        if self.task == "classify":
            self.head = nn.Linear(prev, self.n_classes)
        else:
            sizes = mirrored_sizes(in_features, self.hidden)
            layers = []
            for i, size in enumerate(sizes):
                layers.append(nn.Linear(prev, size))
                if i < len(sizes) - 1:
                    layers.append(make_activation(activation))
                prev = size
            self.decoder = nn.Sequential(*layers)

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"MLP expects input (N, {self.in_features}), got shape {x.shape}")
        z = self.encoder(x)
        return self.head(z) if self.task == "classify" else self.decoder(z)

    def extra_repr(self):
        return f"task={self.task!r}, hidden={self.hidden}, activation={self.activation!r}"
