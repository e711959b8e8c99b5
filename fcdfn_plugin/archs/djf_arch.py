"""DJFArch: Deep Joint image Filtering (Li et al., ECCV 2016 / TPAMI 2019), a Table 1 comparison system."""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .unet_blocks import check_pair


def srcnn_branch(in_channels, widths, out_channels=1):
    """9x9 conv, ReLU, 1x1 conv, ReLU, 5x5 conv ('same' zero padding), DJF's initialisation.

    DJF's ``cnn_joint_init.m``: weights N(0, 0.1) for the 9x9 and 1x1 layers, N(0, 0.001) for the
    5x5 layer, biases 0.
    """
    layers = [nn.Conv2d(in_channels, widths[0], 9, padding=4), nn.ReLU(inplace=True),
              nn.Conv2d(widths[0], widths[1], 1), nn.ReLU(inplace=True),
              nn.Conv2d(widths[1], out_channels, 5, padding=2)]
    for layer, std in zip(layers[0::2], (0.1, 0.1, 0.001)):
        nn.init.normal_(layer.weight, std=std)
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


@ARCH_REGISTRY.register()
class DJFArch(nn.Module):
    """Target, guide and fusion sub-networks (DJF's flash/no-flash recipe), one colour channel at a time.

    DJF's flash/no-flash model filters one channel of the noisy image (the 1-channel target) with the
    RGB flash image as guide, and is run once per channel with the same weights
    (``cnn_test_noise_reduction.m``). Here the three channels are folded into the batch: target
    (3B,1,H,W), guide output shared by the three channels of a sample (the guide branch sees the
    same RGB flash for each, so it runs once per sample; identical to three separate calls). The
    fusion network gets ``[guide map, target map]`` (DJF's concatenation order). DJF pads the
    branches with a 1x1-conv trick and runs the fusion network 'valid'; here every conv is 'same'
    (zero padding), so the output has the input's size.

    Args:
        in_channels: colour channels of lq and of the guide (3).
        branch_channels: widths of the target and guide branches' 9x9 and 1x1 layers (paper 96, 48).
        fusion_channels: widths of the fusion network's 9x9 and 1x1 layers (paper 64, 32).
        residual: False (default, DJF) outputs the fusion map directly; True adds it to the target
            channel (the DJF-R variant of the TPAMI paper).

    ``forward(lq, flash)``: (B,3,H,W) each, any H, W -> (B,3,H,W), not clamped. Paper widths:
    56,323 parameters. Purely local (receptive field 25 px), so tiling is exact away from tile borders.
    """

    def __init__(self, in_channels=3, branch_channels=(96, 48), fusion_channels=(64, 32), residual=False):
        super().__init__()
        branch_channels, fusion_channels = tuple(branch_channels), tuple(fusion_channels)
        for name, widths in (('branch_channels', branch_channels), ('fusion_channels', fusion_channels)):
            if len(widths) != 2 or any(int(w) != w or w < 1 for w in widths):
                raise ValueError(f'{name} must be two positive integers (9x9 and 1x1 widths), got {widths!r}')
        self.in_channels, self.residual = in_channels, bool(residual)
        self.pad_multiple = 1
        self.target = srcnn_branch(1, branch_channels)
        self.guide = srcnn_branch(in_channels, branch_channels)
        self.fusion = srcnn_branch(2, fusion_channels)

    def forward(self, lq, flash):
        check_pair('DJFArch', lq, flash, self.in_channels)
        batch, channels, height, width = lq.shape
        target = lq.reshape(batch * channels, 1, height, width)  # channel c of sample b at row b*C + c
        guide_map = self.guide(flash).repeat_interleave(channels, dim=0)  # (B*C,1,H,W)
        out = self.fusion(torch.cat([guide_map, self.target(target)], dim=1))
        if self.residual:
            out = out + target
        return out.view(batch, channels, height, width)
