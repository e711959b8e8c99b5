"""CUNetArch: Common and Unique information splitting network (Deng & Dragotti, TPAMI 2020), Table 1."""
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .unet_blocks import check_pair

INITS = ('xavier', 'ista')


def soft_threshold(x, threshold):
    """``sign(x) * max(|x| - threshold, 0)``: the proximal operator of ``threshold * |x|_1``."""
    return torch.sign(x) * torch.relu(x.abs() - threshold)


def _conv(in_channels, out_channels, kernel_size):
    """Bias-free 'same' conv with Xavier-uniform weights (CU-Net's convolutions)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
    nn.init.xavier_uniform_(conv.weight)
    return conv


class SparseCoder(nn.Module):
    """Unrolled convolutional LISTA: ``z <- S_lambda_i(W_e x + z - W_u W_d z)`` for ``iterations`` steps.

    (B, in, H, W) -> sparse code (B, filters, H, W). The first code is ``S_lambda_0(W_e x)``; each
    step has its own W_d (filters -> in), W_u (in -> filters) and learnable threshold (init 0.01).
    """

    def __init__(self, in_channels, filters, kernel_size, iterations, threshold_init, init='xavier'):
        super().__init__()
        self.encode = _conv(in_channels, filters, kernel_size)
        self.down = nn.ModuleList(_conv(filters, in_channels, kernel_size) for _ in range(iterations))
        self.up = nn.ModuleList(_conv(in_channels, filters, kernel_size) for _ in range(iterations))
        self.thresholds = nn.Parameter(torch.full((iterations + 1,), float(threshold_init)))
        if init == 'ista':
            with torch.no_grad():
                for down, up in zip(self.down, self.up):
                    up.weight.copy_(ista_step_weight(down))

    def forward(self, x):
        encoded = self.encode(x)
        code = soft_threshold(encoded, self.thresholds[0])
        for index, (down, up) in enumerate(zip(self.down, self.up), start=1):
            code = soft_threshold(encoded + code - up(down(code)), self.thresholds[index])
        return code


def ista_step_weight(down, size=32, iterations=30):
    """Weight of the conv ``up`` (in -> filters) that makes ``z - up(down(z))`` an ISTA step on the
    dictionary ``down`` (filters -> in): ``up = down^T / L``, the adjoint (spatially flipped,
    transposed kernel) over ``L``, the largest eigenvalue of ``down^T down`` (power iteration on a
    ``size`` x ``size`` field from a fixed seed). LISTA's own initialisation (Gregor & LeCun 2010)."""
    weight = down.weight.detach()  # (in, filters, k, k)
    padding = weight.shape[-1] // 2
    field = torch.randn(1, weight.shape[1], size, size, generator=torch.Generator().manual_seed(0),
                        dtype=weight.dtype).to(weight.device)
    lipschitz = weight.new_tensor(1.0)
    for _ in range(iterations):
        field = F.conv_transpose2d(F.conv2d(field, weight, padding=padding), weight, padding=padding)
        lipschitz = field.norm()
        field = field / lipschitz
    return weight.flip(-1, -2).transpose(0, 1) / lipschitz


@ARCH_REGISTRY.register()
class CUNetArch(nn.Module):
    """CU-Net, flash-guided denoising variant (official ``CUNet.py``), direct output.

    ``u = U(lq)``, ``v = V(flash)`` (unique codes), ``z = Z([lq - R_u u, flash - R_v v])`` (common code
    of what the unique parts do not explain), output ``D_u u + D_z z``. U, V, Z are
    :class:`SparseCoder`; R_u, R_v, D_u, D_z single convs (filters -> 3). No biases anywhere;
    Xavier-uniform weights; the soft thresholds start at 0.01 and are learnt. Inputs as they are
    ([0, 1], no gain; CU-Net reads images with ``im2double``).

    Args:
        in_channels: colour channels of each input (3).
        filters: channels of the sparse codes (paper 64).
        kernel_size: of every conv (official PyTorch code 9; the paper states 8).
        iterations: unrolled steps per sparse coder (paper 4).
        threshold_init: initial value of every soft threshold (0.01).
        init: 'xavier' (the official code: every conv Xavier-uniform) or 'ista' (each unrolled step's
            ``W_u`` starts as ``W_d^T / L``, so the untrained coder runs ISTA on its random dictionary,
            LISTA's own initialisation: the official one makes the unrolled steps expansive, and the
            untrained output on dark inputs averages |5.5| at quarter width; see docs/DESIGN.md).

    ``forward(lq, flash)``: (B,3,H,W) each, any H, W -> (B,3,H,W), not clamped. Paper size: 622,095
    parameters. No global operations (receptive field ~160 px), so tiling with overlap >= 80 is safe.
    """

    def __init__(self, in_channels=3, filters=64, kernel_size=9, iterations=4, threshold_init=0.01, init='xavier'):
        super().__init__()
        if init not in INITS:
            raise ValueError(f'init must be one of {INITS}, got {init!r}')
        if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd integer, got {kernel_size!r}')
        if int(iterations) != iterations or iterations < 0:
            raise ValueError(f'iterations must be a non-negative integer, got {iterations!r}')
        self.in_channels = in_channels
        self.pad_multiple = 1
        coder = dict(filters=filters, kernel_size=kernel_size, iterations=iterations, threshold_init=threshold_init,
                     init=init)
        self.unique_lq = SparseCoder(in_channels, **coder)
        self.unique_flash = SparseCoder(in_channels, **coder)
        self.common = SparseCoder(2 * in_channels, **coder)
        self.reconstruct_unique_lq = _conv(filters, in_channels, kernel_size)
        self.reconstruct_unique_flash = _conv(filters, in_channels, kernel_size)
        self.decode_unique = _conv(filters, in_channels, kernel_size)
        self.decode_common = _conv(filters, in_channels, kernel_size)

    def forward(self, lq, flash):
        check_pair('CUNetArch', lq, flash, self.in_channels)
        unique_lq = self.unique_lq(lq)
        unique_flash = self.unique_flash(flash)
        residuals = torch.cat([lq - self.reconstruct_unique_lq(unique_lq),
                               flash - self.reconstruct_unique_flash(unique_flash)], dim=1)
        common = self.common(residuals)
        return self.decode_unique(unique_lq) + self.decode_common(common)
