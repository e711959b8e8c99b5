"""DSN's reconstruction loss: squared error summed over each image, averaged over the batch."""
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .fcdfn_loss import _check_pair, _check_positive, _reject_weight


def sum_squared_error(pred, target):
    """``mean_b sum_{c,h,w} (pred - target)**2`` (DSN's ``ReconstructionLoss('l2')``), (B,C,H,W) each."""
    _check_pair(pred, target, 'sum_squared_error')
    return (pred - target).square().flatten(1).sum(dim=1).mean()


@LOSS_REGISTRY.register()
class DSNSumL2Loss(nn.Module):
    """``loss_weight * sum_squared_error(pred, target)``: each image's squared error summed over C*H*W,
    the mean over the batch (so it grows with the crop size; DSN clips the gradient norm to 10).

    Args:
        loss_weight (float): multiplies the loss (DSN: 1 for both directions).
    """

    def __init__(self, loss_weight=1.0):
        super().__init__()
        _check_positive(loss_weight, 'loss_weight')
        self.loss_weight = loss_weight

    def forward(self, pred, target, weight=None):
        _reject_weight(weight, 'DSNSumL2Loss')
        return self.loss_weight * sum_squared_error(pred, target)
