"""tools/flops.py on an options file written to a tmp dir, and on every Table 1 options file."""
import glob
import importlib.util
import os

import pytest
import torch

from conftest import REPO_ROOT

from fcdfn_plugin.archs import DeepFnFArch


def load_tool(repo_root):
    spec = importlib.util.spec_from_file_location('flops_tool', os.path.join(repo_root, 'tools', 'flops.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flops_counts_parameters_and_the_filter_op(repo_root, tmp_path, capsys, monkeypatch):
    tool = load_tool(repo_root)
    options = tmp_path / 'tiny.yml'
    options.write_text('network_g:\n  type: DeepFnFArch\n  base_channels: 4\n  depth: 2\n  num_basis: 4\n'
                       '  kernel_size: 5\n  coarse_kernel_size: 3\n')
    network = tool.load_network_options(str(options))
    params, flops = tool.complexity(network, 32, 40)
    torch.manual_seed(0)
    assert params == sum(p.numel() for p in DeepFnFArch(base_channels=4, depth=2, num_basis=4, kernel_size=5,
                                                        coarse_kernel_size=3).parameters())
    # the two per-pixel filters alone: 32*40 pixels * (25 + 9) taps * (N + C + 1)
    filter_flops = 32 * 40 * (25 + 9) * (4 + 3 + 1)
    monkeypatch.setattr(tool, 'BASIS_FILTER_OP', 'prim::PythonOp.NoSuchOp')
    _, flops_without_filter = tool.complexity(network, 32, 40)
    assert flops - flops_without_filter == filter_flops
    monkeypatch.undo()
    tool.main(['-opt', str(options), '--size', '32', '40'])
    assert 'M parameters' in capsys.readouterr().out
    # filter_impl: fused (CUDA only) is counted as the banded op: the same multiply-adds
    assert tool.complexity(dict(network, filter_impl='fused'), 32, 40) == (params, flops)


def _distinct_networks(paths):
    """The files whose network_g differs from every earlier one (paper and CPU scale often share it)."""
    import yaml
    seen, distinct = [], []
    for path in paths:
        with open(path) as handle:
            network = yaml.safe_load(handle)['network_g']
        if network not in seen:
            seen.append(network)
            distinct.append(path)
    return distinct


TABLE1_OPTIONS = _distinct_networks(sorted(glob.glob(os.path.join(REPO_ROOT, 'options', 'table1', '*.yml'))))


@pytest.mark.parametrize('path', TABLE1_OPTIONS, ids=[os.path.basename(p) for p in TABLE1_OPTIONS])
def test_flops_works_on_every_table1_network(path, capsys):
    """Every arch traces (DSN's inverse pass, FRL's fixed DCT convs, deepFnF's noise-level inputs)."""
    load_tool(REPO_ROOT).main(['-opt', path, '--size', '32', '48'])
    out = capsys.readouterr().out
    params, flops = float(out.split(': ')[1].split(' M parameters')[0]), float(out.split(', ')[1].split(' GFLOPs')[0])
    assert params > 0 and flops > 0, out


def test_flops_counts_a_plain_conv_net_exactly():
    """DJF at 32x48: (target 3x + guide 1x + fusion 3x) multiply-adds per pixel, biases not counted."""
    tool = load_tool(REPO_ROOT)
    _, flops = tool.complexity({'type': 'DJFArch'}, 32, 48)
    target = 81 * 96 + 96 * 48 + 25 * 48
    guide = 81 * 3 * 96 + 96 * 48 + 25 * 48
    fusion = 81 * 2 * 64 + 64 * 32 + 25 * 32
    assert flops == 32 * 48 * (3 * target + guide + 3 * fusion)
