"""FCDFNArch: two encoders, three decoders, two predicted SAECNNs fused by importance maps (paper Fig. 1)."""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ..ops import FILTER_IMPLS, SAECNN_MODES, coarse_filter, saecnn_filter
from .unet_blocks import (BasisDecoder, PixelDecoder, UNetEncoder, check_choice, check_kernel_size, context_sums,
                          filter_network_dc_gain, global_context, init_small_, init_zero_, level_widths, log_of,
                          pad_to_multiple)

FUSIONS = ('softmax', 'free', 'add')
BRANCHES = ('lowlight', 'flash')
GAIN_MODES = ('global', 'adaptive')
#: Largest change of a branch's log-gain the adaptive head can make (a factor of e**1 either way).
ADAPTIVE_GAIN_RANGE = 1.0


@ARCH_REGISTRY.register()
class FCDFNArch(nn.Module):
    """Flash Compensated Dynamic Filtering Network.

    Args:
        in_channels: colour channels of each input (3 for sRGB).
        base_channels: width of the first U-Net level (paper 64); level l has base * 2**l.
        depth: U-Net levels (paper 5, i.e. 4 down-samplings).
        num_basis: N, basis kernels per layer and coefficients per pixel (paper 90).
        kernel_sizes: odd sizes of the SAECNN layers, front to back (paper 15, 7, 3).
        coarse_kernel_size: size of the coarse branch's kernel (paper 15).
        coarse_dilation: tap spacing of the coarse kernel on the tent-low-passed image (4).
        fusion: 'softmax' (A_n + A_f = 1, Eq. 6), 'free' (unconstrained per-pixel weights) or
            'add' (A_n = A_f = 1, the "w/o adaptive fusion" ablation).
        kernel_mode: 'cascade' (SAECNN, Eq. 5) or 'parallel' (the "w/o SAECNN" ablation).
        use_flash: False replaces the flash input by the low-light input (the "w/o flash" ablation);
            the network and its parameter count are unchanged.
        lowlight_gain: initial value of the learnable global gain that brightens the low-light input
            (a 25-50x linear dimming leaves the sRGB mean about 7x darker, see docs/DESIGN.md).
        flash_gain: initial value of the learnable global gain of the flash input.
        padding_mode: border handling of the per-pixel filters, 'reflect' or 'zeros'.
        gain_mode: 'global' (one learnable gain per branch, as above) or 'adaptive': in addition, a
            zero-initialised linear head on the image-level context (the same global averages the
            basis decoders see) predicts, per image, a per-channel change of each branch's output
            gain (bounded to a factor e): the exposure and colour of the ambient light, which a
            small per-pixel network with a limited receptive field cannot see. Starts identical
            to 'global'. See docs/DESIGN.md.
        filter_impl: implementation of every per-pixel filtering ('auto', 'banded', 'fused', 'native'; see
            :func:`~fcdfn_plugin.ops.basis_filter`): 'auto' is the C++ 'native' kernel on CPU where it
            builds, else the banded op; 'fused' is the Triton kernel (CUDA; GPU speed unmeasured). The
            weights do not depend on it.

    ``forward(lq, flash, context=None)``: (B,3,H,W) sRGB in [0,1] each, any H, W -> (B,3,H,W), not
    clamped. ``context`` replaces the image-level input of the basis decoders (the global average of
    the encoder features, :func:`~fcdfn_plugin.archs.unet_blocks.global_context`); tiled inference
    computes it over the whole image with :meth:`encode_context` and passes it to every tile.
    ``pad_multiple``: the input is padded internally to a multiple of this (tiling can align to it).
    """

    def __init__(self, in_channels=3, base_channels=64, depth=5, num_basis=90, kernel_sizes=(15, 7, 3),
                 coarse_kernel_size=15, coarse_dilation=4, fusion='softmax', kernel_mode='cascade', use_flash=True,
                 lowlight_gain=7.0, flash_gain=2.0, padding_mode='reflect', gain_mode='global',
                 filter_impl='auto'):
        super().__init__()
        check_choice('fusion', fusion, FUSIONS)
        check_choice('gain_mode', gain_mode, GAIN_MODES)
        check_choice('kernel_mode', kernel_mode, SAECNN_MODES)
        check_choice('padding_mode', padding_mode, ('reflect', 'zeros'))
        check_choice('filter_impl', filter_impl, FILTER_IMPLS)
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not kernel_sizes:
            raise ValueError('kernel_sizes must name at least one layer')
        for size in kernel_sizes:
            check_kernel_size('kernel_sizes', size)
        check_kernel_size('coarse_kernel_size', coarse_kernel_size)
        if int(coarse_dilation) != coarse_dilation or coarse_dilation < 1:
            raise ValueError(f'coarse_dilation must be a positive integer, got {coarse_dilation!r}')
        self.in_channels, self.num_basis = in_channels, num_basis
        self.kernel_sizes = kernel_sizes
        self.coarse_kernel_size, self.coarse_dilation = coarse_kernel_size, coarse_dilation
        self.fusion, self.kernel_mode, self.use_flash, self.padding_mode = fusion, kernel_mode, use_flash, padding_mode
        self.gain_mode, self.filter_impl = gain_mode, filter_impl
        self.pad_multiple = 2**(depth - 1)
        num_layers = len(kernel_sizes)
        widths = level_widths(base_channels, depth)

        self.encoder_lowlight = UNetEncoder(in_channels, widths)
        self.encoder_flash = UNetEncoder(in_channels, widths)
        self.decoder_pixel = PixelDecoder(widths, skip_multiplier=2)
        all_sizes = kernel_sizes + (coarse_kernel_size,)
        self.decoder_basis_lowlight = BasisDecoder(widths, 2, num_basis, all_sizes)
        self.decoder_basis_flash = BasisDecoder(widths, 2, num_basis, all_sizes)

        # Decoder P's heads, both branches in one conv each: coefficients, kernel biases (layers +
        # coarse), residual weights, importance logits.
        self.coeff_head = nn.Conv2d(widths[0], 2 * num_basis, 3, padding=1)
        self.bias_head = nn.Conv2d(widths[0], 2 * (num_layers + 1), 3, padding=1)
        self.residual_head = nn.Conv2d(widths[0], 2 * num_layers, 3, padding=1)
        self.importance_head = None if fusion == 'add' else nn.Conv2d(widths[0], 2, 3, padding=1)
        # Start as normalised box filters: coefficients ~0 (small, not zero, so the basis decoders get
        # a gradient), bias 1/K^2 on every tap, residual weights 1 (parallel: 1/L), fusion 0.5/0.5.
        init_small_(self.coeff_head, 1e-3)
        init_zero_(self.bias_head)
        init_zero_(self.residual_head)
        if self.importance_head is not None:
            init_zero_(self.importance_head)
        bias_offset = torch.tensor([1.0 / k**2 for k in all_sizes])
        residual_offset = torch.full((num_layers,), 1.0 if kernel_mode == 'cascade' else 1.0 / num_layers)
        self.register_buffer('bias_offset', bias_offset.view(1, -1, 1, 1), persistent=False)
        self.register_buffer('residual_offset', residual_offset.view(1, -1, 1, 1), persistent=False)
        # The filter is linear in its input, so pre-dividing the image by the initial DC gain makes the
        # untrained network output a smooth copy of the brightened input, not 8 times it.
        # ('add' sums two such branches, hence the extra factor 2.)
        self.dc_gain = (filter_network_dc_gain(kernel_mode, num_layers) + 1.0) * (2.0 if fusion == 'add' else 1.0)
        flash_init = flash_gain if use_flash else lowlight_gain
        self.log_gain = nn.Parameter(torch.tensor([log_of(lowlight_gain, 'lowlight_gain'),
                                                   log_of(flash_init, 'flash_gain')]))
        # (B, sum of context widths) -> per image, per branch and channel: a change of the log-gain
        self.gain_head = None
        if gain_mode == 'adaptive':
            self.gain_head = nn.Linear(2 * sum(widths), 2 * in_channels)
            init_zero_(self.gain_head)

    def _padded_inputs(self, lq, flash):
        """Checked inputs, the flash replaced when ``use_flash`` is off, padded: 2 x (B,3,Hp,Wp)."""
        if lq.dim() != 4 or lq.shape[1] != self.in_channels or flash.shape != lq.shape:
            raise ValueError(f'FCDFNArch expects lq and flash of the same shape (B,{self.in_channels},H,W), '
                             f'got {tuple(lq.shape)} and {tuple(flash.shape)}')
        if not self.use_flash:
            flash = lq
        return pad_to_multiple(lq, self.pad_multiple), pad_to_multiple(flash, self.pad_multiple)

    def _encode(self, inputs, gain):
        """Both encoders on the brightened images, skips concatenated per level."""
        skips = zip(self.encoder_lowlight(inputs[0] * gain[0]), self.encoder_flash(inputs[1] * gain[1]))
        return [torch.cat(pair, dim=1) for pair in skips]

    def encode_context(self, lq, flash, weight):
        """Weighted sums of the encoder features for a tile (see ``unet_blocks.context_sums``)."""
        inputs = self._padded_inputs(lq, flash)
        return context_sums(self._encode(inputs, self.log_gain.exp()), weight)

    def forward(self, lq, flash, context=None):
        return self.forward_parts(lq, flash, context)['output']

    def forward_parts(self, lq, flash, context=None):
        """The output and what it is made of, each cropped to (B,·,H,W): for analysis and figures.

        Returns a dict: ``output`` (B,3,H,W, what ``forward`` returns); ``lowlight`` and ``flash``,
        the restored branch images Ihat_n and Ihat_f (B,3,H,W, already multiplied by their gains);
        ``importance`` (B,2,H,W), the fusion weights A_n, A_f (ones for ``fusion: add``).
        """
        height, width = lq.shape[-2:]
        gain = self.log_gain.exp()
        inputs = self._padded_inputs(lq, flash)  # 2 x (B,3,Hp,Wp)
        skips = self._encode(inputs, gain)  # the encoders see the brightened images
        if context is None:
            context = global_context(skips)
        pixel_features = self.decoder_pixel(skips)  # (B,base,Hp,Wp)
        coeffs = self.coeff_head(pixel_features).chunk(2, dim=1)  # 2 x (B,N,Hp,Wp)
        biases = (self.bias_head(pixel_features) + self.bias_offset.repeat(1, 2, 1, 1)).chunk(2, dim=1)
        residual = (self.residual_head(pixel_features) + self.residual_offset.repeat(1, 2, 1, 1)).chunk(2, dim=1)
        bases = (self.decoder_basis_lowlight(context), self.decoder_basis_flash(context))
        output_gain = gain.view(1, 2, 1, 1, 1)  # (1 or B, branch, channel, 1, 1)
        if self.gain_head is not None:
            change = ADAPTIVE_GAIN_RANGE * torch.tanh(self.gain_head(torch.cat(context, dim=1)))  # (B, 2*C)
            output_gain = output_gain * change.exp().view(-1, 2, self.in_channels, 1, 1)

        restored = []
        for index, image in enumerate(inputs):
            layer_biases = biases[index].split(1, dim=1)  # (layers + coarse) x (B,1,Hp,Wp)
            fine = saecnn_filter(image, coeffs[index], bases[index][:-1], layer_biases[:-1],
                                 residual[index].split(1, dim=1), self.kernel_mode, self.padding_mode,
                                 self.filter_impl)
            coarse = coarse_filter(image, coeffs[index], bases[index][-1], layer_biases[-1],
                                   self.coarse_dilation, self.padding_mode, self.filter_impl)
            # The filter network is linear in its input image, so the global gain (and the 1/dc_gain
            # normalisation) is applied to its output: same result, but the first layers need no
            # gradient with respect to the (leaf) input image, which saves their costliest backward part.
            restored.append((fine + coarse) * (output_gain[:, index] / self.dc_gain))

        if self.fusion == 'add':
            importance = restored[0].new_ones(1, 2, 1, 1)
        else:
            importance = self.importance_head(pixel_features)  # (B,2,Hp,Wp)
            importance = importance.softmax(dim=1) if self.fusion == 'softmax' else importance + 0.5
        out = importance[:, 0:1] * restored[0] + importance[:, 1:2] * restored[1]
        crop = (Ellipsis, slice(0, height), slice(0, width))
        return {'output': out[crop], 'lowlight': restored[0][crop], 'flash': restored[1][crop],
                'importance': importance.expand(out.shape[0], 2, *out.shape[-2:])[crop]}
