"""The benchmarks' data and the naive PyTorch pipeline (hooks + torch.linalg.svdvals), in a module
that imports neither minigrad nor autospec, so a PyTorch-only process can use it."""
import numpy as np


def make_data(n, features=784, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, features), dtype=np.float32)
    labels = np.where(np.arange(n) < n // 2, "HC", "SZ")
    return X, labels


def torch_naive_step(X, labels, width, lr=1e-3):
    """PyTorch with hooks catching A and D, and torch.linalg.svdvals of A, D, G per group (the
    model's weights from PyTorch's own initialisation: seed it first)."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], width), torch.nn.ReLU(),
                                torch.nn.Linear(width, X.shape[1]))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x = torch.from_numpy(X)
    acts, adjs = {}, {}
    for name, mod in model.named_children():
        if isinstance(mod, torch.nn.Linear):
            mod.register_forward_hook(lambda m, inp, out, name=name: acts.__setitem__(name, inp[0].detach()))
            mod.register_full_backward_hook(lambda m, gin, gout, name=name: adjs.__setitem__(name, gout[0].detach()))
    groups = [torch.from_numpy(np.flatnonzero(labels == g)) for g in np.unique(labels)]
    spectra = []

    def step():
        loss = torch.nn.functional.mse_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        spectra.clear()
        for name in acts:
            A, D = acts[name], adjs[name]
            for idx in [None] + groups:
                A_s = A if idx is None else A[idx]
                D_s = D if idx is None else D[idx]
                G = A_s.T @ D_s
                spectra.append((torch.linalg.svdvals(G), torch.linalg.svdvals(A_s), torch.linalg.svdvals(D_s)))
        opt.step()

    return step
