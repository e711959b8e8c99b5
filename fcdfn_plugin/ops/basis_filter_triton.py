"""Fused Triton kernels for :func:`~fcdfn_plugin.ops.basis_filter.basis_filter` (``impl='fused'``).

The per-pixel kernels ``W(r, t) = sum_i coeffs[b, i, r] * basis[b, i, t] + bias[b, 0, r]`` are built
on chip, a tile of ``BLOCK_P`` pixels (a segment of one image row, so loads run along consecutive
pixels) by a chunk of ``BLOCK_T`` taps at a time, with ``tl.dot`` (coefficients (P,N) @ basis (N,T))
on tensor cores, multiplied with the image windows and reduced over the taps; the K*K kernels of a
pixel never reach memory. The image is padded beforehand (``pad_image``), so the kernels only read
the padded image at ``row + dilation * ty``, ``col + dilation * tx``; K and the dilation are
compile-time constants.

Backward recomputes instead of storing, in two kernels (three launches):

* per pixel tile (fully parallel): ``dW(r, t) = sum_c g[c, r] x[c, r + s_t]`` chunk by chunk;
  grad coeffs = dW @ basis^T (``tl.dot``), grad bias = sum_t dW (one launch), and the image
  gradient ``W(r, t) g[c, r]`` scattered onto the padded image with ``tl.atomic_add`` (each padded
  pixel receives K*K contributions from different tiles; a second launch of the same kernel with
  other flags: the two halves in one program need more than 255 registers and spill on sm_90);
* grad basis ``sum_r coeffs[:, r] dW(r, t)``: each program owns one tap chunk of one sample and a
  fixed, strided subset of the pixel tiles, accumulates coeffs^T @ dW in registers and writes one
  partial sum; the partials are summed by torch afterwards (deterministic).

GEMM precision: float32 inputs on a GPU use TF32x3 (three TF32 tensor-core products, float32's
accuracy; plain TF32 when torch allows it for its own matmuls), 16-bit inputs 16-bit operands, the
CPU interpreter exact float32; accumulation is float32 throughout. Each launch has a few
configurations (:data:`LAUNCH_CONFIGS`, none spilling for sm_90); on a GPU the fastest is picked per
shape at the first call (:func:`_config`).

Importing this module imports triton; ``basis_filter`` imports it only when ``impl='fused'`` is
asked for, so the package works without triton. On CPU tensors the kernels only run under
Triton's interpreter (``TRITON_INTERPRET=1`` set before triton is imported): that is what the
tests use; it is slow and meant for checking correctness only.

GPU speed is unmeasured (no GPU was available when this was written); ``tools/gpu_check.sh``
measures it. The configurations were chosen from compile reports for sm_90
(``tools/kernel_report.py``, docs/GPU_COMPILE_REPORT.md).
"""
import contextlib
import math
import os

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

#: Taps per chunk (the N of the kernel-building GEMM; >= 16, masked past K*K; 16 when K*K <= 16).
BLOCK_TAPS = 32
#: About this many programs (summed over samples and tap chunks) share the grad-basis reduction;
#: each writes one (N, BLOCK_TAPS) partial sum, so this bounds the extra memory of the partials.
GRAD_BASIS_PROGRAMS = 1024
#: Dtypes the kernels take (GEMM operands in the input dtype, everything else in float32; the output
#: in the input dtype).
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: The configurations of each launch: pixels per tile (``BLOCK_P``, a segment of one image row; the M
#: of the GEMMs: Hopper's wgmma needs 64), warps and software-pipelining stages. The first is the
#: default (CPU interpreter, ``AUTOTUNE`` off); on a GPU the fastest is picked at the first call of each
#: shape (:func:`_config`). ``tools/kernel_report.py`` compiles every one of them for sm_90 with Triton
#: 3.6 and 3.8: none spills, and every GEMM runs on tensor cores (wgmma) at N=90, C=3 or 1, K=3..15,
#: float32 (TF32x3) and 16-bit. Left out because they spill: 4 warps (every kernel at 64-pixel tiles),
#: 32-pixel tiles under TF32x3 (forward, image backward), 128-pixel tiles in the backward kernels
#: (40-776 B of spill stores with Triton 3.6). See docs/GPU_COMPILE_REPORT.md.
LAUNCH_CONFIGS = {
    'forward': (dict(BLOCK_P=64, num_warps=8, num_stages=3), dict(BLOCK_P=64, num_warps=8, num_stages=1),
                dict(BLOCK_P=128, num_warps=8, num_stages=1)),
    'backward_image': (dict(BLOCK_P=64, num_warps=8, num_stages=3), dict(BLOCK_P=64, num_warps=8, num_stages=1)),
    'backward_coeffs': (dict(BLOCK_P=64, num_warps=8, num_stages=3), dict(BLOCK_P=64, num_warps=8, num_stages=1)),
    'backward_basis': (dict(BLOCK_P=64, num_warps=8, num_stages=1),),
}
#: Pick each launch's fastest configuration on a GPU (timed once per shape); False: always the first.
AUTOTUNE = os.environ.get('FCDFN_FUSED_AUTOTUNE', '1') != '0'


@triton.jit
def _tile_coords(tile, width, padded_w, BLOCK_P: tl.constexpr):
    """Pixel indices of one tile, their mask, and their offsets into the padded image's (Hp, Wp) plane.

    A tile is a segment of one image row (``BLOCK_P`` consecutive columns): its pixels, and each of its
    taps' windows, are consecutive addresses, so loads and atomics run along pixels (coalesced), and the
    row and column come from one scalar division per program instead of one per pixel."""
    tiles_per_row = tl.cdiv(width, BLOCK_P)
    row = (tile // tiles_per_row).to(tl.int64)
    col = (tile % tiles_per_row) * BLOCK_P + tl.arange(0, BLOCK_P)
    return row * width + col, col < width, row * padded_w + col


@triton.jit
def _load_coeffs(coeffs_ptr, offs_p, mask_p, offs_n, mask_n, pixels):
    """(P, N) coefficient tile (zero past the image and past N), float32."""
    pointers = coeffs_ptr + offs_n[None, :].to(tl.int64) * pixels + offs_p[:, None]
    return tl.load(pointers, mask=mask_p[:, None] & mask_n[None, :], other=0.0).to(tl.float32)


@triton.jit
def _load_basis(basis_ptr, offs_n, mask_n, offs_t, mask_t, taps):
    """(N, T) chunk of the sample's basis (zero past N and past K*K), float32."""
    pointers = basis_ptr + offs_n[:, None] * taps + offs_t[None, :]
    return tl.load(pointers, mask=mask_n[:, None] & mask_t[None, :], other=0.0).to(tl.float32)


@triton.jit
def _window_offsets(plane_offset, offs_c, offs_t, padded_w, padded_plane, KERNEL_SIZE: tl.constexpr,
                    DILATION: tl.constexpr):
    """(P, C, T) offsets into one padded image (C,Hp,Wp) of every pixel's taps: x[c, row + d*ty, col + d*tx]."""
    tap_offset = (offs_t // KERNEL_SIZE) * DILATION * padded_w + (offs_t % KERNEL_SIZE) * DILATION
    return offs_c[None, :, None].to(tl.int64) * padded_plane + plane_offset[:, None, None] + tap_offset[None, None, :]


@triton.jit
def _dot(a, b, like_ptr, PRECISION: tl.constexpr, HALF_DOT: tl.constexpr):
    """``a @ b`` accumulated in float32: operands in the inputs' 16-bit dtype (``HALF_DOT``, tensor cores),
    else float32 operands in ``PRECISION`` ('ieee': plain FMA; 'tf32x3': three TF32 tensor-core products,
    about float32's accuracy; 'tf32')."""
    if HALF_DOT:
        return tl.dot(a.to(like_ptr.dtype.element_ty), b.to(like_ptr.dtype.element_ty))
    else:
        return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _lanes(start, count, BLOCK: tl.constexpr):
    """Offsets start .. start + BLOCK - 1 along one axis and the mask of those below ``count``."""
    offs = start + tl.arange(0, BLOCK)
    return offs, offs < count


@triton.jit
def _forward_kernel(padded_ptr, coeffs_ptr, basis_ptr, bias_ptr, out_ptr,
                    channels, num_basis, height, width, padded_h, padded_w,
                    KERNEL_SIZE: tl.constexpr, DILATION: tl.constexpr, HAS_BIAS: tl.constexpr,
                    PRECISION: tl.constexpr, HALF_DOT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    tile = tl.program_id(0)
    sample = tl.program_id(1).to(tl.int64)
    pixels = height * width
    taps = KERNEL_SIZE * KERNEL_SIZE
    padded_plane = padded_h * padded_w
    offs_p, mask_p, plane_offset = _tile_coords(tile, width, padded_w, BLOCK_P)
    offs_n, mask_n = _lanes(0, num_basis, BLOCK_N)
    offs_c, mask_c = _lanes(0, channels, BLOCK_C)
    coeffs = _load_coeffs(coeffs_ptr + sample * num_basis * pixels, offs_p, mask_p, offs_n, mask_n, pixels)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + sample * pixels + offs_p, mask=mask_p, other=0.0).to(tl.float32)
    image_ptr = padded_ptr + sample * channels * padded_plane
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for tap0 in range(0, taps, BLOCK_T):
        offs_t, mask_t = _lanes(tap0, taps, BLOCK_T)
        basis = _load_basis(basis_ptr + sample * num_basis * taps, offs_n, mask_n, offs_t, mask_t, taps)
        kernels = _dot(coeffs, basis, coeffs_ptr, PRECISION, HALF_DOT)  # (P, T), on chip only
        if HAS_BIAS:
            kernels += bias[:, None]
        window_mask = mask_p[:, None, None] & mask_c[None, :, None] & mask_t[None, None, :]
        windows = tl.load(image_ptr + _window_offsets(plane_offset, offs_c, offs_t, padded_w, padded_plane,
                                                      KERNEL_SIZE, DILATION),
                          mask=window_mask, other=0.0).to(tl.float32)
        acc += tl.sum(windows * kernels[:, None, :], axis=2)
    out_pointers = out_ptr + sample * channels * pixels + offs_c[None, :].to(tl.int64) * pixels + offs_p[:, None]
    tl.store(out_pointers, acc.to(out_ptr.dtype.element_ty), mask=mask_p[:, None] & mask_c[None, :])


@triton.jit
def _load_grad_out(grad_out_ptr, offs_p, mask_p, offs_c, mask_c, pixels):
    """(P, C) tile of the output gradient, float32."""
    pointers = grad_out_ptr + offs_c[None, :].to(tl.int64) * pixels + offs_p[:, None]
    return tl.load(pointers, mask=mask_p[:, None] & mask_c[None, :], other=0.0).to(tl.float32)


@triton.jit
def _backward_pixels_kernel(padded_ptr, coeffs_ptr, basis_ptr, bias_ptr, grad_out_ptr,
                            grad_padded_ptr, grad_coeffs_ptr, grad_bias_ptr,
                            channels, num_basis, height, width, padded_h, padded_w,
                            KERNEL_SIZE: tl.constexpr, DILATION: tl.constexpr, HAS_BIAS: tl.constexpr,
                            NEED_IMAGE: tl.constexpr, NEED_COEFFS: tl.constexpr, NEED_BIAS: tl.constexpr,
                            PRECISION: tl.constexpr, HALF_DOT: tl.constexpr, BLOCK_P: tl.constexpr,
                            BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    """One pixel tile: grad coeffs and grad bias (stored) and/or grad image (atomically scattered), as flagged."""
    tile = tl.program_id(0)
    sample = tl.program_id(1).to(tl.int64)
    pixels = height * width
    taps = KERNEL_SIZE * KERNEL_SIZE
    padded_plane = padded_h * padded_w
    offs_p, mask_p, plane_offset = _tile_coords(tile, width, padded_w, BLOCK_P)
    offs_n, mask_n = _lanes(0, num_basis, BLOCK_N)
    offs_c, mask_c = _lanes(0, channels, BLOCK_C)
    grad = _load_grad_out(grad_out_ptr + sample * channels * pixels, offs_p, mask_p, offs_c, mask_c, pixels)  # (P,C)
    if NEED_IMAGE:
        coeffs = _load_coeffs(coeffs_ptr + sample * num_basis * pixels, offs_p, mask_p, offs_n, mask_n, pixels)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + sample * pixels + offs_p, mask=mask_p, other=0.0).to(tl.float32)
    image_ptr = padded_ptr + sample * channels * padded_plane
    grad_image_ptr = grad_padded_ptr + sample * channels * padded_plane
    grad_coeffs = tl.zeros((BLOCK_P, BLOCK_N), dtype=tl.float32)
    grad_bias = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for tap0 in range(0, taps, BLOCK_T):
        offs_t, mask_t = _lanes(tap0, taps, BLOCK_T)
        basis = _load_basis(basis_ptr + sample * num_basis * taps, offs_n, mask_n, offs_t, mask_t, taps)
        window_mask = mask_p[:, None, None] & mask_c[None, :, None] & mask_t[None, None, :]
        offsets = _window_offsets(plane_offset, offs_c, offs_t, padded_w, padded_plane, KERNEL_SIZE, DILATION)
        if NEED_COEFFS or NEED_BIAS:
            windows = tl.load(image_ptr + offsets, mask=window_mask, other=0.0).to(tl.float32)
            grad_kernels = tl.sum(windows * grad[:, :, None], axis=1)  # (P, T): dL/dW, zero where masked
            if NEED_COEFFS:
                grad_coeffs += _dot(grad_kernels, tl.trans(basis), coeffs_ptr, PRECISION, HALF_DOT)
            if NEED_BIAS:
                grad_bias += tl.sum(grad_kernels, axis=1)
        if NEED_IMAGE:
            kernels = _dot(coeffs, basis, coeffs_ptr, PRECISION, HALF_DOT)  # recomputed, as in the forward
            if HAS_BIAS:
                kernels += bias[:, None]
            contributions = kernels[:, None, :] * grad[:, :, None]  # (P, C, T)
            tl.atomic_add(grad_image_ptr + offsets, contributions, mask=window_mask, sem='relaxed')
    if NEED_COEFFS:
        pointers = (grad_coeffs_ptr + sample * num_basis * pixels + offs_n[None, :].to(tl.int64) * pixels
                    + offs_p[:, None])
        tl.store(pointers, grad_coeffs.to(grad_coeffs_ptr.dtype.element_ty), mask=mask_p[:, None] & mask_n[None, :])
    if NEED_BIAS:
        tl.store(grad_bias_ptr + sample * pixels + offs_p, grad_bias.to(grad_bias_ptr.dtype.element_ty), mask=mask_p)


@triton.jit
def _backward_basis_kernel(padded_ptr, coeffs_ptr, grad_out_ptr, partial_ptr,
                           channels, num_basis, height, width, padded_h, padded_w, splits,
                           KERNEL_SIZE: tl.constexpr, DILATION: tl.constexpr,
                           PRECISION: tl.constexpr, HALF_DOT: tl.constexpr, BLOCK_P: tl.constexpr,
                           BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    """Partial grad basis of one tap chunk over pixel tiles split, split + splits, ...: (N, T) -> partial."""
    chunk = tl.program_id(0)
    split = tl.program_id(1)
    sample = tl.program_id(2).to(tl.int64)
    pixels = height * width
    taps = KERNEL_SIZE * KERNEL_SIZE
    padded_plane = padded_h * padded_w
    offs_n, mask_n = _lanes(0, num_basis, BLOCK_N)
    offs_c, mask_c = _lanes(0, channels, BLOCK_C)
    offs_t, mask_t = _lanes(chunk * BLOCK_T, taps, BLOCK_T)
    image_ptr = padded_ptr + sample * channels * padded_plane
    acc = tl.zeros((BLOCK_N, BLOCK_T), dtype=tl.float32)
    num_tiles = height * tl.cdiv(width, BLOCK_P)
    for tile in range(split, num_tiles, splits):
        offs_p, mask_p, plane_offset = _tile_coords(tile, width, padded_w, BLOCK_P)
        grad = _load_grad_out(grad_out_ptr + sample * channels * pixels, offs_p, mask_p, offs_c, mask_c, pixels)
        coeffs = _load_coeffs(coeffs_ptr + sample * num_basis * pixels, offs_p, mask_p, offs_n, mask_n, pixels)
        window_mask = mask_p[:, None, None] & mask_c[None, :, None] & mask_t[None, None, :]
        windows = tl.load(image_ptr + _window_offsets(plane_offset, offs_c, offs_t, padded_w, padded_plane,
                                                      KERNEL_SIZE, DILATION),
                          mask=window_mask, other=0.0).to(tl.float32)
        grad_kernels = tl.sum(windows * grad[:, :, None], axis=1)  # (P, T)
        acc += _dot(tl.trans(coeffs), grad_kernels, coeffs_ptr, PRECISION, HALF_DOT)  # (N, T)
    partial = partial_ptr + (sample * splits + split) * num_basis * taps
    tl.store(partial + offs_n[:, None] * taps + offs_t[None, :], acc, mask=mask_n[:, None] & mask_t[None, :])


#: Each launch of the op by the names used in :data:`LAUNCH_CONFIGS`: its kernel and compile-time flags
#: (besides :func:`block_meta`) when there is a bias and every gradient is wanted.
KERNELS = {
    'forward': (_forward_kernel, dict(HAS_BIAS=True)),
    'backward_image': (_backward_pixels_kernel, dict(HAS_BIAS=True, NEED_IMAGE=True, NEED_COEFFS=False,
                                                     NEED_BIAS=False)),
    'backward_coeffs': (_backward_pixels_kernel, dict(HAS_BIAS=True, NEED_IMAGE=False, NEED_COEFFS=True,
                                                      NEED_BIAS=True)),
    'backward_basis': (_backward_basis_kernel, {}),
}


def _block(size, minimum=16):
    """Power of two >= size and >= minimum (tl.arange needs powers of two, tl.dot dims >= 16)."""
    return max(minimum, 1 << max(0, math.ceil(math.log2(max(1, size)))))


def _precision(device):
    """The float32 GEMMs' precision: on a GPU always on tensor cores, TF32 when torch's own float32 matmuls
    use it (``torch.backends.cuda.matmul.allow_tf32``), else 'tf32x3' (a split-precision product of three
    TF32 GEMMs, close to float32; measured against the float64 reference in tests/test_ops_fused.py);
    'ieee' (exact float32) under the interpreter."""
    if device.type != 'cuda':
        return 'ieee'
    return 'tf32' if torch.backends.cuda.matmul.allow_tf32 else 'tf32x3'


def interpreted():
    """True when the kernels were built by Triton's interpreter (TRITON_INTERPRET=1 at import)."""
    return isinstance(_forward_kernel, InterpretedFunction)


def _patch_old_interpreter():
    """Make Triton < 3.7's interpreter run with NumPy >= 2.4 (only the interpreter: compiled kernels are unaffected).

    Triton 3.6's interpreter turns a scalar (a kernel's int argument, ``program_id``) used as a loop
    bound into an int with ``int(array)`` on an array of shape (1,), which NumPy 2.4 refuses ("only
    0-dimensional arrays can be converted to Python scalars"), so every ``range(0, taps, BLOCK_T)`` of
    these kernels failed. Triton 3.7+ does ``int(array.squeeze())``; this installs the same for older
    ones, through the function that patches ``tl.tensor`` at each interpreted launch. Idempotent.
    """
    from triton.runtime import interpreter
    original = getattr(interpreter, '_patch_lang_tensor', None)
    version = tuple(int(part) for part in triton.__version__.split('.')[:2] if part.isdigit())
    if original is None or getattr(original, 'fcdfn_squeezed_index', False) or version >= (3, 7):
        return

    def patch_lang_tensor(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, '__index__', lambda self: int(self.handle.data.squeeze()))

    patch_lang_tensor.fcdfn_squeezed_index = True
    interpreter._patch_lang_tensor = patch_lang_tensor


if interpreted():
    _patch_old_interpreter()


def _check(padded, coeffs, basis, bias):
    tensors = [padded, coeffs, basis] + ([] if bias is None else [bias])
    devices = {t.device for t in tensors}
    dtypes = {t.dtype for t in tensors}
    if len(devices) != 1 or len(dtypes) != 1:
        raise ValueError(f"impl='fused' needs every input on one device and of one dtype, got devices "
                         f"{sorted(map(str, devices))} and dtypes {sorted(map(str, dtypes))}")
    if padded.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"impl='fused' supports {[str(d) for d in SUPPORTED_DTYPES]}, got {padded.dtype}; "
                        "use impl='banded' (float64 included)")
    if padded.device.type == 'cuda':
        if interpreted():
            raise RuntimeError("impl='fused' was imported under TRITON_INTERPRET=1 (the CPU interpreter); "
                               'run CUDA tensors in a process without it')
    elif padded.device.type == 'cpu':
        if not interpreted():
            raise RuntimeError("impl='fused' on CPU tensors runs only under Triton's interpreter: set "
                               'TRITON_INTERPRET=1 before triton (and this module) is imported, or use '
                               "impl='banded'")
    else:
        raise RuntimeError(f"impl='fused' runs on CUDA tensors (or CPU under TRITON_INTERPRET=1), got {padded.device}")


def _on_device(device):
    """Triton launches on the current CUDA device: make it the tensors' one (DDP: one GPU per process)."""
    return torch.cuda.device(device) if device.type == 'cuda' else contextlib.nullcontext()


def block_meta(channels, num_basis, kernel_size, dilation, precision='ieee', half=False):
    """The compile-time constants every kernel is launched with for C channels, N basis kernels of K x K taps
    at a dilation: block sizes (tap chunks of 16 for K <= 3, else 32), the GEMM precision, and whether the
    GEMM operands are 16-bit (``half``: bfloat16/float16 inputs)."""
    return dict(KERNEL_SIZE=kernel_size, DILATION=dilation, PRECISION=precision, HALF_DOT=half,
                BLOCK_N=_block(num_basis),
                BLOCK_T=min(BLOCK_TAPS, _block(kernel_size * kernel_size)), BLOCK_C=_block(channels, minimum=1))


def _meta(padded, basis, dilation):
    return block_meta(padded.shape[1], basis.shape[1], basis.shape[-1], dilation, _precision(padded.device),
                      half=padded.dtype != torch.float32)


#: Configurations picked by autotuning: (launch name, shapes, dtype, flags) -> index into LAUNCH_CONFIGS.
_TUNED = {}


def _time_ms(launch):
    """Mean milliseconds of ``launch()`` on the current GPU (after one untimed call: compilation)."""
    launch()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(3):
        launch()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 3


def _tunable(device):
    """Whether launches on ``device`` can be timed (a GPU; the interpreter's CPU launches are not)."""
    return device.type == 'cuda'


def _config(name, key, launch, reset, device):
    """The configuration (a dict of LAUNCH_CONFIGS[name]) to launch ``name`` with.

    The first one unless autotuning applies (``AUTOTUNE``, a CUDA device, more than one configuration):
    then each is timed once per ``key`` with ``launch(config)``, and ``reset()`` is called after every
    trial, so a buffer that a launch accumulates into (the atomically added image gradient) starts
    from zero again for the real launch."""
    configs = LAUNCH_CONFIGS[name]
    if not (AUTOTUNE and _tunable(device)) or len(configs) == 1:
        return configs[0]
    if (name, key) not in _TUNED:
        times = []
        for config in configs:
            times.append(_time_ms(lambda: launch(config)))
            reset()
        _TUNED[(name, key)] = min(range(len(configs)), key=times.__getitem__)
    return configs[_TUNED[(name, key)]]


def _launch(name, grid, args, constants, key, device, reset=lambda: None):
    """Launch the kernel of ``name`` (:data:`KERNELS`) on ``grid(BLOCK_P)`` in its configuration."""
    kernel = KERNELS[name][0]

    def launch(config):
        options = dict(config)
        block_p = options.pop('BLOCK_P')
        kernel[grid(block_p)](*args, BLOCK_P=block_p, **options, **constants)

    launch(_config(name, key, launch, reset, device))


def _tuning_key(padded, basis, bias, dilation):
    """What a launch's best configuration depends on: shapes, dtype, dilation, bias."""
    return tuple(padded.shape), tuple(basis.shape), padded.dtype, dilation, bias is not None


def _pixel_grid(height, width, batch):
    """The grid of the per-pixel launches for a tile of ``block_p`` pixels: (row segments, samples)."""
    return lambda block_p: (height * triton.cdiv(width, block_p), batch)


def _forward(padded, coeffs, basis, bias, dilation):
    batch, channels, padded_h, padded_w = padded.shape
    num_basis, height, width = coeffs.shape[1:]
    out = padded.new_empty(batch, channels, height, width)
    _launch('forward', _pixel_grid(height, width, batch),
            (padded, coeffs, basis, padded if bias is None else bias, out,
             channels, num_basis, height, width, padded_h, padded_w),
            dict(HAS_BIAS=bias is not None, **_meta(padded, basis, dilation)),
            _tuning_key(padded, basis, bias, dilation), padded.device)
    return out


def _backward(padded, coeffs, basis, bias, dilation, grad_out, needs):
    need_image, need_coeffs, need_basis, need_bias = needs
    need_bias = need_bias and bias is not None
    batch, channels, padded_h, padded_w = padded.shape
    num_basis, height, width = coeffs.shape[1:]
    meta = _meta(padded, basis, dilation)
    taps = basis.shape[-1] ** 2
    sizes = (channels, num_basis, height, width, padded_h, padded_w)
    key = _tuning_key(padded, basis, bias, dilation)
    grad_out = grad_out.contiguous()
    # the atomics accumulate in float32 whatever the input dtype
    grad_padded = torch.zeros(padded.shape, device=padded.device, dtype=torch.float32) if need_image else None
    grad_coeffs = torch.empty_like(coeffs) if need_coeffs else None
    grad_bias = torch.empty_like(bias) if need_bias else None
    # the per-pixel backward as two launches of one kernel: both halves in one spill registers on sm_90
    pixel_launches = []
    if need_image:
        pixel_launches.append(('backward_image', dict(NEED_IMAGE=True, NEED_COEFFS=False, NEED_BIAS=False),
                               grad_padded.zero_))
    if need_coeffs or need_bias:
        pixel_launches.append(('backward_coeffs', dict(NEED_IMAGE=False, NEED_COEFFS=need_coeffs,
                                                       NEED_BIAS=need_bias), lambda: None))
    for name, flags, reset in pixel_launches:
        _launch(name, _pixel_grid(height, width, batch),
                (padded, coeffs, basis, padded if bias is None else bias, grad_out,
                 padded if grad_padded is None else grad_padded, coeffs if grad_coeffs is None else grad_coeffs,
                 coeffs if grad_bias is None else grad_bias, *sizes),
                dict(HAS_BIAS=bias is not None, **flags, **meta), key + tuple(flags.values()), padded.device, reset)
    grad_basis = None
    if need_basis:
        # one program per (tap chunk, split, sample), each over the pixel tiles split, split + splits, ...
        # (at most as many splits as the largest tile of any configuration leaves tiles)
        chunks = triton.cdiv(taps, meta['BLOCK_T'])
        tiles = height * triton.cdiv(width, max(config['BLOCK_P'] for config in LAUNCH_CONFIGS['backward_basis']))
        splits = max(1, min(tiles, math.ceil(GRAD_BASIS_PROGRAMS / (batch * chunks))))
        partial = torch.empty(batch, splits, num_basis, taps, device=padded.device, dtype=torch.float32)
        _launch('backward_basis', lambda block_p: (chunks, splits, batch),
                (padded, coeffs, grad_out, partial, *sizes, splits), meta, key, padded.device)
        grad_basis = partial.sum(1).view_as(basis).to(basis.dtype)
    if grad_padded is not None:
        grad_padded = grad_padded.to(padded.dtype)
    return grad_padded, grad_coeffs, grad_basis, grad_bias


class FusedBasisFilter(torch.autograd.Function):
    """``apply(padded, coeffs, basis, bias_or_None, dilation)``: the fused forward; backward recomputes.

    ``padded`` is the image already padded by ``dilation * (K - 1) // 2`` on each side; every tensor
    contiguous, on one device, of one dtype (see :data:`SUPPORTED_DTYPES`).
    """

    @staticmethod
    def forward(ctx, padded, coeffs, basis, bias, dilation):
        _check(padded, coeffs, basis, bias)
        ctx.save_for_backward(padded, coeffs, basis, bias)
        ctx.dilation = dilation
        with _on_device(padded.device):
            return _forward(padded, coeffs, basis, bias, dilation)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        padded, coeffs, basis, bias = ctx.saved_tensors
        with _on_device(padded.device):
            grads = _backward(padded, coeffs, basis, bias, ctx.dilation, grad_out.to(padded.dtype),
                              ctx.needs_input_grad[:4])
        return grads + (None,)
