"""tools/make_toy_faid.py and the rendered toy scenes: layout, determinism, light physics."""
import os
from os import path as osp

import cv2
import numpy as np
import pytest

from fcdfn_plugin.data import toy_scenes
from fcdfn_plugin.data.faid_io import pair_by_name

from conftest import REPO_ROOT as REPO
from conftest import load_tool

make_toy_faid = load_tool('make_toy_faid')


def _generate(out, *extra):
    make_toy_faid.main(['--out', str(out), '--count', '10', '--size', '48', '--workers', '1', *extra])
    return sorted(os.listdir(out))


def test_layout_and_same_seed_same_bytes(tmp_path):
    names = _generate(tmp_path / 'a', '--photo-fraction', '0.5')
    pairs, unpaired = pair_by_name({osp.splitext(n)[0]: n for n in names})
    assert len(pairs) == 10 and not unpaired and len(names) == 20
    assert sum(key.startswith('Photo-') for key in pairs) == 5 and sum(key.startswith('Leaves_') for key in pairs) == 5
    assert all('.' not in osp.splitext(n)[0] for n in names)
    image = cv2.imread(str(tmp_path / 'a' / names[0]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    assert _generate(tmp_path / 'b', '--photo-fraction', '0.5') == names
    for name in names:
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes(), name
    _generate(tmp_path / 'c', '--photo-fraction', '0.5', '--seed', '1')
    assert (tmp_path / 'c' / names[0]).read_bytes() != (tmp_path / 'a' / names[0]).read_bytes()


def test_sixteen_bit_linear_output_and_refusal(tmp_path):
    names = _generate(tmp_path / 'a', '--bits', '16')
    eight = _generate(tmp_path / 'b')
    assert names == eight
    linear = cv2.imread(str(tmp_path / 'a' / names[0]), cv2.IMREAD_UNCHANGED)
    srgb = cv2.imread(str(tmp_path / 'b' / names[0]), cv2.IMREAD_UNCHANGED)
    assert linear.dtype == np.uint16
    # same scene: the 8-bit file is the sRGB encoding of the 16-bit linear one
    from fcdfn_plugin.data.degradation import linear_to_srgb
    np.testing.assert_allclose(linear_to_srgb(linear / 65535.0) * 255, srgb, atol=0.51)
    with pytest.raises(SystemExit, match='--overwrite'):
        _generate(tmp_path / 'a')


def test_only_photos_shipped_in_the_wheel_are_used():
    photos, _ = make_toy_faid.shipped_photos()
    assert photos, 'scikit-image ships none of the expected photos'
    assert set(photos) <= set(make_toy_faid.PHOTOS)
    if 'motorcycle' in photos:
        assert photos['motorcycle'][1] is not None  # real depth from the stereo disparity


def test_flash_falls_off_with_inverse_square_distance():
    # Two fronto-parallel half-planes, depth 1 and 2, same albedo, flash at the camera:
    # near the optical axis flash-only irradiance differs by (2/1)^2 = 4; ambient does not.
    size = 64
    rays = toy_scenes.camera_rays(size, size)
    depth = np.where(np.arange(size)[None, :] < size // 2, 1.0, 2.0).astype(np.float32) * np.ones((size, 1), np.float32)
    normals = np.broadcast_to(np.float32([0, 0, -1]), (size, size, 3))
    albedo = np.full((size, size, 3), 0.5, np.float32)
    ambient, flash_only = toy_scenes.render_lighting(albedo, rays * depth[..., None], normals, np.random.default_rng(0))
    near, far = flash_only[size // 2, size // 2 - 2], flash_only[size // 2, size // 2 + 2]
    # P = z d with d = (x, y, 1): cos = 1/|d| and r^2 = z^2 |d|^2, so E = 1 / (z^2 |d|^3).
    expected = 4 * (np.sum(rays[32, 34]**2) / np.sum(rays[32, 30]**2))**1.5
    assert near[1] / far[1] == pytest.approx(expected, rel=1e-3)
    assert 3.9 < near[1] / far[1] < 4.1
    assert abs(ambient[32, 30, 1] / ambient[32, 34, 1] - 1) < 0.2


def test_dead_leaves_scene_has_cast_shadows_and_is_not_a_copy():
    ambient, flash_only = toy_scenes.render_dead_leaves(np.random.default_rng(3), 96)
    assert ambient.shape == flash_only.shape == (96, 96, 3) and ambient.dtype == np.float32
    assert 0 <= ambient.min() and ambient.max() <= 1 and 0 <= flash_only.min() and flash_only.max() <= 1
    shadowed = (flash_only.max(axis=-1) == 0) & (ambient.max(axis=-1) > 0)
    assert 0 < shadowed.mean() < 0.5
    assert np.corrcoef(ambient.ravel(), flash_only.ravel())[0, 1] < 0.99


def test_photo_scene_with_disparity_depth():
    photos, _ = make_toy_faid.shipped_photos()
    name = 'motorcycle' if 'motorcycle' in photos else sorted(photos)[0]
    photo, disparity = photos[name]
    ambient, flash_only = toy_scenes.render_photo(photo, np.random.default_rng(0), 64, disparity=disparity)
    assert ambient.shape == flash_only.shape == (64, 64, 3)
    assert np.isfinite(flash_only).all() and flash_only.max() > 0.1
