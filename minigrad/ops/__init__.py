"""Differentiable ops, one family per module. Each op computes its forward on
the input's array module and returns a tensor whose backward closure maps the
output adjoint to the inputs' adjoints."""
