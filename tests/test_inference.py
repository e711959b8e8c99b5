"""Finding a checkpoint's options and loading it (fcdfn_plugin.utils.inference)."""
import os

import pytest
import torch
import yaml

from fcdfn_plugin.utils.inference import (InferenceSetupError, build_trained_network, network_options,
                                          options_beside_weights)

TINY = {'type': 'DeepFnFArch', 'base_channels': 4, 'depth': 2, 'num_basis': 2, 'kernel_size': 3,
        'coarse_kernel_size': 3}


def _experiment(tmp_path, network=TINY, options_name='run.yml'):
    """experiments/<name>/{<options>.yml, models/net_g_1.pth} as tools/train.py lays them out."""
    from basicsr.archs import build_network
    exp = tmp_path / 'experiments' / 'run'
    (exp / 'models').mkdir(parents=True)
    with open(exp / options_name, 'w') as f:
        f.write('# GENERATE TIME: ...\n')
        yaml.safe_dump({'name': 'run', 'network_g': network}, f)
    torch.manual_seed(0)
    net = build_network(dict(network))
    weights = exp / 'models' / 'net_g_1.pth'
    torch.save({'params': net.state_dict()}, weights)
    return exp, weights, net


def test_options_found_in_the_experiment_folder(tmp_path):
    exp, weights, net = _experiment(tmp_path)
    assert options_beside_weights(weights) == str(exp / 'run.yml')
    loaded, source = build_trained_network(str(weights))
    assert source == str(exp / 'run.yml')
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert not loaded.training


def test_explicit_options_win_and_embedded_network_is_used(tmp_path):
    exp, weights, net = _experiment(tmp_path)
    other = tmp_path / 'other.yml'
    other.write_text(yaml.safe_dump({'network_g': dict(TINY, base_channels=8)}))
    with pytest.raises(InferenceSetupError, match='do not fit'):
        build_trained_network(str(weights), str(other))
    embedded = tmp_path / 'shipped.pth'
    torch.save({'params': net.state_dict(), 'network_g': TINY}, embedded)
    network, source = network_options(str(embedded))
    assert network == TINY and 'embedded' in source


def test_ambiguous_or_missing_options_are_clear_errors(tmp_path):
    exp, weights, _ = _experiment(tmp_path)
    (exp / 'second.yml').write_text(yaml.safe_dump({'network_g': dict(TINY, base_channels=8)}))
    with pytest.raises(InferenceSetupError, match='several options files'):
        network_options(str(weights))
    os.remove(exp / 'second.yml')
    (exp / 'same.yml').write_text(yaml.safe_dump({'network_g': TINY}))  # identical network: fine
    assert network_options(str(weights))[0] == TINY

    lonely = tmp_path / 'lonely' / 'w.pth'
    lonely.parent.mkdir()
    lonely.write_bytes(weights.read_bytes())
    with pytest.raises(InferenceSetupError, match='no options'):
        network_options(str(lonely))
    with pytest.raises(InferenceSetupError, match='does not exist'):
        network_options(str(tmp_path / 'absent.pth'))
    with pytest.raises(InferenceSetupError, match='does not exist'):
        network_options(str(weights), str(tmp_path / 'absent.yml'))


def test_exposure_contract_travels_with_the_weights(tmp_path):
    from fcdfn_plugin.utils.inference import export_checkpoint, exposure_contract
    exp, weights, _ = _experiment(tmp_path)
    contract, _ = exposure_contract(str(weights))
    assert contract.mode == 'none'  # options without an exposure section: the paper's input
    with open(exp / 'run.yml', 'w') as f:
        yaml.safe_dump({'name': 'run', 'network_g': TINY, 'exposure': {'mode': 'auto', 'band': [20, 40]}}, f)
    contract, source = exposure_contract(str(weights))
    assert (contract.mode, contract.band, source) == ('auto', (20.0, 40.0), str(exp / 'run.yml'))
    exported = tmp_path / 'out.pth'
    export_checkpoint(str(weights), str(exported))
    os.remove(exp / 'run.yml')
    contract, source = exposure_contract(str(exported))
    assert (contract.mode, contract.band) == ('auto', (20.0, 40.0)) and 'embedded' in source
    with open(exp / 'bad.yml', 'w') as f:
        yaml.safe_dump({'network_g': TINY, 'exposure': {'mode': 'sometimes'}}, f)
    with pytest.raises(InferenceSetupError, match='mode'):
        exposure_contract(str(weights))


def test_weights_exported_before_the_contract_take_their_input_as_it_is(tmp_path):
    from fcdfn_plugin.utils.inference import exposure_contract
    exp, weights, net = _experiment(tmp_path)
    old = exp / 'models' / 'old_export.pth'
    torch.save({'params': net.state_dict(), 'network_g': TINY}, old)  # network_g inside, no exposure
    with open(exp / 'run.yml', 'w') as f:  # an unrelated options file nearby must not be taken
        yaml.safe_dump({'name': 'run', 'network_g': TINY, 'exposure': {'mode': 'auto'}}, f)
    assert exposure_contract(str(old))[0].mode == 'none'
