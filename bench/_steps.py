"""One full SGD training step of a model on each side (minigrad, PyTorch), for the engine cases."""


def _step(model, opt, loss_fn, x, target):
    """zero_grad, forward, loss, backward, SGD update; returns the loss (both libraries share this API)."""
    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def training_steps(mg_model, torch_model, mg_input, torch_input, mg_target, torch_target,
                   mg_loss, torch_loss, lr, torch, mg):
    """(minigrad_step, torch_step), each one full SGD step returning its loss."""
    return (_step(mg_model, mg.optim.SGD(mg_model.parameters(), lr=lr), mg_loss, mg_input, mg_target),
            _step(torch_model, torch.optim.SGD(torch_model.parameters(), lr=lr), torch_loss, torch_input,
                  torch_target))
