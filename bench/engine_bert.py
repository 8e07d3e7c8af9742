"""BERT-style encoder training step (a case for bench/engine.py).

Model (both sides, identical weights and data, float32, dropout 0): a Linear(53, 64) input
projection of a sequence of L=150 feature vectors, two post-LN TransformerEncoderLayers
(d_model 64, 4 heads, dim_feedforward 128, GELU), mean pooling over tokens and a Linear(64, 10)
classifier; cross-entropy on batch N=32; one SGD step (lr 0.01).
"""
import numpy as np

from _steps import minigrad_step, torch_step

BATCH, LENGTH, FEATURES = 32, 150, 53
D_MODEL, HEADS, FEEDFORWARD, LAYERS, CLASSES = 64, 4, 128, 2, 10
LR = 0.01


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, LENGTH, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=BATCH)
    return x, y


def _model(nn, encoder):
    """embed -> ``encoder`` -> mean over tokens -> head, for either library's ``nn``."""
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(FEATURES, D_MODEL)
            self.encoder = encoder
            self.head = nn.Linear(D_MODEL, CLASSES)

        def forward(self, x):
            return self.head(self.encoder(self.embed(x)).mean(axis=1))

    return Encoder()


def _layer(library):
    return library.TransformerEncoderLayer(D_MODEL, HEADS, FEEDFORWARD, dropout=0.0, activation="gelu",
                                           batch_first=True)


def minigrad_cases():
    """(name, step) of the encoder, in minigrad."""
    from minigrad import nn
    from minigrad.nn import transformer

    x, y = _data()
    model = _model(nn, transformer.TransformerEncoder(_layer(transformer), LAYERS))
    yield "bert", minigrad_step(model, nn.functional.cross_entropy, x, y, LR)


def torch_cases():
    """(name, step) of the encoder, in PyTorch."""
    import torch

    x, y = _data()
    model = _model(torch.nn, torch.nn.TransformerEncoder(_layer(torch.nn), LAYERS, enable_nested_tensor=False))
    yield "bert", torch_step(model, torch.nn.functional.cross_entropy, x, torch.from_numpy(y), LR)
