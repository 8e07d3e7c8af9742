"""Recurrent training steps, minigrad vs PyTorch CPU, for bench/engine.py.

Cases (float32, identical weights and data on both sides, one full SGD step each):
  lstm_53x32_T150_N64:  LSTM(53 -> 32) over T = 150 steps (the paper's COBRE ICA
                        time series shape), linear head on the last hidden state,
                        2-class cross entropy. Target ratio minigrad / PyTorch <= 2.0.
  rnn_1x32_T100_N64:    Elman tanh RNN(1 -> 32) over T = 100 steps of sinusoids,
                        linear head on every step, next-value MSE (for information).

Run: ``python bench/engine.py --only lstm`` (both cases) or ``python bench/engine_lstm.py
[--threads 2]`` (the same, through bench/engine.py). Steps return their loss so that
bench/engine.py can check both sides start from the same weights and data.
"""
import os
import sys

import numpy as np

BATCH = 64


def _copy_weights(mg_module, torch_module):
    mg_module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})


def _lstm_case(torch):
    import minigrad as mg
    from minigrad import nn, optim
    from minigrad.nn.recurrent import LSTM

    n, steps, features, hidden, classes = BATCH, 150, 53, 32, 2
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, steps, features)).astype(np.float32)
    y = rng.integers(0, classes, n)

    t_lstm, t_head = torch.nn.LSTM(features, hidden, batch_first=True), torch.nn.Linear(hidden, classes)
    t_opt = torch.optim.SGD(list(t_lstm.parameters()) + list(t_head.parameters()), lr=1e-2)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    m_lstm, m_head = LSTM(features, hidden, batch_first=True), nn.Linear(hidden, classes)
    _copy_weights(m_lstm, t_lstm)
    _copy_weights(m_head, t_head)
    m_opt = optim.SGD(list(m_lstm.parameters()) + list(m_head.parameters()), lr=1e-2)
    mx, loss_fn = mg.tensor(x), nn.CrossEntropyLoss()

    def torch_step():
        t_opt.zero_grad()
        _, (h_n, _) = t_lstm(tx)
        loss = torch.nn.functional.cross_entropy(t_head(h_n[-1]), ty)
        loss.backward()
        t_opt.step()
        return loss.item()

    def minigrad_step():
        m_opt.zero_grad()
        _, (h_n, _) = m_lstm(mx)
        loss = loss_fn(m_head(h_n[-1]), y)
        loss.backward()
        m_opt.step()
        return loss.item()

    return f"lstm_{features}x{hidden}_T{steps}_N{n}", minigrad_step, torch_step


def _rnn_case(torch):
    import minigrad as mg
    from minigrad import nn, optim
    from minigrad.nn.recurrent import RNN

    n, steps, hidden = BATCH, 100, 32
    rng = np.random.default_rng(1)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    freq = rng.uniform(0.05, 0.3, (n, 1))
    wave = np.sin(freq * np.arange(steps + 1) + phase).astype(np.float32)
    x, target = wave[:, :-1, None], wave[:, 1:, None]         # predict the next value

    t_rnn, t_head = torch.nn.RNN(1, hidden, batch_first=True), torch.nn.Linear(hidden, 1)
    t_opt = torch.optim.SGD(list(t_rnn.parameters()) + list(t_head.parameters()), lr=1e-2)
    tx, ttarget = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(target))

    m_rnn, m_head = RNN(1, hidden, batch_first=True), nn.Linear(hidden, 1)
    _copy_weights(m_rnn, t_rnn)
    _copy_weights(m_head, t_head)
    m_opt = optim.SGD(list(m_rnn.parameters()) + list(m_head.parameters()), lr=1e-2)
    mx, mtarget, loss_fn = mg.tensor(x), mg.tensor(target), nn.MSELoss()

    def torch_step():
        t_opt.zero_grad()
        out, _ = t_rnn(tx)
        loss = torch.nn.functional.mse_loss(t_head(out), ttarget)
        loss.backward()
        t_opt.step()
        return loss.item()

    def minigrad_step():
        m_opt.zero_grad()
        out, _ = m_rnn(mx)
        loss = loss_fn(m_head(out), mtarget)
        loss.backward()
        m_opt.step()
        return loss.item()

    return f"rnn_1x{hidden}_T{steps}_N{n}", minigrad_step, torch_step


def cases(threads):
    """Yield (name, minigrad_step, torch_step) for bench/engine.py; both sides use ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    yield _lstm_case(torch)
    yield _rnn_case(torch)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import engine

    sys.exit(engine.main(["--only", "lstm"] + sys.argv[1:]))
