"""End to end through BasicSR's own runners: train a few iterations, validate, test, enhance."""
import glob
import os

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import REPO_ROOT, load_tool, run_tool, write_options

TRAIN_CHANGES = dict(
    name='tiny', train__total_iter=3, logger__print_freq=1, logger__save_checkpoint_freq=3, val__val_freq=3,
    val__save_img=True, datasets__train__crop_size=64, datasets__train__batch_size_per_gpu=2,
    datasets__train__num_worker_per_gpu=0, datasets__train__persistent_workers=False)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, toy_prepared):
    """A 3-iteration demo-scale run through tools/train.py; returns (root, options path, stdout+log)."""
    root = tmp_path_factory.mktemp('run')
    options = write_options(root / 'tiny.yml', 'options/fcdfn_demo.yml', toy_prepared, **TRAIN_CHANGES)
    run_tool(['tools/train.py', '-opt', options], root=root)
    log = open(glob.glob(str(root / 'experiments' / 'tiny' / 'train_tiny_*.log'))[0]).read()
    return root, options, log


def test_train_writes_checkpoints_and_logs_each_loss_term(trained):
    root, _, log = trained
    exp = root / 'experiments' / 'tiny'
    for name in ('models/net_g_3.pth', 'models/net_g_latest.pth', 'training_states/3.state'):
        assert (exp / name).is_file(), name
    for term in ('l_rec', 'l_grad', 'l_ssim', 'l_total'):
        assert f'{term}: ' in log
    from fcdfn_plugin.utils.machine import cpu_note, logged_cpu
    assert logged_cpu(glob.glob(str(exp / 'train_tiny_*.log'))[0]) == cpu_note()  # the log says what it ran on
    state = torch.load(exp / 'models' / 'net_g_3.pth', map_location='cpu', weights_only=True)
    assert all(torch.isfinite(v).all() for v in state['params'].values())


def test_validation_reports_metrics_and_writes_images(trained):
    root, _, log = trained
    assert '# psnr: ' in log and '# ssim: ' in log and '# lpips: ' in log  # the demo options validate all three
    images = glob.glob(str(root / 'experiments' / 'tiny' / 'visualization' / '*' / '*_3.png'))
    assert len(images) == 4  # the 4 fixed test scenes


def test_test_pipeline_writes_enhanced_images(trained, toy_prepared):
    root, _, _ = trained
    options = write_options(root / 'test.yml', 'options/test_fcdfn_demo.yml', toy_prepared, name='tiny_test',
                            path__pretrain_network_g=str(root / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth'))
    run_tool(['tools/test.py', '-opt', options], root=root)
    images = sorted(glob.glob(str(root / 'results' / 'tiny_test' / 'visualization' / '*' / '*.png')))
    assert len(images) == 4
    gt = cv2.imread(sorted(glob.glob(str(toy_prepared / 'test' / 'gt' / '*.png')))[0], cv2.IMREAD_UNCHANGED)
    assert cv2.imread(images[0]).shape == gt.shape
    log = open(glob.glob(str(root / 'results' / 'tiny_test' / 'test_tiny_test_*.log'))[0]).read()
    assert '# psnr: ' in log and '# lpips: ' in log and '\tCPU: ' in log


def test_enhance_cli_and_its_errors(trained, toy_prepared, tmp_path):
    root, options, _ = trained
    weights = root / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth'
    lq = sorted(glob.glob(str(toy_prepared / 'test' / 'lq' / '*.png')))[0]
    flash = lq.replace(os.sep + 'lq' + os.sep, os.sep + 'flash' + os.sep)
    out, compare = tmp_path / 'out.png', tmp_path / 'cmp.png'
    common = ['-opt', options, '--weights', weights]
    run_tool(['tools/enhance.py', '--lowlight', lq, '--flash', flash, '--out', out, '--compare', compare] + common)
    src = cv2.imread(lq, cv2.IMREAD_UNCHANGED)
    result = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert result.shape == src.shape and result.dtype == src.dtype
    assert cv2.imread(str(compare)).shape[1] == 3 * src.shape[1]

    # Bad input, in-process (each a clear message naming the problem, nothing written)
    enhance = load_tool('enhance')

    def error_of(*args):
        with pytest.raises(SystemExit) as failure:
            enhance.main([str(a) for a in args])
        return str(failure.value)

    assert '--overwrite' in error_of('--lowlight', lq, '--flash', flash, '--out', out, *common)
    assert 'nope.png' in error_of('--lowlight', tmp_path / 'nope.png', '--flash', flash, '--out', tmp_path / 'o1.png',
                                  *common)
    small = tmp_path / 'small.png'
    cv2.imwrite(str(small), src[:32, :40])
    assert 'same size' in error_of('--lowlight', lq, '--flash', small, '--out', tmp_path / 'o2.png', *common)
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    assert 'cannot decode' in error_of('--lowlight', corrupt, '--flash', flash, '--out', tmp_path / 'o3.png', *common)
    assert 'do not fit' in error_of('--lowlight', lq, '--flash', flash, '--out', tmp_path / 'o4.png',
                                    '-opt', os.path.join(REPO_ROOT, 'options', 'fcdfn.yml'), '--weights', weights)
    bogus = tmp_path / 'bogus.pth'
    bogus.write_bytes(b'not a checkpoint')
    assert 'not a PyTorch checkpoint' in error_of('--lowlight', lq, '--flash', flash, '--out', tmp_path / 'o5.png',
                                                  '-opt', options, '--weights', bogus)
    assert not any((tmp_path / f'o{i}.png').exists() for i in range(1, 6))


def test_enhance_finds_the_options_beside_the_weights(trained, toy_prepared, tmp_path, capsys):
    """No -opt: the options file tools/train.py copied into experiments/<name>/ is used; none -> clear error."""
    root, _, _ = trained
    weights = root / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth'
    lq = sorted(glob.glob(str(toy_prepared / 'test' / 'lq' / '*.png')))[0]
    flash = lq.replace(os.sep + 'lq' + os.sep, os.sep + 'flash' + os.sep)
    enhance = load_tool('enhance')
    enhance.main(['--lowlight', lq, '--flash', flash, '--weights', str(weights), '--out', str(tmp_path / 'a.png')])
    assert os.path.join('experiments', 'tiny', 'tiny.yml') in capsys.readouterr().out
    assert (tmp_path / 'a.png').is_file()

    alone = tmp_path / 'elsewhere' / 'net.pth'
    alone.parent.mkdir()
    alone.write_bytes(weights.read_bytes())
    with pytest.raises(SystemExit) as failure:
        enhance.main(['--lowlight', lq, '--flash', flash, '--weights', str(alone), '--out', str(tmp_path / 'b.png')])
    assert 'no options' in str(failure.value) and '-opt' in str(failure.value)
    assert not (tmp_path / 'b.png').exists()


def test_exported_weights_enhance_alone_and_are_the_default(trained, toy_prepared, tmp_path, capsys, monkeypatch):
    """export_weights.py: options travel inside, the result is identical; no --weights -> the shipped file."""
    root, _, _ = trained
    weights = root / 'experiments' / 'tiny' / 'models' / 'net_g_3.pth'
    exported = tmp_path / 'shipped' / 'model.pth'
    load_tool('export_weights').main(['--weights', str(weights), '--out', str(exported), '--note', 'test'])
    meta = torch.load(exported, map_location='cpu', weights_only=True)['meta']
    assert meta == {'source': 'net_g_3.pth', 'options': 'tiny.yml', 'iteration': 3, 'note': 'test'}
    with pytest.raises(SystemExit, match='exists'):  # never overwrites
        load_tool('export_weights').main(['--weights', str(weights), '--out', str(exported)])

    lq = sorted(glob.glob(str(toy_prepared / 'test' / 'lq' / '*.png')))[0]
    flash = lq.replace(os.sep + 'lq' + os.sep, os.sep + 'flash' + os.sep)
    enhance = load_tool('enhance')
    enhance.main(['--lowlight', lq, '--flash', flash, '--weights', str(weights), '--out', str(tmp_path / 'a.png')])
    import fcdfn_plugin.utils.inference as inference
    monkeypatch.setattr(inference, 'SHIPPED_WEIGHTS', str(exported))
    capsys.readouterr()
    enhance.main(['--lowlight', lq, '--flash', flash, '--out', str(tmp_path / 'b.png')])
    assert 'No --weights given: using the shipped FCDFN small model' in capsys.readouterr().out
    assert np.array_equal(cv2.imread(str(tmp_path / 'a.png')), cv2.imread(str(tmp_path / 'b.png')))

    monkeypatch.setattr(inference, 'SHIPPED_WEIGHTS', str(tmp_path / 'missing.pth'))
    with pytest.raises(SystemExit, match='shipped weights .*missing'):
        enhance.main(['--lowlight', lq, '--flash', flash, '--out', str(tmp_path / 'c.png')])


def test_the_shipped_weights_are_in_the_repository_and_build():
    """weights/fcdfn_small.pth is committed, carries its network_g and trains-with meta, and runs."""
    from fcdfn_plugin.utils.inference import SHIPPED_WEIGHTS, build_trained_network
    with open(os.path.join(REPO_ROOT, 'options', 'fcdfn_small.yml')) as handle:
        small = yaml.safe_load(handle)
    checkpoint = torch.load(SHIPPED_WEIGHTS, map_location='cpu', weights_only=True)
    assert checkpoint['network_g'] == small['network_g'] and checkpoint['meta']['options'] == 'fcdfn_small.yml'
    # trained with the any-exposure law, it carries the options' exposure contract (band: the law's dim_range)
    from fcdfn_plugin.utils.inference import exposure_contract
    contract, _ = exposure_contract(SHIPPED_WEIGHTS)
    assert contract.mode == small['exposure']['mode'] == 'auto'
    assert tuple(contract.band) == tuple(small['datasets']['train']['dim_range'])
    net, source = build_trained_network(SHIPPED_WEIGHTS)
    lq, flash = torch.full((1, 3, 40, 36), 0.02), torch.full((1, 3, 40, 36), 0.3)
    with torch.no_grad():
        out = net(lq, flash)
    assert out.shape == lq.shape and torch.isfinite(out).all() and out.mean() > lq.mean()  # it brightens


def test_every_options_file_builds_through_the_registries(toy_prepared):
    from basicsr.archs import build_network
    from basicsr.data import build_dataset
    from basicsr.losses import build_loss
    from basicsr.utils.registry import METRIC_REGISTRY, MODEL_REGISTRY

    files = sorted(glob.glob(os.path.join(REPO_ROOT, 'options', '*.yml')) +
                   glob.glob(os.path.join(REPO_ROOT, 'options', 'table1', '*.yml')))
    assert len(files) >= 9 + 14
    for path in files:
        with open(path) as f:
            opt = yaml.safe_load(f)
        name = os.path.basename(path)
        assert open(path).readline().startswith('#'), f'{name}: header comment with the command'
        assert opt['model_type'] in MODEL_REGISTRY, name
        build_network(opt['network_g'])
        if 'train' in opt:
            for key in ('pixel_opt', 'degrade_opt'):  # degrade_opt: DSNModel's second direction
                if key in opt['train']:
                    build_loss(opt['train'][key])
        for phase, dataset_opt in opt['datasets'].items():
            dataset_opt = dict(dataset_opt, phase=phase.split('_')[0])
            dataset_opt['dataroot'] = str(toy_prepared / ('train.lmdb' if phase == 'train' else 'test'))
            assert len(build_dataset(dataset_opt)) > 0, name
        for metric in opt['val']['metrics'].values():
            assert metric['type'] in METRIC_REGISTRY, name


def test_plugin_pieces_compose_with_stock_basicsr(tmp_path, toy_prepared):
    """options/mix_rrdbnet_fcdfnloss.yml: BasicSR's SRModel + RRDBNet with our loss on our dataset."""
    options = write_options(tmp_path / 'mix.yml', 'options/mix_rrdbnet_fcdfnloss.yml', toy_prepared, name='mix',
                            train__total_iter=2, logger__print_freq=1, logger__save_checkpoint_freq=2,
                            val__val_freq=2, datasets__train__batch_size_per_gpu=2,
                            datasets__train__num_worker_per_gpu=0, datasets__train__persistent_workers=False)
    run_tool(['tools/train.py', '-opt', options], root=tmp_path)
    log = open(glob.glob(str(tmp_path / 'experiments' / 'mix' / 'train_mix_*.log'))[0]).read()
    assert 'Model [SRModel] is created.' in log and 'Network [RRDBNet] is created.' in log
    assert 'l_pix: ' in log and '# psnr: ' in log
    assert (tmp_path / 'experiments' / 'mix' / 'models' / 'net_g_2.pth').is_file()
