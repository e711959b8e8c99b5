"""Scoring on a fixed test set (fcdfn_plugin.utils.evaluation) and tools/evaluate.py."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

from conftest import load_tool
from fcdfn_plugin.data.degradation import linear_to_srgb, srgb_to_linear
from fcdfn_plugin.utils.evaluation import (evaluate_methods, least_squares_gain, list_test_scenes, oracle_gain,
                                           read_test_scene, reference_methods, score, to_image8)


def test_least_squares_gain_is_the_best_scalar():
    torch.manual_seed(0)
    gt = torch.rand(2, 3, 8, 8) * 0.5
    lq = gt / torch.tensor([4.0, 7.0]).view(2, 1, 1, 1)
    assert torch.allclose(least_squares_gain(lq, gt), gt, atol=1e-6)  # exact when gt is a scaled lq
    noisy = lq + 0.01 * torch.randn_like(lq)
    best = least_squares_gain(noisy, gt)
    for factor in (0.9, 1.1):  # any other scalar is worse (before clamping, which cannot trigger here)
        assert ((best * factor - gt)**2).sum() > ((best - gt)**2).sum()


def test_oracle_gain_works_on_linear_values():
    torch.manual_seed(1)
    linear_gt = torch.rand(1, 3, 8, 8) * 0.6

    def srgb(x):
        return torch.from_numpy(linear_to_srgb(x.numpy()))

    gt, lq = srgb(linear_gt), srgb(linear_gt / 30)  # a 30x dimming in linear light
    assert torch.allclose(oracle_gain(lq, gt), gt, atol=1e-5)
    assert not torch.allclose(least_squares_gain(lq, gt), gt, atol=1e-2)  # on sRGB values it is not a gain


def test_score_known_answers():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    same = score(image, image)
    assert same['psnr'] == float('inf') and same['ssim'] == pytest.approx(1.0)
    shifted = np.clip(image.astype(int) + 5, 0, 255).astype(np.uint8)
    mse = np.mean((shifted.astype(float) - image)**2)
    assert score(shifted, image)['psnr'] == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-6)


def test_evaluate_methods_on_a_prepared_test_set(toy_prepared):
    test_dir = str(toy_prepared / 'test')
    keys = list_test_scenes(test_dir)
    assert len(keys) == 4
    seen = []
    methods = dict(reference_methods(), truth=lambda scene: scene['gt'])
    results = evaluate_methods(test_dir, methods, on_scene=lambda key, scene, outputs: seen.append(key))
    assert seen == keys
    assert results['truth']['mean']['psnr'] == float('inf') and results['truth']['mean']['ssim'] == pytest.approx(1)
    lq, oracle = results['low-light input']['mean'], results['oracle global gain']['mean']
    assert oracle['psnr'] > lq['psnr'] + 3  # brightening alone is worth a lot on 25-50x dimmed scenes
    scene = read_test_scene(test_dir, keys[0])
    expected = score(to_image8(scene['lq']), to_image8(scene['gt']))['psnr']
    assert results['low-light input']['per_scene'][keys[0]]['psnr'] == pytest.approx(expected)
    with pytest.raises(ValueError, match='differs'):
        evaluate_methods(test_dir, {'cropped': lambda scene: scene['gt'][..., 1:, :]})


def test_gain_corrected_scores_take_out_the_brightness_level(toy_prepared):
    test_dir = str(toy_prepared / 'test')

    def dimmed(scene):  # the truth at 40 % of its linear light: right but for its level
        return torch.from_numpy(linear_to_srgb(0.4 * srgb_to_linear(scene['gt'].numpy())))

    results = evaluate_methods(test_dir, {'dimmed': dimmed, 'input': lambda scene: scene['lq']}, gain_corrected=True)
    key = list_test_scenes(test_dir)[0]
    scene = read_test_scene(test_dir, key)
    dim8, gt8 = to_image8(dimmed(scene)), to_image8(scene['gt'])
    per_scene = results['dimmed']['per_scene'][key]
    assert per_scene['level'] == pytest.approx(dim8.mean() / gt8.mean())
    assert 0.4 < per_scene['level'] < 0.8  # sRGB mean of 40 % linear light
    dimmed_mean, input_mean = results['dimmed']['mean'], results['input']['mean']
    assert dimmed_mean['psnr_gain_corrected'] > 35 > dimmed_mean['psnr'] + 15  # only 8-bit rounding is left
    assert input_mean['psnr_gain_corrected'] < 30  # the noisy input stays noisy after any gain


def test_test_folder_errors(tmp_path, toy_prepared):
    with pytest.raises(FileNotFoundError, match='lq'):
        list_test_scenes(str(tmp_path))
    broken = tmp_path / 'broken'
    shutil.copytree(toy_prepared / 'test', broken)
    victim = sorted((broken / 'flash').iterdir())[0]
    os.remove(victim)
    with pytest.raises(FileNotFoundError, match=victim.name):
        list_test_scenes(str(broken))


def test_evaluate_tool(toy_prepared, tmp_path):
    evaluate = load_tool('evaluate')
    out = tmp_path / 'eval'
    evaluate.main(['--test-dir', str(toy_prepared / 'test'), '--out', str(out), '--no-lpips', '--figure-scenes', '2',
                   '--crop', '32', '--gain-corrected'])
    report = json.loads((out / 'metrics.json').read_text())
    assert {'psnr_gain_corrected', 'level'} <= set(report['results']['oracle global gain']['mean'])
    assert 'PSNR gain-corrected' in (out / 'metrics.md').read_text()
    assert set(report['results']) == {'low-light input', 'oracle global gain'}
    assert len(report['results']['low-light input']['per_scene']) == 4
    assert (out / 'comparison.png').is_file() and (out / 'detail_crops.png').is_file()
    assert 'oracle global gain' in (out / 'metrics.md').read_text()
    with pytest.raises(SystemExit, match='--overwrite'):
        evaluate.main(['--test-dir', str(toy_prepared / 'test'), '--out', str(out), '--no-lpips'])
    with pytest.raises(SystemExit, match='does not exist'):
        evaluate.main(['--test-dir', str(toy_prepared / 'test'), '--out', str(tmp_path / 'e2'), '--no-lpips',
                       '--weights', str(tmp_path / 'absent.pth')])


def test_exposure_table_tool(toy_prepared, tmp_path):
    from basicsr.archs import build_network
    network = {'type': 'FCDFNArch', 'base_channels': 4, 'depth': 2, 'num_basis': 4, 'kernel_sizes': [3],
               'coarse_kernel_size': 3, 'coarse_dilation': 2}
    torch.manual_seed(0)
    weights = tmp_path / 'tiny.pth'
    torch.save({'params': build_network(dict(network)).state_dict(), 'network_g': network}, weights)
    table = load_tool('exposure_table').main([
        '--faid-root', str(toy_prepared.parent / 'toy'), '--weights', str(weights), '--labels', 'tiny',
        '--out', str(tmp_path / 'table'), '--conditions', '1/5', 'auto-exposed', '--crop', '32', '--max-scenes', '2',
        '--align'])
    assert set(table) == {'1/5', 'auto-exposed'}
    assert set(table['1/5']) == {'oracle global gain', 'estimated brightening', 'tiny as is', 'tiny contract',
                                 'tiny true ratio', 'tiny contract + align'}
    params = json.loads((tmp_path / 'table' / 'data' / 'auto-exposed' / 'test' / 'params.json').read_text())
    assert all(entry['auto_exposed'] == 1.0 and entry['exposure_ratio'] == 1.0 for entry in params.values())
    assert (tmp_path / 'table' / 'exposure_table.png').is_file()
    assert 'PSNR after the oracle global gain' in (tmp_path / 'table' / 'exposure_table.md').read_text()


def test_exposure_table_measures_the_ratio_estimate_after_the_contract(toy_prepared, tmp_path, capsys):
    """``--measure-estimate``: photos 400x too dark are brightened into the band by the contract, whose
    gain the true ratio must follow (true / gain): the estimate on the brightened crop then agrees
    with it, where taking the gain the wrong way round would be off by about (400 / 50)**2."""
    from conftest import write_options
    opt = write_options(tmp_path / 'opt.yml', 'options/table1/deepfnf_small.yml', toy_prepared,
                        datasets__train__wide_dim_probability=1.0, datasets__train__wide_dim_range=[400, 400],
                        datasets__train__auto_exposure_probability=0.0)
    tool = load_tool('exposure_table')
    errors = tool.main(['--measure-estimate', str(opt), '--estimate-crops', '64', '--estimate-samples', '12'])
    assert list(errors) == [64] and errors[64].shape == (12,)
    assert 0.5 < np.median(errors[64]) < 2.0
    assert '64-px crops (12): estimated / true exposure ratio median' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tool.main(['--measure-estimate', str(opt), '--estimate-crops', '8'])


def test_scene_lowlight_follows_the_exposure_choice():
    from fcdfn_plugin.data import exposure
    from fcdfn_plugin.data.exposure import ExposureContract, srgb_to_linear
    from fcdfn_plugin.utils.evaluation import scene_lowlight
    lq = exposure.linear_to_srgb(torch.full((1, 3, 16, 16), 0.1))
    scene = {'key': 's', 'lq': lq, 'params': {'exposure_ratio': 5.0}}
    assert scene_lowlight(scene, (None, False)) is lq
    darker = scene_lowlight(scene, (ExposureContract(band=(25, 50)), True))  # true ratio 5: to the band edge
    assert torch.allclose(srgb_to_linear(darker), torch.full_like(lq, 0.02), atol=1e-5)
    with pytest.raises(ValueError, match='exposure ratio of scene s'):
        scene_lowlight(dict(scene, params={}), (ExposureContract(), True))
