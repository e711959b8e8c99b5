"""Per-pixel filtering with kernels built from a per-sample basis (paper Eq. 4), memory-bounded.

For pixel ``r`` the kernel is ``W(r, t) = sum_i coeffs[b, i, r] * basis[b, i, t] + bias[b, 0, r]``
and the output is the correlation ``out[b, c, r] = sum_t W(r, t) * x[b, c, r + dilation * (t - (K-1)/2)]``
(like ``F.conv2d``: no kernel flip), where ``x`` is the image padded by ``padding_mode``.

The kernels are built and applied one band of rows at a time, inside a custom autograd Function
whose backward recomputes each band. Neither the per-pixel kernels (K*K*H*W floats) nor an unfold
of the whole image are ever held, so extra memory stays at one band's worth plus the gradients of
the inputs. ``docs/DESIGN.md`` compares this with the conv-basis design (``basis_filter_conv``).

``impl='fused'`` runs the same maths as one Triton kernel per pixel tile instead
(:mod:`fcdfn_plugin.ops.basis_filter_triton`, imported only then). ``impl='native'`` runs it on CPU
with a small C++/OpenMP library that never materialises the per-tap products, as the custom operator
``fcdfn::basis_filter_cpu`` (:mod:`fcdfn_plugin.ops.basis_filter_native`: build, fallback, threads).
``'auto'`` is 'native' for float32/float64 CPU tensors where that library builds, else 'banded' (on
CUDA too, until the fused kernel is measured faster on a GPU).
"""
import contextlib
import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

# Pixels (summed over the batch) handled per band. Measured on a 2-core CPU at 224x224, B=4,
# N=90, K=15: 2048..8192 are within a few percent of each other; smaller bands pay Python
# overhead, larger ones hold more memory (about 2.7 kB per pixel of band at C=3, K=15).
DEFAULT_TILE_PIXELS = 4096
# On a GPU small bands are launch-bound. Measured on one H100 (224x224, B=4, N=90, K=15, fwd+bwd):
# 4096 -> 24 ms / 31 MiB, 16384 -> 9.2 ms / 116 MiB, 65536 -> 6.4 ms / 454 MiB; naive unfold
# 5.7 ms / 1825 MiB. 16384 keeps 16x less memory than naive at 1.6x its time.
CUDA_TILE_PIXELS = 16384
#: Values of ``impl``. 'auto' is 'native' on CPU (where the C++ kernel builds) and 'banded' elsewhere: the
#: fused kernel becomes the CUDA default only once it is measured faster there (``tools/gpu_check.sh``).
IMPLS = ('auto', 'banded', 'fused', 'native')


def pad_image(image, pad, padding_mode='reflect'):
    """Pad the last two dims of ``image`` (B,C,H,W) by ``pad`` on every side.

    ``'reflect'`` mirrors without repeating the edge, like ``F.pad(mode='reflect')``; a pad wider than
    the image is done in several mirror steps (one-pixel images are replicated), so any size works.
    ``'zeros'`` pads with 0.
    """
    if pad == 0:
        return image
    if padding_mode == 'zeros':
        return F.pad(image, (pad, pad, pad, pad))
    if padding_mode != 'reflect':
        raise ValueError(f"padding_mode must be 'reflect' or 'zeros', got {padding_mode!r}")
    remaining = pad
    while remaining > 0:
        height, width = image.shape[-2:]
        if min(height, width) == 1:
            return F.pad(image, (remaining,) * 4, mode='replicate')
        step = min(remaining, height - 1, width - 1)
        image = F.pad(image, (step,) * 4, mode='reflect')
        remaining -= step
    return image


def _check_inputs(image, coeffs, basis, bias, dilation):
    if image.dim() != 4 or coeffs.dim() != 4 or basis.dim() != 4:
        raise ValueError('basis_filter expects image (B,C,H,W), coeffs (B,N,H,W), basis (B,N,K,K); got '
                         f'{tuple(image.shape)}, {tuple(coeffs.shape)}, {tuple(basis.shape)}')
    batch, _, height, width = image.shape
    kernel_size = basis.shape[-1]
    if basis.shape[-2] != kernel_size or kernel_size % 2 == 0:
        raise ValueError(f'basis must hold square kernels of odd size, got {tuple(basis.shape)}')
    if coeffs.shape != (batch, basis.shape[1], height, width):
        raise ValueError(f'coeffs must be (B,N,H,W) = {(batch, basis.shape[1], height, width)} to match image '
                         f'{tuple(image.shape)} and basis {tuple(basis.shape)}, got {tuple(coeffs.shape)}')
    if basis.shape[0] != batch:
        raise ValueError(f'basis batch {basis.shape[0]} differs from image batch {batch}')
    if bias is not None and bias.shape != (batch, 1, height, width):
        raise ValueError(f'bias must be (B,1,H,W) = {(batch, 1, height, width)}, got {tuple(bias.shape)}')
    if int(dilation) != dilation or dilation < 1:
        raise ValueError(f'dilation must be a positive integer, got {dilation}')


class _BandedBasisFilter(torch.autograd.Function):
    """Band-by-band kernel building and application; backward recomputes each band."""

    @staticmethod
    def forward(ctx, padded, coeffs, basis, bias, dilation, tile_pixels):
        batch, channels = padded.shape[:2]
        _, num_basis, height, width = coeffs.shape
        kernel_size = basis.shape[-1]
        taps = kernel_size * kernel_size
        basis_t = basis.reshape(batch, num_basis, taps).transpose(1, 2)  # (B,K2,N)
        out = padded.new_empty(batch, channels, height, width)
        workspace = _Workspace(padded)
        for row0, row1 in _bands(height, width * batch, tile_pixels):
            band_h = row1 - row0
            windows, kernels = _band_terms(padded, coeffs, basis_t, bias, row0, row1, kernel_size, dilation, workspace)
            # (B,C,K,K,h,W) * (B,1,K,K,h,W) summed over the taps
            product = workspace.get('product', (batch, channels, kernel_size, kernel_size, band_h, width))
            torch.mul(windows, kernels.unsqueeze(1), out=product)
            out[:, :, row0:row1] = product.sum((2, 3))
        ctx.save_for_backward(padded, coeffs, basis, bias)
        ctx.dilation, ctx.tile_pixels = dilation, tile_pixels
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        with _autocast_off(grad_out.device):  # called inside an autocast region, bmm would change dtype
            return _BandedBasisFilter._backward(ctx, grad_out.to(ctx.saved_tensors[0].dtype))

    @staticmethod
    def _backward(ctx, grad_out):
        padded, coeffs, basis, bias = ctx.saved_tensors
        dilation = ctx.dilation
        need_image, need_coeffs, need_basis, need_bias = ctx.needs_input_grad[:4]
        batch, channels, padded_h, padded_w = padded.shape
        _, num_basis, height, width = coeffs.shape
        kernel_size = basis.shape[-1]
        taps = kernel_size * kernel_size
        margin = dilation * (kernel_size - 1)
        basis_t = basis.reshape(batch, num_basis, taps).transpose(1, 2)  # (B,K2,N)
        grad_out = grad_out.contiguous()
        grad_padded = torch.zeros_like(padded) if need_image else None
        grad_coeffs = torch.empty_like(coeffs) if need_coeffs else None
        grad_basis_t = padded.new_zeros(batch, taps, num_basis) if need_basis else None
        grad_bias = torch.empty_like(bias) if (bias is not None and need_bias) else None
        workspace = _Workspace(padded)
        for row0, row1 in _bands(height, width * batch, ctx.tile_pixels):
            band_h = row1 - row0
            pixels = band_h * width
            windows, kernels = _band_terms(padded, coeffs, basis_t, bias, row0, row1, kernel_size, dilation, workspace)
            grad_band = grad_out[:, :, row0:row1]  # (B,C,h,W)
            if need_coeffs or need_basis or grad_bias is not None:
                # dL/dW(r,t) = sum_c g[c,r] x[c, r + shift_t]: (B,K2,P)
                # accumulated channel by channel: one (B,K,K,h,W) buffer instead of a C times larger product
                grad_kernels = workspace.get('grad_kernels', (batch, kernel_size, kernel_size, band_h, width))
                torch.mul(windows[:, 0], grad_band[:, 0, None, None], out=grad_kernels)
                for channel in range(1, channels):
                    grad_kernels.addcmul_(windows[:, channel], grad_band[:, channel, None, None])
                grad_kernels = grad_kernels.view(batch, taps, pixels)
                if need_coeffs:
                    grad_coeffs[:, :, row0:row1] = torch.bmm(basis_t.transpose(1, 2), grad_kernels).view(
                        batch, num_basis, band_h, width)
                if need_basis:
                    coeffs_band = coeffs[:, :, row0:row1].reshape(batch, num_basis, pixels)
                    grad_basis_t += torch.bmm(grad_kernels, coeffs_band.transpose(1, 2))
                if grad_bias is not None:
                    grad_bias[:, :, row0:row1] = grad_kernels.sum(1).view(batch, 1, band_h, width)
            if need_image:
                # the taps scatter back onto the padded image: fold (col2im) is the adjoint of the windows
                grad_cols = workspace.get('product', (batch, channels, taps, pixels))
                torch.mul(kernels.view(batch, 1, taps, pixels), grad_band.reshape(batch, channels, 1, pixels),
                          out=grad_cols)
                grad_cols = grad_cols.view(batch, channels * taps, pixels)
                grad_padded[:, :, row0:row1 + margin] += F.fold(
                    grad_cols, (band_h + margin, padded_w), kernel_size, dilation=dilation)
        grad_basis = None
        if need_basis:
            grad_basis = grad_basis_t.transpose(1, 2).reshape(batch, num_basis, kernel_size, kernel_size)
        return grad_padded, grad_coeffs, grad_basis, grad_bias, None, None


def _bands(height, pixels_per_row, tile_pixels):
    rows = max(1, tile_pixels // max(1, pixels_per_row))
    for row0 in range(0, height, rows):
        yield row0, min(height, row0 + rows)


class _Workspace:
    """Reusable flat buffers, one per name, viewed at each band's shape.

    Allocating fresh multi-megabyte band buffers makes the allocator map and unmap (and the kernel
    zero) them for every band; reusing them removed most of the system time on CPU.
    """

    def __init__(self, like):
        self.like = like
        self.buffers = {}

    def get(self, name, shape):
        numel = 1
        for dim in shape:
            numel *= dim
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < numel:
            buffer = self.like.new_empty(numel)
            self.buffers[name] = buffer
        return buffer[:numel].view(shape)


def _band_terms(padded, coeffs, basis_t, bias, row0, row1, kernel_size, dilation, workspace):
    """Rows row0..row1: every tap's window of the padded image as a strided view (B,C,K,K,h,W),
    without copying (unlike unfold), and the per-pixel kernels (B,K,K,h,W)."""
    batch, channels = padded.shape[:2]
    num_basis, width = coeffs.shape[1], coeffs.shape[-1]
    band_h = row1 - row0
    stride_b, stride_c, stride_h, stride_w = padded.stride()
    windows = padded[:, :, row0:].as_strided(
        (batch, channels, kernel_size, kernel_size, band_h, width),
        (stride_b, stride_c, stride_h * dilation, stride_w * dilation, stride_h, stride_w))
    coeffs_band = coeffs[:, :, row0:row1].reshape(batch, num_basis, band_h * width)
    kernels = workspace.get('kernels', (batch, kernel_size * kernel_size, band_h * width))  # (B,K2,P)
    if bias is None:
        torch.bmm(basis_t, coeffs_band, out=kernels)
    else:  # the bias enters the GEMM's accumulator instead of a separate pass
        torch.baddbmm(bias[:, :, row0:row1].reshape(batch, 1, band_h * width), basis_t, coeffs_band, out=kernels)
    return windows, kernels.view(batch, kernel_size, kernel_size, band_h, width)


def _autocast_off(device):
    """Autocast disabled for ``device`` if it is on there (the ops choose their dtype themselves)."""
    if device.type in ('cpu', 'cuda') and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def resolve_impl(impl, tensor=None):
    """The implementation ``impl`` (one of ``IMPLS``) stands for on ``tensor``'s device and dtype.

    'auto' is 'native' for float32/float64 CPU tensors where the C++ kernel is available (it is built
    at the first such call), else 'banded'; without ``tensor`` (validation only) 'auto' stays 'auto'.
    """
    if impl not in IMPLS:
        raise ValueError(f'impl (filter_impl) must be one of {IMPLS}, got {impl!r}')
    if impl != 'auto' or tensor is None:
        return impl
    if tensor.device.type == 'cpu' and tensor.dtype in (torch.float32, torch.float64):
        from .basis_filter_native import native_available
        if native_available():
            return 'native'
    return 'banded'


def _fused_function(device):
    """The fused autograd Function, with a clear error where it cannot run."""
    if device.type == 'cpu' and os.environ.get('TRITON_INTERPRET') != '1':
        raise RuntimeError("impl='fused' runs on CUDA tensors; on CPU tensors only under Triton's interpreter "
                           "(set TRITON_INTERPRET=1 before triton is imported; for tests). Use impl='banded' "
                           "or 'auto' on CPU.")
    try:
        from .basis_filter_triton import FusedBasisFilter
    except ImportError as error:
        raise RuntimeError(f"impl='fused' needs triton, which cannot be imported ({error}); use impl='banded'") \
            from error
    return FusedBasisFilter


def basis_filter(image, coeffs, basis, bias=None, dilation=1, padding_mode='reflect', impl='auto'):
    """Filter ``image`` with per-pixel kernels ``W(r) = sum_i coeffs_i(r) basis_i + bias(r)`` (Eq. 4).

    Args:
        image: (B,C,H,W), any range; every channel is filtered with the same kernel.
        coeffs: (B,N,H,W) per-pixel coefficients of the N basis kernels.
        basis: (B,N,K,K) per-sample basis kernels, K odd.
        bias: (B,1,H,W) per-pixel scalar added to every tap, or None.
        dilation: spacing of the kernel taps (the coarse branch uses 4).
        padding_mode: 'reflect' or 'zeros', how the image is extended past its border.
        impl: 'banded' (see below), 'fused' (the Triton kernel of ``basis_filter_triton``: CUDA
            tensors, or CPU ones under ``TRITON_INTERPRET=1``; float32/16/bfloat16), 'native' (the
            C++/OpenMP CPU kernel of ``basis_filter_native``: CPU, float32/float64) or 'auto'
            ('native' on CPU where it builds, else 'banded').

    Returns:
        (B,C,H,W): ``out[b,c,r] = sum_t W(r,t) x[b,c,r + dilation*(t - (K-1)/2)]`` (correlation).

    Memory: one band of rows (``DEFAULT_TILE_PIXELS`` pixels on CPU, ``CUDA_TILE_PIXELS`` on a GPU,
    summed over the batch) of kernels and tap products at a time, in forward and backward; float32 and
    float64, CPU and CUDA (checked on an H100 against the unfold reference).

    Mixed precision: the inputs are cast to their common (promoted) dtype and the op runs with
    autocast off, so under autocast (bfloat16 coefficients, float32 image and bias) it computes and
    returns float32; the sums over K*K taps are not done in 8 bits of mantissa.
    """
    _check_inputs(image, coeffs, basis, bias, dilation)
    tensors = [image, coeffs, basis] + ([] if bias is None else [bias])
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
    image, coeffs, basis = (t.to(dtype).contiguous() for t in (image, coeffs, basis))
    bias = None if bias is None else bias.to(dtype).contiguous()
    impl = resolve_impl(impl, image)
    function = _fused_function(image.device) if impl == 'fused' else None
    with _autocast_off(image.device):
        pad = dilation * (basis.shape[-1] - 1) // 2
        padded = pad_image(image, pad, padding_mode).contiguous()
        if impl == 'native':
            if image.device.type != 'cpu':
                raise RuntimeError(f"impl='native' runs on CPU tensors, got {image.device}; use 'auto' or 'banded'")
            from .basis_filter_native import basis_filter_cpu
            return basis_filter_cpu(padded, coeffs, basis, bias, int(dilation))
        if function is not None:
            return function.apply(padded, coeffs, basis, bias, int(dilation))
        tile_pixels = CUDA_TILE_PIXELS if image.is_cuda else DEFAULT_TILE_PIXELS
        return _BandedBasisFilter.apply(padded, coeffs, basis, bias, int(dilation), tile_pixels)


def basis_filter_conv(image, coeffs, basis, bias=None, dilation=1, padding_mode='reflect'):
    """Design (a), kept for the benchmark: N per-sample basis convolutions, then a per-pixel sum.

    ``(W * x)(r) = sum_i coeffs_i(r) (basis_i * x)(r) + bias(r) boxsum_K(x)(r)``; same arguments and
    result as :func:`basis_filter`, plain autograd, but it holds B*C*N*H*W responses at once.
    """
    _check_inputs(image, coeffs, basis, bias, dilation)
    batch, channels, height, width = image.shape
    num_basis, kernel_size = basis.shape[1], basis.shape[-1]
    pad = dilation * (kernel_size - 1) // 2
    padded = pad_image(image, pad, padding_mode)
    padded_h, padded_w = padded.shape[-2:]
    # one group per (sample, channel): its N output channels are that sample's basis kernels
    weight = basis.unsqueeze(1).expand(batch, channels, num_basis, kernel_size, kernel_size)
    weight = weight.reshape(batch * channels * num_basis, 1, kernel_size, kernel_size)
    responses = F.conv2d(padded.reshape(1, batch * channels, padded_h, padded_w), weight,
                         dilation=dilation, groups=batch * channels)
    responses = responses.view(batch, channels, num_basis, height, width)
    out = torch.einsum('bcnhw,bnhw->bchw', responses, coeffs)
    if bias is not None:
        box = padded.new_ones(channels, 1, kernel_size, kernel_size)
        box_sum = F.conv2d(padded, box, dilation=dilation, groups=channels)  # (B,C,H,W)
        out = out + bias * box_sum
    return out


class BasisFilter(nn.Module):
    """Module form of :func:`basis_filter` with a fixed ``dilation``, ``padding_mode`` and ``impl``."""

    def __init__(self, dilation=1, padding_mode='reflect', impl='auto'):
        super().__init__()
        resolve_impl(impl)
        self.dilation = dilation
        self.padding_mode = padding_mode
        self.impl = impl

    def forward(self, image, coeffs, basis, bias=None):
        return basis_filter(image, coeffs, basis, bias, self.dilation, self.padding_mode, self.impl)

    def extra_repr(self):
        return f'dilation={self.dilation}, padding_mode={self.padding_mode!r}, impl={self.impl!r}'
