"""tools/prepare_faid.py: layout, deterministic grouped split, atomic output, skipped pairs, end to end."""
import json
import os
import shutil
import subprocess
from os import path as osp

import cv2
import numpy as np
import pytest
import torch

from fcdfn_plugin.data import FlashLowLightDataset
from fcdfn_plugin.data.faid_io import scene_group

from conftest import REPO_ROOT as REPO
from conftest import load_tool

make_toy_faid = load_tool('make_toy_faid')
prepare = load_tool('prepare_faid')


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy') / 'faid'
    # 12 procedural scenes + 10 photo cuts (2 per photograph)
    make_toy_faid.main(['--out', str(root), '--count', '22', '--size', '64', '--workers', '1',
                        '--photo-fraction', str(10 / 22)])
    return str(root)


def _prepare(root, out, **kwargs):
    options = dict(test_count=6, seed=0, test_crop=40, progress=False, log=lambda message: None)
    options.update(kwargs)
    return prepare.prepare_faid(root, str(out), **options)


def _files(folder):
    return sorted(osp.relpath(osp.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def test_layout_split_and_end_to_end(toy_root, tmp_path):
    out = tmp_path / 'prepared'
    summary = _prepare(toy_root, out)
    assert (summary['valid'], summary['train'], summary['test'], summary['skipped']) == (22, 16, 6, 0)
    split = json.loads((out / 'split.json').read_text())
    assert not set(split['train']) & set(split['test']) and len(split['train'] + split['test']) == 22
    # grouped split: the cuts of one photograph are all on one side
    for side, other in (('train', 'test'), ('test', 'train')):
        assert not {scene_group(k) for k in split[side]} & {scene_group(k) for k in split[other]}
    assert any(k.startswith('Leaves') for k in split['test'])  # stratified: both kinds are tested
    meta = (out / 'train.lmdb' / 'meta_info.txt').read_text().split('\n')
    assert meta[0] == f'{split["train"][0]}_ambient.png (64,64,3) 1' and len([m for m in meta if m]) == 32
    assert not [n for n in os.listdir(tmp_path) if 'partial' in n]
    for role in ('lq', 'flash', 'gt'):
        image = cv2.imread(str(out / 'test' / role / f'{split["test"][0]}.png'), cv2.IMREAD_UNCHANGED)
        assert image.shape == (40, 40, 3) and image.dtype == np.uint16
    params = json.loads((out / 'test' / 'params.json').read_text())
    assert sorted(params) == split['test'] and 25 <= params[split['test'][0]]['dim_factor'] <= 50

    train = FlashLowLightDataset({'phase': 'train', 'dataroot': str(out / 'train.lmdb'), 'io_backend': {'type': 'lmdb'},
                                  'crop_size': 32, 'seed': 3})
    test = FlashLowLightDataset({'phase': 'test', 'dataroot': str(out / 'test')})
    assert len(train) == 16 and len(test) == 6
    assert train[(0, 5)]['lq'].shape == (3, 32, 32) and test[0]['gt'].shape == (3, 40, 40)
    assert test[0]['params'] == params[split['test'][0]]

    # LMDB and folder backends give identical samples (same keys, same seed)
    folder = tmp_path / 'train_folder'
    folder.mkdir()
    for key in split['train']:
        for role in ('ambient', 'flash'):
            shutil.copy(osp.join(toy_root, f'{key}_{role}.png'), folder)
    from_disk = FlashLowLightDataset({'phase': 'train', 'dataroot': str(folder), 'crop_size': 32, 'seed': 3})
    for index in range(len(train)):
        a, b = train[(1, index)], from_disk[(1, index)]
        for name in ('lq', 'flash', 'gt'):
            assert torch.equal(a[name], b[name]), (index, name)
        assert a['params'] == b['params']


def test_same_seed_same_test_set_byte_for_byte(toy_root, tmp_path):
    _prepare(toy_root, tmp_path / 'a')
    _prepare(toy_root, tmp_path / 'b')
    _prepare(toy_root, tmp_path / 'c', seed=1)
    files = _files(tmp_path / 'a' / 'test')
    assert files == _files(tmp_path / 'b' / 'test') and len(files) == 3 * 6 + 1
    for name in files + ['../split.json']:
        assert (tmp_path / 'a' / 'test' / name).read_bytes() == (tmp_path / 'b' / 'test' / name).read_bytes(), name
    assert (tmp_path / 'a' / 'split.json').read_bytes() != (tmp_path / 'c' / 'split.json').read_bytes()


def test_sixteen_bits_are_kept_in_the_lmdb(tmp_path):
    root = tmp_path / 'raw'
    make_toy_faid.main(['--out', str(root), '--count', '6', '--size', '48', '--workers', '1', '--bits', '16'])
    _prepare(str(root), tmp_path / 'out', test_count=2, test_crop=None)
    import lmdb
    env = lmdb.open(str(tmp_path / 'out' / 'train.lmdb'), readonly=True, lock=False)
    with env.begin() as txn:
        key = (tmp_path / 'out' / 'train.lmdb' / 'meta_info.txt').read_text().split()[0][:-4]
        image = cv2.imdecode(np.frombuffer(txn.get(key.encode()), np.uint8), cv2.IMREAD_UNCHANGED)
    env.close()
    np.testing.assert_array_equal(image, cv2.imread(str(root / f'{key}.png'), cv2.IMREAD_UNCHANGED))
    assert image.dtype == np.uint16
    # without --test-crop the test image is the whole image less the warp margin (ceil(8) = 8 px)
    gt = cv2.imread(str(next((tmp_path / 'out' / 'test' / 'gt').iterdir())), cv2.IMREAD_UNCHANGED)
    assert gt.shape == (32, 32, 3)
    # the toy's raw files carry FAID's colour data (a linear-sRGB camera): it travels in colour.json
    colour = json.loads((tmp_path / 'out' / 'train.lmdb' / 'colour.json').read_text())
    assert colour['raw_colour_space'] == 'camera' and sorted(colour['scenes']) == json.loads(
        (tmp_path / 'out' / 'split.json').read_text())['train']
    np.testing.assert_allclose(colour['scenes'][key[:-len('_ambient')]]['camera_to_linear_srgb'], np.eye(3), atol=1e-9)


def test_skipped_pairs_are_reported_and_counted(toy_root, tmp_path):
    root = tmp_path / 'broken'
    shutil.copytree(toy_root, root)
    os.remove(root / 'Leaves_000_flash.png')  # missing partner
    (root / 'Leaves_001_ambient.png').write_bytes(b'not a png')  # unreadable
    cv2.imwrite(str(root / 'Leaves_002_flash.png'), np.zeros((60, 64, 3), np.uint8))  # size mismatch
    messages = []
    summary = _prepare(str(root), tmp_path / 'out', log=messages.append)
    assert summary['skipped'] == 3 and summary['valid'] == 19
    reasons = '\n'.join(messages)
    assert 'Leaves_000_ambient.png: missing partner Leaves_000_flash' in reasons
    assert 'Leaves_001_ambient.png: cannot decode' in reasons
    assert 'Leaves_002_ambient.png: sizes/depths differ' in reasons
    assert '3 skipped' in messages[-1]


def test_zero_valid_pairs_is_an_error(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'Toys_000_ambient.png').write_bytes(b'x')
    with pytest.raises(ValueError, match='no valid ambient/flash pair'):
        _prepare(str(tmp_path / 'empty'), tmp_path / 'out')
    assert not (tmp_path / 'out').exists()


def test_refuses_existing_output_and_a_crash_leaves_nothing_half_written(toy_root, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'precious.txt').write_text('keep')
    with pytest.raises(FileExistsError, match='--overwrite'):
        _prepare(toy_root, out)

    def crash(*args, **kwargs):
        raise RuntimeError('simulated crash while writing the test set')

    # --overwrite never deletes what prepare_faid did not write
    with pytest.raises(FileExistsError, match=r'holds files prepare_faid did not write \(.*precious.txt\)'):
        _prepare(toy_root, out, overwrite=True)
    assert (out / 'precious.txt').read_text() == 'keep'
    (out / 'precious.txt').unlink()
    _prepare(toy_root, out, overwrite=True)
    first = sorted(os.listdir(out / 'test' / 'gt'))

    monkeypatch.setattr(prepare, 'degrade_test_pair', crash)
    with pytest.raises(RuntimeError, match='simulated crash'):
        _prepare(toy_root, out, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ['out'] and sorted(os.listdir(out / 'test' / 'gt')) == first
    monkeypatch.undo()
    _prepare(toy_root, out, overwrite=True)
    assert sorted(os.listdir(out)) == ['split.json', 'test', 'train.lmdb']


def test_command_line_refuses_existing_output(toy_root, tmp_path, python):
    (tmp_path / 'out').mkdir()
    result = subprocess.run([python, osp.join(REPO, 'tools', 'prepare_faid.py'), '--faid-root', toy_root,
                             '--out', str(tmp_path / 'out')], capture_output=True, text=True)
    assert result.returncode != 0 and 'exists; pass --overwrite' in result.stderr


# ------------------------------------------------------------------ the training law, in pixels
def _write_pair(folder, key, height, width, seed=0, bits=8):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    dtype = np.uint8 if bits == 8 else np.uint16
    for role in ('ambient', 'flash'):
        image = rng.integers(0, np.iinfo(dtype).max, (height, width, 3), dtype=dtype)
        cv2.imwrite(osp.join(folder, f'{key}_{role}.png'), image)
    return {role: osp.join(folder, f'{key}_{role}.png') for role in ('ambient', 'flash')}


def test_warp_of_a_whole_test_image_is_the_same_number_of_pixels(tmp_path):
    paths = _write_pair(str(tmp_path / 'big'), 'Toys_000', 200, 300)
    law = prepare.DegradationLaw()
    draws = [prepare.degrade_test_pair(paths, position, 0, None, law) for position in range(100)]
    assert draws[0][0].shape == (200 - 16, 300 - 16, 3)  # whole image less ceil(8) px on every side
    assert {d[3]['homography_strength'] for d in draws} == {8.0}
    largest = np.array([d[3]['homography_max_offset'] for d in draws])
    assert 8 * 0.98 < largest.max() <= 8
    assert largest.mean() == pytest.approx(8 * 8 / 9, abs=0.25)
    # a centre crop with room keeps the same law; a strength of 3 px gives a 3 px margin
    assert prepare.degrade_test_pair(paths, 0, 0, 64, law)[3]['homography_strength'] == 8.0
    small = prepare.DegradationLaw(homography_strength=3)
    assert prepare.degrade_test_pair(paths, 0, 0, None, small)[0].shape == (194, 294, 3)


MIXED_LAW = {'dim_range': [20, 60], 'sigma_read_range': [0.002, 0.02], 'sigma_shot_range': [0.01, 0.05],
             'noise_sampling': 'deepfnf', 'dim_sampling': 'uniform', 'homography_strength': 4}


def _options_file(path, train_section):
    import yaml
    path.write_text(yaml.safe_dump({'name': 'law', 'datasets': {'train': train_section}}))
    return str(path)


@pytest.mark.parametrize('source', ['options/fcdfn.yml', 'mixed'])
def test_opt_reproduces_the_training_law(tmp_path, source):
    """2000 draws of the dataset (training) and of the test set built from the same options file:
    the three parameters have the same distribution (two-sample KS), the law's own (one-sample KS)."""
    from scipy import stats

    import yaml
    if source == 'mixed':
        opt_path = _options_file(tmp_path / 'law.yml', dict(MIXED_LAW, type='FlashLowLightDataset'))
    else:
        opt_path = osp.join(REPO, source)
    with open(opt_path) as handle:
        train_section = yaml.safe_load(handle)['datasets']['train']
    paths = _write_pair(str(tmp_path / 'pairs'), 'Toys_000', 28, 28)
    train_section.update(phase='train', dataroot=str(tmp_path / 'pairs'), io_backend={'type': 'disk'}, crop_size=8)
    dataset = FlashLowLightDataset(train_section)
    law, _ = prepare.load_options(opt_path)
    assert law == dataset.law
    # the same draws in the same order: after the crop (2 integers) and flips (3) in training, first in the test set
    rng = np.random.default_rng([dataset.seed, 0, 7])
    window = 8 + 2 * min(law.margin(), (28 - 8) // 2)
    rng.integers(0, 28 - window + 1), rng.integers(0, 28 - window + 1)
    rng.random(3)
    sample = dataset[(0, 7)]['params']
    assert {k: sample[k] for k in ('dim_factor', 'sigma_read', 'sigma_shot')} == law.sample_parameters(rng)
    expected = law.sample_parameters(np.random.default_rng([0, prepare.TEST_DEGRADATION_STREAM, 7]))
    assert {k: v for k, v in prepare.degrade_test_pair(paths, 7, 0, 8, law)[3].items() if k in expected} == expected
    draws = 2000
    training = [dataset[(0, index)]['params'] for index in range(draws)]
    test_set = [prepare.degrade_test_pair(paths, position, 0, 8, law)[3] for position in range(draws)]
    rng = np.random.default_rng(0)
    paper = [prepare.DegradationLaw().sample_parameters(rng) for _ in range(draws)]  # what no --opt would give
    differs_from_paper = False
    for name, sampling, value_range in (('dim_factor', law.dim_sampling, law.dim_range),
                                        ('sigma_read', law.sigma_read_sampling, law.sigma_read_range),
                                        ('sigma_shot', law.sigma_shot_sampling, law.sigma_shot_range)):
        a, b = np.array([p[name] for p in training]), np.array([p[name] for p in test_set])
        assert stats.ks_2samp(a, b, method='asymp').pvalue > 1e-3, name
        low, high = value_range
        for values in (a, b):
            if sampling == 'log_uniform':
                values, low_, high_ = np.log(values), np.log(low), np.log(high)
            else:
                low_, high_ = low, high
            assert stats.kstest(values, 'uniform', args=(low_, high_ - low_)).pvalue > 1e-3, name
        differs_from_paper |= stats.ks_2samp(b, np.array([p[name] for p in paper]), method='asymp').pvalue < 1e-6
    assert differs_from_paper == (source == 'mixed')  # without --opt the mixed law would be lost


def test_opt_law_is_recorded_and_bad_options_are_named(toy_root, tmp_path):
    opt_path = _options_file(tmp_path / 'law.yml', MIXED_LAW)
    law, raw_colour = prepare.load_options(opt_path)
    assert raw_colour is None and law.homography_strength == 4 and law.sigma_read_sampling == 'log_uniform'
    prepare.main(['--faid-root', toy_root, '--out', str(tmp_path / 'out'), '--opt', opt_path, '--test-count', '6',
                  '--test-crop', '32'])
    split = json.loads((tmp_path / 'out' / 'split.json').read_text())
    assert prepare.DegradationLaw.from_options(split['law']) == law
    assert split['raw_colour_space'] == 'camera' and not split['all_test']
    params = json.loads((tmp_path / 'out' / 'test' / 'params.json').read_text())
    assert all(20 <= p['dim_factor'] <= 60 and p['homography_strength'] == 4 for p in params.values())
    assert all({'dim_factor', 'sigma_read', 'sigma_shot'} <= set(p) for p in params.values())
    with pytest.raises(ValueError, match=r'law.yml: datasets.train: option sigma_shot_sampling'):
        prepare.load_options(_options_file(tmp_path / 'law.yml', {'sigma_shot_sampling': 'gaussian'}))
    (tmp_path / 'empty.yml').write_text('name: x\n')
    with pytest.raises(ValueError, match='no datasets.train section'):
        prepare.load_options(str(tmp_path / 'empty.yml'))


# ------------------------------------------------------------------ test list and all-test
def test_test_list_in_deepfnf_format(toy_root, tmp_path):
    listing = tmp_path / 'test.txt'
    listing.write_text('# deepFnF style\npath-to-dataset/Leaves_003\n\nLeaves_007_ambient.png\n'
                       'Photo-coffee_000   # a comment\n')
    assert prepare.read_test_list(str(listing)) == ['Leaves_003', 'Leaves_007', 'Photo-coffee_000']
    summary = _prepare(toy_root, tmp_path / 'out', test_count=None, test_list=str(listing))
    split = json.loads((tmp_path / 'out' / 'split.json').read_text())
    assert split['test'] == ['Leaves_003', 'Leaves_007', 'Photo-coffee_000'] and split['test_list'] == 'test.txt'
    assert (summary['train'], summary['test']) == (19, 3) and 'Leaves_003' not in split['train']
    assert sorted(os.listdir(tmp_path / 'out' / 'test' / 'gt')) == [f'{k}.png' for k in split['test']]


def test_test_list_with_missing_scenes_names_them(toy_root, tmp_path):
    root = tmp_path / 'broken'
    shutil.copytree(toy_root, root)
    (root / 'Leaves_001_ambient.png').write_bytes(b'not a png')
    listing = tmp_path / 'test.txt'
    listing.write_text('Leaves_003\nToys_999\nLeaves_001\nRooms_042\n')
    with pytest.raises(ValueError, match=r'test.txt: 3 of 4 scenes are not valid pairs.*Toys_999 \(not found\), '
                                         r'Leaves_001 \(skipped: .*cannot decode.*\), Rooms_042 \(not found\)'):
        _prepare(str(root), tmp_path / 'out', test_count=None, test_list=str(listing))
    assert not (tmp_path / 'out').exists()
    for text, message in (('Leaves_003\nLeaves_003\n', 'test.txt:2: Leaves_003 is listed twice'),
                          ('Leaves\n', r'test.txt:1: \'Leaves\' is not a scene key'), ('# only\n', 'no scene keys')):
        listing.write_text(text)
        with pytest.raises(ValueError, match=message):
            _prepare(toy_root, tmp_path / 'out', test_count=None, test_list=str(listing))
    with pytest.raises(ValueError, match='one of --test-count, --test-list and --all-test'):
        _prepare(toy_root, tmp_path / 'out', test_list=str(listing))
    with pytest.raises(SystemExit):
        prepare.main(['--faid-root', toy_root, '--out', str(tmp_path / 'o'), '--all-test', '--test-count', '3'])


def test_all_test_scores_every_pair_and_writes_no_train_set(toy_root, tmp_path):
    summary = _prepare(toy_root, tmp_path / 'out', test_count=None, all_test=True, test_crop=None)
    assert (summary['train'], summary['test']) == (0, 22)
    assert sorted(os.listdir(tmp_path / 'out')) == ['split.json', 'test']
    split = json.loads((tmp_path / 'out' / 'split.json').read_text())
    assert split['all_test'] and split['train'] == [] and len(split['test']) == 22
    test = FlashLowLightDataset({'phase': 'test', 'dataroot': str(tmp_path / 'out' / 'test')})
    assert len(test) == 22 and test[0]['gt'].shape == (3, 64 - 16, 64 - 16)


# ------------------------------------------------------------------ raw colour at preparation
def test_raw_camera_pairs_prepared_and_read_like_the_folder(tmp_path):
    from test_flash_dataset import AMBIENT_CAMERA, CAMERA_TO_SRGB_BY_HAND, RAW_TEXT, _srgb, _write_raw_pair

    root = tmp_path / 'raw'
    for number in range(5):
        _write_raw_pair(str(root), RAW_TEXT, key=f'Toys_{number:03d}', size=(48, 56))
    _prepare(str(root), tmp_path / 'out', test_count=2, test_crop=24)
    split = json.loads((tmp_path / 'out' / 'split.json').read_text())
    colour = json.loads((tmp_path / 'out' / 'train.lmdb' / 'colour.json').read_text())
    assert sorted(colour['scenes']) == split['train']
    entry = colour['scenes'][split['train'][0]]
    assert entry['light_source'] == 17 and entry['xyz_to_camera'] == pytest.approx(json.loads(
        '[' + RAW_TEXT['Comment'].replace(' ', ',') + ']'))
    np.testing.assert_allclose(entry['camera_to_linear_srgb'], CAMERA_TO_SRGB_BY_HAND, rtol=1e-5, atol=1e-6)
    # test triplets: mapped to sRGB before writing (16-bit sRGB PNG)
    gt = cv2.imread(str(tmp_path / 'out' / 'test' / 'gt' / f'{split["test"][0]}.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(gt[0, 0, ::-1] / 65535, _srgb(CAMERA_TO_SRGB_BY_HAND @ AMBIENT_CAMERA), atol=3e-5)
    # the LMDB (colour.json) and a folder of the same pairs (PNG text chunks) give the same samples
    folder = tmp_path / 'train_folder'
    folder.mkdir()
    for key in split['train']:
        for role in ('ambient', 'flash'):
            shutil.copy(root / f'{key}_{role}.png', folder)
    lmdb_set = FlashLowLightDataset({'phase': 'train', 'dataroot': str(tmp_path / 'out' / 'train.lmdb'),
                                     'io_backend': {'type': 'lmdb'}, 'crop_size': 24, 'seed': 1})
    folder_set = FlashLowLightDataset({'phase': 'train', 'dataroot': str(folder), 'crop_size': 24, 'seed': 1})
    assert lmdb_set.keys == folder_set.keys
    for index in range(len(lmdb_set)):
        a, b = lmdb_set[(0, index)], folder_set[(0, index)]
        for name in ('lq', 'flash', 'gt'):
            assert torch.equal(a[name], b[name]), name
    # an LMDB without colour.json cannot be read as camera RGB
    os.remove(tmp_path / 'out' / 'train.lmdb' / 'colour.json')
    lmdb_set = FlashLowLightDataset({'phase': 'train', 'dataroot': str(tmp_path / 'out' / 'train.lmdb'),
                                     'io_backend': {'type': 'lmdb'}, 'crop_size': 24})
    with pytest.raises(ValueError, match=r'no entry Toys_00\d in .*colour.json.*raw_colour_space: linear_srgb'):
        lmdb_set[(0, 0)]


def test_raw_pairs_without_colour_data_are_an_error_unless_declared_linear(tmp_path):
    from test_flash_dataset import _write_raw_pair

    root = tmp_path / 'raw'
    for number in range(4):
        _write_raw_pair(str(root), None, key=f'Toys_{number:03d}', size=(40, 40))
    with pytest.raises(ValueError, match=r'Toys_000_ambient.png: 16-bit image without its colour matrix.*'
                                         r'--raw-colour linear_srgb'):
        _prepare(str(root), tmp_path / 'out', test_count=1, test_crop=None)
    assert not (tmp_path / 'out').exists()
    _prepare(str(root), tmp_path / 'out', test_count=1, test_crop=None, raw_colour_space='linear_srgb')
    assert not (tmp_path / 'out' / 'train.lmdb' / 'colour.json').exists()
    assert json.loads((tmp_path / 'out' / 'split.json').read_text())['raw_colour_space'] == 'linear_srgb'
