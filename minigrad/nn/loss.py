"""Loss modules wrapping the fused loss ops."""
from .module import Module
from ..ops import loss as L


class MSELoss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, pred, target):
        return L.mse_loss(pred, target, self.reduction)


class CrossEntropyLoss(Module):
    """Softmax cross entropy with integer class targets."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits, target):
        return L.cross_entropy(logits, target, self.reduction)


class BCEWithLogitsLoss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits, target):
        return L.binary_cross_entropy_with_logits(logits, target, self.reduction)
