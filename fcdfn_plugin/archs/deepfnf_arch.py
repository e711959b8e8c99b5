"""DeepFnFArch: the deepFnF baseline (paper ref. [8]) built from the same parts and the same op."""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ..ops import basis_filter, coarse_filter
from .unet_blocks import (BasisDecoder, PixelDecoder, UNetEncoder, check_choice, check_kernel_size, context_sums,
                          global_context, init_small_, init_zero_, level_widths, log_of, pad_to_multiple)


@ARCH_REGISTRY.register()
class DeepFnFArch(nn.Module):
    """One encoder on the concatenated pair, per-pixel coefficients and biases from one decoder, one
    basis decoder; the low-light image is filtered by a single per-pixel kernel plus the coarse branch.

    Args:
        in_channels: colour channels of each input (3).
        base_channels, depth: U-Net width and levels, as FCDFNArch.
        num_basis: N basis kernels per layer.
        kernel_size: the single per-pixel kernel (15).
        coarse_kernel_size, coarse_dilation: coarse branch, as FCDFNArch (15, 4).
        lowlight_gain, flash_gain: initial learnable global input gains, as FCDFNArch.
        padding_mode: 'reflect' or 'zeros'.

    ``forward(lq, flash, context=None)``: (B,3,H,W) each, any H, W -> (B,3,H,W), not clamped.
    ``context``, :meth:`encode_context` and ``pad_multiple`` as FCDFNArch.
    """

    def __init__(self, in_channels=3, base_channels=64, depth=5, num_basis=90, kernel_size=15,
                 coarse_kernel_size=15, coarse_dilation=4, lowlight_gain=7.0, flash_gain=2.0,
                 padding_mode='reflect'):
        super().__init__()
        check_kernel_size('kernel_size', kernel_size)
        check_kernel_size('coarse_kernel_size', coarse_kernel_size)
        check_choice('padding_mode', padding_mode, ('reflect', 'zeros'))
        if int(coarse_dilation) != coarse_dilation or coarse_dilation < 1:
            raise ValueError(f'coarse_dilation must be a positive integer, got {coarse_dilation!r}')
        self.in_channels, self.num_basis = in_channels, num_basis
        self.kernel_size, self.coarse_kernel_size, self.coarse_dilation = kernel_size, coarse_kernel_size, coarse_dilation
        self.padding_mode = padding_mode
        self.pad_multiple = 2**(depth - 1)
        widths = level_widths(base_channels, depth)
        self.encoder = UNetEncoder(2 * in_channels, widths)
        self.decoder_pixel = PixelDecoder(widths, skip_multiplier=1)
        self.decoder_basis = BasisDecoder(widths, 1, num_basis, (kernel_size, coarse_kernel_size))
        self.coeff_head = nn.Conv2d(widths[0], num_basis, 3, padding=1)
        self.bias_head = nn.Conv2d(widths[0], 2, 3, padding=1)
        init_small_(self.coeff_head, 1e-3)
        init_zero_(self.bias_head)
        bias_offset = torch.tensor([1.0 / kernel_size**2, 1.0 / coarse_kernel_size**2])
        self.register_buffer('bias_offset', bias_offset.view(1, 2, 1, 1), persistent=False)
        self.dc_gain = 2.0  # fine kernel + coarse kernel, each a box filter of sum 1 at the start
        self.log_gain = nn.Parameter(torch.tensor([log_of(lowlight_gain, 'lowlight_gain'),
                                                   log_of(flash_gain, 'flash_gain')]))

    def _padded_inputs(self, lq, flash):
        if lq.dim() != 4 or lq.shape[1] != self.in_channels or flash.shape != lq.shape:
            raise ValueError(f'DeepFnFArch expects lq and flash of the same shape (B,{self.in_channels},H,W), '
                             f'got {tuple(lq.shape)} and {tuple(flash.shape)}')
        return pad_to_multiple(lq, self.pad_multiple), pad_to_multiple(flash, self.pad_multiple)

    def _encode(self, lowlight, flash, gain):
        return self.encoder(torch.cat([lowlight * gain[0], flash * gain[1]], dim=1))

    def encode_context(self, lq, flash, weight):
        """Weighted sums of the encoder features for a tile (see ``unet_blocks.context_sums``)."""
        return context_sums(self._encode(*self._padded_inputs(lq, flash), self.log_gain.exp()), weight)

    def forward(self, lq, flash, context=None):
        height, width = lq.shape[-2:]
        gain = self.log_gain.exp()
        lowlight, flash = self._padded_inputs(lq, flash)
        skips = self._encode(lowlight, flash, gain)
        if context is None:
            context = global_context(skips)
        pixel_features = self.decoder_pixel(skips)
        coeffs = self.coeff_head(pixel_features)  # (B,N,Hp,Wp)
        bias_fine, bias_coarse = (self.bias_head(pixel_features) + self.bias_offset).split(1, dim=1)
        basis_fine, basis_coarse = self.decoder_basis(context)
        # linear in the image: gain applied to the output, so no gradient w.r.t. the input is needed
        out = basis_filter(lowlight, coeffs, basis_fine, bias_fine, padding_mode=self.padding_mode)
        out = out + coarse_filter(lowlight, coeffs, basis_coarse, bias_coarse, self.coarse_dilation, self.padding_mode)
        return (out * (gain[0] / self.dc_gain))[..., :height, :width]
