"""The Table 1 comparison systems (DSN, FRL, DJF, CU-Net, LSD2, deepFnF official): sizes, shapes, known answers.

Paper-width parameter counts are taken on the meta device (no initialisation); everything that runs
uses tiny widths. The end-to-end runs through tools/train.py and tools/test.py are at the bottom.
"""
import glob
import logging
import math
import os

import numpy as np
import pytest
import torch
import yaml
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

from conftest import REPO_ROOT, load_tool, run_tool, write_options
from fcdfn_plugin.archs import CUNetArch, DeepFnFArch, DJFArch, DSNArch, FRLArch, LSD2Arch
from fcdfn_plugin.archs.cunet_arch import soft_threshold
from fcdfn_plugin.archs.deepfnf_arch import linear_to_srgb_extended, noise_std_map, srgb_to_linear
from fcdfn_plugin.archs.dsn_arch import CouplingBlock
from fcdfn_plugin.archs.frl_arch import dct_forward, dct_inverse, dct_kernels, idct_kernels
from fcdfn_plugin.models.fcdfn_model import enhance_pair

TINY = {
    LSD2Arch: dict(base_channels=4, depth=3),
    DJFArch: dict(branch_channels=(6, 4), fusion_channels=(5, 3)),
    CUNetArch: dict(filters=6, kernel_size=5, iterations=2),
    FRLArch: dict(features=4, fusion_layers=2),
    DSNArch: dict(num_blocks=2, split_channels=24, hidden_channels=16, vgg_fallback='random'),
}
NOISE = {'sigma_read': torch.tensor([4e-3]), 'sigma_shot': torch.tensor([3e-2])}
OFFICIAL_TINY = dict(variant='official', base_channels=4, depth=3, num_basis=4)


def pair(height, width, batch=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, height, width, generator=gen) * 0.2,
            torch.rand(batch, 3, height, width, generator=gen))


def num_params(net):
    return sum(p.numel() for p in net.parameters())


def perturb_(net, scale=0.05, seed=0):
    """Add noise to every parameter (zero-initialised layers included), so no path is trivially zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(scale * torch.randn(param.shape, generator=gen))


# ----------------------------------------------------------------------------- sizes and shapes
def test_parameter_counts_at_paper_width():
    with torch.device('meta'):
        assert num_params(LSD2Arch()) == 31_033_603
        assert num_params(DJFArch()) == 56_323
        assert num_params(CUNetArch()) == 622_095
        assert num_params(FRLArch()) == 321_920 + 7**4  # + the trainable IDCT kernel
        assert num_params(FRLArch(train_idct=False)) == 321_920
    dsn = DSNArch(vgg_fallback='random')  # the VGG filters are built on the CPU
    assert num_params(dsn) == 11_559_624
    assert sum(b.numel() for b in dsn.buffers()) == 1_728 + 36_864
    assert not any(p.requires_grad is False for p in dsn.parameters())


def conv(cin, cout, k=3):
    return cin * cout * k * k + cout


def test_deepfnf_official_matches_the_layer_list_of_net_py():
    """deepFnF's net.py at ksz 15, N 90, 12 input channels, every conv with a bias (+ our output gain)."""
    encoder = [conv(12, 64), conv(64, 64), conv(64, 64)]
    for cin, cout in ((64, 128), (128, 256), (256, 512), (512, 1024)):
        encoder += [conv(cin, cout), conv(cout, cout)]
    encoder += [conv(1024, 1024), conv(1024, 1024)]
    decoder = []
    for cin, width, skip in ((1024, 512, 1024), (512, 256, 512), (256, 128, 256), (128, 64, 128), (64, 64, 64)):
        decoder += [conv(cin, width), conv(width + skip, width), conv(width, width)]
    decoder += [conv(64, 64), conv(64, 64), conv(64, 90 + 3)]
    basis = []
    for cin, width, skip in ((1024, 512, 1024), (512, 256, 512), (256, 256, 256), (256, 128, 128)):
        basis += [conv(cin, width), conv(width + skip, width), conv(width, width)]
    basis += [conv(128, 128, 2), conv(128, 128), conv(128, 3 * 2 * 90)]
    with torch.device('meta'):
        net = DeepFnFArch(variant='official')
    assert net.pad_multiple == 32
    assert num_params(net) == sum(encoder + decoder + basis) + 1


@pytest.mark.parametrize('cls', list(TINY) + [DeepFnFArch])
def test_any_size_in_and_out_and_every_parameter_learns(cls):
    assert ARCH_REGISTRY.get(cls.__name__) is cls
    torch.manual_seed(0)
    options = OFFICIAL_TINY if cls is DeepFnFArch else TINY[cls]
    net = cls(**options)
    perturb_(net)  # zero-initialised last layers (DSN's subnets) would stop the gradient before them
    lq, flash = pair(23, 31, batch=2)
    extra = {k: v.expand(2) for k, v in NOISE.items()} if cls is DeepFnFArch else {}
    out = net(lq, flash, **extra)
    assert out.shape == (2, 3, 23, 31) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    # (a PReLU after a global average sees a handful of values, all positive in a small batch: zero gradient)
    missing = [name for name, p in net.named_parameters()
               if not p.grad.abs().sum() > 0 and not name.endswith('attention.prelu.weight')]
    assert not missing, f'no gradient for {missing}'
    assert net.pad_multiple == {LSD2Arch: 4, DeepFnFArch: 4}.get(cls, 1)
    assert not hasattr(net, 'encode_context') or cls is DeepFnFArch


def test_shape_mismatch_is_named():
    for cls, options in TINY.items():
        with pytest.raises(ValueError, match=cls.__name__):
            cls(**options)(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))


# ----------------------------------------------------------------------------- LSD2
def test_lsd2_input_order_is_flash_then_lowlight():
    torch.manual_seed(0)
    net = LSD2Arch(**TINY[LSD2Arch])
    lq, flash = pair(16, 16)
    first_conv = net.encoder.levels[0][0]
    with torch.no_grad():
        first_conv.weight[:, 3:] = 0  # the low-light half of the input no longer matters
    torch.testing.assert_close(net(lq, flash), net(torch.rand_like(lq), flash))


# ----------------------------------------------------------------------------- DJF
def test_djf_channel_fold_equals_three_separate_calls():
    torch.manual_seed(0)
    net = DJFArch(**TINY[DJFArch])
    perturb_(net, 0.1)
    lq, flash = pair(19, 24, batch=2)
    expected = torch.cat([net.fusion(torch.cat([net.guide(flash), net.target(lq[:, c:c + 1])], dim=1))
                          for c in range(3)], dim=1)
    torch.testing.assert_close(net(lq, flash), expected)
    residual = DJFArch(**TINY[DJFArch], residual=True)
    residual.load_state_dict(net.state_dict())
    torch.testing.assert_close(residual(lq, flash), expected + lq)


def test_djf_official_initialisation_and_bad_widths():
    net = DJFArch()
    assert abs(net.target[0].weight.std().item() - 0.1) < 0.005
    assert net.fusion[4].weight.std().item() < 0.002 and net.fusion[4].bias.abs().max() == 0
    with pytest.raises(ValueError, match='branch_channels'):
        DJFArch(branch_channels=(96,))


# ----------------------------------------------------------------------------- CU-Net
def test_soft_threshold_is_the_l1_proximal_operator():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.2, 1.0, 2.5])
    torch.testing.assert_close(soft_threshold(x, 1.0), torch.tensor([-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5]))
    # argmin_z 0.5 (z - x)^2 + lam |z| by brute force on a fine grid
    grid = torch.linspace(-4, 4, 80001, dtype=torch.float64)
    for value in (-2.7, -0.3, 0.05, 0.9, 3.3):
        objective = 0.5 * (grid - value)**2 + 0.6 * grid.abs()
        assert soft_threshold(torch.tensor(value, dtype=torch.float64), 0.6).item() == pytest.approx(
            grid[objective.argmin()].item(), abs=2e-4)


def test_cunet_ista_init_makes_each_unrolled_step_an_ista_step():
    """``init: ista``: W_u is the adjoint of W_d over L = ||W_d^T W_d||, so <W_d x, y> = L <x, W_u y>
    and z - W_u W_d z is non-expansive; ``init: xavier`` (official) leaves W_u random."""
    from fcdfn_plugin.archs.cunet_arch import ista_step_weight
    torch.manual_seed(0)
    coder = CUNetArch(filters=6, kernel_size=5, iterations=2, init='ista').unique_lq
    generator = torch.Generator().manual_seed(1)
    for down, up in zip(coder.down, coder.up):
        x = torch.randn(1, 6, 40, 40, generator=generator)
        y = torch.randn(1, 3, 40, 40, generator=generator)
        lipschitz = (down.weight.flip(-1, -2).transpose(0, 1) / up.weight).mean()
        torch.testing.assert_close((down(x) * y).sum(), lipschitz * (x * up(y)).sum(), rtol=1e-4, atol=1e-3)
        step = x - up(down(x))
        assert step.norm() <= x.norm() * 1.001
    xavier = CUNetArch(filters=6, kernel_size=5, iterations=2).unique_lq
    assert not torch.allclose(xavier.up[0].weight, ista_step_weight(xavier.down[0]))
    with pytest.raises(ValueError, match='init must be one of'):
        CUNetArch(init='orthogonal')


def test_cunet_codes_are_soft_thresholded():
    """Huge thresholds zero every sparse code, so the (bias-free) output is exactly 0; the thresholds learn."""
    torch.manual_seed(0)
    net = CUNetArch(**TINY[CUNetArch])
    lq, flash = pair(16, 20)
    assert net(lq, flash).abs().max() > 0
    assert all(p.numel() == 3 and torch.allclose(p, torch.full((3,), 0.01)) for n, p in net.named_parameters()
               if n.endswith('thresholds'))
    with torch.no_grad():
        for coder in (net.unique_lq, net.unique_flash, net.common):
            coder.thresholds.fill_(1e6)
    assert net(lq, flash).abs().max() == 0
    assert all(conv.bias is None for conv in net.modules() if isinstance(conv, torch.nn.Conv2d))


# ----------------------------------------------------------------------------- FRL
def test_dct_kernels_are_the_orthonormal_2d_dct():
    from scipy.fft import dctn
    image = torch.rand(1, 1, 12, 13, dtype=torch.float64)
    coefficients = dct_forward(image, dct_kernels(7).double())  # (1, 49, 18, 19)
    window = image[0, 0, 2:9, 3:10].numpy()  # the window of output position (2 + 6, 3 + 6)
    np.testing.assert_allclose(coefficients[0, :, 8, 9].numpy(), dctn(window, norm='ortho').reshape(-1), atol=1e-6)


def test_dct_then_idct_is_the_identity():
    image = torch.rand(2, 1, 29, 33)
    torch.testing.assert_close(dct_inverse(dct_forward(image, dct_kernels(7)), idct_kernels(7)), image,
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize('guide', ['channel', 'luma'])
def test_frl_is_the_identity_with_its_last_conv_zeroed(guide):
    torch.manual_seed(0)
    net = FRLArch(**TINY[FRLArch], guide=guide)
    lq, flash = pair(21, 26, batch=2)
    assert (net(lq, flash) - lq).abs().max() > 1e-3
    torch.nn.init.zeros_(net.correction.weight)
    torch.testing.assert_close(net(lq, flash), lq, atol=1e-5, rtol=0)


def test_frl_guides_and_frozen_dct():
    torch.manual_seed(0)
    net = FRLArch(**TINY[FRLArch]).eval()
    perturb_(net)
    lq, flash = pair(16, 16)
    changed = flash.clone()
    changed[:, 2] = 0  # flash blue: under guide 'channel', only the blue output may change
    diff = (net(lq, flash) - net(lq, changed)).abs().amax(dim=(0, 2, 3))
    assert diff[0] == 0 and diff[1] == 0 and diff[2] > 0
    assert 'dct_weight' not in dict(net.named_parameters()) and 'idct_weight' in dict(net.named_parameters())
    assert 'idct_weight' not in dict(FRLArch(**TINY[FRLArch], train_idct=False).named_parameters())
    with pytest.raises(ValueError, match='guide'):
        FRLArch(guide='nir')


# ----------------------------------------------------------------------------- DSN
def test_each_coupling_block_inverse_undoes_its_forward():
    torch.manual_seed(0)
    block = CouplingBlock(64, 32, 16, clamp=1.0)
    perturb_(block, 0.05)  # the zero-initialised subnet outputs would make it the identity
    x = torch.randn(2, 64, 13, 17)
    y = block(x)
    assert (y - x).abs().max() > 0.1
    torch.testing.assert_close(block.inverse(y), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(block(block.inverse(x)), x, atol=1e-5, rtol=0)


def test_dsn_decoder_is_the_adjoint_and_the_blocks_invert():
    torch.manual_seed(0)
    net = DSNArch(**TINY[DSNArch]).double()
    x, features = torch.rand(1, 3, 11, 14, dtype=torch.float64), torch.randn(1, 64, 11, 14, dtype=torch.float64)
    # <encode(x), f> == <x, decode(f)>: the decoder is the transpose of the (linear) encoder
    assert (net.encode(x) * features).sum().item() == pytest.approx((x * net.decode(features)).sum().item(), rel=1e-10)
    # untrained (zero subnet outputs) the network is decode(encode(x)); enhance and degrade agree
    torch.testing.assert_close(net(x, x), net.decode(net.encode(x)))
    perturb_(net, 0.05)
    through = features
    for block in net.blocks:
        through = block(through)
    for block in reversed(net.blocks):
        through = block.inverse(through)
    assert (net.blocks[0](features) - features).abs().max() > 0.1
    torch.testing.assert_close(through, features, atol=1e-10, rtol=0)
    flash = torch.rand_like(x)
    torch.testing.assert_close(net(x, flash), net(x, torch.rand_like(x)))  # single-image method
    enhanced, degraded = net(x, flash, also_degrade=x)
    torch.testing.assert_close(enhanced, net.enhance(x))
    torch.testing.assert_close(degraded, net.degrade(x))


def _isolate_vgg_lookup(monkeypatch, tmp_path):
    monkeypatch.delenv('FCDFN_VGG16_WEIGHTS', raising=False)
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))


def test_dsn_vgg_filters_genuine_or_a_logged_seeded_fallback(monkeypatch, tmp_path, caplog):
    from fcdfn_plugin.metrics import load_vgg16_features
    genuine = load_vgg16_features()  # the verified file make setup provides (a clear error without it)
    net = DSNArch(**dict(TINY[DSNArch], vgg_fallback='error'))
    torch.testing.assert_close(net.encoder_weight1, genuine['features.0.weight'])
    torch.testing.assert_close(net.encoder_weight2, genuine['features.2.weight'])
    assert set(net.state_dict()) >= {'encoder_weight1', 'encoder_weight2'}  # checkpoints carry them
    narrow = DSNArch(**dict(TINY[DSNArch], split_channels=8, vgg_fallback='error'), encoder_channels=16)
    torch.testing.assert_close(narrow.encoder_weight1, genuine['features.0.weight'][:16])
    torch.testing.assert_close(narrow.encoder_weight2, genuine['features.2.weight'][:16, :16])

    _isolate_vgg_lookup(monkeypatch, tmp_path)
    from basicsr.utils import get_root_logger
    get_root_logger()  # initialised first: its first call turns propagation off
    logging.getLogger('basicsr').propagate = True  # let caplog see BasicSR's logger
    try:
        with caplog.at_level(logging.WARNING, logger='basicsr'):
            first = DSNArch(**TINY[DSNArch], vgg_seed=3)
        assert 'seeded random' in caplog.text
    finally:
        logging.getLogger('basicsr').propagate = False
    second = DSNArch(**TINY[DSNArch], vgg_seed=3)
    torch.testing.assert_close(first.encoder_weight2, second.encoder_weight2)
    assert not torch.equal(first.encoder_weight2, DSNArch(**TINY[DSNArch], vgg_seed=4).encoder_weight2)

    with pytest.raises(FileNotFoundError, match='vgg_fallback'):
        DSNArch(**dict(TINY[DSNArch], vgg_fallback='error'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):  # a named file is never replaced
        DSNArch(**TINY[DSNArch], vgg_weights=str(tmp_path / 'missing.pth'))
    random_vgg = {'features.0.weight': torch.randn(64, 3, 3, 3), 'features.2.weight': torch.randn(64, 64, 3, 3)}
    torch.save(random_vgg, tmp_path / 'random.pth')
    with pytest.raises(ValueError, match='random.pth'):  # not the genuine VGG-16: refused, never used
        DSNArch(**TINY[DSNArch], vgg_weights=str(tmp_path / 'random.pth'))


def make_model(model_type, network, train_extra=None, pixel_opt=None):
    opt = {'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0, 'world_size': 1, 'path': {},
           'model_type': model_type, 'network_g': dict(network),
           'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                     'pixel_opt': pixel_opt or {'type': 'DSNSumL2Loss'}, **(train_extra or {})},
           'val': {'metrics': {}}}
    torch.manual_seed(0)
    return MODEL_REGISTRY.get(model_type)(opt)


def test_dsn_model_trains_both_directions_and_clips_the_gradient():
    network = dict(TINY[DSNArch], type='DSNArch')
    model = make_model('DSNModel', network, {'degrade_opt': {'type': 'DSNSumL2Loss'}, 'grad_clip_norm': 0.5})
    lq, flash = pair(12, 12, batch=2)
    gt = torch.rand(2, 3, 12, 12)
    gt[0, 0, 0, 0] = 1.7  # out of range: quantisation clamps it
    model.feed_data({'lq': lq, 'flash': flash, 'gt': gt})
    net = model.net_g
    perturb_(net)
    with torch.no_grad():
        quantized = (gt.clamp(0, 1) * 255).round() / 255
        expected_enhance = (net.enhance(lq) - gt).square().sum(dim=(1, 2, 3)).mean().item()
        expected_degrade = (net.degrade(quantized) - lq).square().sum(dim=(1, 2, 3)).mean().item()
    norms = []
    original_step = model.optimizer_g.step

    def step_recording_norm(*args, **kwargs):
        norms.append(torch.norm(torch.stack([p.grad.norm() for p in net.parameters() if p.grad is not None])).item())
        return original_step(*args, **kwargs)

    model.optimizer_g.step = step_recording_norm
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert log['l_enhance'] == pytest.approx(expected_enhance, rel=1e-5)
    assert log['l_degrade'] == pytest.approx(expected_degrade, rel=1e-5)
    assert log['l_total'] == pytest.approx(expected_enhance + expected_degrade, rel=1e-5)
    assert norms[0] == pytest.approx(0.5, rel=1e-4)  # the raw gradient is far larger: clipped to 0.5
    assert LOSS_REGISTRY.get('DSNSumL2Loss') is not None

    with pytest.raises(ValueError, match='degrade_opt'):
        make_model('DSNModel', network)
    with pytest.raises(ValueError, match='degrade direction'):
        make_model('DSNModel', dict(TINY[DJFArch], type='DJFArch'), {'degrade_opt': {'type': 'DSNSumL2Loss'}})


# ----------------------------------------------------------------------------- deepFnF, official variant
def test_noise_std_map_matches_the_measured_srgb_noise():
    """The sRGB-unit std the official deepFnF gets equals the std of sRGB(clip(x + linear noise)).

    (First order: where the noise reaches the clip at 0 or the curve's kink, x < ~2 sigma, the
    measured std is smaller.)"""
    from fcdfn_plugin.data import degradation
    gen = np.random.default_rng(0)
    linear = np.array([0.008, 0.02, 0.05, 0.2], dtype=np.float32)
    sigma_read, sigma_shot = 2e-3, 1e-2
    noisy = linear[:, None] + gen.normal(size=(4, 200000)) * np.sqrt(sigma_read**2 + sigma_shot**2 * linear)[:, None]
    srgb = degradation.linear_to_srgb(np.clip(noisy, 0, 1))
    measured = srgb.std(axis=1)
    clean = torch.from_numpy(degradation.linear_to_srgb(linear)).view(1, 4, 1, 1)
    predicted = noise_std_map(clean, torch.tensor([sigma_read]), torch.tensor([sigma_shot])).flatten().numpy()
    np.testing.assert_allclose(predicted, measured, rtol=0.05)


def test_official_deepfnf_noise_levels_and_per_channel_kernels():
    torch.manual_seed(0)
    net = DeepFnFArch(**OFFICIAL_TINY)
    assert net.needs_noise_level and not DeepFnFArch().needs_noise_level
    lq, flash = pair(20, 24)
    with pytest.raises(ValueError, match='sigma_read'):
        net(lq, flash)
    with pytest.raises(ValueError, match='no noise levels'):
        DeepFnFArch(base_channels=4, depth=2, num_basis=4)(lq, flash, **NOISE)
    with pytest.raises(ValueError, match='15x15'):
        DeepFnFArch(**OFFICIAL_TINY, kernel_size=7, coarse_kernel_size=7)
    with pytest.raises(ValueError, match='flash_gain'):
        DeepFnFArch(**OFFICIAL_TINY, flash_gain=2.0)
    # the noise maps are inputs: other sigmas, other output
    out = net(lq, flash, **NOISE)
    assert (out - net(lq, flash, sigma_read=NOISE['sigma_read'] * 3, sigma_shot=NOISE['sigma_shot'])).abs().max() > 0
    # per-channel kernels: change the basis of channel 0 only, only output channel 0 changes
    head = net.decoder_basis.head
    with torch.no_grad():
        head.bias.view(3, 2 * 4)[0] += 0.01
    diff = (net(lq, flash, **NOISE) - out).abs().amax(dim=(0, 2, 3))
    assert diff[0] > 0 and diff[1] == 0 and diff[2] == 0


def test_official_deepfnf_starts_as_a_brightened_smooth_copy():
    net = DeepFnFArch(**OFFICIAL_TINY)
    rows, cols = torch.linspace(0, 1, 96).view(1, 1, -1, 1), torch.linspace(0, 1, 128).view(1, 1, 1, -1)
    lq = (0.02 + 0.05 * rows + 0.08 * cols).expand(1, 3, 96, 128).contiguous()
    out = net(lq, torch.rand_like(lq), **NOISE)
    gain = net.log_gain[0].exp().item()
    assert (out - lq * gain)[..., 32:-32, 32:-32].abs().max() < 2e-3


def test_official_deepfnf_tiled_with_noise_levels_equals_untiled():
    torch.manual_seed(0)
    net = DeepFnFArch(**dict(OFFICIAL_TINY, depth=2))
    perturb_(net, 0.02)
    lq, flash = pair(230, 200)
    with pytest.raises(ValueError, match='noise level'):
        enhance_pair(net, lq, flash)
    whole = enhance_pair(net, lq, flash, min_pixels=10**9, noise_level=NOISE)
    tiled = enhance_pair(net, lq, flash, size=192, overlap=120, edge_margin=56, min_pixels=1, noise_level=NOISE)
    assert (tiled - whole).abs().max().item() <= 1e-4


def test_model_passes_the_batch_noise_levels_only_to_networks_that_ask():
    network = dict(OFFICIAL_TINY, type='DeepFnFArch')
    model = make_model('FCDFNModel', network, pixel_opt={'type': 'MSELoss'})
    lq, flash = pair(16, 16, batch=2)
    data = {'lq': lq, 'flash': flash, 'gt': torch.rand(2, 3, 16, 16),
            'params': {'sigma_read': torch.tensor([1e-3, 8e-3], dtype=torch.float64),
                       'sigma_shot': torch.tensor([2e-2, 4e-2], dtype=torch.float64),
                       'dim_factor': torch.tensor([30., 40.])}}
    model.feed_data(data)
    model.optimize_parameters(1)
    with torch.no_grad():
        expected = model.net_g(lq, flash, sigma_read=data['params']['sigma_read'].float(),
                               sigma_shot=data['params']['sigma_shot'].float())
    model.test()
    torch.testing.assert_close(model.output, expected)
    del data['params']
    model.feed_data(data)
    with pytest.raises(ValueError, match='params.json'):
        model.optimize_parameters(2)
    plain = make_model('FCDFNModel', dict(TINY[DJFArch], type='DJFArch'), pixel_opt={'type': 'MSELoss'})
    plain.feed_data(dict(data, params={'sigma_read': torch.ones(2), 'sigma_shot': torch.ones(2)}))
    plain.optimize_parameters(1)  # DJF does not take them, and does not get them


# ----------------------------------------------------------------------------- options and end to end
TABLE1_OPTIONS = sorted(glob.glob(os.path.join(REPO_ROOT, 'options', 'table1', '*.yml')))
METHODS = ('dsn', 'frl', 'djf', 'cunet', 'lsd2', 'deepfnf', 'fcdfn')


#: Each method's own training recipe (docs/DESIGN.md "Table 1 recipes"), scaled to the presets' 2000
#: iterations: (optimiser, lr, weight decay, milestones, gamma, gradient clip), read from the official code.
RECIPES = {
    'fcdfn': ('Adam', 1e-4, 0, [1600], 0.1, None),               # paper: x0.1 at 1.2M of 1.5M
    'deepfnf': ('Adam', 1e-4, 0, [1467, 1667], 0.1**0.5, None),  # / sqrt(10) at 1.1M and 1.25M of 1.5M
    'dsn': ('Adam', 2e-4, 1e-5, [80, 160, 240, 320, 400], 0.5, 10),  # x0.5 at 20k..100k of 500k, clip 10
    'cunet': ('Adam', 1e-5, 0, list(range(60, 2000, 60)), 0.9, None),  # x0.9 every 30 of 1000 epochs
    'lsd2': ('Adam', 5e-5, 0, [], 0.5, None),                     # never halved in its 5 released epochs
    'djf': ('Adam', 1e-4, 0, [1600], 0.1, None),                  # SGD on a summed loss: not transferable
    'frl': ('Adam', 1e-4, 0, [1600], 0.1, None),                  # no released training code
}


def test_every_method_has_a_paper_and_a_small_options_file():
    names = {os.path.basename(path) for path in TABLE1_OPTIONS}
    assert names == {f'{m}{suffix}.yml' for m in METHODS for suffix in ('', '_small')}
    for path in TABLE1_OPTIONS:
        with open(path) as handle:
            opt = yaml.safe_load(handle)
        if path.endswith('_small.yml'):
            assert opt['datasets']['train']['crop_size'] == 64 and opt['datasets']['train']['batch_size_per_gpu'] == 8
        else:
            assert opt['train']['total_iter'] == 1_500_000 and opt['datasets']['train']['crop_size'] == 224
            assert opt['train']['scheduler']['milestones'] == [1_200_000]
    with open(os.path.join(REPO_ROOT, 'options', 'fcdfn_demo.yml')) as handle:
        demo = yaml.safe_load(handle)
    with open(os.path.join(REPO_ROOT, 'options', 'table1', 'fcdfn_small.yml')) as handle:
        fcdfn_small = yaml.safe_load(handle)
    with open(os.path.join(REPO_ROOT, 'options', 'fcdfn.yml')) as handle:
        paper = yaml.safe_load(handle)
    # FCDFN's CPU-scale row is the demo's network, data and contract with the paper's recipe
    for key in ('network_g', 'exposure', 'datasets', 'model_type'):
        assert fcdfn_small[key] == demo[key], key
    assert fcdfn_small['train']['pixel_opt'] == demo['train']['pixel_opt']

    def without_freq(val):
        return {k: v for k, v in val.items() if k != 'val_freq'}

    for path in TABLE1_OPTIONS:  # same data, exposure law and contract, validation and metrics for every method
        with open(path) as handle:
            opt = yaml.safe_load(handle)
        base = demo if path.endswith('_small.yml') else paper
        assert opt['datasets'] == base['datasets'] and opt.get('exposure') == base.get('exposure'), path
        assert without_freq(opt['val']) == without_freq(base['val']), path


@pytest.mark.parametrize('method', METHODS)
def test_small_presets_train_with_their_own_codes_recipe(method):
    with open(os.path.join(REPO_ROOT, 'options', 'table1', f'{method}_small.yml')) as handle:
        train = yaml.safe_load(handle)['train']
    optimiser, lr, weight_decay, milestones, gamma, clip = RECIPES[method]
    assert train['total_iter'] == 2000
    assert (train['optim_g']['type'], train['optim_g']['lr'], train['optim_g']['weight_decay']) == \
        (optimiser, lr, weight_decay)
    assert train['scheduler']['type'] == 'MultiStepLR' and train['scheduler']['milestones'] == milestones
    assert train['scheduler']['gamma'] == pytest.approx(gamma)
    assert train.get('grad_clip_norm') == clip


# Tiny networks: one thread is as fast on a quiet machine and far faster on a busy one (OpenMP
# barriers of many tiny convs wait for descheduled threads; DSN's step went from 18 s to 0.2 s).
ONE_THREAD = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
E2E_TINY_NETWORK = {  # the options' networks cut down to stay fast (the options build as they are: test_training_e2e)
    'dsn': dict(num_blocks=1, hidden_channels=8),
    'frl': dict(features=8, fusion_layers=2),
    'cunet': dict(filters=8),
    'lsd2': dict(base_channels=8),
    'deepfnf': dict(base_channels=4, num_basis=4),
}


@pytest.mark.parametrize('method', [m for m in METHODS if m != 'fcdfn'])  # fcdfn_small == fcdfn_demo, tested e2e
def test_trains_and_tests_through_the_tools(method, toy_prepared, tmp_path):
    base = f'options/table1/{method}_small.yml'
    network = {f'network_g__{k}': v for k, v in E2E_TINY_NETWORK.get(method, {}).items()}
    options = write_options(tmp_path / 'train.yml', base, toy_prepared, name='t1', train__total_iter=2,
                            logger__print_freq=1, logger__save_checkpoint_freq=2, val__val_freq=10**6,
                            datasets__train__crop_size=32, datasets__train__batch_size_per_gpu=2,
                            datasets__train__num_worker_per_gpu=0, datasets__train__persistent_workers=False,
                            **network)
    run_tool(['tools/train.py', '-opt', options], root=tmp_path, env_extra=ONE_THREAD)
    log = open(glob.glob(str(tmp_path / 'experiments' / 't1' / 'train_t1_*.log'))[0]).read()
    assert 'l_total: ' in log and '# psnr: ' in log
    if method == 'dsn':
        assert 'l_enhance: ' in log and 'l_degrade: ' in log
    weights = tmp_path / 'experiments' / 't1' / 'models' / 'net_g_2.pth'
    state = torch.load(weights, map_location='cpu', weights_only=True)['params']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    with open(options) as handle:
        test_opt = yaml.safe_load(handle)
    if method not in ('dsn', 'deepfnf'):
        # tools/test.py runs FCDFNModel's test path as in test_training_e2e (the training's own validation above
        # ran it with this network); what is the network's own is that its saved weights load back strictly
        network = dict(test_opt['network_g'])
        ARCH_REGISTRY.get(network.pop('type'))(**network).load_state_dict(state, strict=True)
        return

    # test options (DSN: its own model class; deepFnF: noise-level inputs, and enhance.py below): the training
    # file without its training parts, loading the trained weights
    del test_opt['train'], test_opt['datasets']['train']
    test_opt.update(name='t1_test')
    test_opt['path'] = {'pretrain_network_g': str(weights), 'strict_load_g': True}
    test_opt['val'] = dict(test_opt['val'], save_img=True, suffix=None)
    with open(tmp_path / 'test.yml', 'w') as handle:
        yaml.safe_dump(test_opt, handle)
    run_tool(['tools/test.py', '-opt', tmp_path / 'test.yml'], root=tmp_path, env_extra=ONE_THREAD)
    images = glob.glob(str(tmp_path / 'results' / 't1_test' / 'visualization' / '*' / '*.png'))
    assert len(images) == 4
    test_log = open(glob.glob(str(tmp_path / 'results' / 't1_test' / 'test_t1_test_*.log'))[0]).read()
    psnr = float(test_log.split('# psnr: ')[1].split()[0])
    assert math.isfinite(psnr)
    if method == 'deepfnf':  # tools/enhance.py: the noise level of a real pair comes from the command line
        enhance = load_tool('enhance')
        lq = sorted(glob.glob(str(toy_prepared / 'test' / 'lq' / '*.png')))[0]
        args = ['--lowlight', lq, '--flash', lq.replace(os.sep + 'lq' + os.sep, os.sep + 'flash' + os.sep),
                '--weights', str(weights), '-opt', str(options)]
        with pytest.raises(SystemExit, match='--sigma-read'):
            enhance.main(args + ['--out', str(tmp_path / 'a.png')])
        enhance.main(args + ['--out', str(tmp_path / 'b.png'), '--sigma-read', '0.005', '--sigma-shot', '0.03'])
        assert (tmp_path / 'b.png').is_file() and not (tmp_path / 'a.png').exists()


def test_benchmark_step_times_the_models_training_step(tmp_path, capsys):
    """tools/benchmark.py step (the cost table of docs/RESULTS.md) runs the options' model, DSN's both ways."""
    import json
    with open(os.path.join(REPO_ROOT, 'options', 'table1', 'dsn_small.yml')) as handle:
        opt = yaml.safe_load(handle)
    opt['network_g'].update(num_blocks=1, hidden_channels=8)
    path = tmp_path / 'dsn.yml'
    path.write_text(yaml.safe_dump(opt))
    load_tool('benchmark').main(['step', '--worker', '-opt', str(path), '--batch', '2', '--crop', '16',
                                 '--repeat', '2'])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result['network'] == 'DSNArch' and len(result['seconds']) == 2 and result['min_seconds'] > 0
    network = {key: value for key, value in opt['network_g'].items() if key != 'type'}
    assert result['params'] == num_params(DSNArch(**network))


def test_official_deepfnf_output_gain_exposure_multiplies_by_the_ratio():
    """``output_gain: exposure`` (deepFnF's division by the dimming factor): the output is scaled by the
    per-sample exposure ratio as an sRGB gain; it is required, refused elsewhere, and no learned gain exists."""
    torch.manual_seed(0)
    net = DeepFnFArch(**OFFICIAL_TINY, output_gain='exposure')
    assert net.needs_exposure_ratio and not hasattr(net, 'log_gain')
    assert not DeepFnFArch(**OFFICIAL_TINY).needs_exposure_ratio
    lq, flash = pair(20, 24, batch=2)
    with pytest.raises(ValueError, match='needs exposure_ratio'):
        net(lq, flash, **NOISE)
    with pytest.raises(ValueError, match="only with output_gain 'exposure'"):
        DeepFnFArch(**OFFICIAL_TINY)(lq, flash, **NOISE, exposure_ratio=torch.tensor([30.0]))
    with pytest.raises(ValueError, match='variant official'):
        DeepFnFArch(base_channels=4, depth=2, num_basis=4, output_gain='exposure')
    one = net(lq, flash, **NOISE, exposure_ratio=torch.tensor([1.0, 1.0]))
    scaled = net(lq, flash, **NOISE, exposure_ratio=torch.tensor([30.0, 45.0]))
    # the linear gain r as an sRGB gain: r ** (1 / 2.2)
    torch.testing.assert_close(scaled, one * torch.tensor([30.0, 45.0]).view(2, 1, 1, 1) ** (1 / 2.2))


def test_linear_to_srgb_extended_is_the_srgb_curve_continued_without_clipping():
    """deepFnF's ``gamma_correct``: the sRGB curve on [0, 1]; below 0 its linear segment, above 1 its tangent."""
    from fcdfn_plugin.data.degradation import linear_to_srgb
    inside = torch.linspace(0, 1, 1001, dtype=torch.float64)
    expected = torch.from_numpy(linear_to_srgb(inside.numpy())).double()
    torch.testing.assert_close(linear_to_srgb_extended(inside), expected, rtol=1e-6, atol=1e-6)
    outside = torch.tensor([-0.1, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    values = linear_to_srgb_extended(outside)
    torch.testing.assert_close(values.detach(), torch.tensor([-1.292, 1.0, 1 + 1.055 / 2.4], dtype=torch.float64))
    values.sum().backward()
    torch.testing.assert_close(outside.grad, torch.tensor([12.92, 1.055 / 2.4, 1.055 / 2.4], dtype=torch.float64))


def _srgb_to_linear_extended(srgb):
    """The inverse of ``linear_to_srgb_extended`` (test helper)."""
    inner = torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    return torch.where(srgb > 1, (srgb - 1) * 2.4 / 1.055 + 1, inner)


def test_official_deepfnf_linear_domain_filters_linear_values_and_divides_by_the_dimming_factor():
    """``domain: linear``, as deepFnF: the encoder sees the linearised photos and deepFnF's noise std of
    them; the output is the sRGB curve of (linear filtering x exposure ratio), so undoing the curve
    gives outputs proportional to the ratio; the untrained network is a smooth copy of the exactly
    brightened photo."""
    torch.manual_seed(0)
    net = DeepFnFArch(**OFFICIAL_TINY, output_gain='exposure', domain='linear')
    with pytest.raises(ValueError, match="needs output_gain 'exposure'"):
        DeepFnFArch(**OFFICIAL_TINY, domain='linear')
    lq, flash = pair(20, 24, batch=2)
    seen = []
    net.encoder.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    perturb_(net, 0.02)
    ratios = torch.tensor([30.0, 45.0])
    out = net(lq, flash, **NOISE, exposure_ratio=ratios)
    linear = srgb_to_linear(torch.cat([lq, flash], dim=1))
    padded = seen[0][..., :20, :24]
    torch.testing.assert_close(padded[:, :6], linear)
    std = torch.sqrt(NOISE['sigma_read'] ** 2 + NOISE['sigma_shot'] ** 2 * linear)
    torch.testing.assert_close(padded[:, 6:], std)
    one = net(lq, flash, **NOISE, exposure_ratio=torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(_srgb_to_linear_extended(out),
                               _srgb_to_linear_extended(one) * ratios.view(2, 1, 1, 1), rtol=1e-4, atol=1e-6)
    # untrained: a smooth copy of the brightened photo, brightened in linear terms (not by r^(1/2.2))
    fresh = DeepFnFArch(**OFFICIAL_TINY, output_gain='exposure', domain='linear')
    rows, cols = torch.linspace(0, 1, 96).view(1, 1, -1, 1), torch.linspace(0, 1, 128).view(1, 1, 1, -1)
    bright = (0.05 + 0.3 * rows + 0.4 * cols).expand(1, 3, 96, 128).contiguous()
    dark = linear_to_srgb_extended(bright / 40)
    out = fresh(dark, torch.rand_like(dark), **NOISE, exposure_ratio=torch.tensor([40.0]))
    assert (out - linear_to_srgb_extended(bright))[..., 32:-32, 32:-32].abs().max() < 5e-3


def test_model_gives_the_estimated_exposure_ratio_to_networks_that_ask():
    """FCDFNModel passes the ratio estimated on the photo the network sees, in training and in
    validation alike (and enhance_pair on the whole image, so tiles share it)."""
    from fcdfn_plugin.data.exposure import estimate_exposure_ratio
    network = dict(OFFICIAL_TINY, type='DeepFnFArch', output_gain='exposure')
    model = make_model('FCDFNModel', network, pixel_opt={'type': 'MSELoss'})
    lq, flash = pair(16, 16, batch=2)
    params = {'sigma_read': torch.tensor([1e-3, 8e-3]), 'sigma_shot': torch.tensor([2e-2, 4e-2])}
    model.feed_data({'lq': lq, 'flash': flash, 'gt': torch.rand(2, 3, 16, 16), 'params': params})
    kwargs = model.network_kwargs()
    torch.testing.assert_close(kwargs['exposure_ratio'], estimate_exposure_ratio(lq))
    model.optimize_parameters(1)
    model.test()
    with torch.no_grad():
        expected = model.net_g(lq, flash, **params, exposure_ratio=estimate_exposure_ratio(lq))
    torch.testing.assert_close(model.output, expected)
