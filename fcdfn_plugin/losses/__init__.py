"""Registered losses of the FCDFN plugin: ``FCDFNLoss`` (paper Eq. 8) and its SSIM and gradient terms."""
from .fcdfn_loss import FCDFNGradientLoss, FCDFNLoss, FCDFNSSIMLoss, gradient_loss, ssim

__all__ = ['FCDFNLoss', 'FCDFNSSIMLoss', 'FCDFNGradientLoss', 'ssim', 'gradient_loss']
