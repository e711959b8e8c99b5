"""The FCDFN training loss (paper Eq. 7-8): L2 + gradient L1 + (1 - SSIM), each term usable alone.

The maths lives in plain functions on tensors (``ssim``, ``gradient_loss``); the registered modules
(``FCDFNLoss``, ``FCDFNSSIMLoss``, ``FCDFNGradientLoss``) are thin wrappers whose constructor
arguments are the YAML schema under ``train.pixel_opt`` (or any other loss key).

Every term is a mean over the batch of per-image values, and all images of a batch have the same
size, so the loss of a batch of 2B equals the mean of the losses of its two halves of size B (what
distributed data parallel training with gradient averaging relies on).

SSIM border handling: the local statistics are computed only where the whole Gaussian window lies
inside the image ("valid" convolution, no padding), and SSIM is the mean over that region. This is
exactly scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``, which filters with reflection and then discards a border of
``(win_size - 1) // 2`` pixels before averaging; padded borders would bias the loss towards
whatever the padding invents.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import LOSS_REGISTRY

#: Wang et al. 2004 stabilising constants: C1 = (K1 * data_range)**2, C2 = (K2 * data_range)**2.
SSIM_K1 = 0.01
SSIM_K2 = 0.03

_REDUCTIONS = ('mean', 'none')


def _check_pair(pred, target, name):
    if not (isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor)):
        raise TypeError(f'{name}: expected two tensors, got {type(pred).__name__} and {type(target).__name__}')
    if pred.dim() != 4:
        raise ValueError(f'{name}: expected (B, C, H, W) tensors, got shape {tuple(pred.shape)}')
    if pred.shape != target.shape:
        raise ValueError(f'{name}: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}')


def _check_reduction(reduction, name):
    if reduction not in _REDUCTIONS:
        raise ValueError(f'{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}')


def _reduce(per_image, reduction):
    return per_image.mean() if reduction == 'mean' else per_image


def gaussian_window_1d(window_size, sigma, dtype=torch.float32, device=None):
    """Normalised 1-D Gaussian, shape (window_size,), sum 1, centred on the middle tap."""
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f'window_size must be a positive odd integer, got {window_size}')
    if sigma <= 0:
        raise ValueError(f'sigma must be positive, got {sigma}')
    offsets = torch.arange(window_size, dtype=torch.float64, device=device) - (window_size - 1) / 2
    window = torch.exp(-offsets**2 / (2 * sigma**2))
    return (window / window.sum()).to(dtype)


def ssim(img1, img2, window_size=11, sigma=1.5, data_range=1.0, reduction='mean'):
    """Structural similarity (Wang et al. 2004) with a Gaussian window, per channel.

    Args:
        img1, img2 (Tensor): (B, C, H, W), values in [0, data_range]; H, W >= window_size.
        window_size (int): odd side of the Gaussian window (11 in the paper's SSIM).
        sigma (float): standard deviation of the window in pixels (1.5).
        data_range (float): dynamic range of the values (1.0 for images in [0, 1]).
        reduction (str): 'mean' -> scalar mean over the batch; 'none' -> (B,) one value per image.

    Returns:
        Tensor: SSIM averaged over channels and the valid region (where the window fits inside the
        image, no padding), then reduced over the batch. 1 for identical images.
    """
    _check_pair(img1, img2, 'ssim')
    _check_reduction(reduction, 'ssim')
    height, width = img1.shape[-2:]
    if height < window_size or width < window_size:
        raise ValueError(f'ssim: images of {height}x{width} are smaller than the {window_size}x{window_size} '
                         'window; SSIM is only computed where the window fits inside the image')
    if not img1.is_floating_point():
        raise TypeError(f'ssim: expected floating point images, got {img1.dtype}')

    channels = img1.shape[1]
    window = gaussian_window_1d(window_size, sigma, dtype=img1.dtype, device=img1.device)
    # The five local statistics are filtered in one grouped, separable pass: (B, 5C, H, W).
    stacked = torch.cat([img1, img2, img1 * img1, img2 * img2, img1 * img2], dim=1)
    groups = 5 * channels
    stacked = F.conv2d(stacked, window.view(1, 1, 1, -1).expand(groups, 1, 1, window_size), groups=groups)
    stacked = F.conv2d(stacked, window.view(1, 1, -1, 1).expand(groups, 1, window_size, 1), groups=groups)
    mu1, mu2, e11, e22, e12 = stacked.split(channels, dim=1)

    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    var1, var2, cov12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu12
    c1 = (SSIM_K1 * data_range)**2
    c2 = (SSIM_K2 * data_range)**2
    ssim_map = ((2 * mu12 + c1) * (2 * cov12 + c2)) / ((mu1_sq + mu2_sq + c1) * (var1 + var2 + c2))
    return _reduce(ssim_map.flatten(1).mean(dim=1), reduction)


def gradient_loss(pred, target, reduction='mean'):
    """L1 distance between forward-difference image gradients (paper Eq. 7, L_grad).

    ``mean|dx(pred) - dx(target)| + mean|dy(pred) - dy(target)|`` with
    ``dx(x)[..., i, j] = x[..., i, j + 1] - x[..., i, j]`` (and likewise dy along the rows); each mean
    runs over every channel and position where the difference exists.

    Args:
        pred, target (Tensor): (B, C, H, W) with H, W >= 2.
        reduction (str): 'mean' -> scalar mean over the batch; 'none' -> (B,) one value per image.
    """
    _check_pair(pred, target, 'gradient_loss')
    _check_reduction(reduction, 'gradient_loss')
    if min(pred.shape[-2:]) < 2:
        raise ValueError(f'gradient_loss: need H, W >= 2 for forward differences, got shape {tuple(pred.shape)}')
    # Differences of the residual equal the differences of the gradients (linearity), one subtraction less.
    residual = pred - target
    dx = residual[..., :, 1:] - residual[..., :, :-1]
    dy = residual[..., 1:, :] - residual[..., :-1, :]
    per_image = dx.abs().flatten(1).mean(dim=1) + dy.abs().flatten(1).mean(dim=1)
    return _reduce(per_image, reduction)


def _reject_weight(weight, name):
    # BasicSR losses accept an element-wise weight map; these terms are image-level (SSIM is only
    # defined on the valid region), so a weight would be silently meaningless. Refuse it instead.
    if weight is not None:
        raise ValueError(f'{name} does not support per-element weights (got a weight tensor)')


def _check_positive(value, name):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f'{name} must be a finite number >= 0, got {value!r}')


@LOSS_REGISTRY.register()
class FCDFNSSIMLoss(nn.Module):
    """``loss_weight * (1 - SSIM(pred, target))``, see :func:`ssim`.

    Args:
        loss_weight (float): multiplies the loss.
        window_size (int): odd side of the Gaussian window.
        sigma (float): standard deviation of the window.
        data_range (float): dynamic range of the images.
        reduction (str): 'mean' (scalar over the batch) or 'none' (one value per image).
    """

    def __init__(self, loss_weight=1.0, window_size=11, sigma=1.5, data_range=1.0, reduction='mean'):
        super().__init__()
        _check_positive(loss_weight, 'loss_weight')
        _check_reduction(reduction, 'FCDFNSSIMLoss')
        gaussian_window_1d(window_size, sigma)  # validates the window options at construction time
        self.loss_weight = loss_weight
        self.window_size = window_size
        self.sigma = sigma
        self.data_range = data_range
        self.reduction = reduction

    def forward(self, pred, target, weight=None):
        """pred, target: (B, C, H, W) in [0, data_range]."""
        _reject_weight(weight, 'FCDFNSSIMLoss')
        similarity = ssim(pred, target, self.window_size, self.sigma, self.data_range, self.reduction)
        return self.loss_weight * (1 - similarity)


@LOSS_REGISTRY.register()
class FCDFNGradientLoss(nn.Module):
    """``loss_weight * gradient_loss(pred, target)``, see :func:`gradient_loss`.

    Args:
        loss_weight (float): multiplies the loss.
        reduction (str): 'mean' (scalar over the batch) or 'none' (one value per image).
    """

    def __init__(self, loss_weight=1.0, reduction='mean'):
        super().__init__()
        _check_positive(loss_weight, 'loss_weight')
        _check_reduction(reduction, 'FCDFNGradientLoss')
        self.loss_weight = loss_weight
        self.reduction = reduction

    def forward(self, pred, target, weight=None):
        """pred, target: (B, C, H, W)."""
        _reject_weight(weight, 'FCDFNGradientLoss')
        return self.loss_weight * gradient_loss(pred, target, self.reduction)


@LOSS_REGISTRY.register()
class FCDFNLoss(nn.Module):
    """Paper Eq. 8: ``loss_weight * (L_rec + lambda_grad * L_grad + lambda_ssim * (1 - SSIM))``.

    ``L_rec`` is the mean squared error, ``L_grad`` is :func:`gradient_loss`, SSIM is :func:`ssim`;
    each is a mean over the batch.

    Logging: ``forward`` returns the scalar total. ``terms(pred, target)`` returns a dict
    ``{'l_rec', 'l_grad', 'l_ssim', 'l_total'}`` where the first three are the *unweighted* terms
    (``l_ssim`` is ``1 - SSIM``) and ``l_total`` is the value ``forward`` returns; backpropagate
    ``l_total`` and log the others (detached) to see what each term does.

    Args:
        loss_weight (float): multiplies the whole loss.
        lambda_grad (float): weight of the gradient term (paper: 1).
        lambda_ssim (float): weight of the SSIM term (paper: 0.1).
        ssim_window_size (int): odd side of the SSIM Gaussian window (11).
        ssim_sigma (float): standard deviation of the SSIM window (1.5).
        data_range (float): dynamic range of the images for SSIM (1.0).
    """

    def __init__(self, loss_weight=1.0, lambda_grad=1.0, lambda_ssim=0.1, ssim_window_size=11, ssim_sigma=1.5,
                 data_range=1.0):
        super().__init__()
        for value, name in ((loss_weight, 'loss_weight'), (lambda_grad, 'lambda_grad'), (lambda_ssim, 'lambda_ssim')):
            _check_positive(value, name)
        gaussian_window_1d(ssim_window_size, ssim_sigma)  # validates the window options at construction time
        self.loss_weight = loss_weight
        self.lambda_grad = lambda_grad
        self.lambda_ssim = lambda_ssim
        self.ssim_window_size = ssim_window_size
        self.ssim_sigma = ssim_sigma
        self.data_range = data_range

    def terms(self, pred, target):
        """Unweighted terms and the weighted total, all scalars: {'l_rec', 'l_grad', 'l_ssim', 'l_total'}."""
        _check_pair(pred, target, 'FCDFNLoss')
        l_rec = F.mse_loss(pred, target)
        l_grad = gradient_loss(pred, target)
        l_ssim = 1 - ssim(pred, target, self.ssim_window_size, self.ssim_sigma, self.data_range)
        l_total = self.loss_weight * (l_rec + self.lambda_grad * l_grad + self.lambda_ssim * l_ssim)
        return {'l_rec': l_rec, 'l_grad': l_grad, 'l_ssim': l_ssim, 'l_total': l_total}

    def forward(self, pred, target, weight=None):
        """pred, target: (B, C, H, W) in [0, data_range]; returns the scalar total loss."""
        _reject_weight(weight, 'FCDFNLoss')
        return self.terms(pred, target)['l_total']
