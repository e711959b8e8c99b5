"""FCDFNModel in-process: feeding, the non-finite-loss stop, tiled inference, mixed precision."""
import os

import pytest
import torch

from fcdfn_plugin.models.fcdfn_model import FCDFNModel

SMALL_NET = {'type': 'FCDFNArch', 'base_channels': 8, 'depth': 3, 'num_basis': 8, 'kernel_sizes': [7, 5, 3],
             'coarse_kernel_size': 5, 'coarse_dilation': 2}


def make_model(tile=None, is_train=True, network=SMALL_NET, **train_options):
    opt = {'num_gpu': 0, 'is_train': is_train, 'dist': False, 'rank': 0, 'world_size': 1,
           'network_g': dict(network), 'path': {},
           'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                     'pixel_opt': {'type': 'FCDFNLoss'}},
           'val': {'metrics': {}}}
    opt['train'].update(train_options)
    if tile is not None:
        opt['val']['tile'] = tile
    torch.manual_seed(0)
    return FCDFNModel(opt)


def batch(size=32, nan=False):
    generator = torch.Generator().manual_seed(1)
    lq = torch.rand(2, 3, size, size, generator=generator) * 0.2
    if nan:
        lq[0, 0, 3, 3] = float('nan')
    return {'lq': lq, 'flash': torch.rand(2, 3, size, size, generator=generator),
            'gt': torch.rand(2, 3, size, size, generator=generator)}


def test_training_step_logs_each_term_and_changes_weights():
    model = make_model()
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    model.feed_data(batch())
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert set(log) == {'l_rec', 'l_grad', 'l_ssim', 'l_total'}
    assert log['l_total'] == pytest.approx(log['l_rec'] + log['l_grad'] + 0.1 * log['l_ssim'], rel=1e-5)
    assert any(not torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())


def test_non_finite_loss_stops_naming_the_iteration():
    model = make_model()
    model.feed_data(batch(nan=True))
    with pytest.raises(FloatingPointError, match='iteration 7'):
        model.optimize_parameters(7)


def test_missing_flash_is_a_clear_error():
    model = make_model()
    data = batch()
    del data['flash']
    with pytest.raises(KeyError, match='flash'):
        model.feed_data(data)


def test_unknown_tile_option_is_rejected():
    with pytest.raises(ValueError, match='tile'):
        make_model(tile={'size': 64, 'overlapp': 8})


@pytest.mark.parametrize('arch', ['FCDFNArch', 'DeepFnFArch'])
def test_tiled_inference_equals_untiled(arch):
    """Two-pass tiling (global context, then filtering) reproduces the untiled output inside the image."""
    from basicsr.archs import build_network

    from fcdfn_plugin.models.fcdfn_model import enhance_pair

    options = dict(SMALL_NET, type=arch, depth=2)
    if arch == 'DeepFnFArch':
        options = {k: v for k, v in options.items() if k != 'kernel_sizes'}
        options['kernel_size'] = 7
    torch.manual_seed(0)
    net = build_network(options)
    with torch.no_grad():  # non-trivial heads, so the per-pixel and image-level parts both matter
        for param in net.parameters():
            param.add_(0.05 * torch.randn_like(param))
    data = batch(size=200)
    lq, flash = data['lq'][:1, :, :, :180], data['flash'][:1, :, :, :180]  # 200 x 180
    whole = enhance_pair(net, lq, flash, min_pixels=10**9)
    progress = []
    tiled = enhance_pair(net, lq, flash, size=96, overlap=64, edge_margin=24, min_pixels=1,
                         progress=lambda done, total: progress.append((done, total)))
    assert progress[-1][0] == progress[-1][1] == len(progress) > 2
    assert (tiled - whole).abs().max().item() <= 1e-4
    # the context pass runs on tiles with the smaller context_overlap (16 by default): fewer of them
    from fcdfn_plugin.utils.tiling import count_tiles
    counts = [count_tiles(200, 180, 96, overlap, net.pad_multiple) for overlap in (16, 64)]
    assert counts[0] < counts[1] and len(progress) == sum(counts)
    assert tiled.is_contiguous()  # channels-last inside, the usual layout out
    # a single pass with per-tile bases would not match: the image-level context matters
    from fcdfn_plugin.utils.tiling import tiled_forward
    naive = tiled_forward(net, [lq, flash], tile=96, overlap=64, multiple=net.pad_multiple, edge_margin=24)
    assert (naive - whole).abs().max().item() > 1e-3


def perturbed_model(**train_options):
    """A small model whose heads are not at their near-identity init (so every part of the net matters)."""
    model = make_model(**train_options)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for param in model.net_g.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    return model


def train_step(model, max_skipped=0):
    """optimize_parameters on the fixed batch: (loss, the first conv's output dtype, gradient vector).

    fp16: GradScaler starts at 2**16 and skips steps whose scaled gradients overflow, halving the
    scale; up to ``max_skipped`` such steps are checked (scale halved, weights untouched) and retried.
    """
    seen = []
    hook = model.net_g.encoder_lowlight.register_forward_hook(lambda module, args, out: seen.append(out[0].dtype))
    model.feed_data(batch())
    for iteration in range(1, max_skipped + 2):
        before = [p.detach().clone() for p in model.net_g.parameters()]
        scale = model.grad_scaler.get_scale() if model.grad_scaler is not None else None
        model.optimize_parameters(iteration)
        grads = torch.cat([p.grad.flatten() for p in model.net_g.parameters() if p.grad is not None])
        if torch.isfinite(grads).all():
            break
        assert iteration <= max_skipped, 'gradients still not finite'
        assert model.grad_scaler.get_scale() == scale / 2
        assert all(torch.equal(a, p) for a, p in zip(before, model.net_g.parameters()))
    hook.remove()
    return model.get_current_log()['l_total'], seen[0], grads


@pytest.mark.parametrize('amp,dtype', [('bf16', torch.bfloat16), ('fp16', torch.float16)])
def test_amp_autocasts_the_network_and_stays_close_to_float32(amp, dtype):
    """CPU autocast works for both (fp16 with a GradScaler): loss and gradients close to float32."""
    loss32, dtype32, grads32 = train_step(perturbed_model())
    model = perturbed_model(amp=amp)
    loss, seen, grads = train_step(model, max_skipped=16 if amp == 'fp16' else 0)
    assert dtype32 == torch.float32 and seen == dtype  # the encoder really ran in 16 bits
    assert model.output.dtype == torch.float32  # the loss was computed in float32
    assert (model.grad_scaler is not None) == (amp == 'fp16')
    assert all(p.dtype == torch.float32 for p in model.net_g.parameters())
    assert abs(loss - loss32) <= 2e-2 * loss32
    assert torch.nn.functional.cosine_similarity(grads, grads32, dim=0) > 0.995


def test_fp16_clips_the_unscaled_gradient():
    """With a GradScaler the gradients are unscaled before clipping: their norm ends at the clip norm
    (clipping the scaled ones would leave it 2**16 times smaller after unscaling)."""
    model = perturbed_model(amp='fp16', grad_clip_norm=1e-3)
    _, _, grads = train_step(model, max_skipped=16)
    assert model.grad_scaler.get_scale() > 1
    assert float(grads.norm()) == pytest.approx(1e-3, rel=1e-2)


def test_fp16_grad_scaler_state_survives_a_resume(tmp_path):
    """The GradScaler's scale and growth tracker go into BasicSR's training state and come back on
    resume; a state without them (a float32 run's) leaves the fresh scaler as it is."""
    model = perturbed_model(amp='fp16')
    model.opt['path']['training_states'] = str(tmp_path)
    train_step(model, max_skipped=16)
    model.grad_scaler.update(1024.0)  # a scale no fresh scaler has
    model.grad_scaler._growth_tracker.fill_(7)
    model.save_training_state(epoch=0, current_iter=5)
    assert sorted(os.listdir(tmp_path)) == ['5.state']  # no temporary file left
    state = torch.load(tmp_path / '5.state', weights_only=False)
    assert {'epoch', 'iter', 'optimizers', 'schedulers', 'grad_scaler'} <= set(state)
    resumed = perturbed_model(amp='fp16')
    assert resumed.grad_scaler.get_scale() == 2.0**16
    resumed.resume_training(state)
    assert resumed.grad_scaler.get_scale() == 1024.0 and resumed.grad_scaler._get_growth_tracker() == 7
    del state['grad_scaler']
    fresh = perturbed_model(amp='fp16')
    fresh.resume_training(state)
    assert fresh.grad_scaler.get_scale() == 2.0**16
    plain = perturbed_model()  # float32 models resume from it too, and save BasicSR's own state
    plain.opt['path']['training_states'] = str(tmp_path)
    plain.resume_training(torch.load(tmp_path / '5.state', weights_only=False))
    plain.save_training_state(epoch=0, current_iter=6)
    assert 'grad_scaler' not in torch.load(tmp_path / '6.state', weights_only=False)


def test_channels_last_converts_network_and_batch():
    reference, _, _ = train_step(perturbed_model())
    model = perturbed_model(channels_last=True)
    conv_weights = [p for p in model.net_g.parameters() if p.dim() == 4]
    assert conv_weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
    loss, _, _ = train_step(model)
    assert model.lq.is_contiguous(memory_format=torch.channels_last)
    assert loss == pytest.approx(reference, rel=1e-5)


@pytest.mark.parametrize('key,value', [('amp', 'fp8'), ('amp', 'float16'), ('channels_last', 'yes')])
def test_bad_precision_options_name_the_key(key, value):
    with pytest.raises(ValueError, match=f'train.{key}'):
        make_model(**{key: value})


def test_amp_output_of_a_plain_conv_network_is_cast_to_float32_for_the_loss():
    """LSD2Arch ends in a convolution, so its autocast output is bfloat16; the loss sees float32."""
    model = make_model(amp='bf16', network={'type': 'LSD2Arch', 'base_channels': 4, 'depth': 2})
    raw = []
    hook = model.net_g.register_forward_hook(lambda module, args, out: raw.append(out.dtype))
    model.feed_data(batch())
    model.optimize_parameters(1)
    hook.remove()
    assert raw == [torch.bfloat16] and model.output.dtype == torch.float32
    assert torch.isfinite(torch.tensor(model.get_current_log()['l_total']))


def test_exposure_contract_brings_each_photo_into_the_band_in_feed_data():
    from fcdfn_plugin.data.exposure import estimate_exposure_ratio, linear_to_srgb
    model = make_model()
    assert model.exposure.mode == 'none'  # no exposure section: the paper's input as it is
    data = batch()
    model.feed_data(data)
    assert torch.equal(model.lq, data['lq'])

    model = make_model()
    model.opt['exposure'] = {'mode': 'auto', 'band': [25, 50]}
    model.exposure = type(model.exposure).from_options(model.opt)
    bright = linear_to_srgb(torch.rand(2, 3, 32, 32) * 0.5)  # a normally exposed photo: ratio about 1
    model.feed_data(dict(data, lq=bright))
    ratios = estimate_exposure_ratio(model.lq)
    assert ((ratios > 24.5) & (ratios < 25.5)).all() and (model.exposure_gain < 0.1).all()
