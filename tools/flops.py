"""Parameters and FLOPs of the ``network_g`` of a BasicSR options file (mmengine complexity analysis).

    python tools/flops.py -opt options/fcdfn.yml [--size 224 224]

The arch is built through BasicSR's ARCH_REGISTRY (after ``import fcdfn_plugin``) and fed a
(1,3,H,W) lq and flash (and fixed noise sigmas to a network with ``needs_noise_level``); DSNArch is
counted in its enhancement direction only (training runs both). FLOPs follow mmengine's convention
(one multiply-add = one FLOP). The per-pixel filter is a custom autograd Function, invisible to the
tracer's per-op handles, so it gets its own handle: B*H*W*K^2*(N + C + 1) multiply-adds (build the
kernels, bias, apply them per channel).
"""
import argparse
import inspect
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fcdfn_plugin  # noqa: E402,F401  (patches BasicSR and registers the archs)
import torch  # noqa: E402
import yaml  # noqa: E402
from basicsr.utils.registry import ARCH_REGISTRY  # noqa: E402

from fcdfn_plugin.utils.cli import int_at_least  # noqa: E402

BASIS_FILTER_OP = 'prim::PythonOp._BandedBasisFilter'
MIN_SIZE = 16  # smaller inputs vanish in the encoders' downsampling


def basis_filter_flops(inputs, outputs):
    """mmengine op handle: multiply-adds of one basis_filter call from its traced input shapes."""
    from mmengine.analysis.jit_handles import get_shape
    batch, channels = get_shape(inputs[0])[:2]
    _, num_basis, height, width = get_shape(inputs[1])
    taps = get_shape(inputs[2])[-1]**2
    return batch * height * width * taps * (num_basis + channels + 1)


def load_network_options(path):
    """``network_g`` of an options file, checked against the arch registry; errors exit with one line."""
    from fcdfn_plugin.utils.inference import InferenceSetupError, check_network_options
    if not os.path.isfile(path):
        raise SystemExit(f'error: options file not found: {path}')
    try:
        with open(path) as handle:
            options = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        raise SystemExit(f'error: cannot read options file {path}: {" ".join(str(error).split())}')
    if not isinstance(options, dict) or not isinstance(options.get('network_g'), dict):
        raise SystemExit(f'error: {path}: no network_g mapping')
    network = dict(options['network_g'])
    try:
        check_network_options(network, path)
    except InferenceSetupError as error:
        raise SystemExit(f'error: {error}')
    return network


class _WithNoiseLevel(torch.nn.Module):
    """``net(lq, flash)`` with fixed per-sample sigmas (and exposure ratio), for tracing a network that
    needs them."""

    def __init__(self, net, sigma_read=5e-3, sigma_shot=3e-2, exposure_ratio=30.0):
        super().__init__()
        self.net = net
        self.register_buffer('sigma_read', torch.tensor([sigma_read]))
        self.register_buffer('sigma_shot', torch.tensor([sigma_shot]))
        self.register_buffer('exposure_ratio', torch.tensor([exposure_ratio]))

    def forward(self, lq, flash):
        extra = {'exposure_ratio': self.exposure_ratio} if getattr(self.net, 'needs_exposure_ratio', False) else {}
        return self.net(lq, flash, sigma_read=self.sigma_read, sigma_shot=self.sigma_shot, **extra)


def complexity(network_options, height=224, width=224):
    """(parameters, flops) of the arch described by a ``network_g`` mapping, on one (1,3,H,W) pair.

    Parameters are the trainable ones plus any other ``nn.Parameter`` (fixed filters kept as buffers,
    like DSN's VGG filters and FRL's DCT, are not counted).
    """
    from mmengine.analysis import FlopAnalyzer
    network_options = dict(network_options)
    # counted as the banded op, whose autograd Function the tracer sees as one node: the fused (CUDA) and
    # native (C++) kernels and 'auto' do the same multiply-adds
    arch = ARCH_REGISTRY.get(network_options.pop('type'))
    if 'filter_impl' in inspect.signature(arch).parameters:
        network_options['filter_impl'] = 'banded'
    model = arch(**network_options).eval()
    traced = _WithNoiseLevel(model) if getattr(model, 'needs_noise_level', False) else model  # (official deepFnF)
    inputs = (torch.rand(1, 3, height, width) * 0.2, torch.rand(1, 3, height, width))
    analyzer = FlopAnalyzer(traced, inputs)
    analyzer.set_op_handle(BASIS_FILTER_OP, basis_filter_flops)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
    with torch.no_grad():
        flops = analyzer.total()
    return sum(p.numel() for p in model.parameters()), flops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='BasicSR options YAML with a network_g section')
    parser.add_argument('--size', type=int_at_least(MIN_SIZE), nargs=2, default=(224, 224), metavar=('H', 'W'),
                        help=f'input height and width (at least {MIN_SIZE})')
    args = parser.parse_args(argv)
    network = load_network_options(args.opt)
    try:
        params, flops = complexity(network, *args.size)
    except (TypeError, ValueError, RuntimeError) as error:
        raise SystemExit(f'error: {network["type"]} from {args.opt} cannot run at {args.size[0]}x{args.size[1]} or '
                         f'with these options: {str(error).splitlines()[0]}; try a larger --size or check network_g')
    print(f'{network["type"]} from {args.opt} at {args.size[0]}x{args.size[1]}: '
          f'{params / 1e6:.3f} M parameters, {flops / 1e9:.2f} GFLOPs (multiply-adds)')


if __name__ == '__main__':
    main()
