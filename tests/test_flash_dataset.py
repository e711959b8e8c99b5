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
    assert sample['params']['homography_strength'] == 8.0  # pixels of the stored image, whatever the crop
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
            json.dump({key: {'dim_factor': 30.0, 'sigma_read': 0.005, 'sigma_shot': 0.02} for key in keys}, handle)


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
    assert sample['params'] == {'dim_factor': 30.0, 'sigma_read': 0.005, 'sigma_shot': 0.02}
    assert torch.equal(dataset[1]['lq'], sample['lq'])  # fixed: no randomness in test mode
    with open(osp.join(folder, 'params.json'), 'w') as handle:  # the noise level is required
        json.dump({key: {'dim_factor': 30.0, 'sigma_read': 0.005} for key in ['Toys_000', 'Toys_004']}, handle)
    with pytest.raises(KeyError, match='params.json: entry Toys_000 lacks sigma_shot'):
        FlashLowLightDataset({'phase': phase, 'dataroot': folder})
    os.remove(osp.join(folder, 'params.json'))
    assert 'params' not in FlashLowLightDataset({'phase': phase, 'dataroot': folder})[0]
    os.remove(osp.join(folder, 'flash', 'Toys_000.png'))
    with pytest.raises(FileNotFoundError, match='Toys_000.png'):
        FlashLowLightDataset({'phase': phase, 'dataroot': folder})


@pytest.mark.parametrize('crop', [64, 224])
def test_warp_is_the_same_number_of_pixels_for_any_crop(tmp_path, crop):
    """homography_strength is in pixels of the stored image: corners move up to s px at any crop size."""
    folder = _write_pairs(str(tmp_path / 'big'), count=1, height=crop + 20, width=crop + 24)
    dataset = FlashLowLightDataset(_train_opt(folder, crop_size=crop, **NOISE_FREE))
    params = [dataset[(0, index)]['params'] for index in range(100)]
    assert {p['homography_strength'] for p in params} == {8.0}
    largest = np.array([p['homography_max_offset'] for p in params])
    assert 8 * 0.98 < largest.max() <= 8
    assert largest.mean() == pytest.approx(8 * 8 / 9, abs=0.25)  # max of 8 |U(-8, 8)|: mean 64/9


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
                                           ('crop_size', 0), ('flash_noise_order', 'late'),
                                           ('sigma_read_sampling', 'normal'), ('raw_colour_space', 'xyz')])
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


# ------------------------------------------------------------------ raw (16-bit camera RGB) pairs
# A DSLR-like XYZ -> camera matrix and illuminant A (EXIF 17); the expected values are computed
# here from published matrices (see tests/test_faid_io.py), not by the implementation.
CAMERA_MATRIX = np.array([[0.4716, 0.0603, -0.0830], [-0.7798, 1.5474, 0.2480], [-0.1496, 0.1937, 0.6651]])
CAMERA_TO_SRGB_BY_HAND = (np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                                    [0.0556434, -0.2040259, 1.0572252]])
                          @ np.array([[0.8446965, -0.1179225, 0.3948108], [-0.1366303, 1.1041226, 0.1291718],
                                      [0.0798489, -0.1348999, 3.1924009]])
                          @ np.linalg.inv(CAMERA_MATRIX))
AMBIENT_CAMERA = np.array([13763, 22938, 10486]) / 65535  # exact 16-bit values
FLASH_ONLY_CAMERA = np.array([6554, 9830, 3277]) / 65535


def _write_raw_pair(folder, text, key='Toys_000', size=(60, 70)):
    from fcdfn_plugin.data.faid_io import add_png_text
    os.makedirs(folder, exist_ok=True)
    for role, value in (('ambient', AMBIENT_CAMERA), ('flash', FLASH_ONLY_CAMERA)):
        image = np.broadcast_to(np.round(value * 65535).astype(np.uint16)[::-1], size + (3, ))
        data = cv2.imencode('.png', np.ascontiguousarray(image))[1].tobytes()
        with open(osp.join(folder, f'{key}_{role}.png'), 'wb') as handle:
            handle.write(add_png_text(data, text) if role == 'ambient' and text else data)
    return folder


RAW_TEXT = {'Comment': ' '.join(f'{v:.10g}' for v in CAMERA_MATRIX.ravel()), 'Description': '17'}


def _srgb(linear):
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear**(1 / 2.4) - 0.055)


def test_raw_camera_pair_is_mapped_to_srgb_after_the_degradation(tmp_path):
    folder = _write_raw_pair(str(tmp_path / 'raw'), RAW_TEXT)
    dataset = FlashLowLightDataset(_train_opt(folder, crop_size=32, dim_range=[20, 20], **NOISE_FREE))
    sample = dataset[(0, 0)]
    expected_gt = _srgb(CAMERA_TO_SRGB_BY_HAND @ AMBIENT_CAMERA)
    expected_flash = _srgb(CAMERA_TO_SRGB_BY_HAND @ (AMBIENT_CAMERA / 20 + FLASH_ONLY_CAMERA))
    expected_lq = _srgb(CAMERA_TO_SRGB_BY_HAND @ AMBIENT_CAMERA / 20)
    for name, expected in (('gt', expected_gt), ('flash', expected_flash), ('lq', expected_lq)):
        np.testing.assert_allclose(sample[name].numpy().reshape(3, -1).T, np.tile(expected, (32 * 32, 1)), atol=2e-5,
                                   err_msg=name)
    # the same pixels read as linear sRGB are different (the colour data matters)
    linear = FlashLowLightDataset(_train_opt(folder, crop_size=32, dim_range=[20, 20], raw_colour_space='linear_srgb',
                                             **NOISE_FREE))[(0, 0)]
    np.testing.assert_allclose(linear['gt'][:, 0, 0].numpy(), _srgb(AMBIENT_CAMERA), atol=2e-5)
    assert not torch.allclose(linear['gt'], sample['gt'], atol=0.01)


def test_raw_pair_from_an_srgb_camera_equals_the_linear_srgb_path(tmp_path):
    """Colour data saying camera RGB = linear sRGB (XYZ -> sRGB, D65): the camera path changes nothing."""
    from fcdfn_plugin.data.faid_io import XYZ_TO_LINEAR_SRGB
    text = {'Comment': ' '.join(f'{v:.12g}' for v in XYZ_TO_LINEAR_SRGB.ravel()), 'Description': '21'}
    folder = _write_raw_pair(str(tmp_path / 'raw'), text, size=(72, 88))
    camera = FlashLowLightDataset(_train_opt(folder))
    linear = FlashLowLightDataset(_train_opt(folder, raw_colour_space='linear_srgb'))
    for item in [(0, 0), (3, 0)]:
        a, b = camera[item], linear[item]
        for name in ('lq', 'flash', 'gt'):
            np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), atol=1e-5)
        assert a['params'] == b['params']


def test_raw_pair_without_colour_data_names_the_file_and_the_option(tmp_path):
    folder = _write_raw_pair(str(tmp_path / 'raw'), None)
    dataset = FlashLowLightDataset(_train_opt(folder, crop_size=32))
    with pytest.raises(ValueError, match=r'Toys_000_ambient.png: 16-bit image without its colour matrix.*'
                                         r'raw_colour_space: linear_srgb'):
        dataset[(0, 0)]
    FlashLowLightDataset(_train_opt(folder, crop_size=32, raw_colour_space='linear_srgb'))[(0, 0)]  # declared: fine


def test_decoded_cache_gives_the_same_samples_and_decodes_each_image_once(pair_folder, monkeypatch):
    from fcdfn_plugin.data import flash_dataset
    decoded = []
    real_decode = flash_dataset.decode_image
    monkeypatch.setattr(flash_dataset, 'decode_image', lambda buffer, name: decoded.append(name) or
                        real_decode(buffer, name))
    cached = FlashLowLightDataset(_train_opt(pair_folder))
    uncached = FlashLowLightDataset(_train_opt(pair_folder, decoded_cache_mb=0))
    items = [(epoch, index) for epoch in range(3) for index in range(3)]
    for item in items:
        a, b = cached[item], uncached[item]
        for name in ('lq', 'flash', 'gt'):
            assert torch.equal(a[name], b[name]), (item, name)
    assert len(decoded) == 6 + 2 * len(items)  # cached: 3 pairs decoded once; uncached: every read
    with pytest.raises(ValueError, match='read-only'):  # a cached array cannot be changed by a caller
        next(iter(cached.decoded_cache.entries.values()))[0, 0, 0] = 1


def test_decoded_cache_drops_the_least_recently_used_within_its_size():
    from fcdfn_plugin.data.flash_dataset import DecodedImageCache
    cache = DecodedImageCache(max_bytes=250)
    for key in 'abc':
        cache.put(key, np.zeros(100, np.uint8))
        assert cache.bytes <= 250
    assert cache.get('a') is None and cache.get('b') is not None  # 'a' dropped; 'b' now the most recent
    cache.put('d', np.zeros(100, np.uint8))
    assert sorted(cache.entries) == ['b', 'd'] and cache.bytes == 200
    cache.put('huge', np.zeros(300, np.uint8))  # larger than the whole cache: not kept, nothing dropped
    assert sorted(cache.entries) == ['b', 'd']
