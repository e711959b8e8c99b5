"""The degradation model (SPEC.md Sec. 2): known answers and statistical properties."""
import numpy as np
import pytest

from fcdfn_plugin.data import degradation as D


def test_srgb_known_values_and_round_trip():
    # Known answers of IEC 61966-2-1: the linear segment's end, mid grey, the end points.
    assert D.srgb_to_linear(np.float32(0.04045)) == pytest.approx(0.04045 / 12.92, rel=1e-5)
    assert D.srgb_to_linear(np.float32(0.5)) == pytest.approx(0.2140411, rel=1e-5)
    assert D.linear_to_srgb(np.float32(0.18)) == pytest.approx(0.4613561, rel=1e-5)
    assert D.linear_to_srgb(np.float32(1.0)) == pytest.approx(1.0, abs=1e-6)
    values = np.linspace(0, 1, 100001, dtype=np.float32)
    np.testing.assert_allclose(D.linear_to_srgb(D.srgb_to_linear(values)), values, atol=2e-6)
    np.testing.assert_allclose(D.srgb_to_linear(D.linear_to_srgb(values)), values, atol=2e-6)
    assert np.all(np.diff(D.linear_to_srgb(values)) >= 0)  # monotone, no jump at the junction
    assert D.linear_to_srgb(np.float32(-0.1)) == 0.0  # negative values clamp, never NaN


@pytest.mark.parametrize('level', [0.01, 0.2, 0.7])
def test_noise_variance_matches_model_on_flat_patch(level):
    sigma_read, sigma_shot = 4e-3, 0.04
    flat = np.full((512, 512, 3), level, np.float32)
    noisy = D.add_read_shot_noise(flat, sigma_read, sigma_shot, np.random.default_rng(1))
    expected = sigma_read**2 + sigma_shot**2 * level
    residual = noisy.astype(np.float64) - level
    assert residual.var() == pytest.approx(expected, rel=0.02)
    assert abs(residual.mean()) < 4 * np.sqrt(expected / residual.size)  # zero-mean


def test_sampled_values_stay_in_range_and_follow_the_law():
    rng = np.random.default_rng(0)
    uniform = np.array([D.sample_in_range(rng, (25, 50), 'uniform') for _ in range(20000)])
    log_uniform = np.array([D.sample_in_range(rng, (1e-2, 10**-1.3), 'log_uniform') for _ in range(20000)])
    assert uniform.min() >= 25 and uniform.max() <= 50
    assert uniform.mean() == pytest.approx(37.5, rel=0.01)
    assert log_uniform.min() >= 1e-2 and log_uniform.max() <= 10**-1.3
    # log-uniform: the log is uniform, so its mean is the mid-point of the log range.
    assert np.log10(log_uniform).mean() == pytest.approx(-1.65, abs=0.01)
    with pytest.raises(ValueError, match='gaussian'):
        D.sample_in_range(rng, (1, 2), 'gaussian')
    with pytest.raises(ValueError, match='range'):
        D.sample_in_range(rng, (2, 1))


def _smooth_pair(size, rng):
    ambient = rng.uniform(0.05, 0.9, (size, size, 3)).astype(np.float32)
    flash_only = rng.uniform(0.05, 0.9, (size, size, 3)).astype(np.float32)
    return ambient, flash_only


NOISE_FREE = dict(sigma_read_range=(1e-12, 1e-12), sigma_shot_range=(1e-12, 1e-12))


def _law(**options):
    return D.DegradationLaw.from_options(options)


def test_dimming_factor_in_range_and_applied():
    ambient, flash_only = _smooth_pair(40, np.random.default_rng(0))
    for seed in range(20):
        lq, flash, gt, params = D.degrade_window(ambient, flash_only, 4, np.random.default_rng(seed),
                                                 _law(dim_range=(25, 50), homography_strength=0, **NOISE_FREE))
        assert 25 <= params['dim_factor'] <= 50
        centre = ambient[4:-4, 4:-4]
        np.testing.assert_allclose(D.srgb_to_linear(lq) * params['dim_factor'], centre, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(D.srgb_to_linear(gt), centre, atol=1e-5)
        # Flash image = dimmed ambient + flash-only; with zero warp strength, pixel-aligned.
        np.testing.assert_allclose(D.srgb_to_linear(flash),
                                   np.clip(centre / params['dim_factor'] + flash_only[4:-4, 4:-4], 0, 1), atol=1e-5)


def test_zero_strength_warp_is_identity_and_integer_shift_is_a_shift():
    window = np.random.default_rng(2).uniform(size=(50, 60, 3)).astype(np.float32)
    margin, height, width = 5, 40, 50
    identity = D.homography_from_offsets(height, width, margin, np.zeros((4, 2)))
    np.testing.assert_array_equal(D.warp_crop(window, identity, height, width), window[5:45, 5:55])
    # All corners moved by (+3, -2) pixels: a pure translation, known exactly.
    shift = D.homography_from_offsets(height, width, margin, np.tile([3.0, -2.0], (4, 1)))
    np.testing.assert_allclose(D.warp_crop(window, shift, height, width), window[3:43, 8:58], atol=1e-5)


def test_random_warp_moves_pixels_but_leaves_no_empty_border():
    rng = np.random.default_rng(3)
    window = rng.uniform(0.5, 1.0, (64 + 2 * 8, 64 + 2 * 8, 3)).astype(np.float32)
    for _ in range(20):
        offsets = D.sample_corner_offsets(rng, 8)
        assert np.abs(offsets).max() <= 8
        warped = D.warp_crop(window, D.homography_from_offsets(64, 64, 8, offsets), 64, 64)
        assert warped.min() >= 0.5  # every output pixel sampled from inside the window


def test_same_generator_seed_gives_identical_sample_and_noise_is_fresh_otherwise():
    ambient, flash_only = _smooth_pair(48, np.random.default_rng(0))
    first = D.degrade_window(ambient, flash_only, 6, np.random.default_rng([7, 1, 2]))
    again = D.degrade_window(ambient, flash_only, 6, np.random.default_rng([7, 1, 2]))
    other = D.degrade_window(ambient, flash_only, 6, np.random.default_rng([7, 1, 3]))
    for a, b in zip(first[:3], again[:3]):
        np.testing.assert_array_equal(a, b)
    assert first[3] == again[3]
    assert not np.array_equal(first[0], other[0])
    assert first[0].dtype == np.float32 and first[0].shape == (36, 36, 3)
    assert all(0.0 <= img.min() and img.max() <= 1.0 for img in first[:3])
    assert all(isinstance(v, float) for v in first[3].values())


def test_both_flash_noise_orders_run_and_unknown_values_are_rejected():
    ambient, flash_only = _smooth_pair(48, np.random.default_rng(0))
    for order in D.FLASH_NOISE_ORDERS:
        D.degrade_window(ambient, flash_only, 6, np.random.default_rng(0), _law(flash_noise_order=order))
    with pytest.raises(ValueError, match='flash_noise_order'):
        _law(flash_noise_order='sideways')
    with pytest.raises(ValueError, match='noise_sampling'):
        _law(noise_sampling='normal')


# ------------------------------------------------------------------ the law (one place for options)
def test_law_defaults_are_the_paper_and_presets_set_each_quantity():
    law = D.DegradationLaw.from_options({})
    assert law == D.DegradationLaw()
    assert (law.dim_range, law.sigma_read_range, law.sigma_shot_range) == ((25, 50), (1e-3, 1e-2), (1e-2, 10**-1.3))
    assert (law.dim_sampling, law.sigma_read_sampling, law.sigma_shot_sampling) == ('uniform', ) * 3
    assert law.homography_strength == 8 and law.flash_gain == 1 and law.flash_noise_order == 'before_warp'
    deepfnf = _law(noise_sampling='deepfnf')
    assert (deepfnf.dim_sampling, deepfnf.sigma_read_sampling, deepfnf.sigma_shot_sampling) == ('log_uniform', ) * 3
    # a per-quantity key overrides the preset; the older spellings still work
    mixed = _law(noise_sampling='deepfnf', dim_sampling='uniform')
    assert (mixed.dim_sampling, mixed.sigma_read_sampling) == ('uniform', 'log_uniform')
    assert _law(noise_sampling='uniform') == law and _law(noise_sampling='log_uniform') == deepfnf
    # round trip through plain options (what split.json records)
    assert D.DegradationLaw.from_options(mixed.to_options()) == mixed
    assert _law(homography_strength=3).margin() == 3 and _law(homography_strength=2.2).margin() == 3


@pytest.mark.parametrize('option, value', [('dim_sampling', 'gaussian'), ('sigma_shot_sampling', 'log'),
                                           ('sigma_read_range', [0, 1]), ('homography_strength', -1),
                                           ('flash_gain', 'bright'), ('dim_range', [50])])
def test_law_rejects_bad_values_naming_the_option(option, value):
    with pytest.raises(ValueError, match=option):
        _law(**{option: value})


def _uniform_cdf(values, low, high):
    return (values - low) / (high - low)


@pytest.mark.parametrize('preset', ['paper', 'deepfnf'])
def test_each_quantity_follows_its_law(preset):
    """2000 draws: each quantity's CDF matches its law (KS distance), and the other law is rejected."""
    law = _law(noise_sampling=preset)
    rng = np.random.default_rng(11)
    draws = [law.sample_parameters(rng) for _ in range(2000)]
    for name, value_range, sampling in (('dim_factor', law.dim_range, law.dim_sampling),
                                        ('sigma_read', law.sigma_read_range, law.sigma_read_sampling),
                                        ('sigma_shot', law.sigma_shot_range, law.sigma_shot_sampling)):
        values = np.sort([d[name] for d in draws])
        low, high = value_range
        assert low <= values[0] and values[-1] <= high
        empirical = np.arange(1, len(values) + 1) / len(values)
        uniform = _uniform_cdf(values, low, high)
        log_uniform = _uniform_cdf(np.log(values), np.log(low), np.log(high))
        expected, other = (uniform, log_uniform) if sampling == 'uniform' else (log_uniform, uniform)
        # KS critical value at alpha = 0.001 for n = 2000 is 1.95 / sqrt(n) = 0.044
        assert np.abs(empirical - expected).max() < 0.044, name
        assert np.abs(empirical - other).max() > 0.044, name  # the test can tell the laws apart


def test_homography_law_is_in_pixels_whatever_the_crop():
    """The corner offsets are U(-s, s) px for any output size: their largest value approaches s."""
    law = _law(homography_strength=5, **NOISE_FREE)
    rng = np.random.default_rng(4)
    for size in (24, 96):
        window = np.full((size + 2 * law.margin(), size + 2 * law.margin(), 3), 0.5, np.float32)
        offsets = [D.degrade_window(window, window, law.margin(), rng, law)[3] for _ in range(100)]
        assert {p['homography_strength'] for p in offsets} == {5.0}
        largest = np.array([p['homography_max_offset'] for p in offsets])
        assert largest.max() <= 5 and largest.max() > 4.95
        assert largest.mean() == pytest.approx(5 * 8 / 9, abs=0.15)  # max of 8 |U(-s, s)|: mean 8s/9
    # less room than s: the warp shrinks to the room, never a border
    window = np.full((30, 30, 3), 0.5, np.float32)
    assert D.degrade_window(window, window, 2, rng, law)[3]['homography_strength'] == 2.0


def test_colour_matrix_maps_after_dimming_and_noise():
    """Dimming and noise act in the input (camera) space; the matrix maps the result, then clip + sRGB."""
    matrix = np.array([[0.9, 0.1, 0.0], [0.05, 0.7, 0.0], [0.0, 0.2, 0.5]], np.float32)
    ambient = np.broadcast_to(np.float32([0.6, 0.4, 0.5]), (200, 200, 3)).copy()
    flash_only = np.broadcast_to(np.float32([0.2, 0.3, 0.1]), (200, 200, 3)).copy()
    law = _law(dim_range=(10, 10), sigma_read_range=(0.002, 0.002), sigma_shot_range=(0.01, 0.01),
               homography_strength=0)
    lq, flash, gt, _ = D.degrade_window(ambient, flash_only, 0, np.random.default_rng(0), law, colour_matrix=matrix)
    np.testing.assert_allclose(D.srgb_to_linear(gt[0, 0]), matrix @ ambient[0, 0], atol=1e-6)
    mapped_noisy = D.srgb_to_linear(lq).reshape(-1, 3).astype(np.float64)  # values stay well inside (0, 1)
    assert mapped_noisy.min() > 0
    camera_noisy = np.linalg.solve(matrix.astype(np.float64), mapped_noisy.T).T
    low = ambient[0, 0] / 10
    np.testing.assert_allclose(camera_noisy.mean(0), low, atol=1e-4)
    # noise independent per camera channel, variance of the camera-space model
    np.testing.assert_allclose(camera_noisy.var(0), 0.002**2 + 0.01**2 * low, rtol=0.03)
    assert abs(np.corrcoef(camera_noisy.T)[0, 1]) < 0.02
    np.testing.assert_allclose(D.srgb_to_linear(flash).reshape(-1, 3).mean(0), matrix @ (low + flash_only[0, 0]),
                               atol=2e-3)
    # None is the identity (8-bit / linear-sRGB input): bit-identical to no matrix at all
    plain = D.degrade_window(ambient, flash_only, 0, np.random.default_rng(0), law)
    identity = D.degrade_window(ambient, flash_only, 0, np.random.default_rng(0), law, colour_matrix=np.eye(3))
    np.testing.assert_array_equal(plain[0], identity[0])
