"""LSD2Arch: the U-Net of LSD2 (Mustaniemi et al., BMVC 2020), a Table 1 comparison system."""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .unet_blocks import PixelDecoder, UNetEncoder, check_pair, level_widths, pad_to_multiple


@ARCH_REGISTRY.register()
class LSD2Arch(nn.Module):
    """Ronneberger U-Net on ``cat([flash, lq])``, linear 1x1 RGB head, direct output.

    LSD2's ``models.py``: two 3x3 conv + ReLU per level, 2x2 max-pool, widths 64..1024 over 5
    levels, 2x2 stride-2 transposed convs concatenated as ``[up, skip]``, no normalisation, a linear
    1x1 conv to RGB. The Keras model gets ``[long, short]``; the flash image plays the long
    exposure (clean, differently lit), the low-light image the short one. Inputs are used as they
    are ([0, 1], no gain), as the official code does.

    Args:
        in_channels: colour channels of each input (3).
        base_channels: width of the first level (paper 64: 31,033,603 parameters).
        depth: levels (paper 5, i.e. 4 max-pools).

    ``forward(lq, flash)``: (B,3,H,W) each, any H, W -> (B,3,H,W), not clamped. The input is
    reflect-padded at the bottom/right to a multiple of ``pad_multiple`` = 2**(depth-1) and the
    output cropped back (LSD2 zero-pads the up-sampled maps instead). No global operations, so tiled
    inference matches untiled inference away from the tile borders (receptive field ~210 px at depth 5).
    """

    def __init__(self, in_channels=3, base_channels=64, depth=5):
        super().__init__()
        self.in_channels = in_channels
        self.pad_multiple = 2**(depth - 1)
        widths = level_widths(base_channels, depth)
        self.encoder = UNetEncoder(2 * in_channels, widths)
        self.decoder = PixelDecoder(widths, skip_multiplier=1)
        self.head = nn.Conv2d(widths[0], in_channels, 1)

    def forward(self, lq, flash):
        check_pair('LSD2Arch', lq, flash, self.in_channels)
        height, width = lq.shape[-2:]
        x = pad_to_multiple(torch.cat([flash, lq], dim=1), self.pad_multiple)  # Keras order [long, short]
        return self.head(self.decoder(self.encoder(x)))[..., :height, :width]
