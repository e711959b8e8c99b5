"""tools/flops.py on an options file written to a tmp dir."""
import importlib.util
import os

import torch

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
