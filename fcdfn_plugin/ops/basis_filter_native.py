"""``basis_filter(impl='native')``: the per-pixel basis filter on CPU without per-tap products.

The banded op (:mod:`fcdfn_plugin.ops.basis_filter`) spends most of its time writing and reading
(B, C, K*K, pixels) products. Here the kernel-building GEMM stays in torch (``baddbmm`` per band of
rows, BLAS-fast), and the memory-bound loops run in a small C++/OpenMP library
(``csrc/basis_filter_cpu.cpp``) that never materialises a product:

- forward: ``out[c, r] = sum_t W(r, t) x[c, r + shift_t]``, one output row at a time;
- backward: ``dW(r, t) = sum_c g[c, r] x[c, r + shift_t]`` and the bias gradient ``sum_t dW(r, t)``
  (then two GEMMs give the gradients of coeffs and basis), and the image gradient gathered per padded row
  (``grad_x[c, q] = sum_t W(q - shift_t, t) g[c, q - shift_t]``), so threads never race.

Build: the library is plain C++ (no torch headers, raw pointers, ``extern "C"``), compiled with
``$CXX`` (else ``g++``, else ``c++``) ``-O3 -march=native -fopenmp`` into a cache folder,
``$FCDFN_NATIVE_CACHE`` or ``$XDG_CACHE_HOME/fcdfn_plugin`` (``~/.cache/fcdfn_plugin``), under a name
keyed by a hash of the source, the flags, the compiler's version and this CPU's flags, written to a
temporary file and renamed so concurrent processes never load a half-written library. ``make setup``
builds it (``make native``: :func:`build`); otherwise the first use does (a few
seconds). Where no compiler is found or the build fails, :func:`native_available` is False, one
warning says why, and ``impl='auto'`` uses the banded op; ``impl='native'`` then raises.

Threads: every call passes ``torch.get_num_threads()`` to OpenMP, so ``torch.set_num_threads(1)``
(``--threads 1``) keeps it single-threaded. The library links the ``libgomp.so.1`` torch already loaded.

Custom operator: ``fcdfn::basis_filter_cpu`` (``torch.library.custom_op``) with a fake (meta)
implementation and its backward ``fcdfn::basis_filter_cpu_backward`` registered as its autograd, so
``torch.compile``, ``torch.export`` and tracing see one node each. Both take the already padded image.
"""
import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from typing import List, Optional, Tuple

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'csrc', 'basis_filter_cpu.cpp')
CXX_FLAGS = ('-O3', '-march=native', '-fopenmp', '-std=c++17', '-shared', '-fPIC')
# Pixels (summed over the batch) per band: one band's kernels (K*K floats per pixel) are built by one
# GEMM and then applied. Measured on 2 cores (B=8, 64x64 and 224x224, K=15): see docs/RESULTS.md.
NATIVE_TILE_PIXELS = 8192
_FUNCTIONS = ('apply_forward', 'kernel_grad', 'image_grad')
_SUFFIX = {torch.float32: 'f32', torch.float64: 'f64'}
DTYPES = tuple(_SUFFIX)

_lock = threading.Lock()
_state = {'tried': False, 'lib': None, 'error': None}


def cache_dir():
    """Folder of the compiled library: ``$FCDFN_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/fcdfn_plugin``."""
    if os.environ.get('FCDFN_NATIVE_CACHE'):
        return os.environ['FCDFN_NATIVE_CACHE']
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'fcdfn_plugin')


def _compiler():
    for name in (os.environ.get('CXX'), 'g++', 'c++'):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def cpu_flags():
    """This CPU's feature-flags line of /proc/cpuinfo (``flags`` on x86, ``Features`` on ARM), or the processor's
    name where there is none (-march=native output differs between CPUs sharing one cache folder)."""
    try:
        with open('/proc/cpuinfo') as handle:
            for line in handle:
                if line.startswith(('flags', 'Features')):
                    return line
    except OSError:
        pass
    return platform.processor()


def library_path(compiler):
    """Where the library built by ``compiler`` from today's source goes (the name holds its hash)."""
    version = subprocess.run([compiler, '--version'], capture_output=True, text=True).stdout
    with open(SOURCE, 'rb') as handle:
        source = handle.read()
    key = hashlib.sha256(b'\0'.join([source, ' '.join(CXX_FLAGS).encode(), version.encode(), cpu_flags().encode(),
                                     platform.machine().encode()])).hexdigest()[:16]
    return os.path.join(cache_dir(), f'basis_filter_cpu-{key}.so')


def build():
    """Compile the library unless the cache has it; returns its path. Raises RuntimeError with the reason."""
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError('no C++ compiler found ($CXX, g++, c++)')
    path = library_path(compiler)
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix='.so', prefix='.building-', dir=os.path.dirname(path))
    os.close(handle)
    try:
        done = subprocess.run([compiler, *CXX_FLAGS, SOURCE, '-o', temporary], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f'{compiler} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}')
        os.replace(temporary, path)  # atomic: another process sees no library or a whole one
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _load():
    path = build()
    lib = ctypes.CDLL(path)  # CDLL releases the GIL during calls
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    for name in _FUNCTIONS:
        for suffix in _SUFFIX.values():
            function = getattr(lib, f'fcdfn_{name}_{suffix}')
            function.argtypes = [pointer] * 4 + [size] * 10 + [ctypes.c_int]
            function.restype = None
    return lib


def native_library():
    """The loaded library, or None (after one logged warning) where it cannot be built or loaded."""
    if not _state['tried']:
        with _lock:
            if not _state['tried']:
                try:
                    _state['lib'] = _load()
                except Exception as error:  # noqa: BLE001 (any failure means: fall back, say why)
                    _state['error'] = f'{type(error).__name__}: {error}'
                    logger.warning("basis_filter: the native CPU kernel is unavailable (%s); impl='auto' uses the "
                                   "banded op on CPU (slower, same results)", _state['error'])
                _state['tried'] = True
    return _state['lib']


def native_available():
    """True where the C++ library is built and loaded (builds it on the first call)."""
    return native_library() is not None


def _require_library():
    lib = native_library()
    if lib is None:
        raise RuntimeError(f"basis_filter impl='native' needs the C++ CPU kernel, which could not be built or loaded "
                           f"({_state['error']}); use impl='banded' or 'auto'")
    return lib


def _call(name, arrays, shape_args):
    """One C++ loop over one sample's band; ``arrays``: four contiguous views of that sample (None: null)."""
    lib = _require_library()
    function = getattr(lib, f'fcdfn_{name}_{_SUFFIX[arrays[0].dtype]}')
    function(*(None if array is None else array.data_ptr() for array in arrays), *shape_args, torch.get_num_threads())


def _bands(height, width):
    """Row bands of one sample, ``NATIVE_TILE_PIXELS`` pixels each at most (whole samples when they fit).

    Bands stay inside one sample, so each band's coeffs, bias and gradients are strided views that the
    GEMMs read and write in place (a band across the batch would need a copy for each).
    """
    rows = max(1, NATIVE_TILE_PIXELS // max(1, width))
    for row0 in range(0, height, rows):
        yield row0, min(height, row0 + rows)


def _band_kernels(coeffs, basis_t, row0, row1, buffer):
    """The per-pixel kernels without the bias (K*K, h*W) of one sample's rows row0..row1 (coeffs (N,H,W),
    basis_t (K2,N)), in ``buffer``: one GEMM. The C++ loops add the bias (addmm would first copy it into every
    tap's row of the output)."""
    num_basis, _, width = coeffs.shape
    pixels = (row1 - row0) * width
    kernels = buffer[:basis_t.shape[0] * pixels].view(basis_t.shape[0], pixels)
    return torch.mm(basis_t, coeffs[:, row0:row1].reshape(num_basis, pixels), out=kernels)  # coeffs: a view


def _check(padded, coeffs, basis, bias):
    for name, tensor in (('padded', padded), ('coeffs', coeffs), ('basis', basis), ('bias', bias)):
        if tensor is None:
            continue
        if tensor.device.type != 'cpu':
            raise RuntimeError(f"basis_filter impl='native' runs on CPU tensors; {name} is on {tensor.device}")
        if tensor.dtype != padded.dtype or tensor.dtype not in DTYPES:
            raise RuntimeError(f"basis_filter impl='native' takes float32 or float64 inputs of one dtype; {name} is "
                               f'{tensor.dtype}, padded {padded.dtype}')


def _band_rows(height, width):
    return min(height, max(1, NATIVE_TILE_PIXELS // max(1, width)))


@torch.library.custom_op('fcdfn::basis_filter_cpu', mutates_args=(), device_types='cpu')
def basis_filter_cpu(padded: Tensor, coeffs: Tensor, basis: Tensor, bias: Optional[Tensor], dilation: int) -> Tensor:
    """Filter the padded image (B,C,H+2p,W+2p), p = dilation*(K-1)/2, with the per-pixel kernels; (B,C,H,W)."""
    _check(padded, coeffs, basis, bias)
    padded, coeffs, basis = padded.contiguous(), coeffs.contiguous(), basis.contiguous()
    bias = None if bias is None else bias.contiguous()
    batch, channels, padded_h, padded_w = padded.shape
    _, num_basis, height, width = coeffs.shape
    ksize = basis.shape[-1]
    basis_t = basis.reshape(batch, num_basis, ksize * ksize).transpose(1, 2)  # (B,K2,N)
    out = padded.new_empty(batch, channels, height, width)
    buffer = padded.new_empty(ksize * ksize * _band_rows(height, width) * width)
    for b in range(batch):
        for row0, row1 in _bands(height, width):
            kernels = _band_kernels(coeffs[b], basis_t[b], row0, row1, buffer)
            _call('apply_forward', (padded[b], kernels, None if bias is None else bias[b], out[b]),
                  (1, channels, height, width, padded_h, padded_w, ksize, dilation, row0, row1 - row0))
    return out


@basis_filter_cpu.register_fake
def _(padded, coeffs, basis, bias, dilation):
    return padded.new_empty(padded.shape[0], padded.shape[1], coeffs.shape[2], coeffs.shape[3])


@torch.library.custom_op('fcdfn::basis_filter_cpu_backward', mutates_args=(), device_types='cpu')
def basis_filter_cpu_backward(grad_out: Tensor, padded: Tensor, coeffs: Tensor, basis: Tensor, bias: Optional[Tensor],
                              dilation: int, needs: List[bool]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of (padded, coeffs, basis, bias) where ``needs`` says so; an empty tensor for the others."""
    _check(padded, coeffs, basis, bias)
    grad_out = grad_out.to(padded.dtype).contiguous()
    padded, coeffs, basis = padded.contiguous(), coeffs.contiguous(), basis.contiguous()
    bias = None if bias is None else bias.contiguous()
    need_image, need_coeffs, need_basis, need_bias = needs
    need_bias = need_bias and bias is not None
    batch, channels, padded_h, padded_w = padded.shape
    _, num_basis, height, width = coeffs.shape
    ksize = basis.shape[-1]
    taps = ksize * ksize
    basis_t = basis.reshape(batch, num_basis, taps).transpose(1, 2)  # (B,K2,N)

    def empty():  # a new one each time: outputs of a custom op must not alias each other
        return padded.new_empty(0)
    grad_padded = torch.zeros_like(padded) if need_image else empty()
    grad_coeffs = torch.empty_like(coeffs) if need_coeffs else empty()
    grad_basis_t = padded.new_zeros(batch, taps, num_basis) if need_basis else empty()
    grad_bias = torch.empty_like(bias) if need_bias else empty()
    need_kernel_grad = need_coeffs or need_basis or need_bias
    band_numel = taps * _band_rows(height, width) * width
    buffer = padded.new_empty(band_numel) if need_image else None
    grad_buffer = padded.new_empty(band_numel) if need_kernel_grad else None
    for b in range(batch):
        for row0, row1 in _bands(height, width):
            band_h = row1 - row0
            pixels = band_h * width
            shape_args = (1, channels, height, width, padded_h, padded_w, ksize, dilation, row0, band_h)
            if need_kernel_grad:
                grad_kernels = grad_buffer[:taps * pixels].view(taps, pixels)
                _call('kernel_grad', (padded[b], grad_out[b], grad_bias[b] if need_bias else None, grad_kernels),
                      shape_args)
                if need_coeffs:
                    torch.mm(basis_t[b].t(), grad_kernels, out=grad_coeffs[b, :, row0:row1].view(num_basis, pixels))
                if need_basis:
                    grad_basis_t[b].addmm_(grad_kernels, coeffs[b, :, row0:row1].reshape(num_basis, pixels).t())
            if need_image:
                kernels = _band_kernels(coeffs[b], basis_t[b], row0, row1, buffer)
                _call('image_grad', (kernels, None if bias is None else bias[b], grad_out[b], grad_padded[b]),
                      shape_args)
    # contiguous, as the fake implementation's empty_like promises (torch.compile checks the strides)
    grad_basis = grad_basis_t.transpose(1, 2).reshape(basis.shape).contiguous() if need_basis else empty()
    return grad_padded, grad_coeffs, grad_basis, grad_bias


@basis_filter_cpu_backward.register_fake
def _(grad_out, padded, coeffs, basis, bias, dilation, needs):
    return tuple(torch.empty_like(tensor) if (need and tensor is not None) else padded.new_empty(0)
                 for tensor, need in zip((padded, coeffs, basis, bias), needs))


def _setup_context(ctx, inputs, output):
    padded, coeffs, basis, bias, dilation = inputs
    ctx.save_for_backward(padded, coeffs, basis, bias)
    ctx.dilation = dilation
    ctx.has_bias = bias is not None


def _backward(ctx, grad_out):
    padded, coeffs, basis, bias = ctx.saved_tensors
    needs = [bool(flag) for flag in ctx.needs_input_grad[:4]]
    needs[3] = needs[3] and ctx.has_bias
    grads = basis_filter_cpu_backward(grad_out, padded, coeffs, basis, bias, ctx.dilation, needs)
    return tuple(grad if need else None for grad, need in zip(grads, needs)) + (None,)


basis_filter_cpu.register_autograd(_backward, setup_context=_setup_context)
