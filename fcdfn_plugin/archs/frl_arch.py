"""FRLArch: Frequency-relevant Residual Learning (Liu et al.), a Table 1 comparison system."""
import math

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .unet_blocks import check_choice, check_pair

GUIDES = ('channel', 'luma')
#: BT.601 luma weights, for ``guide: luma``.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def dct_matrix(size, dtype=torch.float64):
    """Orthonormal DCT-II matrix (size, size): ``C[k, n] = a_k cos(pi (n + 1/2) k / size)``."""
    n = torch.arange(size, dtype=dtype)
    matrix = torch.cos(math.pi * (n[None, :] + 0.5) * n[:, None] / size)
    scale = torch.full((size, 1), math.sqrt(2.0 / size), dtype=dtype)
    scale[0] = math.sqrt(1.0 / size)
    return matrix * scale


def dct_kernels(size):
    """(size**2, 1, size, size) conv weights: channel ``k*size + l`` is the 2-D DCT coefficient (k, l)
    of the size x size window (correlation, like ``F.conv2d``)."""
    matrix = dct_matrix(size)
    return torch.einsum('ky,lx->klyx', matrix, matrix).reshape(size * size, 1, size, size).float()


def idct_kernels(size):
    """(1, size**2, size, size) conv weights inverting :func:`dct_kernels` with overlap averaging.

    ``dct_kernels`` with padding ``size - 1`` gives one coefficient vector per window touching the
    image; window j covers pixels j - size + 1 .. j, so with a 'valid' conv over the coefficient
    maps, output pixel p reads window p + d at offset size - 1 - d. Each window inverts exactly
    (orthonormal basis), and the 1/size**2 averages the size**2 windows containing p.
    """
    matrix = dct_matrix(size).flip(1)  # column d holds the basis value at offset size - 1 - d
    kernels = torch.einsum('ky,lx->klyx', matrix, matrix) / size**2
    return kernels.reshape(1, size * size, size, size).float()


def dct_forward(image, kernels):
    """(B,1,H,W) -> (B, size**2, H + size - 1, W + size - 1): DCT of every window touching the image."""
    return F.conv2d(image, kernels, padding=kernels.shape[-1] - 1)


def dct_inverse(coefficients, kernels):
    """Inverse of :func:`dct_forward` (with :func:`idct_kernels`): (B, size**2, H', W') -> (B,1,H,W)."""
    return F.conv2d(coefficients, kernels)


def conv_relu_bn(in_channels, out_channels, kernel_size):
    """FRL's layer order is Conv (no bias) -> ReLU -> BatchNorm (its code, not its figure)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.ReLU(inplace=True), nn.BatchNorm2d(out_channels))


def dct_branch(coefficients, features):
    return nn.Sequential(conv_relu_bn(coefficients, features, 1), conv_relu_bn(features, features, 3),
                         conv_relu_bn(features, features, 3))


@ARCH_REGISTRY.register()
class FRLArch(nn.Module):
    """FRL (official ``FRL_model.py``): residual denoising in the 7x7 block-DCT domain, per colour channel.

    DCT (fixed) of target and guide; a 3-layer branch on each; the fusion CNN on
    ``[DCT(target), DCT(guide), target features, guide features]`` (2*49 + 2*32 = 162 channels, six
    3x3 layers) predicts a 49-channel correction R with a bias-free 1x1 conv; output
    ``IDCT(DCT(target) - R)``. With R = 0 the network is the identity. Every conv is bias-free and
    followed by ReLU then BatchNorm. FRL is single-channel (its group runs RGB one channel at a time
    with a shared guide), so the colour channels are folded into the batch with shared weights.
    Inputs as they are ([0, 1], no gain).

    Args:
        in_channels: colour channels (3).
        dct_size: DCT block size (7).
        features: width of the two branches (32); the fusion CNN has twice this.
        fusion_layers: 3x3 conv layers of the fusion CNN before the 1x1 output (6).
        guide: 'channel' (default: target channel c is guided by flash channel c) or 'luma' (every
            channel guided by the flash's BT.601 luma, the analogue of FRL's one-channel NIR guide).
        train_idct: True (default, the official code: the IDCT kernel is a trainable parameter, the
            DCT kernel fixed) or False (both fixed, as FGDNet from the same group).

    ``forward(lq, flash)``: (B,3,H,W) each, any H, W -> (B,3,H,W), not clamped. Paper size: 321,920
    parameters in the convs and BatchNorms, plus the 2,401-value IDCT kernel when ``train_idct``
    (the DCT kernel is a buffer). BatchNorm in eval mode is a per-pixel affine, so tiling is exact away
    from tile borders (receptive field ~30 px).
    """

    def __init__(self, in_channels=3, dct_size=7, features=32, fusion_layers=6, guide='channel', train_idct=True):
        super().__init__()
        check_choice('guide', guide, GUIDES)
        if int(dct_size) != dct_size or dct_size < 1:
            raise ValueError(f'dct_size must be a positive integer, got {dct_size!r}')
        if int(fusion_layers) != fusion_layers or fusion_layers < 1:
            raise ValueError(f'fusion_layers must be a positive integer, got {fusion_layers!r}')
        self.in_channels, self.guide = in_channels, guide
        self.pad_multiple = 1
        coefficients = dct_size * dct_size
        self.register_buffer('dct_weight', dct_kernels(dct_size))
        idct = idct_kernels(dct_size)
        if train_idct:
            self.idct_weight = nn.Parameter(idct)
        else:
            self.register_buffer('idct_weight', idct)
        self.branch_target = dct_branch(coefficients, features)
        self.branch_guide = dct_branch(coefficients, features)
        fusion = [conv_relu_bn(2 * coefficients + 2 * features, 2 * features, 3)]
        fusion += [conv_relu_bn(2 * features, 2 * features, 3) for _ in range(fusion_layers - 1)]
        self.fusion = nn.Sequential(*fusion)
        self.correction = nn.Conv2d(2 * features, coefficients, 1, bias=False)
        self.register_buffer('luma_weights', torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1), persistent=False)

    def forward(self, lq, flash):
        check_pair('FRLArch', lq, flash, self.in_channels)
        batch, channels, height, width = lq.shape
        target = lq.reshape(batch * channels, 1, height, width)
        if self.guide == 'channel':
            guide = flash.reshape(batch * channels, 1, height, width)
        else:
            if channels != 3:
                raise ValueError(f"guide: luma needs RGB inputs, got {channels} channels")
            guide = (flash * self.luma_weights).sum(dim=1, keepdim=True).repeat_interleave(channels, dim=0)
        target_dct = dct_forward(target, self.dct_weight)
        guide_dct = dct_forward(guide, self.dct_weight)
        features = torch.cat([target_dct, guide_dct, self.branch_target(target_dct), self.branch_guide(guide_dct)], 1)
        correction = self.correction(self.fusion(features))
        out = dct_inverse(target_dct - correction, self.idct_weight)
        return out.view(batch, channels, height, width)
