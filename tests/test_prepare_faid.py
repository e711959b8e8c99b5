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
    # without --test-crop the test image is the whole image less the warp margin (ceil(8 * 48 / 224) = 2)
    gt = cv2.imread(str(next((tmp_path / 'out' / 'test' / 'gt').iterdir())), cv2.IMREAD_UNCHANGED)
    assert gt.shape == (44, 44, 3)


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

    monkeypatch.setattr(prepare, 'degrade_test_pair', crash)
    with pytest.raises(RuntimeError, match='simulated crash'):
        _prepare(toy_root, out, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ['out'] and (out / 'precious.txt').read_text() == 'keep'
    monkeypatch.undo()
    _prepare(toy_root, out, overwrite=True)
    assert sorted(os.listdir(out)) == ['split.json', 'test', 'train.lmdb']


def test_command_line_refuses_existing_output(toy_root, tmp_path, python):
    (tmp_path / 'out').mkdir()
    result = subprocess.run([python, osp.join(REPO, 'tools', 'prepare_faid.py'), '--faid-root', toy_root,
                             '--out', str(tmp_path / 'out')], capture_output=True, text=True)
    assert result.returncode != 0 and 'exists; pass --overwrite' in result.stderr
