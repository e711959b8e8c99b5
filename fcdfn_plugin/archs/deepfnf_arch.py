"""DeepFnFArch: the deepFnF baseline (paper ref. [8], Xia et al. CVPR 2021).

Two variants share the per-pixel filtering op: ``variant: fcdfn`` (default) is built from FCDFN's
own parts (what ``options/deepfnf.yml`` and the ablation table train); ``variant: official`` follows
deepFnF's ``net.py``: its backbone, per-colour-channel kernels and scales, and the noise-level maps
as extra inputs. ``docs/DESIGN.md`` lists what still differs from the official code.
"""
import math

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ..ops import FILTER_IMPLS, basis_filter, coarse_filter, tent_lowpass
from .unet_blocks import (BasisDecoder, PixelDecoder, UNetEncoder, check_choice, check_kernel_size, check_pair,
                          context_sums, global_context, init_small_, init_zero_, level_widths, log_of, pad_to_multiple)

VARIANTS = ('fcdfn', 'official')
OUTPUT_GAINS = ('learned', 'exposure')
DOMAINS = ('srgb', 'linear')
#: The sRGB curve as a power law: a linear gain r brightens an sRGB image by about r ** (1 / SRGB_GAMMA).
SRGB_GAMMA = 2.2
#: Resolution levels of each variant at paper scale (fcdfn: 4 poolings; deepFnF: 5 poolings + bottleneck).
PAPER_DEPTH = {'fcdfn': 5, 'official': 6}
#: deepFnF's basis decoder: four 2x up-sampling blocks (1 -> 16), widths in units of base_channels.
OFFICIAL_KERNEL_WIDTHS = (8, 4, 4, 2)
OFFICIAL_KERNEL_SIZE = 15


def srgb_to_linear(srgb):
    """Inverse sRGB curve (IEC 61966-2-1), tensors in [0, 1]."""
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055).clamp_min(0) ** 2.4)


def linear_to_srgb_extended(linear):
    """deepFnF's sRGB curve (``gamma_correct``): the linear segment below 0.0031308 continues to the
    negatives, and above 1 the curve continues as its tangent at 1, so nothing is clipped and the
    gradient never vanishes (a network output may leave [0, 1] while it trains)."""
    curve = 1.055 * linear.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055
    srgb = torch.where(linear < 0.0031308, 12.92 * linear, curve)
    slope_at_1 = 1.055 / 2.4
    return torch.where(linear > 1, slope_at_1 * (linear - 1) + 1, srgb)


def srgb_slope(linear):
    """d srgb / d linear of the sRGB curve at ``linear`` (12.92 on the linear segment)."""
    curve = (1.055 / 2.4) * linear.clamp_min(0.0031308) ** (1.0 / 2.4 - 1.0)
    return torch.where(linear <= 0.0031308, torch.full_like(linear, 12.92), curve)


def noise_std_map(image, sigma_read, sigma_shot):
    """Per-pixel noise std of an sRGB image synthesised with read/shot noise in linear space.

    deepFnF feeds ``sqrt(sigma_read**2 + max(noisy, 0) * sigma_shot**2)`` of its linear noisy
    images. Our images are sRGB of the clipped noisy linear image, so the linear std is evaluated at
    the linearised pixel and carried to sRGB by the slope of the curve there (first-order error
    propagation): the std in the units of the image the network sees.

    Args:
        image: (B,C,H,W) sRGB in [0, 1].
        sigma_read, sigma_shot: (B,) per-sample sigmas of the linear noise model.
    Returns:
        (B,C,H,W) noise std in sRGB units.
    """
    linear = srgb_to_linear(image.clamp(0, 1))
    return srgb_slope(linear) * linear_noise_std(linear, sigma_read, sigma_shot)


def linear_noise_std(linear, sigma_read, sigma_shot):
    """deepFnF's ``estimate_std``: ``sqrt(sigma_read**2 + max(linear, 0) * sigma_shot**2)`` per pixel of a
    linear image (B,C,H,W), sigmas (B,)."""
    sigma_read = sigma_read.to(linear.dtype).view(-1, 1, 1, 1)
    sigma_shot = sigma_shot.to(linear.dtype).view(-1, 1, 1, 1)
    return torch.sqrt(sigma_read**2 + sigma_shot**2 * linear.clamp_min(0))


def _conv_relu(in_channels, out_channels, kernel_size=3, padding=1):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding), nn.ReLU(inplace=True))


def _init_official_(module):
    """deepFnF's init: weights U(-sqrt(3/fan_in), sqrt(3/fan_in)), biases 0."""
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d):
            bound = math.sqrt(3.0 / (conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]))
            nn.init.uniform_(conv.weight, -bound, bound)
            nn.init.zeros_(conv.bias)


def _upsample2(x):
    return F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)


class OfficialEncoder(nn.Module):
    """deepFnF's encoder: a 3x3 input conv, ``levels - 1`` down blocks (2 convs + 2x2 max-pool),
    a 2-conv bottleneck. Returns [d_1, ..., d_P, bottleneck] at resolutions 1, 1/2, ..., 1/2**P."""

    def __init__(self, in_channels, base_channels, levels):
        super().__init__()
        self.inp = _conv_relu(in_channels, base_channels)
        channels = base_channels
        self.downs = nn.ModuleList()
        for level in range(levels - 1):
            width = base_channels * 2**level
            self.downs.append(nn.Sequential(_conv_relu(channels, width), _conv_relu(width, width)))
            channels = width
        self.bottleneck = nn.Sequential(_conv_relu(channels, channels), _conv_relu(channels, channels))

    def forward(self, x):
        x = self.inp(x)
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        return skips + [self.bottleneck(x)]


class OfficialPixelDecoder(nn.Module):
    """deepFnF's decoder: per level bilinear 2x up, conv, concat the skip, two convs; then two end convs."""

    def __init__(self, base_channels, levels):
        super().__init__()
        downs = levels - 1
        skip_widths = [base_channels * 2**level for level in range(downs)]
        channels = skip_widths[-1]
        self.ups, self.blocks = nn.ModuleList(), nn.ModuleList()
        for step in range(1, downs + 1):
            width = base_channels * 2**max(downs - 1 - step, 0)
            self.ups.append(_conv_relu(channels, width))
            self.blocks.append(nn.Sequential(_conv_relu(width + skip_widths[downs - step], width),
                                             _conv_relu(width, width)))
            channels = width
        self.end = nn.Sequential(_conv_relu(channels, base_channels), _conv_relu(base_channels, base_channels))

    def forward(self, skips):
        x = skips[-1]
        for up, block, skip in zip(self.ups, self.blocks, reversed(skips[:-1])):
            x = block(torch.cat([up(_upsample2(x)), skip], dim=1))
        return self.end(x)


class OfficialBasisDecoder(nn.Module):
    """deepFnF's ``create_basis``: from the global average of the bottleneck, four blocks of (bilinear
    2x up, conv, concat a deeper skip's global average broadcast, two convs) grow 1 -> 16, then a 2x2
    'valid' conv (-> 15x15) and two 3x3 convs to ``3 * 2 * N`` maps: N basis kernels per colour channel,
    fine and coarse. Block i takes the global average of skip d_(P - i) (deepFnF: d5, d4, d3, d2);
    with fewer levels the shallowest skip d_1 is reused.

    Input: :func:`~fcdfn_plugin.archs.unet_blocks.global_context` of the encoder output.
    Output: (B, 3, 2, N, 15, 15).
    """

    def __init__(self, base_channels, levels, num_basis, out_channels):
        super().__init__()
        downs = levels - 1
        skip_widths = [base_channels * 2**level for level in range(downs)]
        self.skip_levels = [max(downs - 1 - i, 0) for i in range(len(OFFICIAL_KERNEL_WIDTHS))]
        channels = skip_widths[-1]
        self.ups, self.blocks = nn.ModuleList(), nn.ModuleList()
        for multiple, skip_level in zip(OFFICIAL_KERNEL_WIDTHS, self.skip_levels):
            width = base_channels * multiple
            self.ups.append(_conv_relu(channels, width))
            self.blocks.append(nn.Sequential(_conv_relu(width + skip_widths[skip_level], width),
                                             _conv_relu(width, width)))
            channels = width
        width = 2 * base_channels
        self.valid = _conv_relu(channels, width, kernel_size=2, padding=0)
        self.mid = _conv_relu(width, width)
        self.head = nn.Conv2d(width, out_channels * 2 * num_basis, 3, padding=1)
        self.out_channels, self.num_basis = out_channels, num_basis

    def forward(self, context):
        x = context[-1][..., None, None]  # (B,C,1,1)
        for up, block, skip_level in zip(self.ups, self.blocks, self.skip_levels):
            x = up(_upsample2(x))
            pooled = context[skip_level][..., None, None].expand(-1, -1, *x.shape[-2:])
            x = block(torch.cat([x, pooled], dim=1))
        x = self.head(self.mid(self.valid(x)))  # (B, C*2*N, 15, 15)
        return x.view(x.shape[0], self.out_channels, 2, self.num_basis, *x.shape[-2:])


@ARCH_REGISTRY.register()
class DeepFnFArch(nn.Module):
    """deepFnF: per-pixel coefficients and a per-image basis predicted from the pair; the low-light image
    is filtered by one per-pixel kernel plus the coarse (dilated, low-passed) branch.

    ``variant: fcdfn`` (default): one FCDFN-style encoder on ``concat(gain_n*lq, gain_f*flash)``,
    decoder P with a coefficient head and a kernel-bias head, one FCDFN basis decoder; the same
    kernel for the three colour channels; output times the learnable low-light gain over 2.

    ``variant: official`` (deepFnF's ``net.py``): input ``[lq, flash, std(lq), std(flash)]`` (12
    channels; std from :func:`noise_std_map`, so the network needs the per-sample ``sigma_read``,
    ``sigma_shot``), deepFnF's encoder / decoder / basis decoder, an output conv giving N
    coefficients and 3 per-pixel colour scales, a basis of N kernels *per colour channel* for each
    of the fine and coarse layers, no kernel bias; ``out_c = scale_c * (fine_c + coarse_c)``.
    deepFnF divides its output by the (known) dimming factor, in its linear raw domain:
    ``output_gain: exposure`` does that in the sRGB domain, multiplying by
    ``exposure_ratio ** (1 / SRGB_GAMMA)`` (the sRGB curve as a power law: a linear gain r is an sRGB
    gain of about r^(1/2.2), 5.2 for r = 37.5), with the exposure ratio of the photo the network
    sees (``forward(..., exposure_ratio=)``;
    ``FCDFNModel`` and ``enhance_pair`` estimate it after the exposure contract, see
    :func:`fcdfn_plugin.models.fcdfn_model.network_inputs`), or with ``domain: linear`` in deepFnF's
    linear domain, multiplying by the ratio before the sRGB curve; ``output_gain: learned`` (default) puts
    a learnable global gain (initial ``lowlight_gain``) in its place. The raw inputs are not
    brightened. deepFnF starts from a
    random init; here, as in the fcdfn variant, the untrained network is a smooth copy of the
    brightened input (basis 0 a box filter with coefficient 1, the others small; scales 1/2).

    Args:
        in_channels: colour channels of each input (3).
        base_channels: width of the first level (64).
        depth: resolution levels; null = the variant's paper depth (fcdfn 5, official 6: five
            poolings and the bottleneck, as deepFnF).
        num_basis: N basis kernels (90).
        kernel_size: the per-pixel kernel (15; official: must be 15, as deepFnF asserts).
        coarse_kernel_size, coarse_dilation: coarse branch (15, 4; official: the coarse kernels come
            from the same basis decoder, so coarse_kernel_size must equal kernel_size).
        lowlight_gain: initial learnable gain: of the low-light input (fcdfn) or of the output (official,
            ``output_gain: learned``).
        output_gain: official only: 'learned' (a learnable global gain) or 'exposure' (the output times
            the photo's exposure ratio in sRGB terms, ratio^(1/2.2), as deepFnF divides by its dimming
            factor; then ``needs_exposure_ratio`` is True).
        domain: official only: 'srgb' (default: the network sees and filters the sRGB photos; the
            exposure gain is ratio^(1/2.2)) or 'linear' (deepFnF's own: the photos are linearised (inverse
            sRGB curve), the noise-level maps are deepFnF's ``estimate_std`` of the linear values, the
            filtered image is multiplied by the exposure ratio itself and then takes deepFnF's sRGB
            curve, :func:`linear_to_srgb_extended`; needs ``output_gain: exposure``).
        flash_gain: initial learnable gain of the flash input (fcdfn only; null = 2.0).
        padding_mode: 'reflect' or 'zeros', the per-pixel filters' borders.
        variant: 'fcdfn' or 'official'.
        filter_impl: implementation of the per-pixel filterings ('auto', 'banded', 'fused', 'native'), as FCDFNArch.

    ``forward(lq, flash, context=None, sigma_read=None, sigma_shot=None, exposure_ratio=None)``:
    (B,3,H,W) each, any H, W -> (B,3,H,W), not clamped. ``needs_noise_level`` is True for the
    official variant, which then requires ``sigma_read`` and ``sigma_shot`` (B,) (``FCDFNModel``
    passes them from the dataset's ``params``); the fcdfn variant refuses them. ``exposure_ratio``
    (B,) is required with ``output_gain: exposure`` and refused otherwise. ``context``, :meth:`encode_context` and
    ``pad_multiple`` as FCDFNArch (tiled inference gets the whole image's basis).
    Paper size: fcdfn 43,726,034 parameters, official 78,471,034 (deepFnF's 78,471,033 + the output gain).
    """

    def __init__(self, in_channels=3, base_channels=64, depth=None, num_basis=90, kernel_size=15,
                 coarse_kernel_size=15, coarse_dilation=4, lowlight_gain=7.0, flash_gain=None,
                 padding_mode='reflect', variant='fcdfn', filter_impl='auto', output_gain='learned', domain='srgb'):
        super().__init__()
        check_choice('variant', variant, VARIANTS)
        check_kernel_size('kernel_size', kernel_size)
        check_kernel_size('coarse_kernel_size', coarse_kernel_size)
        check_choice('padding_mode', padding_mode, ('reflect', 'zeros'))
        check_choice('filter_impl', filter_impl, FILTER_IMPLS)
        check_choice('output_gain', output_gain, OUTPUT_GAINS)
        check_choice('domain', domain, DOMAINS)
        if domain == 'linear' and output_gain != 'exposure':
            raise ValueError("domain 'linear' (deepFnF's own: filter linear values, divide by the dimming factor, "
                             "then the sRGB curve) needs output_gain 'exposure'")
        if output_gain == 'exposure' and variant != 'official':
            raise ValueError("output_gain 'exposure' applies to variant official (deepFnF's division by the "
                             'dimming factor); variant fcdfn learns its input gains')
        if int(coarse_dilation) != coarse_dilation or coarse_dilation < 1:
            raise ValueError(f'coarse_dilation must be a positive integer, got {coarse_dilation!r}')
        depth = PAPER_DEPTH[variant] if depth is None else depth
        self.variant = variant
        self.in_channels, self.num_basis = in_channels, num_basis
        self.kernel_size = kernel_size
        self.coarse_kernel_size, self.coarse_dilation = coarse_kernel_size, coarse_dilation
        self.padding_mode, self.filter_impl = padding_mode, filter_impl
        self.pad_multiple = 2**(depth - 1)
        self.needs_noise_level = variant == 'official'
        self.needs_exposure_ratio = output_gain == 'exposure'
        self.domain = domain
        widths = level_widths(base_channels, depth)
        if variant == 'official':
            if flash_gain is not None:
                raise ValueError('flash_gain applies to variant fcdfn only (the official variant has no input gains)')
            if kernel_size != OFFICIAL_KERNEL_SIZE or coarse_kernel_size != kernel_size:
                raise ValueError(f'variant official builds 15x15 kernels (deepFnF asserts ksz == 15) for both layers; '
                                 f'got kernel_size={kernel_size}, coarse_kernel_size={coarse_kernel_size}')
            self._build_official(base_channels, depth, num_basis, lowlight_gain)
            return
        flash_gain = 2.0 if flash_gain is None else flash_gain
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

    def _build_official(self, base_channels, depth, num_basis, lowlight_gain):
        channels = self.in_channels
        self.encoder = OfficialEncoder(4 * channels, base_channels, depth)
        self.decoder_pixel = OfficialPixelDecoder(base_channels, depth)
        self.decoder_basis = OfficialBasisDecoder(base_channels, depth, num_basis, channels)
        self.output_head = nn.Conv2d(base_channels, num_basis + channels, 3, padding=1)  # coefficients, scales
        _init_official_(self)
        # The untrained network: basis 0 a box filter (sum 1) for every channel and layer, coefficient 0
        # = 1, the other coefficients small (not zero, so the basis gets a gradient), scales 1/2 (fine +
        # coarse sum to 2), times the output gain.
        self.dc_gain = 2.0
        init_small_(self.output_head, 1e-3)
        head = self.decoder_basis.head
        basis_0 = [(c * 2 + layer) * num_basis for c in range(channels) for layer in range(2)]
        with torch.no_grad():
            self.output_head.bias[0] = 1.0
            self.output_head.bias[num_basis:] = 1.0 / self.dc_gain
            head.weight[basis_0] = 0.0
            head.bias[basis_0] = 1.0 / self.kernel_size**2
        if not self.needs_exposure_ratio:
            self.log_gain = nn.Parameter(torch.tensor([log_of(lowlight_gain, 'lowlight_gain')]))

    # ------------------------------------------------------------------ inputs
    def _padded_inputs(self, lq, flash, sigma_read, sigma_shot):
        """Checked, padded network inputs: (lq, flash, None) for fcdfn, (lq, flash, encoder input) for
        official; with ``domain: linear`` the images are linearised first (the encoder sees linear values)."""
        check_pair('DeepFnFArch', lq, flash, self.in_channels)
        lowlight, flash = pad_to_multiple(lq, self.pad_multiple), pad_to_multiple(flash, self.pad_multiple)
        if not self.needs_noise_level:
            if sigma_read is not None or sigma_shot is not None:
                raise ValueError('DeepFnFArch (variant fcdfn) takes no noise levels; variant official does')
            return lowlight, flash, None
        if sigma_read is None or sigma_shot is None:
            raise ValueError('DeepFnFArch (variant official) needs sigma_read and sigma_shot (B,) for its '
                             'noise-level inputs; the dataset gives them in params (test sets: params.json)')
        batch = lq.shape[0]
        sigmas = [torch.as_tensor(s, device=lq.device).reshape(-1) for s in (sigma_read, sigma_shot)]
        if any(s.numel() not in (1, batch) for s in sigmas):
            raise ValueError(f'sigma_read and sigma_shot must hold 1 or B={batch} values, '
                             f'got {sigmas[0].numel()} and {sigmas[1].numel()}')
        sigma_read, sigma_shot = (s.expand(batch) for s in sigmas)
        if self.domain == 'linear':
            lowlight, flash = srgb_to_linear(lowlight), srgb_to_linear(flash)
            noise_std = [linear_noise_std(image, sigma_read, sigma_shot) for image in (lowlight, flash)]
        else:
            noise_std = [noise_std_map(image, sigma_read, sigma_shot) for image in (lowlight, flash)]
        return lowlight, flash, torch.cat([lowlight, flash] + noise_std, dim=1)

    def _encode(self, lowlight, flash, network_input):
        if network_input is not None:
            return self.encoder(network_input)
        gain = self.log_gain.exp()
        return self.encoder(torch.cat([lowlight * gain[0], flash * gain[1]], dim=1))

    def _output_gain(self, exposure_ratio, batch):
        """The official variant's output gain: (B,1,1,1) exposure ratios, or the learned global gain."""
        if not self.needs_exposure_ratio:
            if exposure_ratio is not None:
                raise ValueError("DeepFnFArch takes exposure_ratio only with output_gain 'exposure'")
            return self.log_gain[0].exp()
        if exposure_ratio is None:
            raise ValueError("DeepFnFArch with output_gain 'exposure' needs exposure_ratio (B,): the exposure "
                             'ratio of the low-light photo it sees (FCDFNModel and enhance_pair estimate it)')
        ratio = torch.as_tensor(exposure_ratio).reshape(-1)
        if ratio.numel() not in (1, batch):
            raise ValueError(f'exposure_ratio must hold 1 or B={batch} values, got {ratio.numel()}')
        ratio = ratio.view(-1, 1, 1, 1)
        return ratio if self.domain == 'linear' else ratio ** (1 / SRGB_GAMMA)

    def encode_context(self, lq, flash, weight, sigma_read=None, sigma_shot=None, exposure_ratio=None):
        """Weighted sums of the encoder features for a tile (see ``unet_blocks.context_sums``)."""
        return context_sums(self._encode(*self._padded_inputs(lq, flash, sigma_read, sigma_shot)), weight)

    # ----------------------------------------------------------------- forward
    def forward(self, lq, flash, context=None, sigma_read=None, sigma_shot=None, exposure_ratio=None):
        height, width = lq.shape[-2:]
        gain = None
        if self.variant == 'official':
            gain = self._output_gain(exposure_ratio, lq.shape[0])
        elif exposure_ratio is not None:
            raise ValueError('DeepFnFArch (variant fcdfn) takes no exposure_ratio')
        lowlight, flash, network_input = self._padded_inputs(lq, flash, sigma_read, sigma_shot)
        skips = self._encode(lowlight, flash, network_input)
        if context is None:
            context = global_context(skips)
        pixel_features = self.decoder_pixel(skips)
        if self.variant == 'official':
            out = self._filter_official(lowlight, pixel_features, context) * gain
            if self.domain == 'linear':
                out = linear_to_srgb_extended(out)
        else:
            out = self._filter_fcdfn(lowlight, pixel_features, context)
        return out[..., :height, :width]

    def _filter_fcdfn(self, lowlight, pixel_features, context):
        gain = self.log_gain.exp()
        coeffs = self.coeff_head(pixel_features)  # (B,N,Hp,Wp)
        bias_fine, bias_coarse = (self.bias_head(pixel_features) + self.bias_offset).split(1, dim=1)
        basis_fine, basis_coarse = self.decoder_basis(context)
        # linear in the image: gain applied to the output, so no gradient w.r.t. the input is needed
        out = basis_filter(lowlight, coeffs, basis_fine, bias_fine, padding_mode=self.padding_mode,
                           impl=self.filter_impl)
        out = out + coarse_filter(lowlight, coeffs, basis_coarse, bias_coarse, self.coarse_dilation, self.padding_mode,
                                  self.filter_impl)
        return out * (gain[0] / self.dc_gain)

    def _filter_official(self, lowlight, pixel_features, context):
        batch, channels, height, width = lowlight.shape
        head = self.output_head(pixel_features)
        coeffs, scales = head[:, :self.num_basis], head[:, self.num_basis:]  # (B,N,Hp,Wp), (B,C,Hp,Wp)
        basis = self.decoder_basis(context)  # (B,C,2,N,K,K)
        # Per-channel kernels: fold the channels into the batch, coefficients shared by the channels.
        image = lowlight.reshape(batch * channels, 1, height, width)
        coeffs = coeffs.repeat_interleave(channels, dim=0)
        basis = basis.flatten(0, 1)  # (B*C,2,N,K,K)
        fine = basis_filter(image, coeffs, basis[:, 0], None, padding_mode=self.padding_mode, impl=self.filter_impl)
        coarse = basis_filter(tent_lowpass(image, self.coarse_dilation), coeffs, basis[:, 1], None,
                              self.coarse_dilation, self.padding_mode, self.filter_impl)
        return (fine + coarse).view(batch, channels, height, width) * scales
