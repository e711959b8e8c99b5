"""tools/fusion_probe.py: the corruptions, and a short probe run with known answers."""
import pytest
import torch
import yaml

from conftest import load_tool, write_options

fusion_probe = load_tool('fusion_probe')


def test_corruptions_make_exactly_one_input_useless():
    batch = {'lq': torch.rand(2, 3, 8, 8), 'flash': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 8, 8)}
    generator = torch.Generator().manual_seed(0)
    same = fusion_probe.corrupt(batch, 'none', generator)
    assert all(same[k] is batch[k] for k in batch)
    black = fusion_probe.corrupt(batch, 'black_flash', generator)
    assert black['flash'].abs().max() == 0 and black['lq'] is batch['lq'] and black['gt'] is batch['gt']
    noise = fusion_probe.corrupt(batch, 'noise_lowlight', generator)
    assert not torch.equal(noise['lq'], batch['lq']) and noise['flash'] is batch['flash']
    with pytest.raises(ValueError, match='corruption must be one of'):
        fusion_probe.corrupt(batch, 'blur', generator)


TINY = {'base_channels': 4, 'depth': 2, 'num_basis': 4, 'kernel_sizes': [3, 3], 'coarse_kernel_size': 3}


def tiny_options(tmp_path, toy_prepared, **network):
    path = write_options(tmp_path / 'probe.yml', 'options/fcdfn_demo.yml', toy_prepared)
    with open(path) as handle:
        options = yaml.safe_load(handle)
    options['network_g'].update(TINY, **network)
    options['datasets']['train']['batch_size_per_gpu'] = 2
    return options


def test_probe_logs_the_fusion_and_a_black_flash_branch_outputs_black(tmp_path, toy_prepared):
    torch.set_num_threads(1)
    options = tiny_options(tmp_path, toy_prepared)
    curve = fusion_probe.probe(options, 'black_flash', iters=2, crop=32, eval_every=1, seed=0, progress=lambda _: None)
    assert [p['iter'] for p in curve] == [1, 2]
    point = curve[-1]
    assert 0 < point['a_f'] < 1 and 0 <= point['fusion_grad_share'] <= 1
    # the filter network is linear in its image: a black flash photo gives a black flash branch
    from fcdfn_plugin.data.flash_dataset import FlashLowLightDataset
    test = FlashLowLightDataset(dict(options['datasets']['val'], phase='val'))
    gt = torch.stack([test[i]['gt'] for i in range(len(test))])
    assert point['psnr_flash_branch'] == pytest.approx(fusion_probe.psnr(torch.zeros_like(gt), gt), abs=1e-4)


def test_probe_refuses_a_network_without_fusion_weights(tmp_path, toy_prepared):
    options = tiny_options(tmp_path, toy_prepared, fusion='add')
    with pytest.raises(ValueError, match='no fusion weights'):
        fusion_probe.probe(options, 'none', iters=1, crop=32, eval_every=1, seed=0)
