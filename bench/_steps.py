"""One full SGD training step of a model on each side (minigrad, PyTorch), for the engine cases."""


def training_steps(mg_model, torch_model, mg_input, torch_input, mg_target, torch_target,
                   mg_loss, torch_loss, lr, torch, mg):
    """(minigrad_step, torch_step): zero_grad, forward, loss, backward, SGD update; each returns its loss."""
    mg_opt = mg.optim.SGD(mg_model.parameters(), lr=lr)
    torch_opt = torch.optim.SGD(torch_model.parameters(), lr=lr)

    def minigrad_step():
        mg_opt.zero_grad()
        loss = mg_loss(mg_model(mg_input), mg_target)
        loss.backward()
        mg_opt.step()
        return loss.item()

    def torch_step():
        torch_opt.zero_grad()
        loss = torch_loss(torch_model(torch_input), torch_target)
        loss.backward()
        torch_opt.step()
        return loss.item()

    return minigrad_step, torch_step
