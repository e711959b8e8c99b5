"""The filtering op against a slow unfold reference, gradcheck, and known answers for Eq. 5."""
import functools
import importlib
import logging

import pytest
import torch
import torch.nn.functional as F

from fcdfn_plugin.ops import basis_filter, basis_filter_conv, coarse_filter, pad_image, saecnn_filter, tent_lowpass


def unfold_reference(image, coeffs, basis, bias, dilation, padding_mode):
    """Slow and obvious: build every per-pixel kernel (Eq. 4) and apply it to the unfolded image."""
    batch, channels, height, width = image.shape
    num_basis, size = basis.shape[1], basis.shape[-1]
    pad = dilation * (size - 1) // 2
    padded = F.pad(image, (pad,) * 4, mode='reflect' if padding_mode == 'reflect' else 'constant')
    cols = F.unfold(padded, size, dilation=dilation).view(batch, channels, size * size, height * width)
    kernels = torch.einsum('bnt,bnp->btp', basis.reshape(batch, num_basis, -1), coeffs.reshape(batch, num_basis, -1))
    if bias is not None:
        kernels = kernels + bias.reshape(batch, 1, -1)
    return (cols * kernels.unsqueeze(1)).sum(2).view(batch, channels, height, width)


def random_inputs(batch, channels, num_basis, size, height, width, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, channels, height, width, generator=gen, dtype=dtype)
    coeffs = torch.randn(batch, num_basis, height, width, generator=gen, dtype=dtype) / num_basis**0.5
    basis = torch.randn(batch, num_basis, size, size, generator=gen, dtype=dtype) / size
    bias = torch.randn(batch, 1, height, width, generator=gen, dtype=dtype) / size**2
    return image, coeffs, basis, bias


@pytest.mark.parametrize('size,dilation,padding_mode', [
    (3, 1, 'reflect'), (7, 1, 'zeros'), (15, 1, 'reflect'), (3, 4, 'zeros'), (7, 4, 'reflect'), (15, 4, 'reflect')])
@pytest.mark.parametrize('op', [functools.partial(basis_filter, impl='banded'),
                                functools.partial(basis_filter, impl='native'), basis_filter_conv],
                         ids=['banded', 'native', 'conv'])
def test_matches_unfold_reference_values_and_gradients(op, size, dilation, padding_mode):
    # odd sizes, B > 1, several bands (DEFAULT_TILE_PIXELS // (B*W) = 30 rows per band here)
    inputs = random_inputs(2, 3, 6, size, 61, 67)
    grad_out = torch.randn(2, 3, 61, 67, generator=torch.Generator().manual_seed(1))
    results = []
    for fn in (op, unfold_reference):
        leaves = [t.clone().requires_grad_() for t in inputs]
        out = fn(*leaves, dilation, padding_mode)
        grads = torch.autograd.grad((out * grad_out).sum(), leaves)
        results.append((out,) + grads)
    for name, mine, ref in zip(('out', 'image', 'coeffs', 'basis', 'bias'), *results):
        scale = max(1.0, float(ref.detach().abs().max()))  # basis/bias grads sum over all pixels
        assert (mine - ref).abs().max() <= 1e-5 * scale, name


@pytest.mark.parametrize('impl,module_name,constant', [
    ('banded', 'basis_filter', 'DEFAULT_TILE_PIXELS'), ('native', 'basis_filter_native', 'NATIVE_TILE_PIXELS')])
def test_many_bands_match_one_band(impl, module_name, constant, monkeypatch):
    """Band boundaries must not show: tiny bands (1 row) give the same values and gradients."""
    module = importlib.import_module(f'fcdfn_plugin.ops.{module_name}')
    inputs = random_inputs(3, 3, 5, 7, 23, 29, dtype=torch.float64)
    results = []
    for tile in (1, 10**7):
        monkeypatch.setattr(module, constant, tile)
        leaves = [t.clone().requires_grad_() for t in inputs]
        out = basis_filter(*leaves, dilation=2, impl=impl)
        results.append((out,) + torch.autograd.grad(out.square().sum(), leaves))
    for mine, ref in zip(*results):
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize('impl', ['banded', 'native'])
@pytest.mark.parametrize('dilation,padding_mode', [(1, 'reflect'), (2, 'zeros')])
def test_gradcheck_float64(dilation, padding_mode, impl, monkeypatch):
    monkeypatch.setattr(importlib.import_module('fcdfn_plugin.ops.basis_filter'), 'DEFAULT_TILE_PIXELS', 14)
    monkeypatch.setattr(importlib.import_module('fcdfn_plugin.ops.basis_filter_native'), 'NATIVE_TILE_PIXELS', 14)
    # several bands even on a tiny input
    inputs = [t.requires_grad_() for t in random_inputs(2, 2, 3, 3, 5, 7, dtype=torch.float64)]
    assert torch.autograd.gradcheck(lambda *args: basis_filter(*args, dilation, padding_mode, impl), inputs)
    assert torch.autograd.gradcheck(lambda x, c, b: basis_filter(x, c, b, None, dilation, padding_mode, impl),
                                    inputs[:3])


@pytest.mark.parametrize('channels,size,dilation', [(1, 5, 3), (4, 9, 1)])
def test_native_float32_without_bias_and_one_thread_matches_reference(channels, size, dilation):
    """Any C and K, no bias, float32, one thread and the default threads: the unfold reference in float64."""
    image, coeffs, basis, _ = random_inputs(2, channels, 4, size, 19, 26)
    grad_out = torch.randn(2, channels, 19, 26, generator=torch.Generator().manual_seed(2))
    leaves = [t.double().requires_grad_() for t in (image, coeffs, basis)]
    ref = unfold_reference(*leaves, None, dilation, 'reflect')
    ref_grads = torch.autograd.grad((ref * grad_out).sum(), leaves)
    threads = torch.get_num_threads()
    for num_threads in sorted({1, threads}):
        torch.set_num_threads(num_threads)
        try:
            mine_leaves = [t.clone().requires_grad_() for t in (image, coeffs, basis)]
            out = basis_filter(*mine_leaves, None, dilation, impl='native')
            grads = torch.autograd.grad((out * grad_out).sum(), mine_leaves)
        finally:
            torch.set_num_threads(threads)
        assert out.dtype == torch.float32
        for mine, expected in zip((out,) + grads, (ref,) + ref_grads):
            scale = float(expected.detach().abs().max())
            torch.testing.assert_close(mine.double(), expected, rtol=1e-5, atol=1e-5 * scale)


def test_native_is_a_custom_op_with_fake_and_autograd():
    """torch.library's own checks of fcdfn::basis_filter_cpu: schema, fake (meta) shapes, registered autograd."""
    from fcdfn_plugin.ops.basis_filter_native import basis_filter_cpu
    image, coeffs, basis, bias = random_inputs(2, 3, 4, 5, 9, 11, dtype=torch.float64)
    padded = pad_image(image, 4, 'reflect').requires_grad_()
    for args in ((padded, coeffs.requires_grad_(), basis.requires_grad_(), bias.requires_grad_(), 2),
                 (padded, coeffs, basis, None, 2)):
        torch.library.opcheck(basis_filter_cpu, args)


@pytest.mark.parametrize('wanted', [(True, False, False, False), (False, True, False, True),
                                    (False, False, True, False)])
def test_native_backward_with_only_some_inputs_needing_gradients(wanted):
    """Gradients not asked for are not returned (their placeholders must not alias: torch.library checks)."""
    inputs = random_inputs(1, 3, 4, 5, 9, 11, dtype=torch.float64)
    banded, native = ([t.clone().requires_grad_(need) for t, need in zip(inputs, wanted)] for _ in range(2))
    basis_filter(*banded, impl='banded').square().sum().backward()
    basis_filter(*native, impl='native').square().sum().backward()
    for a, b, need in zip(banded, native, wanted):
        assert (b.grad is not None) == need
        if need:
            torch.testing.assert_close(a.grad, b.grad)


def test_auto_falls_back_to_banded_with_one_warning_when_native_is_unavailable(monkeypatch, caplog):
    native = importlib.import_module('fcdfn_plugin.ops.basis_filter_native')
    monkeypatch.setattr(native, '_state', {'tried': False, 'lib': None, 'error': None})
    monkeypatch.setattr(native, 'build', lambda: (_ for _ in ()).throw(RuntimeError('no C++ compiler found')))
    inputs = random_inputs(1, 3, 4, 3, 8, 9)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        out = basis_filter(*inputs)
        basis_filter(*inputs)
    assert [r.getMessage() for r in caplog.records if 'native CPU kernel is unavailable' in r.getMessage()] and \
        len(caplog.records) == 1
    torch.testing.assert_close(out, basis_filter(*inputs, impl='banded'), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match='no C.. compiler found'):
        basis_filter(*inputs, impl='native')


def test_delta_basis_is_identity():
    image = torch.rand(2, 3, 17, 19)
    basis = torch.zeros(2, 4, 7, 7)
    basis[:, 2, 3, 3] = 1.0
    coeffs = torch.zeros(2, 4, 17, 19)
    coeffs[:, 2] = 1.0
    for dilation in (1, 4):
        torch.testing.assert_close(basis_filter(image, coeffs, basis, dilation=dilation), image, rtol=0, atol=1e-6)


def test_box_bias_is_local_mean_and_shift_is_a_shift():
    image = torch.rand(1, 3, 20, 20, dtype=torch.float64)
    coeffs = torch.zeros(1, 1, 20, 20, dtype=torch.float64)
    basis = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    bias = torch.full((1, 1, 20, 20), 1 / 9, dtype=torch.float64)
    box = basis_filter(image, coeffs, basis, bias, padding_mode='zeros')
    torch.testing.assert_close(box[..., 5, 7], image[..., 4:7, 6:9].mean((-1, -2)))
    basis[0, 0, 1, 2] = 1.0  # tap to the right: correlation reads x[r + (0, 1)]
    shifted = basis_filter(image, coeffs + 1, basis)
    torch.testing.assert_close(shifted[..., :, :-1], image[..., :, 1:])


def test_rejects_bad_shapes():
    image, coeffs, basis, bias = random_inputs(1, 3, 4, 3, 8, 8)
    with pytest.raises(ValueError, match='odd'):
        basis_filter(image, coeffs, torch.zeros(1, 4, 4, 4))
    with pytest.raises(ValueError, match='coeffs'):
        basis_filter(image, coeffs[:, :3], basis)
    with pytest.raises(ValueError, match='bias'):
        basis_filter(image, coeffs, basis, bias[..., :4])
    with pytest.raises(ValueError, match='padding_mode'):
        basis_filter(image, coeffs, basis, padding_mode='circular')


def test_pad_image_wider_than_image_mirrors_repeatedly():
    image = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    padded = pad_image(image, 5)
    assert padded.shape[-2:] == (14, 14)
    torch.testing.assert_close(padded[0, 0, 0, 3:11], torch.tensor([2., 1, 0, 1, 2, 3, 2, 1]))  # columns -2..5


def _filter(image, coeffs, basis, bias):
    return basis_filter(image, coeffs, basis, bias, padding_mode='zeros')


def test_cascade_equals_explicit_seven_term_expansion():
    image, coeffs, _, _ = random_inputs(2, 3, 4, 3, 21, 23, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    bases = [torch.randn(2, 4, k, k, generator=gen, dtype=torch.float64) / k for k in (7, 5, 3)]
    biases = [torch.randn(2, 1, 21, 23, generator=gen, dtype=torch.float64) / 9 for _ in range(3)]
    alphas = [torch.rand(2, 1, 21, 23, generator=gen, dtype=torch.float64) + 0.5 for _ in range(3)]
    cascade = saecnn_filter(image, coeffs, bases, biases, alphas, padding_mode='zeros')

    def w(k, x):
        return _filter(x, coeffs, bases[k - 1], biases[k - 1])
    a1, a2, a3 = alphas
    expansion = (w(3, w(2, w(1, image))) + w(3, w(2, a1 * image)) + w(3, a2 * w(1, image)) + a3 * w(2, w(1, image))
                 + w(3, a2 * a1 * image) + a3 * w(2, a1 * image) + a3 * a2 * w(1, image))
    torch.testing.assert_close(cascade, expansion, rtol=1e-10, atol=1e-10)


def test_zero_residual_weights_are_plain_composition_and_parallel_is_weighted_sum():
    image, coeffs, _, _ = random_inputs(1, 3, 4, 3, 15, 16, dtype=torch.float64)
    bases = [torch.randn(1, 4, k, k, dtype=torch.float64) for k in (5, 3)]
    biases = [torch.randn(1, 1, 15, 16, dtype=torch.float64) for _ in range(2)]
    zeros = [torch.zeros(1, 1, 15, 16, dtype=torch.float64)] * 2
    composed = _filter(_filter(image, coeffs, bases[0], biases[0]), coeffs, bases[1], biases[1])
    torch.testing.assert_close(saecnn_filter(image, coeffs, bases, biases, zeros, padding_mode='zeros'), composed)
    weights = [torch.rand(1, 1, 15, 16, dtype=torch.float64) for _ in range(2)]
    parallel = saecnn_filter(image, coeffs, bases, biases, weights, mode='parallel', padding_mode='zeros')
    expected = sum(wt * _filter(image, coeffs, b, bi) for wt, b, bi in zip(weights, bases, biases))
    torch.testing.assert_close(parallel, expected)
    with pytest.raises(ValueError, match='kernel_mode'):
        saecnn_filter(image, coeffs, bases, biases, weights, mode='serial')


def test_tent_lowpass_keeps_constants_and_coarse_box_keeps_constants():
    constant = torch.full((1, 3, 40, 41), 0.3)
    torch.testing.assert_close(tent_lowpass(constant, 4), constant)
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[..., 10, 10] = 1
    taps = tent_lowpass(impulse, 4)[0, 0, 10, 7:14]
    torch.testing.assert_close(taps / taps[3], torch.tensor([1., 2, 3, 4, 3, 2, 1]) / 4)
    coeffs = torch.zeros(1, 2, 40, 41)
    basis = torch.randn(1, 2, 15, 15)
    bias = torch.full((1, 1, 40, 41), 1 / 225)
    torch.testing.assert_close(coarse_filter(constant, coeffs, basis, bias, dilation=4), constant)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_mixed_dtypes_under_autocast_compute_in_float32(dtype):
    """Under autocast the coefficients and basis come out of convolutions in 16 bits next to a float32
    image and bias: the op promotes to float32 (its GEMMs would otherwise mix dtypes), and every
    gradient comes back in its input's dtype."""
    image, coeffs, basis, bias = random_inputs(2, 3, 4, 5, 13, 11)
    leaves = [image, coeffs.to(dtype), basis.to(dtype), bias]
    leaves = [t.clone().requires_grad_() for t in leaves]
    with torch.autocast('cpu', dtype=dtype):
        out = basis_filter(*leaves, dilation=2)
        coarse = coarse_filter(*leaves, dilation=2)
    assert out.dtype == coarse.dtype == torch.float32
    out.sum().backward()
    assert [t.grad.dtype for t in leaves] == [torch.float32, dtype, dtype, torch.float32]
    expected = unfold_reference(image, leaves[1].detach().float(), leaves[2].detach().float(), bias, 2, 'reflect')
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
