"""Convolutional networks over 1-D, 2-D and 3-D inputs: classifiers and mirrored auto-encoders.

Every encoder layer is a stride-2 convolution (kernel ``kernel_size``, padding kernel_size // 2)
followed by the activation, so each halves the spatial size (rounding up). The auto-encoder's
decoder mirrors it with stride-2 transposed convolutions whose output padding restores the
encoder's sizes exactly; the last one is linear. The classifier flattens the last feature map
into a linear ``head``.
"""
import math

from minigrad import nn

from .options import check_classes, check_hidden, check_positive, check_task, make_activation



def _layers(dims):
    """(Conv, ConvTranspose) classes for 1, 2 or 3 spatial dims."""
    from minigrad.nn import conv

    return ({1: conv.Conv1d, 2: conv.Conv2d, 3: conv.Conv3d}[dims],
            {1: conv.ConvTranspose1d, 2: conv.ConvTranspose2d, 3: conv.ConvTranspose3d}[dims])


def _halved(size):
    """Spatial size after a stride-2 conv with odd kernel k and padding k // 2: ceil(size / 2)."""
    return tuple((s + 1) // 2 for s in size)


class _CNN(nn.Module):
    dims = 0

    def __init__(self, in_channels, input_size, hidden=(32,), n_classes=None, activation="relu",
                 task="classify", kernel_size=3):
        super().__init__()
        name = type(self).__name__
        self.in_channels = check_positive("in_channels", in_channels)
        try:
            size = tuple(int(s) for s in input_size)
        except TypeError:
            raise TypeError(f"{name}: input_size must be a tuple of {self.dims} ints, got {input_size!r}") from None
        if len(size) != self.dims or any(s < 1 for s in size):
            raise ValueError(f"{name}: input_size must be {self.dims} positive ints (the spatial size), "
                             f"got {input_size!r}")
        check_positive("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"{name}: kernel_size must be odd so that the decoder mirrors the encoder, "
                             f"got {kernel_size}")
        self.input_size, self.kernel_size = size, kernel_size
        self.hidden = check_hidden(hidden, "channels")
        self.task = check_task(task)
        self.n_classes = check_classes(self.task, n_classes)
        self.activation = activation
        Conv, ConvT = _layers(self.dims)
        pad = kernel_size // 2
        sizes, layers, prev = [size], [], in_channels
        for channels in self.hidden:
            layers += [Conv(prev, channels, kernel_size, stride=2, padding=pad), make_activation(activation)]
            sizes.append(_halved(sizes[-1]))
            prev = channels
        self.encoder = nn.Sequential(*layers)
        self.feature_size = sizes[-1]
        if self.task == "classify":
            self.flatten = nn.Flatten()
            self.head = nn.Linear(prev * math.prod(self.feature_size), self.n_classes)
        else:
            targets = list(reversed(self.hidden[:-1])) + [in_channels]
            layers = []
            for i, channels in enumerate(targets):
                small, big = sizes[-1 - i], sizes[-2 - i]
                # (small - 1) * 2 - 2 * pad + k = 2 * small - 1; output padding makes up the rest.
                out_pad = tuple(b - (2 * s - 1) for s, b in zip(small, big))
                layers.append(ConvT(prev, channels, kernel_size, stride=2, padding=pad, output_padding=out_pad))
                if i < len(targets) - 1:
                    layers.append(make_activation(activation))
                prev = channels
            self.decoder = nn.Sequential(*layers)

    def forward(self, x):
        expected = (self.in_channels,) + self.input_size
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"{type(self).__name__} expects input (N, {', '.join(map(str, expected))}), "
                             f"got shape {x.shape}")
        z = self.encoder(x)
        if self.task == "classify":
            return self.head(self.flatten(z))
        return self.decoder(z)

    def extra_repr(self):
        return (f"task={self.task!r}, channels={self.hidden}, input_size={self.input_size}, "
                f"activation={self.activation!r}")


class CNN1D(_CNN):
    """1-D CNN over (N, C, L), e.g. ICA time courses with components as channels."""
    dims = 1


class CNN2D(_CNN):
    """2-D CNN over (N, C, H, W), e.g. digit images."""
    dims = 2


class CNN3D(_CNN):
    """3-D CNN over (N, C, D, H, W), e.g. spatial-map volumes."""
    dims = 3
