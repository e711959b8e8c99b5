"""FCDFNArch / DeepFnFArch: any size in and out, every parameter learns, ablations, stable start."""
import math

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from fcdfn_plugin.archs import DeepFnFArch, FCDFNArch

SMALL = dict(base_channels=8, depth=3, num_basis=8)
ABLATIONS = [dict(), dict(fusion='add'), dict(fusion='free'), dict(kernel_mode='parallel'), dict(use_flash=False)]


def pair(height, width, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, height, width, generator=gen) * 0.2, torch.rand(1, 3, height, width, generator=gen)


def num_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize('cls', [FCDFNArch, DeepFnFArch])
def test_registered_odd_size_in_and_out_and_every_parameter_gets_a_gradient(cls):
    assert ARCH_REGISTRY.get(cls.__name__) is cls
    torch.manual_seed(0)
    net = cls(**SMALL)
    assert net.pad_multiple == 4
    lq, flash = pair(223, 301)
    out = net(lq, flash)
    assert out.shape == (1, 3, 223, 301)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f'no gradient for {missing}'


@pytest.mark.parametrize('options', ABLATIONS)
def test_ablations_build_run_and_keep_the_model_size(options):
    full = num_params(FCDFNArch(**SMALL))
    net = FCDFNArch(**SMALL, **options)
    assert abs(num_params(net) - full) <= 0.1 * full
    out = net(*pair(37, 45))
    assert out.shape == (1, 3, 37, 45) and torch.isfinite(out).all()
    with torch.device('meta'):  # at paper scale too: shapes only, no 96 M-parameter initialisation
        paper = num_params(FCDFNArch())
        assert abs(num_params(FCDFNArch(**options)) - paper) <= 0.1 * paper


def test_without_flash_ignores_the_flash_input():
    net = FCDFNArch(**SMALL, use_flash=False)
    lq, flash = pair(32, 40)
    torch.testing.assert_close(net(lq, flash), net(lq, torch.rand_like(flash)))


def ramp(height=96, width=128):
    """A dark linear ramp: every symmetric normalised filter leaves it unchanged away from the border."""
    rows = torch.linspace(0, 1, height).view(1, 1, -1, 1)
    cols = torch.linspace(0, 1, width).view(1, 1, 1, -1)
    return (0.02 + 0.05 * rows + 0.08 * cols).expand(1, 3, height, width).contiguous()


INTERIOR = (..., slice(32, -32), slice(32, -32))  # beyond the coarse kernel's reach (4 * 7 + 3)


@pytest.mark.parametrize('options', ABLATIONS)
def test_first_output_is_a_brightened_smooth_copy(options):
    """Untrained: kernels are box filters, fusion 0.5/0.5, so each branch is a smooth copy of its
    gain-brightened input; with two identical inputs the output is that copy, whatever the ablation."""
    torch.manual_seed(0)
    net = FCDFNArch(**SMALL, **options)
    lq = ramp()
    gain = net.log_gain[0].exp().item()
    out = net(lq, lq * gain / net.log_gain[1].exp().item())
    assert (out - lq * gain)[INTERIOR].abs().max() < 2e-3, 'the untrained network is not a brightened smooth copy'


def test_deepfnf_first_output_is_a_brightened_smooth_copy():
    net = DeepFnFArch(**SMALL)
    lq = ramp()
    out = net(lq, torch.rand_like(lq))
    assert (out - lq * net.log_gain[0].exp().item())[INTERIOR].abs().max() < 2e-3


def test_bad_options_and_inputs_are_named():
    with pytest.raises(ValueError, match='fusion'):
        FCDFNArch(**SMALL, fusion='mean')
    with pytest.raises(ValueError, match='kernel_mode'):
        FCDFNArch(**SMALL, kernel_mode='serial')
    with pytest.raises(ValueError, match='kernel_sizes'):
        FCDFNArch(**SMALL, kernel_sizes=(15, 6, 3))
    with pytest.raises(ValueError, match='same shape'):
        FCDFNArch(**SMALL)(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))


def test_adaptive_gain_starts_as_global_and_learns_a_per_image_colour():
    torch.manual_seed(0)
    base = FCDFNArch(**SMALL)
    adaptive = FCDFNArch(**SMALL, gain_mode='adaptive')
    state = {k: v for k, v in adaptive.state_dict().items() if not k.startswith('gain_head')}
    base.load_state_dict(state)
    assert num_params(adaptive) - num_params(base) == adaptive.gain_head.weight.numel() + 6
    lq, flash = torch.rand(2, 3, 24, 20), torch.rand(2, 3, 24, 20)
    assert torch.equal(adaptive(lq, flash), base(lq, flash))  # zero-initialised head: the global gains
    adaptive(lq, flash).mean().backward()
    assert adaptive.gain_head.weight.grad.abs().sum() > 0
    with torch.no_grad():  # a head that raises the red output gain of the low-light branch of every image
        adaptive.gain_head.bias[0] = 10.0
    parts = adaptive.forward_parts(lq, flash)
    reference = base.forward_parts(lq, flash)
    ratio = parts['lowlight'] / reference['lowlight']
    assert torch.allclose(ratio[:, 0], torch.full_like(ratio[:, 0], math.e), rtol=1e-4)  # bounded to e
    assert torch.allclose(parts['lowlight'][:, 1:], reference['lowlight'][:, 1:])
    assert torch.allclose(parts['flash'], reference['flash'])


@pytest.mark.parametrize('cls,options', [(FCDFNArch, {}), (DeepFnFArch, {}),
                                         (DeepFnFArch, dict(variant='official'))])
def test_filter_impl_reaches_every_filtering(cls, options, monkeypatch):
    """'auto' is the resolved implementation ('native' on CPU where it builds, else 'banded'), the others
    agree to float rounding; 'fused' reaches the op (on CPU without Triton's interpreter, its clear
    error); a bad value is named. The kernels themselves: tests/test_ops.py, tests/test_ops_fused.py."""
    from fcdfn_plugin.ops.basis_filter import resolve_impl
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    lq, flash = pair(20, 24)
    kwargs = dict(sigma_read=torch.full((1,), 5e-3), sigma_shot=torch.full((1,), 3e-2)) if options else {}
    outputs = {}
    for impl in ('auto', 'banded', 'native'):
        torch.manual_seed(0)
        outputs[impl] = cls(**SMALL, **options, filter_impl=impl)(lq, flash, **kwargs)
    resolved = resolve_impl('auto', lq)
    torch.testing.assert_close(outputs['auto'], outputs[resolved], rtol=0, atol=0)
    torch.testing.assert_close(outputs['native'], outputs['banded'], rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="impl='fused'.*TRITON_INTERPRET"):
        cls(**SMALL, **options, filter_impl='fused')(lq, flash, **kwargs)
    with pytest.raises(ValueError, match='filter_impl'):
        cls(**SMALL, **options, filter_impl='triton')
