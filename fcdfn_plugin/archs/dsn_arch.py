"""DSNArch: Deep Symmetric Network (Zhao et al., ICCV 2021), the single-input Table 1 comparison system."""
import math
import os

import torch
import torch.nn.functional as F
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .unet_blocks import check_choice, check_pair

VGG_FALLBACKS = ('random', 'error')
#: torchvision VGG-16 state-dict keys of conv1_1 and conv1_2 (DSN's encoder / decoder filters).
VGG_CONV1_KEYS = ('features.0.weight', 'features.2.weight')
VGG_CONV1_SHAPES = ((64, 3, 3, 3), (64, 64, 3, 3))


def _vgg_conv1_weights(vgg_weights=None, fallback='random', seed=0, channels=64):
    """VGG-16 conv1_1 and conv1_2 filters, (C,3,3,3) and (C,C,3,3), float32, no biases (C = ``channels``).

    The genuine, verified weights (``fcdfn_plugin.metrics.load_vgg16_features``: ``vgg_weights``, else
    ``$FCDFN_VGG16_WEIGHTS``, else the file ``make setup`` converts, else torchvision's hub file). A
    file that is named (option or environment variable) must exist and verify, else an error. When
    none is named and none is found, ``fallback`` decides: 'error' raises, 'random' logs a warning
    and draws He-normal filters (std sqrt(2 / fan_in)) from a generator seeded with ``seed``.
    ``channels`` < 64 keeps the first ``channels`` filters of conv1_1 and the matching block of
    conv1_2 (the width-scaled CPU preset of the Table 1 run).
    """
    from fcdfn_plugin.metrics.lpips_metric import VGG16_WEIGHTS_ENV, load_vgg16_features
    check_choice('vgg_fallback', fallback, VGG_FALLBACKS)
    if int(channels) != channels or not 1 <= channels <= VGG_CONV1_SHAPES[0][0]:
        raise ValueError(f'encoder_channels must be an integer in 1..64, got {channels!r}')
    named = vgg_weights is not None or bool(os.environ.get(VGG16_WEIGHTS_ENV))
    try:
        features = load_vgg16_features(vgg_weights)
    except FileNotFoundError as error:
        if named or fallback == 'error':
            raise FileNotFoundError(f'DSNArch: {error} (DSNArch option vgg_fallback: random uses seeded random '
                                    'filters instead when no file is named.)') from None
        generator = torch.Generator().manual_seed(int(seed))
        weights = tuple(torch.randn(shape, generator=generator) * math.sqrt(2.0 / (shape[1] * 9))
                        for shape in VGG_CONV1_SHAPES)
        get_root_logger().warning(
            f'DSNArch: no VGG-16 weights file (none named, none found; run make setup); using seeded '
            f'random encoder filters (He-normal, seed {seed}) instead of VGG-16 conv1_1/conv1_2, which is not '
            f'the official DSN encoder. Set vgg_weights or ${VGG16_WEIGHTS_ENV} to use the real filters.')
    else:
        weights = tuple(features[key].float() for key in VGG_CONV1_KEYS)
    return weights[0][:channels].contiguous(), weights[1][:channels, :channels].contiguous()


def _init_scaled_(conv, init, scale):
    """DSN's ``initialize_weights``: Kaiming- or Xavier-normal, times ``scale``, bias 0."""
    if init == 'kaiming':
        nn.init.kaiming_normal_(conv.weight, a=0, mode='fan_in')
    else:
        nn.init.xavier_normal_(conv.weight)
    with torch.no_grad():
        conv.weight.mul_(scale)
    nn.init.zeros_(conv.bias)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation (DSN's "SOCA"): global average, 1x1 c -> c/16 (at least 1), PReLU, 1x1 back,
    sigmoid, scale."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        squeezed = max(1, channels // reduction)
        self.squeeze = nn.Conv2d(channels, squeezed, 1)
        self.prelu = nn.PReLU(num_parameters=1, init=0.2)
        self.excite = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x):
        weight = torch.sigmoid(self.excite(self.prelu(self.squeeze(x.mean(dim=(2, 3), keepdim=True)))))
        return x * weight


class AttentionResidualBlock(nn.Module):
    """``x + CA(conv 2c->c (PReLU(conv c->2c (x))))``, 3x3 convs, one PReLU (init 0.2)."""

    def __init__(self, channels):
        super().__init__()
        self.expand = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.reduce = nn.Conv2d(2 * channels, channels, 3, padding=1)
        self.prelu = nn.PReLU(num_parameters=1, init=0.2)
        self.attention = ChannelAttention(channels)
        for conv in (self.expand, self.reduce, self.attention.squeeze, self.attention.excite):
            _init_scaled_(conv, 'kaiming', 0.1)

    def forward(self, x):
        return x + self.attention(self.reduce(self.prelu(self.expand(x))))


class RecurrentAttentionSubnet(nn.Module):
    """DSN's coupling subnet (RRAM, ``ResidualBlock_AT_skip``): densely summed attention residual blocks.

    ``x1 = PReLU(conv(x))``, ``x2 = RB1(x1)``, ``x3 = RB2(x1 + x2)``, ``x4 = RB3(x1 + x2 + x3)``,
    output ``conv(x4)``; the output conv starts at zero, so every coupling block starts as the identity.
    """

    def __init__(self, in_channels, out_channels, hidden_channels):
        super().__init__()
        self.head = nn.Conv2d(in_channels, hidden_channels, 3, padding=1)
        self.prelu = nn.PReLU(num_parameters=1, init=0.2)
        self.blocks = nn.ModuleList(AttentionResidualBlock(hidden_channels) for _ in range(3))
        self.tail = nn.Conv2d(hidden_channels, out_channels, 3, padding=1)
        _init_scaled_(self.head, 'xavier', 0.1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x):
        x1 = self.prelu(self.head(x))
        x2 = self.blocks[0](x1)
        x3 = self.blocks[1](x1 + x2)
        return self.tail(self.blocks[2](x1 + x2 + x3))


class CouplingBlock(nn.Module):
    """Affine coupling (IRN's ``InvBlockExp``) on (B, C, H, W), split into ``split`` and C - ``split`` channels.

    forward: ``y1 = x1 + F(x2)``, ``s = clamp (2 sigmoid(H(y1)) - 1)``, ``y2 = x2 exp(s) + G(y1)``;
    :meth:`inverse` undoes it exactly: ``x2 = (y2 - G(y1)) exp(-s)``, ``x1 = y1 - F(x2)``.
    """

    def __init__(self, channels, split, hidden_channels, clamp):
        super().__init__()
        self.split, self.clamp = split, clamp
        rest = channels - split
        self.f = RecurrentAttentionSubnet(rest, split, hidden_channels)
        self.g = RecurrentAttentionSubnet(split, rest, hidden_channels)
        self.h = RecurrentAttentionSubnet(split, rest, hidden_channels)

    def _log_scale(self, y1):
        return self.clamp * (2 * torch.sigmoid(self.h(y1)) - 1)

    def forward(self, x):
        x1, x2 = x[:, :self.split], x[:, self.split:]
        y1 = x1 + self.f(x2)
        y2 = x2 * torch.exp(self._log_scale(y1)) + self.g(y1)
        return torch.cat([y1, y2], dim=1)

    def inverse(self, y):
        y1, y2 = y[:, :self.split], y[:, self.split:]
        x2 = (y2 - self.g(y1)) * torch.exp(-self._log_scale(y1))
        x1 = y1 - self.f(x2)
        return torch.cat([x1, x2], dim=1)


@ARCH_REGISTRY.register()
class DSNArch(nn.Module):
    """DSN (official ``Inv_arch.py``, LOL config): frozen linear VGG encoder, invertible blocks, adjoint decoder.

    ``encode(x) = conv(conv(x, W1), W2)`` (3 -> 64 channels, 3x3, no bias, no ReLU) with VGG-16's
    conv1_1/conv1_2 filters, frozen; ``decode`` is its adjoint (transposed convs W2 then W1, 64 -> 3).
    Between them, ``num_blocks`` :class:`CouplingBlock` on the 64 channels, all at full resolution.

    * :meth:`degrade` (DSN's forward pass): ``decode(B_n(...B_1(encode(normal))))``, normal -> dark.
    * enhancement (``forward``, DSN's ``rev=True`` pass): ``decode(B_1^-1(...B_n^-1(encode(lq))))``.

    ``forward(lq, flash, also_degrade=None)``: (B,3,H,W) each, any H, W -> enhanced (B,3,H,W), not
    clamped. DSN is a single-image method: ``flash`` is checked for shape and otherwise ignored, as
    in the FCDFN paper. With ``also_degrade`` (B,3,H,W) it returns ``(enhanced, degrade(also_degrade))``
    in one call (so DDP sees one forward; :class:`~fcdfn_plugin.models.dsn_model.DSNModel` trains both
    directions). The channel attention averages over the whole image: tiled inference differs from
    untiled inference (each tile gets its own attention weights).

    Args:
        in_channels: colour channels (3; VGG's conv1_1 takes 3).
        num_blocks: coupling blocks (paper 8).
        split_channels: channels of the first half of each coupling split (32 of 64).
        hidden_channels: width inside each subnet (64).
        clamp: bound of the log-scale of the affine coupling (1).
        vgg_weights: path of torchvision's VGG-16 state dict, or null to look it up as LPIPS does
            (``$FCDFN_VGG16_WEIGHTS``, torch hub cache).
        vgg_fallback: 'random' (default): when no file is named and none is found, seeded random
            filters with a logged warning; 'error': stop instead.
        vgg_seed: seed of the random fallback filters.
        encoder_channels: filters of the frozen encoder (64, VGG's conv1 width); fewer keeps the first
            ones of conv1_1 and the matching block of conv1_2 (width-scaled CPU runs).

    The encoder filters are persistent buffers, so a checkpoint carries the filters it was trained
    with (a test run restores them whatever file is found then). Paper size: 11,559,624 trainable
    parameters (the official count, 11,573,568, includes an attention module each subnet creates and
    never uses) plus 38,592 frozen filter values.
    """

    def __init__(self, in_channels=3, num_blocks=8, split_channels=32, hidden_channels=64, clamp=1.0,
                 vgg_weights=None, vgg_fallback='random', vgg_seed=0, encoder_channels=64):
        super().__init__()
        check_choice('vgg_fallback', vgg_fallback, VGG_FALLBACKS)
        if in_channels != 3:
            raise ValueError(f'DSNArch needs 3 input channels (VGG-16 conv1_1), got in_channels={in_channels}')
        if int(num_blocks) != num_blocks or num_blocks < 0:
            raise ValueError(f'num_blocks must be a non-negative integer, got {num_blocks!r}')
        weight1, weight2 = _vgg_conv1_weights(vgg_weights, vgg_fallback, vgg_seed, encoder_channels)
        channels = weight2.shape[0]
        if not 0 < split_channels < channels:
            raise ValueError(f'split_channels must be between 1 and {channels - 1}, got {split_channels!r}')
        self.in_channels = in_channels
        self.pad_multiple = 1
        self.register_buffer('encoder_weight1', weight1)
        self.register_buffer('encoder_weight2', weight2)
        self.blocks = nn.ModuleList(CouplingBlock(channels, split_channels, hidden_channels, clamp)
                                    for _ in range(num_blocks))

    def encode(self, image):
        return F.conv2d(F.conv2d(image, self.encoder_weight1, padding=1), self.encoder_weight2, padding=1)

    def decode(self, features):
        return F.conv_transpose2d(F.conv_transpose2d(features, self.encoder_weight2, padding=1),
                                  self.encoder_weight1, padding=1)

    def degrade(self, normal):
        """DSN's forward pass: a normally exposed (B,3,H,W) image -> the dark image."""
        features = self.encode(normal)
        for block in self.blocks:
            features = block(features)
        return self.decode(features)

    def enhance(self, lq):
        """DSN's inverse pass: a dark (B,3,H,W) image -> the enhanced image."""
        features = self.encode(lq)
        for block in reversed(self.blocks):
            features = block.inverse(features)
        return self.decode(features)

    def forward(self, lq, flash, also_degrade=None):
        check_pair('DSNArch', lq, flash, self.in_channels)
        enhanced = self.enhance(lq)
        if also_degrade is None:
            return enhanced
        if also_degrade.shape != lq.shape:
            raise ValueError(f'DSNArch: also_degrade must have the shape of lq {tuple(lq.shape)}, '
                             f'got {tuple(also_degrade.shape)}')
        return enhanced, self.degrade(also_degrade)
