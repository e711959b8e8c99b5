"""Turn a training checkpoint into self-describing shippable weights (``params`` + ``network_g`` + ``meta``).

    python tools/export_weights.py --weights experiments/FCDFN_small/models/net_g_latest.pth \\
        --out weights/fcdfn_small.pth [-opt options/fcdfn_small.yml] [--note "..."]

The options are found as ``tools/enhance.py`` finds them (``-opt``, else the checkpoint's own
``network_g``, else the options file of its experiment folder). The export stores float32 weights
and the network options, so ``tools/enhance.py --weights <out>`` needs nothing else; ``meta`` records
the source checkpoint's file name, the options file's name and the iteration. Never overwrites.
"""
import argparse
import re
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import fcdfn_plugin  # noqa: E402,F401  (first: makes BasicSR 1.4.2 importable)
from fcdfn_plugin.utils.inference import InferenceSetupError, export_checkpoint, options_beside_weights  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--weights', required=True, help='net_g_*.pth written by tools/train.py')
    parser.add_argument('--out', required=True, help='file to write (refused if it exists)')
    parser.add_argument('-opt', default=None, help='options file the weights were trained with')
    parser.add_argument('--note', default='', help='free text stored in meta["note"]')
    args = parser.parse_args(argv)
    match = re.search(r'net_g_(\d+)\.pth$', osp.basename(args.weights))
    try:
        options = args.opt or options_beside_weights(args.weights)
        meta = {'source': osp.basename(args.weights), 'options': osp.basename(options) if options else None,
                'iteration': int(match.group(1)) if match else None, 'note': args.note}
        export_checkpoint(args.weights, args.out, args.opt, meta)
    except (InferenceSetupError, FileNotFoundError) as err:
        raise SystemExit(f'error: {err}')
    print(f'Wrote {args.out} ({meta})', flush=True)


if __name__ == '__main__':
    main()
