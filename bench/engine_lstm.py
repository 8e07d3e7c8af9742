"""Recurrent training steps (cases for bench/engine.py), float32, one full SGD step each.

- lstm: LSTM(53 -> 32) over T = 150 steps (the paper's COBRE ICA time series shape), N=64,
        a linear head on the last hidden state, 2-class cross entropy.
- rnn:  Elman tanh RNN(1 -> 32) over T = 100 steps of sinusoids, N=64, a linear head on every
        step, next-value MSE (for information: no target).
"""
import numpy as np

from _steps import minigrad_step, torch_step

BATCH = 64
LSTM_STEPS, LSTM_FEATURES, HIDDEN, CLASSES = 150, 53, 32, 2
RNN_STEPS = 100


def _lstm_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, LSTM_STEPS, LSTM_FEATURES)).astype(np.float32)
    return x, rng.integers(0, CLASSES, BATCH)


def _rnn_data():
    rng = np.random.default_rng(1)
    phase = rng.uniform(0, 2 * np.pi, (BATCH, 1))
    freq = rng.uniform(0.05, 0.3, (BATCH, 1))
    wave = np.sin(freq * np.arange(RNN_STEPS + 1) + phase).astype(np.float32)
    return np.ascontiguousarray(wave[:, :-1, None]), np.ascontiguousarray(wave[:, 1:, None])  # next value


def _models(nn, lstm, rnn):
    """(LSTM classifier, RNN predictor) around either library's recurrent layers."""
    class LastStepClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = lstm, nn.Linear(HIDDEN, CLASSES)

        def forward(self, x):
            _, (h_n, _) = self.lstm(x)
            return self.head(h_n[-1])

    class EveryStepPredictor(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = rnn, nn.Linear(HIDDEN, 1)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out)

    return LastStepClassifier(), EveryStepPredictor()


def minigrad_cases():
    """(name, step) of the LSTM and the RNN, in minigrad."""
    import minigrad as mg
    from minigrad import nn
    from minigrad.nn.recurrent import LSTM, RNN

    classifier, predictor = _models(nn, LSTM(LSTM_FEATURES, HIDDEN, batch_first=True),
                                    RNN(1, HIDDEN, batch_first=True))
    x, y = _lstm_data()
    yield "lstm", minigrad_step(classifier, nn.functional.cross_entropy, x, y, 1e-2)
    x, target = _rnn_data()
    yield "rnn", minigrad_step(predictor, nn.functional.mse_loss, x, mg.tensor(target), 1e-2)


def torch_cases():
    """(name, step) of the LSTM and the RNN, in PyTorch."""
    import torch

    classifier, predictor = _models(torch.nn, torch.nn.LSTM(LSTM_FEATURES, HIDDEN, batch_first=True),
                                    torch.nn.RNN(1, HIDDEN, batch_first=True))
    x, y = _lstm_data()
    yield "lstm", torch_step(classifier, torch.nn.functional.cross_entropy, x, torch.from_numpy(y), 1e-2)
    x, target = _rnn_data()
    yield "rnn", torch_step(predictor, torch.nn.functional.mse_loss, x, torch.from_numpy(target), 1e-2)
