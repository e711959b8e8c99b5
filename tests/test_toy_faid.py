"""tools/make_toy_faid.py and the rendered toy scenes: layout, determinism, light physics."""
import os
import sys
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


def test_output_does_not_depend_on_the_worker_count(tmp_path, monkeypatch):
    one = _generate(tmp_path / 'one', '--count', '4', '--size', '32')
    # worker processes unpickle the task function by module name: make the loaded tool importable
    monkeypatch.syspath_prepend(osp.join(REPO, 'tools'))
    monkeypatch.setitem(sys.modules, 'make_toy_faid', make_toy_faid)
    two = _generate(tmp_path / 'two', '--count', '4', '--size', '32', '--workers', '2')
    assert one == two
    for name in one:
        assert (tmp_path / 'one' / name).read_bytes() == (tmp_path / 'two' / name).read_bytes(), name


def test_sixteen_bit_linear_output_and_refusal(tmp_path):
    names = _generate(tmp_path / 'a', '--bits', '16')
    eight = _generate(tmp_path / 'b')
    assert names == eight
    linear = cv2.imread(str(tmp_path / 'a' / names[0]), cv2.IMREAD_UNCHANGED)
    srgb = cv2.imread(str(tmp_path / 'b' / names[0]), cv2.IMREAD_UNCHANGED)
    assert linear.dtype == np.uint16
    # same scene: the 8-bit file is the sRGB encoding of the 16-bit linear one
    from fcdfn_plugin.data.degradation import linear_to_srgb
    # 8-bit rounding (0.5) plus half a 16-bit step through the steepest part of the sRGB curve (12.92 x)
    np.testing.assert_allclose(linear_to_srgb(linear / 65535.0) * 255, srgb,
                               atol=0.5 + 0.5 * 12.92 * 255 / 65535 + 1e-3)
    with pytest.raises(SystemExit, match='--overwrite'):
        _generate(tmp_path / 'a')


def test_only_photos_shipped_in_the_wheel_are_used():
    photos, _ = make_toy_faid.shipped_photos()
    assert photos, 'scikit-image ships none of the expected photos'
    assert set(photos) <= set(make_toy_faid.PHOTOS)
    if 'motorcycle' in photos:
        assert photos['motorcycle'][1] is not None  # real depth from the stereo disparity


def _fronto_parallel(size, depth):
    """Points, normals and a grey albedo of fronto-parallel surfaces at ``depth`` (H, W) in front of a size^2 camera."""
    rays = toy_scenes.camera_rays(size, size)
    normals = np.broadcast_to(np.float32([0, 0, -1]), (size, size, 3)).copy()
    return rays * np.float32(depth)[..., None], normals, np.full((size, size, 3), 0.5, np.float32)


def test_flash_falls_off_with_inverse_square_distance():
    # Two fronto-parallel half-planes, depth 1 and 2, same albedo, flash at the camera: near the
    # optical axis the flash-only irradiance differs by (2/1)^2 = 4.
    size = 64
    depth = np.where(np.arange(size)[None, :] < size // 2, 1.0, 2.0) * np.ones((size, 1))
    points, normals, albedo = _fronto_parallel(size, depth)
    rays = toy_scenes.camera_rays(size, size)
    # P = z d with d = (x, y, 1): cos = 1/|d| and r^2 = z^2 |d|^2, so E = 1 / (z^2 |d|^3).
    expected = 4 * (np.sum(rays[32, 34]**2) / np.sum(rays[32, 30]**2))**1.5
    radiance = toy_scenes.surface_radiance(albedo, points, normals, (0.0, 0.0, 0.0))
    assert radiance[32, 30, 1] / radiance[32, 34, 1] == pytest.approx(expected, rel=1e-4)
    assert radiance[32, 30, 1] == pytest.approx(0.5 / np.sum(rays[32, 30]**2)**1.5, rel=1e-4)
    # the rendered (coloured, exposed) flash-only image keeps the ratio; exposure and colour are global
    _, flash_only = toy_scenes.render_lighting(albedo, points, normals, np.random.default_rng(0), vignetting=0.0)
    near, far = flash_only[32, 30], flash_only[32, 34]
    assert near.max() < 1
    np.testing.assert_allclose(near / far, expected, rtol=1e-3)


def test_flash_follows_lambert_cosine():
    # Same points (a fronto-parallel plane at depth 1), normals facing the camera on the left half
    # and tilted by 60 degrees about the vertical axis on the right: irradiance ratio = n . l.
    size = 64
    points, normals, albedo = _fronto_parallel(size, np.ones((size, size)))
    tilt = np.radians(60)
    normals[:, size // 2:] = [np.sin(tilt), 0, -np.cos(tilt)]
    radiance = toy_scenes.surface_radiance(albedo, points, normals, (0.0, 0.0, 0.0))
    x = (33 - (size - 1) / 2) / size  # columns 30 and 33 are symmetric about the axis: same distance
    assert radiance[32, 33, 0] / radiance[32, 30, 0] == pytest.approx(np.cos(tilt) - np.sin(tilt) * x, rel=1e-4)
    # a surface facing away from the light gets nothing
    normals[:, size // 2:] = [1, 0, 0]
    assert toy_scenes.surface_radiance(albedo, points, normals, (-0.5, 0.0, 0.0))[:, size // 2:].max() == 0


def test_planar_occluder_shadow_is_its_silhouette_shifted_away_from_the_flash():
    # A square at depth 1 in front of a wall at depth 2, flash b = 0.25 to the right of the lens:
    # the shadow on the wall is the silhouette shifted by f b (1/1 - 1/2) = 8 px to the left.
    size, pad = 64, 16
    camera = toy_scenes.Camera(size, size)
    mask = np.zeros((size + 2 * pad, size + 2 * pad), np.uint8)
    mask[pad + 20:pad + 40, pad + 24:pad + 44] = 1
    silhouette = mask[pad:-pad, pad:-pad].astype(bool)
    occluder = toy_scenes.PlanarOccluder(np.float32([0, 0, -1]), np.float32([0, 0, 1]), mask, pad, (20, 39, 24, 43),
                                         1.0)
    points, normals, albedo = _fronto_parallel(size, np.where(silhouette, 1.0, 2.0))
    flash = (0.25, 0.0, 0.0)
    shadow = toy_scenes.cast_shadow(points, flash, [occluder], camera)
    expected = np.zeros_like(silhouette)
    expected[20:40, 16:36] = True
    expected &= ~silhouette  # the square does not shadow itself
    np.testing.assert_array_equal(shadow, expected)
    # subsampled points (soft lamp shadows) agree with the full-resolution answer
    np.testing.assert_array_equal(toy_scenes.cast_shadow(points[::4, ::4], flash, [occluder], camera, stride=4),
                                  expected[::4, ::4])
    ambient, flash_only = toy_scenes.render_lighting(albedo, points, normals, np.random.default_rng(0),
                                                     flash_position=flash, flash_shadow=shadow)
    assert flash_only[shadow].max() == 0 and flash_only[~shadow].min() > 0
    assert ambient[shadow].min() > 0  # the ambient light is not the flash's


def test_sphere_occluder_shadow_matches_the_segment_distance():
    size = 48
    camera = toy_scenes.Camera(size, size)
    centre, radius, flash = np.float32([0.05, 0, 1]), 0.15, np.float32([0.3, 0.1, 0])
    sphere = toy_scenes.SphereOccluder(centre, radius, (0, size - 1, 0, size - 1), 0.85)
    points, _, _ = _fronto_parallel(size, np.full((size, size), 2.0))
    shadow = toy_scenes.cast_shadow(points, flash, [sphere], camera)
    # reference: the closest point of each segment P -> L to the centre is within the radius
    segment = flash - points
    t = np.clip(np.sum((centre - points) * segment, axis=-1) / np.sum(segment**2, axis=-1), 0, 1)
    distance = np.linalg.norm(points + t[..., None] * segment - centre, axis=-1)
    decided = np.abs(distance - radius) > 1e-4
    assert 0.05 < shadow.mean() < 0.5
    np.testing.assert_array_equal(shadow[decided], (distance < radius)[decided])


def test_sphere_surface_geometry():
    rays = toy_scenes.camera_rays(40, 40)
    centre, radius = np.float32([0.1, -0.05, 2]), 0.5
    depth, normals, hit = toy_scenes.sphere_surface(rays, centre, radius)
    points = rays[hit] * depth[hit][:, None]
    np.testing.assert_allclose(np.linalg.norm(points - centre, axis=-1), radius, rtol=1e-4)
    np.testing.assert_allclose(normals[hit], (points - centre) / radius, atol=1e-5)
    assert np.all(np.sum(normals[hit] * points, axis=-1) < 0)  # the visible side faces the camera
    assert depth[hit].min() == pytest.approx(centre[2] - radius, abs=0.01)


def test_flash_highlight_sits_where_the_normal_bisects_flash_and_camera():
    size = 96
    centre, radius = np.float32([0, 0, 2]), 0.6
    depth, normals, hit = toy_scenes.sphere_surface(toy_scenes.camera_rays(size, size), centre, radius)
    points = toy_scenes.camera_rays(size, size) * np.where(hit, depth, 50.0)[..., None]
    albedo = np.where(hit[..., None], np.full(3, 0.3, np.float32), np.zeros(3, np.float32))
    flash = np.float32([0.8, 0, 0])  # far beside the lens, so highlight and diffuse peak separate
    matte = toy_scenes.surface_radiance(albedo, points, normals, flash)[..., 1]
    glossy = toy_scenes.surface_radiance(albedo, points, normals, flash, specular=np.float32(0.5),
                                         shininess=400.0)[..., 1]

    def unit(vector):
        return vector / np.linalg.norm(vector)

    peak = np.unravel_index(np.argmax(np.where(hit, glossy, 0)), glossy.shape)
    to_flash, to_camera = unit(flash - points[peak]), unit(-points[peak])
    half = unit(to_flash + to_camera)
    assert np.degrees(np.arccos(np.clip(normals[peak] @ half, -1, 1))) < 2.5
    diffuse_peak = np.unravel_index(np.argmax(np.where(hit, matte, 0)), matte.shape)
    assert np.hypot(*np.subtract(peak, diffuse_peak)) >= 3  # the highlight is not the diffuse maximum
    assert glossy[peak] > 5 * matte[peak]
    np.testing.assert_array_equal(glossy[~hit], 0)


def test_planckian_colours():
    # CIE illuminant A is a black body at 2856 K: x, y = 0.44757, 0.40745 (Kim et al.'s spline is within 1e-3)
    assert toy_scenes.planckian_xy(2856) == pytest.approx((0.44757, 0.40745), abs=1e-3)
    colours = np.stack([toy_scenes.planckian_rgb(t) for t in (2500, 3200, 4000, 5500, 6500, 10000)])
    assert np.all(colours[:, 1] == 1) and np.all(colours > 0)
    assert np.all(np.diff(colours[:, 0]) < 0) and np.all(np.diff(colours[:, 2]) > 0)  # hotter: bluer
    np.testing.assert_allclose(toy_scenes.planckian_rgb(6504), 1, atol=0.07)  # close to D65, the camera's white
    with pytest.raises(ValueError, match='outside'):
        toy_scenes.planckian_xy(1000)
    draws = [toy_scenes.draw_cct(np.random.default_rng(seed), toy_scenes.LAMP_CCT_RANGE) for seed in range(200)]
    assert min(draws) >= toy_scenes.LAMP_CCT_RANGE[0] and max(draws) <= toy_scenes.LAMP_CCT_RANGE[1]
    # uniform in mired: the median temperature is the reciprocal of the mean mired, below the mean of the ends
    assert np.median(draws) < np.mean(toy_scenes.LAMP_CCT_RANGE)


def test_expose_levels_and_clipping_cap():
    rng = np.random.default_rng(0)
    linear = np.repeat(rng.uniform(0, 1, (64, 64, 1)).astype(np.float32)**6, 3, axis=-1)  # grey: mean = each channel
    exposed = toy_scenes.expose(linear, np.random.default_rng(1), (0.95, 0.95), (0.0, 0.0))
    assert exposed.dtype == np.float32 and exposed.max() <= 1
    # no pixel may clip: the brightest pixel lands at 1 and the 97th percentile stays below the requested level
    assert exposed.max() == pytest.approx(1) and np.percentile(exposed.mean(-1), 97) < 0.9
    exposed = toy_scenes.expose(linear, np.random.default_rng(1), (0.95, 0.95), (0.2, 0.2))
    assert np.percentile(exposed.mean(-1), 97) == pytest.approx(0.95, rel=1e-4)  # a loose cap: the level rules
    assert 0 < np.mean(exposed.max(-1) >= 1) <= 0.03
    heavy = toy_scenes.expose(linear * 0 + np.float32([1, 0.2, 0.2]), np.random.default_rng(1), (0.9, 0.9),
                              (0.01, 0.01))
    assert heavy.max() <= 1 and np.isfinite(heavy).all()


def test_ambient_occlusion_and_vignette():
    depth = np.full((48, 48), 2.0, np.float32)
    depth[16:32, 16:32] = 1.0  # a near square on a wall
    occlusion = toy_scenes.ambient_occlusion(depth, sigma=3, strength=3)
    assert occlusion.max() <= 1 and np.all(occlusion[16:32, 16:32] == 1) and occlusion[0, 0] == pytest.approx(1)
    assert occlusion[24, 14] < 0.9 < occlusion[24, 4]  # the wall darkens next to the square
    lens = toy_scenes.vignette(33, 33, 0.3)
    assert lens[16, 16] == 1 and lens[0, 0] == pytest.approx(0.7) and lens.min() == pytest.approx(0.7)


def test_dead_leaves_scene_is_seeded_and_has_cast_shadows():
    ambient, flash_only = toy_scenes.render_dead_leaves(np.random.default_rng(3), 96)
    assert ambient.shape == flash_only.shape == (96, 96, 3)
    assert ambient.dtype == flash_only.dtype == np.float32
    assert 0 <= ambient.min() and ambient.max() <= 1 and 0 <= flash_only.min() and flash_only.max() <= 1
    again = toy_scenes.render_dead_leaves(np.random.default_rng(3), 96)
    np.testing.assert_array_equal(again[0], ambient)
    np.testing.assert_array_equal(again[1], flash_only)
    assert not np.array_equal(toy_scenes.render_dead_leaves(np.random.default_rng(4), 96)[1], flash_only)
    shadowed = (flash_only.max(axis=-1) == 0) & (ambient.max(axis=-1) > 0)
    assert 0 < shadowed.mean() < 0.5
    assert np.corrcoef(ambient.ravel(), flash_only.ravel())[0, 1] < 0.99


def test_ambient_is_warmer_than_the_flash_on_average():
    ratios = []
    for seed in range(12):
        ambient, flash_only = toy_scenes.render_dead_leaves(np.random.default_rng([7, seed]), 48)
        a, f = ambient.reshape(-1, 3).mean(0), flash_only.reshape(-1, 3).mean(0)
        ratios.append([(a[0] / a[1]) / (f[0] / f[1]), (a[2] / a[1]) / (f[2] / f[1])])
    red, blue = np.exp(np.mean(np.log(ratios), axis=0))
    assert red > 1.04 and blue < 0.96  # warmer: more red, less blue relative to green


def test_photo_scene_with_disparity_depth():
    photos, _ = make_toy_faid.shipped_photos()
    name = 'motorcycle' if 'motorcycle' in photos else sorted(photos)[0]
    photo, disparity = photos[name]
    ambient, flash_only = toy_scenes.render_photo(photo, np.random.default_rng(0), 64, disparity=disparity)
    assert ambient.shape == flash_only.shape == (64, 64, 3)
    assert np.isfinite(flash_only).all() and flash_only.max() > 0.1


def test_scene_stats_known_answers_and_folder(tmp_path):
    scene_stats = load_tool('scene_stats')
    ambient = np.broadcast_to(np.float32([0.4, 0.2, 0.1]), (32, 32, 3)).copy()
    flash_only = np.broadcast_to(np.float32([0.3, 0.3, 0.3]), (32, 32, 3)).copy()
    flash_only[:8] = 0  # a dark quarter
    values = dict(zip(scene_stats.STATISTICS, scene_stats.pair_statistics(ambient, flash_only)))
    assert values['ambient R/G'] == pytest.approx(2) and values['ambient B/G'] == pytest.approx(0.5)
    assert values['flash R/G'] == pytest.approx(1) and values['ambient mean/p97'] == pytest.approx(1)
    assert values['ambient/flash R/G'] == pytest.approx(2) and values['ambient/flash B/G'] == pytest.approx(0.5)
    assert values['ambient clipped'] == 0 and values['flash clipped'] == 0
    assert values['flash mean/p97'] == pytest.approx(0.75) and values['flash dark fraction'] == pytest.approx(0.25)
    assert values['ambient sRGB |Laplacian|'] == pytest.approx(0, abs=1e-6)
    from fcdfn_plugin.data.textures import spectral_noise
    slope = scene_stats.spectrum_slope(spectral_noise(np.random.default_rng(0), 128, 128, -2.5))
    assert slope == pytest.approx(-2.5, abs=0.3)
    _generate(tmp_path / 'toy', '--count', '3', '--photo-fraction', '0')
    count, rows = scene_stats.folder_statistics(str(tmp_path / 'toy'), limit=2)
    assert count == 2 and rows.shape == (2, len(scene_stats.STATISTICS)) and np.isfinite(rows).all()
    with pytest.raises(SystemExit, match='not a folder'):
        scene_stats.main([str(tmp_path / 'missing')])
