"""tools/fusion_probe.py: the corruptions, a short probe run and the fusion anatomy, with known answers."""
import json
import os

import pytest
import torch
import yaml

from conftest import REPO_ROOT, load_tool, write_options

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


def test_scene_anatomy_tells_per_pixel_selection_from_a_rescale():
    gt = torch.rand(1, 3, 8, 8) * 0.5 + 0.25
    left = torch.zeros(1, 1, 8, 8)
    left[..., :4] = 1
    # selection: each branch right on its half and black on the other, the weights pick the right one
    parts = {'lowlight': gt * left, 'flash': gt * (1 - left), 'importance': torch.cat([left, 1 - left], dim=1)}
    parts['output'] = parts['importance'][:, :1] * parts['lowlight'] + parts['importance'][:, 1:] * parts['flash']
    row = fusion_probe.scene_anatomy(parts, gt)
    assert row['a_f'] == pytest.approx(0.5) and row['a_f_spatial_std'] > 0.4
    assert row['psnr'] == pytest.approx(100, abs=1e-3)  # exact: the psnr floor
    assert row['psnr_constant_weights'] == pytest.approx(fusion_probe.psnr(gt / 2, gt), abs=1e-4)
    assert row['share_lowlight'] + row['share_flash'] == pytest.approx(1)
    # a rescale: constant weights 3/4, 1/4, each branch scaled to make up for its weight
    weights = torch.cat([torch.full_like(left, 0.75), torch.full_like(left, 0.25)], dim=1)
    parts = {'lowlight': gt * 2 / 3, 'flash': gt * 2, 'importance': weights, 'output': gt.clone()}
    row = fusion_probe.scene_anatomy(parts, gt)
    assert row['a_f'] == pytest.approx(0.25) and row['a_f_spatial_std'] == pytest.approx(0, abs=1e-6)
    assert row['level_lowlight'] == pytest.approx(2 / 3) and row['level_flash'] == pytest.approx(2)
    assert row['share_lowlight'] == pytest.approx(0.5) and row['share_flash'] == pytest.approx(0.5)
    assert row['psnr_constant_weights'] == pytest.approx(row['psnr'], abs=1e-3)


def test_gain_corrected_psnr_leaves_out_brightness_but_not_selection():
    from fcdfn_plugin.data.degradation import linear_to_srgb, srgb_to_linear

    gt = torch.rand(1, 3, 8, 8) * 0.5 + 0.25
    darker = torch.from_numpy(linear_to_srgb(0.4 * srgb_to_linear(gt.numpy())))  # the same light, 40 %
    assert fusion_probe.psnr_gain_corrected(darker, gt) > 80 > 25 > fusion_probe.psnr(darker, gt)
    # selection: each branch right on its half and another image of the same mean on the other half; the
    # weights pick the right one; their per-image mean blends in the wrong image, which no gain undoes
    other = gt.flip(-1).flip(-2)
    left = torch.zeros(1, 1, 8, 8)
    left[..., :4] = 1
    parts = {'lowlight': gt * left + other * (1 - left), 'flash': other * left + gt * (1 - left),
             'importance': torch.cat([left, 1 - left], dim=1), 'output': gt.clone()}
    row = fusion_probe.scene_anatomy(parts, gt)
    assert row['psnr_gain_corrected'] > 80
    assert row['psnr_constant_weights_gain_corrected'] < 40
    # the blend is already as bright as the truth: the gain changes little
    blend = fusion_probe.psnr((gt + other) / 2, gt)
    assert row['psnr_constant_weights_gain_corrected'] == pytest.approx(blend, abs=0.5)


def test_checkpoint_anatomy_reads_a_saved_model_on_a_test_set(tmp_path, toy_prepared):
    from basicsr.archs import build_network
    from fcdfn_plugin.utils.evaluation import list_test_scenes, read_test_scene

    torch.set_num_threads(1)
    with open(os.path.join(REPO_ROOT, 'options', 'fcdfn_demo.yml')) as handle:
        network = dict(yaml.safe_load(handle)['network_g'], **TINY)
    torch.manual_seed(0)
    net = build_network(dict(network)).eval()
    torch.save({'params': net.state_dict(), 'network_g': network}, tmp_path / 'tiny.pth')
    test_dir = str(toy_prepared / 'test')
    results = fusion_probe.checkpoint_anatomy([str(tmp_path / 'tiny.pth')], test_dir, progress=lambda _: None)
    keys = list_test_scenes(test_dir)
    result = results[str(tmp_path / 'tiny.pth')]
    assert sorted(result['per_scene']) == keys
    scene = read_test_scene(test_dir, keys[0])  # no exposure contract stored: the input as it is
    with torch.no_grad():
        importance = net.forward_parts(scene['lq'], scene['flash'])['importance']
    assert result['per_scene'][keys[0]]['a_f'] == pytest.approx(float(importance[:, 1].mean()), abs=1e-6)
    assert 'tiny.pth' in fusion_probe.anatomy_table(results)
    fusion_probe.main(['--out', str(tmp_path / 'out'), '--checkpoints', str(tmp_path / 'tiny.pth'), '--test-dir',
                       test_dir])
    with open(tmp_path / 'out' / 'fusion_anatomy.json') as handle:
        assert json.load(handle)['results'] == results  # the same model and scenes: the same numbers
    assert (tmp_path / 'out' / 'fusion_anatomy.png').stat().st_size > 10000

    network['fusion'] = 'add'
    torch.save({'params': build_network(dict(network)).state_dict(), 'network_g': network}, tmp_path / 'add.pth')
    with pytest.raises(ValueError, match='no fusion weights'):
        fusion_probe.checkpoint_anatomy([str(tmp_path / 'add.pth')], test_dir)


def test_checkpoint_mode_refuses_bad_arguments_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        fusion_probe.main(['--out', str(tmp_path), '--checkpoints', str(tmp_path / 'a.pth')])
    assert '--checkpoints needs --test-dir' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fusion_probe.main(['--out', str(tmp_path), '--checkpoints', str(tmp_path / 'a.pth'), '--test-dir', 'x'])
    assert 'no such file' in capsys.readouterr().err
    (tmp_path / 'a.pth').write_bytes(b'')
    with pytest.raises(SystemExit, match=r'error: .*lq: missing; a test set holds lq/'):
        fusion_probe.main(['--out', str(tmp_path), '--checkpoints', str(tmp_path / 'a.pth'), '--test-dir',
                           str(tmp_path)])
    (tmp_path / 'fusion_anatomy.json').write_text('{}')
    with pytest.raises(SystemExit):
        fusion_probe.main(['--out', str(tmp_path), '--checkpoints', str(tmp_path / 'a.pth'), '--test-dir', 'x'])
    assert 'fusion_anatomy.json exists; pass --overwrite' in capsys.readouterr().err


def test_merge_joins_states_read_one_at_a_time_in_the_order_given(tmp_path, capsys):
    columns = fusion_probe.ANATOMY_COLUMNS
    for index, (folder, test_dir) in enumerate((('a', 'toy/test'), ('b', 'toy/test/'), ('c', 'real/test'))):
        os.makedirs(tmp_path / folder)
        result = {'mean': {column: 0.5 + index for column in columns}, 'per_scene': {}}
        with open(tmp_path / folder / 'fusion_anatomy.json', 'w') as handle:
            json.dump({'test_dir': test_dir, 'results': {f'run/models/net_g_{8000 - 4000 * index}.pth': result}},
                      handle)
    fusion_probe.main(['--out', str(tmp_path / 'ba'), '--merge', str(tmp_path / 'b'), str(tmp_path / 'a')])
    with open(tmp_path / 'ba' / 'fusion_anatomy.json') as handle:
        merged = json.load(handle)
    assert merged['test_dir'] == 'toy/test/'
    assert list(merged['results']) == ['run/models/net_g_4000.pth', 'run/models/net_g_8000.pth']
    assert [r['mean']['a_f'] for r in merged['results'].values()] == [1.5, 0.5]
    table = (tmp_path / 'ba' / 'fusion_anatomy.md').read_text()
    assert table.index('net_g_4000.pth') < table.index('net_g_8000.pth') and '| 1.500 |' in table
    assert (tmp_path / 'ba' / 'fusion_anatomy.png').stat().st_size > 10000
    capsys.readouterr()
    with pytest.raises(SystemExit, match='merge one test set at a time'):
        fusion_probe.main(['--out', str(tmp_path / 'ac'), '--merge', str(tmp_path / 'a'), str(tmp_path / 'c')])
    with pytest.raises(SystemExit, match='net_g_8000.pth is also in an earlier folder'):
        fusion_probe.main(['--out', str(tmp_path / 'aa'), '--merge', str(tmp_path / 'a'), str(tmp_path / 'a')])
    with pytest.raises(SystemExit, match='d/fusion_anatomy.json: no such file'):
        fusion_probe.main(['--out', str(tmp_path / 'ad'), '--merge', str(tmp_path / 'a'), str(tmp_path / 'd')])
    (tmp_path / 'c' / 'fusion_anatomy.json').write_text('{"results": {}}')
    with pytest.raises(SystemExit, match='c/fusion_anatomy.json: not a fusion anatomy written by --checkpoints'):
        fusion_probe.main(['--out', str(tmp_path / 'ac'), '--merge', str(tmp_path / 'a'), str(tmp_path / 'c')])
    assert not any((tmp_path / name).exists() for name in ('ac', 'aa', 'ad'))  # nothing written on an error
    with pytest.raises(SystemExit):
        fusion_probe.main(['--out', str(tmp_path / 'ba'), '--merge', str(tmp_path / 'a')])
    assert 'fusion_anatomy.json exists; pass --overwrite' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fusion_probe.main(['--out', str(tmp_path / 'x'), '--merge', str(tmp_path / 'a'), '--test-dir', 'toy/test'])
    assert '--merge reads finished --checkpoints outputs' in capsys.readouterr().err
