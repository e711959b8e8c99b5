"""The offline LPIPS metric: weight lookup, caching, BasicSR calling convention, colour order.

The "VGG-16 weights" are a randomly initialised torchvision vgg16 saved to a temporary file (the
ImageNet weights cannot be downloaded here); the linear layers are the ones the lpips package ships.
That checks the wiring, not the calibrated values.
"""
import os

import numpy as np
import pytest
import torch
import torchvision
from basicsr.metrics import calculate_metric
from basicsr.utils.registry import METRIC_REGISTRY

from fcdfn_plugin.metrics import calculate_fcdfn_lpips, find_vgg16_weights, get_lpips_vgg
from fcdfn_plugin.metrics.lpips_metric import VGG16_WEIGHTS_ENV, VGG16_WEIGHTS_FILE


@pytest.fixture(scope='module')
def vgg_weights(tmp_path_factory):
    """A random torchvision VGG-16 state dict (convolutional part only: the classifier is 400 MB)."""
    torch.manual_seed(0)
    features = torchvision.models.vgg16().features.state_dict()
    path = tmp_path_factory.mktemp('vgg') / 'random_vgg16.pth'
    torch.save({f'features.{key}': value for key, value in features.items()}, path)
    return str(path)


@pytest.fixture(autouse=True)
def no_ambient_weights(monkeypatch, tmp_path):
    """Neither the user's environment variable nor their hub cache may leak into a test."""
    monkeypatch.delenv(VGG16_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))


def _scene(seed=0, size=64):
    """A smooth colour scene with edges (uint8, HWC, BGR like BasicSR's tensor2img)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    channels = [0.5 + 0.4 * np.sin(2 * np.pi * (f1 * xs + f2 * ys) + phase)
                for f1, f2, phase in rng.uniform(0.5, 3, size=(3, 3))]
    image = np.stack(channels, axis=-1)
    image[size // 4:size // 2, size // 3:2 * size // 3] *= 0.4  # a dark box: edges
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _noisy(image, sigma, seed=1):
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).round().astype(np.uint8)


def test_registered():
    assert METRIC_REGISTRY.get('calculate_fcdfn_lpips') is calculate_fcdfn_lpips


def test_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        calculate_fcdfn_lpips(_scene(), _scene())
    message = str(error.value)
    expected_location = os.path.join(str(tmp_path / 'hub'), 'checkpoints', VGG16_WEIGHTS_FILE)
    assert expected_location in message and VGG16_WEIGHTS_ENV in message and 'val.metrics' in message


def test_named_but_absent_file_is_an_error(monkeypatch, tmp_path):
    absent = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match='vgg_weights option'):
        find_vgg16_weights(absent)
    monkeypatch.setenv(VGG16_WEIGHTS_ENV, absent)
    with pytest.raises(FileNotFoundError, match=VGG16_WEIGHTS_ENV):
        find_vgg16_weights()


def test_lookup_order(monkeypatch, tmp_path, vgg_weights):
    hub_file = tmp_path / 'hub' / 'checkpoints' / VGG16_WEIGHTS_FILE
    hub_file.parent.mkdir(parents=True)
    os.symlink(vgg_weights, hub_file)
    assert find_vgg16_weights() == str(hub_file)
    other = tmp_path / 'env.pth'
    os.symlink(vgg_weights, other)
    monkeypatch.setenv(VGG16_WEIGHTS_ENV, str(other))
    assert find_vgg16_weights() == str(other)
    assert find_vgg16_weights(vgg_weights) == vgg_weights


def test_not_a_vgg_state_dict(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'conv.weight': torch.zeros(1)}, path)
    with pytest.raises(ValueError, match='not a torchvision VGG-16 state dict'):
        calculate_fcdfn_lpips(_scene(), _scene(), vgg_weights=str(path))


def test_weights_are_loaded_and_network_cached(monkeypatch, tmp_path, vgg_weights):
    network = get_lpips_vgg(vgg_weights)
    saved = torch.load(vgg_weights)
    backbone = network.net.state_dict()
    assert torch.equal(backbone['slice1.0.weight'].cpu(), saved['features.0.weight'])
    assert torch.equal(backbone['slice5.28.bias'].cpu(), saved['features.28.bias'])
    assert not any(p.requires_grad for p in network.parameters())
    # Same file (even through a link found via the hub cache): the same object, no rebuild.
    hub_file = tmp_path / 'hub' / 'checkpoints' / VGG16_WEIGHTS_FILE
    hub_file.parent.mkdir(parents=True)
    os.symlink(vgg_weights, hub_file)
    assert get_lpips_vgg(find_vgg16_weights()) is network


def test_identical_is_zero_and_distance_grows_with_noise(vgg_weights):
    scene = _scene()
    assert calculate_fcdfn_lpips(scene, scene.copy(), vgg_weights=vgg_weights) == pytest.approx(0, abs=1e-7)
    distances = [calculate_fcdfn_lpips(scene, _noisy(scene, sigma), vgg_weights=vgg_weights) for sigma in (3, 15, 50)]
    assert 0 < distances[0] < distances[1] < distances[2], distances


def test_colour_order_and_basicsr_calling_convention(vgg_weights):
    bgr, bgr2 = _scene(0), _noisy(_scene(0), 20)
    options = {'type': 'calculate_fcdfn_lpips', 'crop_border': 0, 'better': 'lower', 'vgg_weights': vgg_weights}
    value = calculate_metric({'img': bgr, 'img2': bgr2}, options)
    # Reference: the lpips network called directly on RGB tensors in [-1, 1].
    network = get_lpips_vgg(vgg_weights)

    def to_tensor(image_bgr):
        rgb = image_bgr[..., ::-1].astype(np.float32) / 255.
        return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None] * 2 - 1

    with torch.no_grad():
        reference = network(to_tensor(bgr), to_tensor(bgr2)).item()
    assert value == pytest.approx(reference, rel=1e-5)
    rgb_value = calculate_fcdfn_lpips(bgr[..., ::-1], bgr2[..., ::-1], channel_order='RGB', vgg_weights=vgg_weights)
    assert rgb_value == pytest.approx(value, rel=1e-5)
    # The order matters to the network, so a swapped conversion would be caught above.
    swapped = calculate_fcdfn_lpips(bgr, bgr2, channel_order='RGB', vgg_weights=vgg_weights)
    assert abs(swapped - value) > 1e-4 * value
    # CHW input and a crop give the same as cropping by hand.
    chw = calculate_fcdfn_lpips(bgr.transpose(2, 0, 1), bgr2.transpose(2, 0, 1), input_order='CHW', crop_border=4,
                                vgg_weights=vgg_weights)
    cropped = calculate_fcdfn_lpips(bgr[4:-4, 4:-4], bgr2[4:-4, 4:-4], vgg_weights=vgg_weights)
    assert chw == pytest.approx(cropped, rel=1e-6)


def test_bad_options(vgg_weights):
    scene = _scene()
    with pytest.raises(ValueError, match='test_y_channel'):
        calculate_fcdfn_lpips(scene, scene, test_y_channel=True, vgg_weights=vgg_weights)
    with pytest.raises(ValueError, match='shapes are different'):
        calculate_fcdfn_lpips(scene, scene[1:], vgg_weights=vgg_weights)
    with pytest.raises(ValueError, match='better: lower'):
        calculate_fcdfn_lpips(scene, scene, better='higher', vgg_weights=vgg_weights)
    with pytest.raises(TypeError):
        calculate_fcdfn_lpips(scene, scene, vgg_weight=vgg_weights)  # a misspelt option is not ignored
