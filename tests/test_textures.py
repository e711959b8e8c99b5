"""fcdfn_plugin/data/textures.py: seeded albedo textures, each kind doing what it claims."""
from os import path as osp

import cv2
import numpy as np
import pytest

from fcdfn_plugin.data import textures
from fcdfn_plugin.data.degradation import linear_to_srgb

from conftest import load_tool


def _spectrum_slope(image):
    """Least-squares slope of log radial power vs log frequency, 4 cycles to 80 % of Nyquist (a periodic image)."""
    height, width = image.shape
    power = np.abs(np.fft.fft2(image - image.mean()))**2
    radius = np.rint(np.hypot(np.fft.fftfreq(height)[:, None] * height, np.fft.fftfreq(width)[None, :] * width))
    radius = radius.astype(int).ravel()
    radial = np.bincount(radius, power.ravel()) / np.maximum(np.bincount(radius), 1)
    frequency = np.arange(len(radial))
    band = (frequency >= 4) & (frequency <= 0.8 * min(height, width) / 2)
    return np.polyfit(np.log(frequency[band]), np.log(radial[band]), 1)[0]


def _high_frequency_share(image, cutoff=0.15):
    """Share of the power (DC excluded) above ``cutoff`` cycles per pixel."""
    power = np.abs(np.fft.fft2(image - image.mean()))**2
    frequency = np.hypot(np.fft.fftfreq(image.shape[0])[:, None], np.fft.fftfreq(image.shape[1])[None, :])
    return power[frequency > cutoff].sum() / max(power.sum(), 1e-20)


@pytest.mark.parametrize('kind', textures.TEXTURE_KINDS)
def test_every_kind_is_seeded_float32_albedo(kind):
    first = textures.random_texture(np.random.default_rng([5, 1]), 40, 56, kind)
    again = textures.random_texture(np.random.default_rng([5, 1]), 40, 56, kind)
    other = textures.random_texture(np.random.default_rng([5, 2]), 40, 56, kind)
    assert first.shape == (40, 56, 3) and first.dtype == np.float32
    assert np.isfinite(first).all() and first.min() >= 0 and first.max() <= 1
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_random_texture_draws_every_kind_and_rejects_bad_weights():
    rng = np.random.default_rng(0)
    assert np.ptp(textures.random_texture(rng, 8, 8, weights={'flat': 1.0}), axis=(0, 1)).max() == 0
    with pytest.raises(ValueError, match='unknown texture kind'):
        textures.random_texture(rng, 8, 8, kind='marble')
    with pytest.raises(ValueError, match='unknown texture kinds'):
        textures.random_texture(rng, 8, 8, weights={'flat': 1.0, 'marble': 1.0})
    with pytest.raises(ValueError, match='positive sum'):
        textures.random_texture(rng, 8, 8, weights={'flat': 0.0})
    assert set(textures.TEXTURE_WEIGHTS) == set(textures.TEXTURE_KINDS)
    assert set(textures.WALL_TEXTURE_WEIGHTS) <= set(textures.TEXTURE_KINDS)


@pytest.mark.parametrize('slope', [-1.5, -2.0, -3.0])
def test_spectral_noise_has_the_requested_power_slope(slope):
    fitted = [_spectrum_slope(textures.spectral_noise(np.random.default_rng(seed), 128, 128, slope))
              for seed in range(3)]
    assert np.allclose(fitted, slope, atol=0.15), fitted
    field = textures.spectral_noise(np.random.default_rng(0), 64, 96, slope)
    assert field.shape == (64, 96) and abs(field.mean()) < 1e-5 and field.std() == pytest.approx(1, abs=1e-4)


def test_spectral_texture_keeps_its_slope_in_every_channel():
    for slope in (-2.0, -3.0):
        albedo = textures.texture_spectral(np.random.default_rng(3), 128, 128, slope=slope)
        assert _spectrum_slope(textures.luminance(albedo)) == pytest.approx(slope, abs=0.25)
    low, high = textures.SPECTRAL_SLOPE_RANGE
    fitted = [_spectrum_slope(textures.luminance(textures.texture_spectral(np.random.default_rng(seed), 128, 128)))
              for seed in range(8)]
    assert all(low - 0.25 <= value <= high + 0.25 for value in fitted), fitted
    assert np.ptp(fitted) > 0.3  # the slope is drawn, not fixed


@pytest.mark.parametrize('coverage_function', [textures.text_coverage, textures.line_coverage])
def test_text_and_lines_are_thin_strokes(coverage_function):
    for seed in range(4):
        coverage = coverage_function(np.random.default_rng(seed), 96, 128)
        assert coverage.dtype == np.float32 and 0 <= coverage.min() and coverage.max() <= 1
        ink = (coverage > 0.5).astype(np.uint8)
        assert 0.01 < ink.mean() < 0.7
        # strokes are at most ~4 px wide: two 3x3 erosions leave (almost) nothing
        eroded = cv2.erode(ink, np.ones((3, 3), np.uint8), iterations=2)
        assert eroded.sum() <= 0.01 * ink.sum()


@pytest.mark.parametrize('font', textures._HERSHEY_FONTS)
def test_glyph_scale_gives_the_glyph_height(font):
    for glyph_height in textures.GLYPH_HEIGHT_RANGE:
        canvas = np.zeros((64, 320), np.uint8)
        cv2.putText(canvas, 'HEXT', (4, 40), font, textures.glyph_scale(font, glyph_height), 255, 1, cv2.LINE_AA)
        rows = np.nonzero((canvas > 0).any(axis=1))[0]  # antialiased ink may add a partial row
        assert rows[-1] - rows[0] + 1 == pytest.approx(glyph_height, abs=1.5)


@pytest.mark.parametrize('kind', ['text', 'lines', 'weave'])
def test_fine_kinds_carry_high_frequency_energy(kind):
    smooth = [_high_frequency_share(textures.luminance(textures.random_texture(np.random.default_rng(seed), 96, 96,
                                                                               'blotches'))) for seed in range(4)]
    fine = [_high_frequency_share(textures.luminance(textures.random_texture(np.random.default_rng(seed), 96, 96,
                                                                             kind))) for seed in range(4)]
    assert max(smooth) < 0.05
    assert min(fine) > 0.1, fine


def test_contrasting_colour_differs_in_srgb_luminance():
    rng = np.random.default_rng(0)
    for _ in range(50):
        reference = textures.random_colour(rng)
        difference = rng.uniform(0.1, 0.6)
        colour = textures.contrasting_colour(rng, reference, difference)
        assert colour.dtype == np.float32 and 0 <= colour.min() and colour.max() <= 1
        gap = abs(float(linear_to_srgb(textures.luminance(colour)))
                  - float(linear_to_srgb(textures.luminance(reference))))
        # the colour is clipped to [0, 1] after scaling, which may only shrink very saturated colours
        assert gap >= min(difference, 0.2) - 0.02


def test_wall_texture_is_light_and_muted():
    for seed in range(6):
        wall = textures.wall_texture(np.random.default_rng(seed), 48, 64)
        level = float(linear_to_srgb(np.float32(textures.luminance(wall).mean())))
        low, high = textures.WALL_LEVEL_RANGE
        assert low - 0.08 <= level <= high + 0.02  # the level is set on the mean linear luminance
        mean = wall.reshape(-1, 3).mean(0)
        assert mean.max() / max(mean.min(), 1e-6) < 2.5


def test_texture_photographs_come_from_the_installed_wheels_and_not_from_photo_scenes():
    import matplotlib
    import skimage.data
    paths = textures.photo_texture_paths()
    assert len(paths) >= 8, 'most texture photographs should be shipped'
    folders = {osp.dirname(skimage.data.__file__),
               osp.join(osp.dirname(matplotlib.__file__), 'mpl-data', 'sample_data')}
    assert all(osp.dirname(path) in folders and osp.isfile(path) for path in paths.values())
    # The photographs cut into whole Photo-<name> scenes are split into train and test by photograph:
    # none of them (nor the motorcycle's other stereo view) may be a texture.
    make_toy_faid = load_tool('make_toy_faid')
    scene_files = {file for pair in make_toy_faid.PHOTOS.values() for file in pair if file}
    texture_files = set(textures.SKIMAGE_TEXTURE_FILES) | set(textures.MATPLOTLIB_TEXTURE_FILES)
    assert not texture_files & scene_files
    assert not any(file.startswith(tuple(make_toy_faid.PHOTOS)) for file in texture_files)

    loaded = textures.load_photo_textures()
    assert set(loaded) == set(paths)
    assert loaded['brick'].ndim == 2 and loaded['ihc'].ndim == 3  # grey stays grey, colour stays colour
    for name, image in loaded.items():
        assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1 and max(image.shape[:2]) <= 768
        albedo = textures.texture_photo(np.random.default_rng(0), 32, 48, name=name)
        assert albedo.shape == (32, 48, 3) and 0 <= albedo.min() and albedo.max() <= 1
    assert textures.luminance(textures.texture_photo(np.random.default_rng(1), 64, 64, name='brick')).std() > 0.005


@pytest.mark.parametrize('module', ['textures', 'toy_scenes'])
def test_scene_modules_import_neither_basicsr_nor_torch(repo_root, module):
    import ast
    with open(osp.join(repo_root, 'fcdfn_plugin', 'data', f'{module}.py'), encoding='utf-8') as handle:
        tree = ast.parse(handle.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split('.')[0])
    assert imported and not imported & {'basicsr', 'torch', 'torchvision'}, imported
