"""U-Net parts shared by FCDFNArch and DeepFnFArch: encoder, per-pixel decoder, basis decoder."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.tiling import pad_to_multiple as pad_image_to_multiple


def conv_block(in_channels, out_channels):
    """Two 3x3 conv + ReLU, the U-Net level."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


def level_widths(base_channels, depth):
    if depth < 2:
        raise ValueError(f'depth must be at least 2 (one down-sampling), got {depth}')
    if base_channels < 1:
        raise ValueError(f'base_channels must be positive, got {base_channels}')
    return [base_channels * 2**level for level in range(depth)]


def pad_to_multiple(image, multiple):
    """Pad (B,C,H,W) at the bottom/right to multiples of ``multiple`` (reflect); crop with ``[..., :H, :W]``."""
    return pad_image_to_multiple(image, multiple)[0]


def global_context(skips):
    """Image-level context of the basis decoders: the global average of each level, [(B, C_l)]."""
    return [skip.mean(dim=(2, 3)) for skip in skips]


def context_sums(skips, weight):
    """Weighted sums for :func:`global_context` computed tile by tile.

    ``weight`` (1,1,H,W) is at the resolution of ``skips[0]``; level l uses its 2**l x 2**l
    average. Returns ``[sum(w_l * f_l) (B, C_l) for each level] + [sum(w_l) (1,) for each level]``;
    summed over tiles whose weights add up to 1 per pixel and divided by
    :func:`context_from_sums`, this is the whole image's :func:`global_context`.
    """
    weights = [weight if level == 0 else F.avg_pool2d(weight, 2**level) for level in range(len(skips))]
    feature_sums = [(skip * w).sum(dim=(2, 3)) for skip, w in zip(skips, weights)]
    return feature_sums + [w.sum().reshape(1) for w in weights]


def context_from_sums(sums):
    """Finish :func:`context_sums` accumulated over tiles: the per-level weighted means."""
    levels = len(sums) // 2
    return [feature_sum / weight_sum for feature_sum, weight_sum in zip(sums[:levels], sums[levels:])]


class UNetEncoder(nn.Module):
    """``depth`` levels of conv_block, 2x2 max-pool between them; widths ``base * 2**level``.

    (B,in,H,W) -> list of ``depth`` features, level l being (B, base*2**l, H/2**l, W/2**l).
    """

    def __init__(self, in_channels, widths):
        super().__init__()
        channels = [in_channels] + list(widths)
        self.levels = nn.ModuleList(conv_block(channels[i], channels[i + 1]) for i in range(len(widths)))

    def forward(self, x):
        features = []
        for index, level in enumerate(self.levels):
            if index > 0:
                x = F.max_pool2d(x, 2)
            x = level(x)
            features.append(x)
        return features


class PixelDecoder(nn.Module):
    """Decoder P: full-resolution U-Net decoder over the (concatenated) encoder skips.

    ``skips[l]`` has ``skip_multiplier * widths[l]`` channels; returns (B, widths[0], H, W).
    """

    def __init__(self, widths, skip_multiplier):
        super().__init__()
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        in_channels = skip_multiplier * widths[-1]
        for level in range(len(widths) - 2, -1, -1):
            self.ups.append(nn.ConvTranspose2d(in_channels, widths[level], 2, stride=2))
            self.blocks.append(conv_block(widths[level] + skip_multiplier * widths[level], widths[level]))
            in_channels = widths[level]

    def forward(self, skips):
        x = skips[-1]
        for up, block, skip in zip(self.ups, self.blocks, reversed(skips[:-1])):
            x = block(torch.cat([up(x), skip], dim=1))
        return x


class BasisDecoder(nn.Module):
    """Basis decoder: an image-level decoder from the globally pooled bottleneck up to KxK maps.

    Its skip connections are global-average pooled (the basis is per sample, not per pixel) and
    broadcast over the small maps, so it sees the encoders only through :func:`global_context`
    (which tiled inference can compute over a whole large image, tile by tile). Spatial sizes grow
    geometrically from 1 to the largest kernel; each requested kernel size gets its own 3x3 head on the
    map area-resampled to that size.
    Returns a list of (B, num_basis, k, k), one per entry of ``kernel_sizes``.
    """

    def __init__(self, widths, skip_multiplier, num_basis, kernel_sizes):
        super().__init__()
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        largest = max(self.kernel_sizes)
        steps = len(widths) - 1
        self.sizes = [max(2, round(largest ** ((step + 1) / steps))) for step in range(steps)]
        self.sizes[-1] = largest
        self.blocks = nn.ModuleList()
        in_channels = skip_multiplier * widths[-1]
        for level in range(len(widths) - 2, -1, -1):
            self.blocks.append(conv_block(in_channels + skip_multiplier * widths[level], widths[level]))
            in_channels = widths[level]
        self.heads = nn.ModuleList(nn.Conv2d(widths[0], num_basis, 3, padding=1) for _ in self.kernel_sizes)

    def forward(self, context):
        """context: :func:`global_context` of the skips, [(B, C_l)] -> [(B, num_basis, k, k)]."""
        x = context[-1][..., None, None]  # (B,C,1,1)
        for block, pooled, size in zip(self.blocks, reversed(context[:-1]), self.sizes):
            x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)
            pooled = pooled[..., None, None].expand(-1, -1, size, size)
            x = block(torch.cat([x, pooled], dim=1))
        bases = []
        for head, kernel_size in zip(self.heads, self.kernel_sizes):
            resized = x if kernel_size == x.shape[-1] else F.adaptive_avg_pool2d(x, kernel_size)
            bases.append(head(resized))
        return bases


def init_small_(conv, scale):
    """Scale a conv's default init by ``scale`` and zero its bias: near-zero output, non-zero gradient."""
    with torch.no_grad():
        conv.weight.mul_(scale)
        if conv.bias is not None:
            conv.bias.zero_()


def init_zero_(conv):
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def filter_network_dc_gain(kernel_mode, num_layers):
    """DC gain of the initial filtering network, every kernel a normalised box filter (sum 1).

    cascade with alpha = 1: (1 + 1)**L - 1 (the 2**L - 1 terms of Eq. 5, each of gain 1);
    parallel with weights 1/L: 1. The coarse branch adds 1.
    """
    if kernel_mode == 'cascade':
        return 2.0**num_layers - 1.0
    return 1.0


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


def check_kernel_size(name, value):
    if int(value) != value or value < 1 or value % 2 == 0:
        raise ValueError(f'{name} must be a positive odd integer, got {value!r}')


def log_of(value, name):
    if value <= 0 or not math.isfinite(value):
        raise ValueError(f'{name} must be a positive number, got {value!r}')
    return math.log(value)


def check_pair(name, lq, flash, channels):
    """Both inputs (B, channels, H, W) of one shape, else a ValueError naming the arch and the shapes."""
    if lq.dim() != 4 or lq.shape[1] != channels or flash.shape != lq.shape:
        raise ValueError(f'{name} expects lq and flash of the same shape (B,{channels},H,W), '
                         f'got {tuple(lq.shape)} and {tuple(flash.shape)}')
