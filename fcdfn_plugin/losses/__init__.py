"""Registered losses of the FCDFN plugin: ``FCDFNLoss`` (paper Eq. 8) and its SSIM and gradient terms, and
``DSNSumL2Loss`` (the DSN comparison system's loss)."""
from .dsn_loss import DSNSumL2Loss, sum_squared_error
from .fcdfn_loss import FCDFNGradientLoss, FCDFNLoss, FCDFNSSIMLoss, gradient_loss, ssim

__all__ = ['FCDFNLoss', 'FCDFNSSIMLoss', 'FCDFNGradientLoss', 'DSNSumL2Loss', 'ssim', 'gradient_loss',
           'sum_squared_error']
