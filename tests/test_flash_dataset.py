"""FlashLowLightDataset: sample contract, reproducibility, augmentation consistency, bad input."""
import json
import os
from os import path as osp

import cv2
import lmdb
import numpy as np
import pytest
import torch

from basicsr.utils.registry import DATASET_REGISTRY
from fcdfn_plugin.data import FlashLowLightDataset
from fcdfn_plugin.data.degradation import srgb_to_linear

NOISE_FREE = {'sigma_read_range': [1e-9, 1e-9], 'sigma_shot_range': [1e-9, 1e-9]}


def _write_pairs(folder, count=3, height=72, width=88, seed=0):
    """8-bit FAID-layout pairs whose flash-only image is the ambient one with channels reversed."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for number in range(count):
        ambient = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        cv2.imwrite(osp.join(folder, f'Toys_{number:03d}_ambient.png'), ambient)
        cv2.imwrite(osp.join(folder, f'Toys_{number:03d}_flash.png'), np.ascontiguousarray(ambient[..., ::-1]))
    return folder


def _train_opt(dataroot, **overrides):
    opt = {'name': 'toy', 'phase': 'train', 'dataroot': str(dataroot), 'io_backend': {'type': 'disk'},
           'crop_size': 48, 'seed': 5}
    opt.update(overrides)
    return opt


@pytest.fixture
def pair_folder(tmp_path):
    return _write_pairs(str(tmp_path / 'pairs'))


def test_registered_and_sample_contract(pair_folder):
    assert DATASET_REGISTRY.get('FlashLowLightDataset') is FlashLowLightDataset
    dataset = FlashLowLightDataset(_train_opt(pair_folder))
    assert len(dataset) == 3
    sample = dataset[(0, 1)]
    for name in ('lq', 'flash', 'gt'):
        assert sample[name].shape == (3, 48, 48) and sample[name].dtype == torch.float32
        assert 0.0 <= sample[name].min() and sample[name].max() <= 1.0
    assert sample['lq_path'].endswith('Toys_001_ambient.png')
    assert set(sample['params']) >= {'dim_factor', 'sigma_read', 'sigma_shot', 'flash_gain', 'homography_strength'}
    assert all(type(v) is float for v in sample['params'].values())
    assert 25 <= sample['params']['dim_factor'] <= 50
    assert sample['params']['homography_strength'] == pytest.approx(8 * 48 / 224)
    # the low-light input is much darker than the target
    assert sample['lq'].mean() < 0.6 * sample['gt'].mean()


def test_epoch_index_tuple_is_reproducible_and_int_is_fresh(pair_folder):
    dataset = FlashLowLightDataset(_train_opt(pair_folder))
    again = FlashLowLightDataset(_train_opt(pair_folder))
    first, second = dataset[(2, 1)], again[(2, 1)]
    for name in ('lq', 'flash', 'gt'):
        assert torch.equal(first[name], second[name])
    assert first['params'] == second['params']
    assert not torch.equal(first['lq'], dataset[(3, 1)]['lq'])  # another epoch: new degradation
    # index beyond len (dataset_enlarge_ratio): same scene, its own generator
    enlarged = dataset[(2, 1 + len(dataset))]
    assert enlarged['lq_path'] == first['lq_path'] and not torch.equal(enlarged['lq'], first['lq'])
    assert not torch.equal(dataset[1]['lq'], dataset[1]['lq'])  # plain int: fresh every read
    other_seed = FlashLowLightDataset(_train_opt(pair_folder, seed=6))
    assert not torch.equal(other_seed[(2, 1)]['lq'], first['lq'])


def test_crop_flips_and_rotation_are_identical_for_all_images(pair_folder):
    # Noise-free, no warp, negligible dimming: flash == flash-only == ambient with channels
    # reversed, at the same pixels, only if the same crop/flip/rotation hit both images.
    dataset = FlashLowLightDataset(_train_opt(pair_folder, homography_strength=0, dim_range=[1e6, 1e6], **NOISE_FREE))
    seen_gts = set()
    for index in range(12):
        sample = dataset[(0, index)]
        gt = sample['gt'].numpy()
        np.testing.assert_allclose(sample['flash'].numpy()[::-1], gt, atol=2e-5)
        seen_gts.add(gt.tobytes())
    assert len(seen_gts) == 12


def test_gt_is_a_crop_of_the_ambient_image(pair_folder):
    dataset = FlashLowLightDataset(_train_opt(pair_folder, use_flip=False, use_rot=False))
    sample = dataset[(0, 0)]
    ambient = cv2.imread(osp.join(pair_folder, 'Toys_000_ambient.png'))[..., ::-1].astype(np.float32) / 255
    gt = sample['gt'].numpy().transpose(1, 2, 0)
    matches = [(top, left) for top in range(72 - 48 + 1) for left in range(88 - 48 + 1)
               if np.abs(ambient[top:top + 48, left:left + 48] - gt).max() < 1e-5]
    assert len(matches) == 1
    # lq is the dimmed, noisy version of the same pixels
    dim = sample['params']['dim_factor']
    lq_linear = srgb_to_linear(sample['lq'].numpy().transpose(1, 2, 0))
    assert np.corrcoef(lq_linear.ravel() * dim, srgb_to_linear(gt).ravel())[0, 1] > 0.8


def _write_triplets(folder, keys, with_params=True):
    rng = np.random.default_rng(1)
    for role in ('lq', 'flash', 'gt'):
        os.makedirs(osp.join(folder, role), exist_ok=True)
        for key in keys:
            cv2.imwrite(osp.join(folder, role, f'{key}.png'), rng.integers(0, 65536, (20, 24, 3), dtype=np.uint16))
    if with_params:
        with open(osp.join(folder, 'params.json'), 'w') as handle:
            json.dump({key: {'dim_factor': 30.0, 'sigma_read': 0.005} for key in keys}, handle)


@pytest.mark.parametrize('phase', ['val', 'test'])
def test_fixed_triplets(tmp_path, phase):
    folder = str(tmp_path / 'test')
    _write_triplets(folder, ['Toys_000', 'Toys_004'])
    dataset = FlashLowLightDataset({'name': 't', 'phase': phase, 'dataroot': folder, 'io_backend': {'type': 'disk'}})
    assert len(dataset) == 2
    sample = dataset[1]
    expected = cv2.imread(osp.join(folder, 'gt', 'Toys_004.png'), cv2.IMREAD_UNCHANGED)[..., ::-1] / 65535.0
    np.testing.assert_allclose(sample['gt'].numpy().transpose(1, 2, 0), expected, atol=1e-6)
    assert sample['lq_path'] == osp.join(folder, 'lq', 'Toys_004.png')
    assert sample['params'] == {'dim_factor': 30.0, 'sigma_read': 0.005}
    assert torch.equal(dataset[1]['lq'], sample['lq'])  # fixed: no randomness in test mode
    os.remove(osp.join(folder, 'params.json'))
    assert 'params' not in FlashLowLightDataset({'phase': phase, 'dataroot': folder})[0]
    os.remove(osp.join(folder, 'flash', 'Toys_000.png'))
    with pytest.raises(FileNotFoundError, match='Toys_000.png'):
        FlashLowLightDataset({'phase': phase, 'dataroot': folder})


def test_works_with_a_multi_worker_dataloader(pair_folder):
    dataset = FlashLowLightDataset(_train_opt(pair_folder))
    items = [(1, index) for index in range(6)]
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, sampler=items, num_workers=2)
    batches = list(loader)
    assert batches[0]['lq'].shape == (2, 3, 48, 48)
    assert batches[0]['params']['dim_factor'].shape == (2, )
    for position, item in enumerate(items):
        assert torch.equal(batches[position // 2]['lq'][position % 2], dataset[item]['lq'])


# ------------------------------------------------------------------ bad input
def test_missing_partner_names_the_file(pair_folder):
    os.remove(osp.join(pair_folder, 'Toys_001_flash.png'))
    with pytest.raises(FileNotFoundError, match='Toys_001_ambient.png.*missing partner Toys_001_flash'):
        FlashLowLightDataset(_train_opt(pair_folder))


def test_corrupt_png_in_folder_names_the_file(pair_folder):
    with open(osp.join(pair_folder, 'Toys_002_flash.png'), 'wb') as handle:
        handle.write(b'\x89PNG\r\n\x1a\n not really a png')
    dataset = FlashLowLightDataset(_train_opt(pair_folder))
    with pytest.raises(ValueError, match='Toys_002_flash.png: cannot decode'):
        dataset[(0, 2)]


def test_pair_of_different_sizes_names_both_files(pair_folder):
    cv2.imwrite(osp.join(pair_folder, 'Toys_000_flash.png'), np.zeros((70, 88, 3), np.uint8))
    with pytest.raises(ValueError, match='Toys_000_ambient.png.*Toys_000_flash.png.*differ in size'):
        FlashLowLightDataset(_train_opt(pair_folder))[(0, 0)]


def test_image_smaller_than_crop_names_the_file(pair_folder):
    with pytest.raises(ValueError, match='Toys_000_ambient.png: image 72x88 is smaller than crop_size 80'):
        FlashLowLightDataset(_train_opt(pair_folder, crop_size=80))[(0, 0)]


@pytest.mark.parametrize('option, value', [('noise_sampling', 'gaussian'), ('phase', 'training'),
                                           ('io_backend', {'type': 'http'}), ('dim_range', [50, 25]),
                                           ('crop_size', 0), ('flash_noise_order', 'late')])
def test_unknown_option_value_names_the_option(pair_folder, option, value):
    with pytest.raises(ValueError, match=option.split('_backend')[0]):
        FlashLowLightDataset(_train_opt(pair_folder, **{option: value}))


def _write_lmdb(path, entries):
    env = lmdb.open(path, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, value in entries.items():
            txn.put(key.encode('ascii'), value)
    env.close()
    with open(osp.join(path, 'meta_info.txt'), 'w') as handle:
        for key in entries:
            handle.write(f'{key}.png (72,88,3) 1\n')


def test_lmdb_corrupt_bytes_and_missing_key_name_the_key(tmp_path, pair_folder):
    good = cv2.imencode('.png', np.zeros((72, 88, 3), np.uint8))[1].tobytes()
    path = str(tmp_path / 'bad.lmdb')
    _write_lmdb(path, {'Toys_000_ambient': good, 'Toys_000_flash': b'garbage bytes'})
    dataset = FlashLowLightDataset(_train_opt(path, io_backend={'type': 'lmdb'}))
    with pytest.raises(ValueError, match='Toys_000_flash: cannot decode'):
        dataset[(0, 0)]
    # listed in meta_info.txt but absent from the database
    with open(osp.join(path, 'meta_info.txt'), 'a') as handle:
        handle.write('Toys_001_ambient.png (72,88,3) 1\nToys_001_flash.png (72,88,3) 1\n')
    dataset = FlashLowLightDataset(_train_opt(path, io_backend={'type': 'lmdb'}))
    with pytest.raises(KeyError, match='Toys_001_ambient missing from LMDB'):
        dataset[(0, 1)]
