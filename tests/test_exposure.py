"""The exposure contract (fcdfn_plugin.data.exposure): estimator, band mapping, options, EXIF ratio."""
import numpy as np
import pytest
import torch

from fcdfn_plugin.data import degradation
from fcdfn_plugin.data.exposure import (ExposureContract, estimate_exposure_ratio, exif_relative_exposure,
                                        linear_to_srgb, mean_luminance, scale_exposure, srgb_to_linear)


def textured_linear(seed=0, size=96):
    """A (1,3,H,W) linear image with smooth structure and a luminance around 0.15."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.02, 0.4, size=(1, 3, 6, 6)).astype(np.float32)
    image = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(size, size), mode='bilinear',
                                            align_corners=False)
    return image.clamp(0, 1)


def test_srgb_curves_match_the_numpy_ones():
    values = torch.linspace(0, 1, 101)
    assert torch.allclose(srgb_to_linear(values), torch.from_numpy(degradation.srgb_to_linear(values.numpy())),
                          atol=1e-6)
    assert torch.allclose(linear_to_srgb(values), torch.from_numpy(degradation.linear_to_srgb(values.numpy())),
                          atol=1e-6)


def test_mean_luminance_of_a_constant_image_is_its_luma():
    image = torch.tensor([0.2, 0.4, 0.1]).view(1, 3, 1, 1).expand(2, 3, 40, 30)
    expected = 0.2126 * 0.2 + 0.7152 * 0.4 + 0.0722 * 0.1
    assert torch.allclose(mean_luminance(image), torch.full((2,), expected), rtol=1e-5)


def test_mean_luminance_undoes_the_clipping_of_noise_at_zero():
    # a very dark photo: mean 0.002, read noise 0.01, clipped at 0 as a camera does
    torch.manual_seed(0)
    truth = 0.002
    noisy = (truth + 0.01 * torch.randn(1, 3, 256, 256)).clamp(min=0)
    plain = float(noisy.mean())
    estimate = float(mean_luminance(noisy))
    assert plain > 2 * truth  # what the clipped pixels do to a plain mean
    assert abs(estimate - truth) < 0.25 * truth


@pytest.mark.parametrize('factor', [0.1, 0.3, 1.0, 3.0, 10.0])
def test_estimated_ratio_scales_inversely_with_the_photo(factor):
    linear = textured_linear() / 30
    base = estimate_exposure_ratio(linear_to_srgb(linear))
    scaled = estimate_exposure_ratio(linear_to_srgb(linear * factor))
    assert torch.allclose(scaled * factor, base, rtol=2e-3)


def test_estimated_ratio_of_a_synthesised_photo_is_close_to_the_truth():
    ambient = textured_linear(seed=3, size=128)
    reference = float(mean_luminance(ambient))
    for dim in (2.0, 35.0, 150.0):
        rng = np.random.default_rng(1)
        noisy = degradation.add_read_shot_noise(ambient[0].permute(1, 2, 0).numpy() / dim, 3e-3, 3e-2, rng)
        lq = linear_to_srgb(torch.from_numpy(np.clip(noisy, 0, 1)).permute(2, 0, 1)[None])
        ratio = float(estimate_exposure_ratio(lq, reference))
        assert dim / 1.25 < ratio < dim * 1.25, (dim, ratio)


def test_contract_leaves_band_photos_as_they_are_and_maps_others_to_its_edges():
    contract = ExposureContract(band=(25, 50))
    lq = linear_to_srgb(textured_linear() / 30)
    out, gains = contract.apply(lq, known=30)
    assert out is lq and gains.tolist() == [1.0]
    assert contract.gains(lq, known=5).tolist() == pytest.approx([0.2])
    assert contract.gains(lq, known=200).tolist() == pytest.approx([4.0])
    assert contract.gains(lq, known=torch.tensor([1.0, 40.0])).tolist() == pytest.approx([0.04, 1.0])


def test_contract_maps_a_scaled_photo_to_the_same_input():
    """Out of the band on both sides of a factor k, the network sees the same photo (bound measured)."""
    contract = ExposureContract(band=(25, 50))
    # a dim room (estimated ratio about 3) and a very dark one (about 300), each scaled by k
    for divisor, factors in ((4, (0.25, 0.5, 2.0, 3.0)), (400, (0.1, 0.5, 2.0, 4.0))):
        linear = textured_linear(seed=2) / divisor
        base, _ = contract.apply(linear_to_srgb(linear))
        for factor in factors:
            ratio = float(estimate_exposure_ratio(linear_to_srgb(linear * factor)))
            assert not 25 <= ratio <= 50, (divisor, factor, ratio)
            scaled, _ = contract.apply(linear_to_srgb(linear * factor))
            assert (scaled - base).abs().max() < 2e-3, (divisor, factor)


def test_mode_none_is_the_identity():
    lq = torch.rand(2, 3, 8, 8)
    out, gains = ExposureContract(mode='none').apply(lq)
    assert out is lq and gains.tolist() == [1.0, 1.0]


def test_scale_exposure_scales_linear_values_and_clips():
    srgb = linear_to_srgb(torch.tensor([0.01, 0.2, 0.6]).view(1, 3, 1, 1))
    out = srgb_to_linear(scale_exposure(srgb, torch.tensor([2.0])))
    assert torch.allclose(out.flatten(), torch.tensor([0.02, 0.4, 1.0]), atol=1e-5)


def test_options():
    assert ExposureContract.from_options({}).mode == 'none'
    assert ExposureContract.from_options({'exposure': {'mode': None}}).mode == 'none'  # `mode: ~`, --force_yml
    opt = {'datasets': {'train': {'dim_range': [2, 200]}}, 'exposure': {'mode': 'auto'}}
    assert ExposureContract.from_options(opt).band == (2.0, 200.0)
    opt['exposure']['band'] = [25, 50]
    contract = ExposureContract.from_options(opt)
    assert contract.band == (25.0, 50.0)
    assert ExposureContract.from_options({'exposure': contract.to_options()}) == contract
    with pytest.raises(ValueError, match='unknown key'):
        ExposureContract.from_options({'exposure': {'gain': 2}})
    with pytest.raises(ValueError, match='mode'):
        ExposureContract.from_options({'exposure': {'mode': 'fixed'}})
    with pytest.raises(ValueError, match='band'):
        ExposureContract.from_options({'exposure': {'band': [50, 25]}})
    with pytest.raises(ValueError, match='reference_luminance'):
        ExposureContract.from_options({'exposure': {'reference_luminance': 2}})


def test_exif_relative_exposure():
    assert exif_relative_exposure({'exposure_time': 0.1, 'iso': 800}, {'exposure_time': 0.01, 'iso': 100}) == \
        pytest.approx(80.0)
    assert exif_relative_exposure({'exposure_time': 0.1, 'iso': None}, {'exposure_time': 0.01, 'iso': 100}) is None
    assert exif_relative_exposure(None, {'exposure_time': 0.01, 'iso': 100}) is None
    assert exif_relative_exposure({'exposure_time': 0, 'iso': 100}, {'exposure_time': 0.01, 'iso': 100}) is None


def test_auto_exposed_law_gains_the_noisy_photo_back():
    law = degradation.DegradationLaw(dim_range=(40, 40), auto_exposure_probability=1.0, homography_strength=0)
    ambient = np.full((16, 16, 3), 0.2, np.float32)
    lq, _, gt, params = degradation.degrade_window(ambient, ambient, 0, np.random.default_rng(0), law=law)
    assert params['auto_exposed'] == 1.0 and params['exposure_ratio'] == 1.0 and params['dim_factor'] == 40
    assert abs(float(degradation.srgb_to_linear(lq).mean()) - 0.2) < 0.05  # as bright as the ambient, noisier
    assert float(degradation.srgb_to_linear(lq).std()) > 0.05


def test_paper_law_keeps_its_random_stream():
    """A law without auto-exposed samples draws nothing more: fixed test sets stay bit-identical."""
    ambient = np.random.default_rng(0).uniform(0, 1, (20, 20, 3)).astype(np.float32)
    first = degradation.degrade_window(ambient, ambient, 2, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    second = degradation.degrade_window(ambient, ambient, 2, rng,
                                        law=degradation.DegradationLaw(auto_exposure_probability=0.0))
    for a, b in zip(first[:3], second[:3]):
        assert np.array_equal(a, b)
    assert first[3]['exposure_ratio'] == first[3]['dim_factor'] and first[3]['auto_exposed'] == 0.0


def test_wide_dim_law_mixes_the_band_with_any_exposure():
    law = degradation.DegradationLaw.from_options({'wide_dim_probability': 0.5, 'wide_dim_range': [2, 200]})
    rng = np.random.default_rng(0)
    dims = np.array([law.sample_parameters(rng)['dim_factor'] for _ in range(2000)])
    in_band = (dims >= 25) & (dims <= 50)
    assert 0.5 < in_band.mean() < 0.65  # half from the band, plus the wide draws that land in it
    assert dims.min() < 2.5 and dims.max() > 150
    with pytest.raises(ValueError, match='wide_dim_probability'):
        degradation.DegradationLaw(wide_dim_probability=1.5)
    assert degradation.DegradationLaw.from_options(law.to_options()) == law


def test_test_options_use_the_contract_their_model_was_trained_with():
    import os

    import yaml
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pairs = [('fcdfn_demo.yml', 'test_fcdfn_demo.yml'), ('fcdfn.yml', 'test_fcdfn.yml')]
    for train_name, test_name in pairs:
        train, test = (yaml.safe_load(open(os.path.join(root, 'options', name))) for name in (train_name, test_name))
        assert ExposureContract.from_options(train) == ExposureContract.from_options(test), test_name
        assert train['network_g'] == test['network_g'], test_name


def test_enhance_says_and_applies_the_contract(tmp_path, capsys):
    from conftest import load_tool
    from test_photo_io import write_jpeg
    enhance = load_tool('enhance')
    low, flash = tmp_path / 'low.jpg', tmp_path / 'flash.jpg'
    write_jpeg(low, exposure_time=0.25, iso=800, height=32, width=32)  # 20x the flash photo's exposure
    write_jpeg(flash, exposure_time=0.01, iso=1000, height=32, width=32)
    enhance.main(['--lowlight', str(low), '--flash', str(flash), '--out', str(tmp_path / 'a.png')])
    out = capsys.readouterr().out
    assert "EXIF says the no-flash photo had 20x the flash photo's exposure" in out
    assert 'estimated from the photo' in out and (tmp_path / 'a.png').is_file()
    enhance.main(['--lowlight', str(low), '--flash', str(flash), '--out', str(tmp_path / 'b.png'),
                  '--exposure-ratio', '40'])
    out = capsys.readouterr().out
    assert '1/40 of a normal exposure (given)' in out and 'inside it, used as it is' in out and 'EXIF' not in out
    enhance.main(['--lowlight', str(low), '--flash', str(flash), '--out', str(tmp_path / 'c.png'),
                  '--exposure', 'none'])
    assert 'used as it is (--exposure none)' in capsys.readouterr().out
    for bad in (['--exposure-ratio', '0'], ['--exposure-ratio', '40', '--exposure', 'none']):
        with pytest.raises(SystemExit):
            enhance.main(['--lowlight', str(low), '--flash', str(flash), '--out', str(tmp_path / 'd.png')] + bad)
        assert 'exposure' in capsys.readouterr().err
