"""``basis_filter(impl='fused')`` (the Triton kernels) against the banded op and the unfold reference.

Every kernel test is parametrized by device:

* ``dev_cpu`` runs under Triton's interpreter, which reads ``TRITON_INTERPRET=1`` when triton is
  imported. In a normal test run those cases are skipped here and
  ``test_cpu_cases_under_interpreter`` runs them in a subprocess with the variable set (one
  process for all of them: importing torch, BasicSR and triton is most of the cost).
* ``dev_cuda`` runs the compiled kernels where a GPU is visible and the interpreter is off
  (``tools/gpu_check.sh``; ``conftest.py`` hides GPUs unless ``CUDA_VISIBLE_DEVICES`` is set).
"""
import importlib
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from fcdfn_plugin.ops import basis_filter
from test_ops import random_inputs, unfold_reference

INTERPRETER = os.environ.get('TRITON_INTERPRET') == '1'
HAS_TRITON = importlib.util.find_spec('triton') is not None
DEVICES = [
    pytest.param('cpu', id='dev_cpu', marks=pytest.mark.skipif(
        not INTERPRETER, reason='needs TRITON_INTERPRET=1 at import: run by test_cpu_cases_under_interpreter')),
    pytest.param('cuda', id='dev_cuda', marks=pytest.mark.skipif(
        INTERPRETER or not torch.cuda.is_available(), reason='needs a visible GPU and no interpreter')),
]
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason='triton is not installed')


def fused_module():
    return importlib.import_module('fcdfn_plugin.ops.basis_filter_triton')


def values_and_grads(fn, inputs, grad_out, requires=(True, True, True, True)):
    """``fn(*inputs)`` and the gradients of <out, grad_out> for the inputs flagged in ``requires``."""
    leaves = [None if t is None else t.clone().requires_grad_(flag) for t, flag in zip(inputs, requires)]
    out = fn(*leaves)
    wanted = [t for t in leaves if t is not None and t.requires_grad]
    return [out.detach()] + [g.detach() for g in torch.autograd.grad((out * grad_out).sum(), wanted)]


def assert_all_close(mine, ref, names, tolerance=1e-5):
    for name, a, b in zip(names, mine, ref):
        scale = max(1.0, float(b.abs().max()))  # basis/bias gradients sum over every pixel
        error = float((a.cpu().double() - b.cpu().double()).abs().max())
        assert error <= tolerance * scale, f'{name}: max error {error:.3g} (scale {scale:.3g})'


CASES = [  # kernel size, dilation, padding mode, height, width, basis count, channels, bias
    (3, 1, 'reflect', 13, 11, 6, 3, True),
    (5, 4, 'zeros', 13, 11, 6, 3, True),
    (5, 4, 'reflect', 11, 13, 17, 3, False),  # N=17: a 32-wide basis block, half masked; no bias
    (3, 2, 'zeros', 7, 18, 4, 1, True),  # one channel (deepFnF official filters per channel)
    (15, 1, 'reflect', 9, 10, 6, 3, True),  # 225 taps: 8 tap chunks, the last one masked
    (15, 4, 'zeros', 10, 9, 6, 3, True),  # the paper's coarse kernel: 57x57 reach on a 10x9 image
]


@needs_triton
@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('size,dilation,padding_mode,height,width,num_basis,channels,with_bias', CASES)
def test_values_and_every_gradient_match_banded_and_unfold(device, size, dilation, padding_mode, height, width,
                                                           num_basis, channels, with_bias):
    inputs = [t.to(device) for t in random_inputs(2, channels, num_basis, size, height, width)]
    if not with_bias:
        inputs[3] = None
    grad_out = torch.randn(2, channels, height, width, generator=torch.Generator().manual_seed(1)).to(device)
    names = ['out', 'image', 'coeffs', 'basis'] + (['bias'] if with_bias else [])
    fused = values_and_grads(lambda *x: basis_filter(*x, dilation, padding_mode, impl='fused'), inputs, grad_out)
    banded = values_and_grads(lambda *x: basis_filter(*x, dilation, padding_mode, impl='banded'), inputs, grad_out)
    reference = values_and_grads(lambda *x: unfold_reference(*x, dilation, padding_mode),
                                 [None if t is None else t.double() for t in inputs], grad_out.double())
    assert fused[0].dtype == torch.float32 and fused[0].shape == (2, channels, height, width)
    assert_all_close(fused, reference, names)
    assert_all_close(fused, banded, names)


@needs_triton
@pytest.mark.parametrize('device', DEVICES)
def test_grad_basis_partials_and_atomics_over_many_tiles(device, monkeypatch):
    """Tiny tiles and one program per tap chunk: every grad-basis program loops over many tiles, and
    the image gradient of each padded pixel comes from several tiles' atomics."""
    module = fused_module()
    monkeypatch.setattr(module, 'LAUNCH_CONFIGS', {name: (dict(BLOCK_P=16, num_warps=1, num_stages=1),)
                                                   for name in module.LAUNCH_CONFIGS})
    monkeypatch.setattr(module, 'GRAD_BASIS_PROGRAMS', 1)
    inputs = [t.to(device) for t in random_inputs(3, 3, 5, 5, 12, 14, seed=4)]
    grad_out = torch.randn(3, 3, 12, 14, generator=torch.Generator().manual_seed(5)).to(device)
    fused = values_and_grads(lambda *x: basis_filter(*x, 2, 'reflect', impl='fused'), inputs, grad_out)
    reference = values_and_grads(lambda *x: unfold_reference(*x, 2, 'reflect'), [t.double() for t in inputs],
                                 grad_out.double())
    assert_all_close(fused, reference, ('out', 'image', 'coeffs', 'basis', 'bias'))


def row_segment_case(device):
    """Rows of 70 pixels: two 64-pixel tiles a row (the second masked past 6), one of 128; dilation 2."""
    inputs = [t.to(device) for t in random_inputs(2, 3, 5, 5, 3, 70, seed=11)]
    grad_out = torch.randn(2, 3, 3, 70, generator=torch.Generator().manual_seed(12)).to(device)
    reference = values_and_grads(lambda *x: unfold_reference(*x, 2, 'zeros'), [t.double() for t in inputs],
                                 grad_out.double())
    return inputs, grad_out, reference


@needs_triton
@pytest.mark.parametrize('device', DEVICES)
def test_every_launch_configuration_autotuning_may_pick(device, monkeypatch):
    """Each configuration of LAUNCH_CONFIGS, forced in turn for every launch, gives the reference."""
    module = fused_module()
    configs = module.LAUNCH_CONFIGS
    inputs, grad_out, reference = row_segment_case(device)
    for index in range(max(len(options) for options in configs.values())):
        forced = {name: (options[min(index, len(options) - 1)],) for name, options in configs.items()}
        monkeypatch.setattr(module, 'LAUNCH_CONFIGS', forced)
        fused = values_and_grads(lambda *x: basis_filter(*x, 2, 'zeros', impl='fused'), inputs, grad_out)
        assert_all_close(fused, reference, ('out', 'image', 'coeffs', 'basis', 'bias'))


@needs_triton
@pytest.mark.parametrize('device', DEVICES)
def test_autotuning_resets_the_accumulated_image_gradient(device, monkeypatch):
    """Autotuning times every configuration on the real buffers: the atomically accumulated image
    gradient must be zeroed after each trial, or it would hold the sum of all of them."""
    module = fused_module()
    calls = []

    def fake_time_ms(launch):  # run each trial as the real timer does, and prefer the last configuration
        launch()
        calls.append(1)
        return 1.0 / len(calls)

    monkeypatch.setattr(module, 'AUTOTUNE', True)
    monkeypatch.setattr(module, '_tunable', lambda device: True)
    monkeypatch.setattr(module, '_time_ms', fake_time_ms)
    monkeypatch.setattr(module, '_TUNED', {})
    inputs, grad_out, reference = row_segment_case(device)
    fused = values_and_grads(lambda *x: basis_filter(*x, 2, 'zeros', impl='fused'), inputs, grad_out)
    assert_all_close(fused, reference, ('out', 'image', 'coeffs', 'basis', 'bias'))
    tuned = {name: options for name, options in module.LAUNCH_CONFIGS.items() if len(options) > 1}
    assert tuned.keys() >= {'forward', 'backward_image'}
    assert len(calls) == sum(len(options) for options in tuned.values())  # each launch with a choice, once
    assert {name: index for (name, _), index in module._TUNED.items()} == \
        {name: len(options) - 1 for name, options in tuned.items()}
    values_and_grads(lambda *x: basis_filter(*x, 2, 'zeros', impl='fused'), inputs, grad_out)
    assert len(calls) == sum(len(options) for options in tuned.values())  # cached per shape


@needs_triton
@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('requires', [(False, True, True, False), (True, False, False, False),
                                      (False, False, True, True)], ids=['coeffs_basis', 'image', 'basis_bias'])
def test_only_the_requested_gradients(device, requires):
    """The kernels skip what no input needs (the arch's first layers need no image gradient)."""
    inputs = [t.to(device) for t in random_inputs(1, 3, 4, 3, 10, 9, seed=6)]
    grad_out = torch.randn(1, 3, 10, 9, generator=torch.Generator().manual_seed(7)).to(device)
    fused = values_and_grads(lambda *x: basis_filter(*x, 1, 'zeros', impl='fused'), inputs, grad_out, requires)
    banded = values_and_grads(lambda *x: basis_filter(*x, 1, 'zeros', impl='banded'), inputs, grad_out, requires)
    assert len(fused) == 1 + sum(requires)
    assert_all_close(fused, banded, ['out'] + [n for n, r in zip(('image', 'coeffs', 'basis', 'bias'), requires) if r])


@needs_triton
@pytest.mark.parametrize('device', DEVICES)
def test_under_autocast_mixed_dtypes_compute_in_float32(device):
    """Autocast gives bfloat16 coefficients and basis next to a float32 image and bias: the op
    promotes them and returns float32, equal to the float32 op on the same (rounded) values."""
    image, coeffs, basis, bias = [t.to(device) for t in random_inputs(2, 3, 4, 5, 9, 11, seed=8)]
    coeffs, basis = coeffs.bfloat16(), basis.bfloat16()
    with torch.autocast(device, dtype=torch.bfloat16):
        out = basis_filter(image, coeffs, basis, bias, 1, 'reflect', impl='fused')
    assert out.dtype == torch.float32
    expected = basis_filter(image, coeffs.float(), basis.float(), bias, 1, 'reflect', impl='banded')
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


@needs_triton
@pytest.mark.parametrize('device', DEVICES)
def test_float64_is_a_clear_error(device):
    image, coeffs, basis, bias = [t.to(device) for t in random_inputs(1, 3, 4, 3, 8, 8, dtype=torch.float64)]
    with pytest.raises(TypeError, match="impl='banded'"):
        basis_filter(image, coeffs, basis, bias, impl='fused')


@needs_triton
@pytest.mark.parametrize('device', DEVICES)
def test_fcdfn_arch_fused_equals_banded(device):
    """The whole network, every branch, both SAECNN layers and the coarse (dilated) kernel."""
    from basicsr.archs import build_network
    options = {'type': 'FCDFNArch', 'base_channels': 4, 'depth': 2, 'num_basis': 5, 'kernel_sizes': [5, 3],
               'coarse_kernel_size': 3, 'coarse_dilation': 2}
    outputs = []
    for impl in ('banded', 'fused'):
        torch.manual_seed(0)
        net = build_network(dict(options, filter_impl=impl)).to(device)
        with torch.no_grad():  # non-trivial heads
            for param in net.parameters():
                param.add_(0.05 * torch.randn_like(param))
        generator = torch.Generator().manual_seed(1)
        lq, flash = (torch.rand(1, 3, 10, 13, generator=generator).to(device) for _ in range(2))
        out = net(lq, flash)
        out.square().mean().backward()
        outputs.append([out.detach()] + [p.grad for p in net.parameters()])
    assert_all_close(outputs[1], outputs[0], ['out'] + [n for n, _ in net.named_parameters()], tolerance=1e-4)


def with_dtype(device, dtype):
    return pytest.param(*device.values, dtype, marks=device.marks, id=f'{device.id}-{str(dtype)[6:]}')


@needs_triton
@pytest.mark.parametrize('device,dtype', [with_dtype(DEVICES[0], torch.float16), with_dtype(DEVICES[1], torch.float16),
                                          with_dtype(DEVICES[1], torch.bfloat16)])  # numpy has no bfloat16
def test_half_precision_inputs(device, dtype):
    """16-bit inputs: 16-bit GEMM operands, float32 accumulation, the input dtype out."""
    inputs = [t.to(device, dtype) for t in random_inputs(2, 3, 8, 7, 20, 21, seed=9)]
    out = basis_filter(*inputs, 1, 'reflect', impl='fused')
    assert out.dtype == dtype
    expected = unfold_reference(*[t.double() for t in inputs], 1, 'reflect')
    torch.testing.assert_close(out.double(), expected, rtol=2e-2, atol=2e-2)


# -- without the kernels: errors, import, and the interpreter subprocess ------------------------------------------

def test_fused_on_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    inputs = random_inputs(1, 3, 4, 3, 8, 8)
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET=1'):
        basis_filter(*inputs, impl='fused')
    with pytest.raises(ValueError, match='impl'):
        basis_filter(*inputs, impl='triton')
    from fcdfn_plugin.ops.basis_filter import resolve_impl
    resolved = resolve_impl('auto', inputs[0])  # never 'fused' on CPU
    assert resolved in ('native', 'banded')
    torch.testing.assert_close(basis_filter(*inputs, impl='auto'), basis_filter(*inputs, impl=resolved), rtol=0, atol=0)


def test_package_works_without_triton():
    """With triton unimportable the package, the arch and the banded op work; 'fused' names triton."""
    code = '''
import sys
sys.modules['triton'] = None  # import triton -> ImportError
import torch, fcdfn_plugin
from fcdfn_plugin.ops import basis_filter
from basicsr.archs import build_network
net = build_network({'type': 'FCDFNArch', 'base_channels': 4, 'depth': 2, 'num_basis': 3, 'kernel_sizes': [3],
                     'coarse_kernel_size': 3, 'filter_impl': 'auto'})
assert net(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)
args = torch.rand(1, 3, 8, 8), torch.rand(1, 2, 8, 8), torch.rand(1, 2, 3, 3)
try:
    basis_filter(*args, impl='fused')
except RuntimeError as error:
    print('ERROR', error)
'''
    env = dict(os.environ, TRITON_INTERPRET='1')  # past the CPU check, so the import itself is what fails
    done = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ERROR impl='fused' needs triton" in done.stdout


@needs_triton
@pytest.mark.skipif(INTERPRETER, reason='already under the interpreter (this is the subprocess)')
def test_cpu_cases_under_interpreter():
    """Runs this module's ``dev_cpu`` cases in a subprocess with TRITON_INTERPRET=1."""
    env = dict(os.environ, TRITON_INTERPRET='1', OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-k', 'dev_cpu',
                           os.path.abspath(__file__)], env=env, capture_output=True, text=True, timeout=600,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ''
    assert done.returncode == 0, f'{summary}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}'
    assert ' passed' in summary and 'skipped' not in summary, summary
