"""The Sample-Adaptive Element-wise CNN (paper Eq. 5) and the coarse (dilated, low-passed) branch."""
import torch
import torch.nn.functional as F
from torch import nn

from .basis_filter import basis_filter, pad_image, resolve_impl

SAECNN_MODES = ('cascade', 'parallel')


def saecnn_filter(image, coeffs, bases, biases, residual_weights, mode='cascade', padding_mode='reflect', impl='auto'):
    """Filter ``image`` by the predicted multi-layer network of Eq. 5.

    Args:
        image: (B,C,H,W) the image I of one branch.
        coeffs: (B,N,H,W) per-pixel coefficients, shared by every layer of the branch (as the paper).
        bases: sequence of L tensors (B,N,K_k,K_k), the basis of layer k (K_k odd, e.g. 15, 7, 3).
        biases: sequence of L tensors (B,1,H,W), the per-pixel kernel bias b^k.
        residual_weights: sequence of L tensors (B,1,H,W): alpha^k in 'cascade' mode, the per-pixel
            weight of layer k's response in 'parallel' mode.
        mode: 'cascade' (SAECNN): y_0 = I, y_k = W_k * y_{k-1} + alpha_k y_{k-1},
            F = y_L - (prod_k alpha_k) I, which equals the 2^L - 1 term expansion of Eq. 5.
            'parallel' (the "w/o SAECNN" ablation, one layer of several kernels):
            F = sum_k alpha_k (W_k * I).
        padding_mode: border handling of every layer, see :func:`basis_filter`.
        impl: implementation of every layer's filter ('auto', 'banded', 'fused', 'native'), see :func:`basis_filter`.

    Returns:
        (B,C,H,W) F(I).
    """
    if not (len(bases) == len(biases) == len(residual_weights)) or len(bases) == 0:
        raise ValueError(f'saecnn_filter needs as many bases ({len(bases)}), biases ({len(biases)}) and '
                         f'residual_weights ({len(residual_weights)}) as layers, at least one')
    if mode == 'cascade':
        response = image
        identity_gain = 1
        for basis, bias, alpha in zip(bases, biases, residual_weights):
            filtered = basis_filter(response, coeffs, basis, bias, padding_mode=padding_mode, impl=impl)
            response = filtered + alpha * response
            identity_gain = identity_gain * alpha
        # removes the bare identity path alpha_L...alpha_1 I, which involves no kernel at all
        return response - identity_gain * image
    if mode == 'parallel':
        out = 0
        for basis, bias, weight in zip(bases, biases, residual_weights):
            out = out + weight * basis_filter(image, coeffs, basis, bias, padding_mode=padding_mode, impl=impl)
        return out
    raise ValueError(f'mode (kernel_mode) must be one of {SAECNN_MODES}, got {mode!r}')


def tent_lowpass(image, factor=4):
    """Low-pass (B,C,H,W) by the separable tent (bilinear) filter of a ``factor`` times resampling.

    The 1-D taps are ``factor - |k|`` for ``|k| < factor``, normalised to sum 1 (reflect borders), so
    a constant image is unchanged. This is what bilinear down- then up-sampling does to frequencies,
    without the grid aliasing of actually resampling.
    """
    if factor <= 1:
        return image
    channels = image.shape[1]
    taps = torch.arange(1 - factor, factor, dtype=image.dtype, device=image.device)
    tent = factor - taps.abs()
    tent = tent / tent.sum()
    padded = pad_image(image, factor - 1, 'reflect')
    out = F.conv2d(padded, tent.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, tent.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def coarse_filter(image, coeffs, basis, bias, dilation=4, padding_mode='reflect', impl='auto'):
    """Coarse branch: a per-pixel kernel with taps ``dilation`` apart on the tent-low-passed image.

    (B,C,H,W) image, (B,N,H,W) coeffs, (B,N,K,K) basis, (B,1,H,W) bias -> (B,C,H,W). A 15x15 kernel
    with dilation 4 reaches 57x57 pixels with 225 taps; the low-pass removes what the sparse taps
    would alias (the "larger kernel using interpolation" of deepFnF). ``impl``: see :func:`basis_filter`.
    """
    return basis_filter(tent_lowpass(image, dilation), coeffs, basis, bias, dilation, padding_mode, impl)


class SAECNNFilter(nn.Module):
    """Module form of :func:`saecnn_filter` with a fixed ``mode``, ``padding_mode`` and ``impl``."""

    def __init__(self, mode='cascade', padding_mode='reflect', impl='auto'):
        super().__init__()
        if mode not in SAECNN_MODES:
            raise ValueError(f'mode (kernel_mode) must be one of {SAECNN_MODES}, got {mode!r}')
        resolve_impl(impl)
        self.mode = mode
        self.padding_mode = padding_mode
        self.impl = impl

    def forward(self, image, coeffs, bases, biases, residual_weights):
        return saecnn_filter(image, coeffs, bases, biases, residual_weights, self.mode, self.padding_mode, self.impl)

    def extra_repr(self):
        return f'mode={self.mode!r}'
