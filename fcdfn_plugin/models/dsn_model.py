"""DSNModel: FCDFNModel with DSN's bidirectional (enhance + degrade) training loss."""
from collections import OrderedDict

import torch
from basicsr.losses import build_loss
from basicsr.utils.registry import MODEL_REGISTRY

from .fcdfn_model import FCDFNModel


class _QuantizeSTE(torch.autograd.Function):
    """Clamp to [0, 1] and round to 1/255 in the forward pass; pass the gradient straight through."""

    @staticmethod
    def forward(ctx, image):
        return torch.round(image.clamp(0, 1) * 255) / 255

    @staticmethod
    def backward(ctx, grad):
        return grad


def quantize(image):
    """DSN's ``Quantization``: 8-bit levels in [0, 1] with a straight-through gradient."""
    return _QuantizeSTE.apply(image)


@MODEL_REGISTRY.register()
class DSNModel(FCDFNModel):
    """Trains a network with a ``degrade`` direction (DSNArch) both ways, as DSN's ``IRN_model.py``.

    Loss = ``pixel_opt(enhance(lq), gt)`` (``l_enhance``) + ``degrade_opt(degrade(Q(gt)), lq)``
    (``l_degrade``), Q = :func:`quantize`; both directions in one network call
    (``net_g(lq, flash, also_degrade=Q(gt))``). Everything else is FCDFNModel's: validation and
    testing run the enhancement only; ``train.grad_clip_norm`` clips (DSN: 10).

    Options: ``train.pixel_opt`` (DSN: ``DSNSumL2Loss``) and ``train.degrade_opt`` (required, any
    registered loss; DSN: ``DSNSumL2Loss``).
    """

    def init_training_settings(self):
        super().init_training_settings()
        degrade_opt = self.opt['train'].get('degrade_opt')
        if not degrade_opt:
            raise ValueError('DSNModel needs train.degrade_opt, the loss of the degrade direction '
                             '(DSN: type: DSNSumL2Loss); use FCDFNModel to train the enhancement alone.')
        if self.cri_pix is None:
            raise ValueError('DSNModel needs train.pixel_opt, the loss of the enhance direction.')
        if not callable(getattr(self.get_bare_model(self.net_g), 'degrade', None)):
            raise ValueError(f'DSNModel needs a network with a degrade direction (DSNArch), got '
                             f'{type(self.get_bare_model(self.net_g)).__name__}.')
        self.cri_degrade = build_loss(degrade_opt).to(self.device)

    def compute_losses(self):
        self.output, degraded = self.forward_train(self.lq, self.flash, also_degrade=quantize(self.gt),
                                                   **self.network_kwargs())
        loss_dict = OrderedDict()
        loss_dict['l_enhance'] = self.cri_pix(self.output, self.gt)
        loss_dict['l_degrade'] = self.cri_degrade(degraded, self.lq)
        loss_dict['l_total'] = loss_dict['l_enhance'] + loss_dict['l_degrade']
        return loss_dict
