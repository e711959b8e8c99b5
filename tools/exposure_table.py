"""Score models on real pairs over exposures and misalignments: the exposure contract's table.

    python tools/exposure_table.py --faid-root ../shared/faid_mini --weights weights/fcdfn_small.pth \
        --labels shipped --out exposure_output [--conditions band 1/5 ...] [--crop 384] [--align]
    python tools/exposure_table.py --measure-reference datasets/toy_faid_prepared/train.lmdb
    python tools/exposure_table.py --measure-estimate options/table1/deepfnf_small.yml [--estimate-crops 48 128]

Each condition is the paper's degradation law (SPEC.md Sec. 2) with one change: the no-flash photo
at another exposure (``1/2``: half a normal exposure, ... ``1/200``; ``band``: the paper's 1/25-1/50;
``auto-exposed``: a band photo gained back to normal brightness, noise and clipping included, as a
phone does), or the flash photo misaligned by corner offsets up to ``N`` px (``misaligned N``) in
pixels of the stored image. Every condition is prepared once under ``<out>/data/<condition>`` with
``tools/prepare_faid.py``'s code (all pairs as test pairs, the same centre crop for all, so every
condition scores the same pixels) and reused by later runs.

Each model is scored three ways: ``as is`` (the photo straight into the network), ``contract`` (the
exposure contract of :mod:`fcdfn_plugin.data.exposure`, ratio estimated from the photo: what
``tools/enhance.py`` does) and ``true ratio`` (the contract given the true exposure ratio from
``params.json``: what the estimator could at best give). ``--align`` adds ``contract + align``
(the flash photo pre-aligned, :mod:`fcdfn_plugin.utils.alignment`). The references are the input and
the oracle global gain (plain brightening with the gain that knows the ground truth).

Writes ``exposure_table.md`` / ``.json`` (PSNR / SSIM per condition and method) and
``exposure_table.png`` (PSNR per condition). ``--measure-reference`` prints the mean luminance of
normally exposed ambient images that the contract's estimator compares photos with
(``REFERENCE_LUMINANCE``): the median over a training set's ambient images. ``--measure-estimate``
prints how far the estimated exposure ratio is from the true one on an options file's training
crops, after its contract (what a network that divides by the ratio, as deepFnF, is given).
"""
import argparse
import json
import os
import sys
from os import path as osp

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import fcdfn_plugin  # noqa: E402,F401  (first: makes BasicSR 1.4.2 importable)
from fcdfn_plugin.data.degradation import DegradationLaw  # noqa: E402
from fcdfn_plugin.utils.evaluation import (evaluate_methods, exposure_for, list_test_scenes,  # noqa: E402
                                           network_method, reference_methods, scene_lowlight)
from fcdfn_plugin.utils.inference import InferenceSetupError, build_trained_network, exposure_contract  # noqa: E402
from fcdfn_plugin.utils.report import markdown_table  # noqa: E402

#: Condition name -> the changes to the paper's law (DegradationLaw keys).
CONDITIONS = {
    '1/2': {'dim_range': [2, 2]},
    '1/5': {'dim_range': [5, 5]},
    'band': {},
    '1/100': {'dim_range': [100, 100]},
    '1/200': {'dim_range': [200, 200]},
    'auto-exposed': {'auto_exposure_probability': 1.0},
    'misaligned 16': {'homography_strength': 16},
    'misaligned 32': {'homography_strength': 32},
    'misaligned 64': {'homography_strength': 64},
}


def condition_law(name):
    """The degradation law of a named condition (the paper's law with the condition's changes)."""
    return DegradationLaw.from_options(CONDITIONS[name])


def prepare_condition(faid_root, folder, name, crop, seed):
    """``folder/test`` for one condition (reused when present); returns its test folder."""
    test_dir = osp.join(folder, 'test')
    if not osp.isdir(test_dir):
        import importlib.util
        spec = importlib.util.spec_from_file_location('prepare_faid',
                                                      osp.join(osp.dirname(__file__), 'prepare_faid.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.prepare_faid(faid_root, folder, seed=seed, test_crop=crop, law=condition_law(name), all_test=True,
                            progress=False, log=lambda message: None)
    return test_dir


def model_methods(label, net, weights, device, align=False):
    """``{method label: fn(scene)}``: the network as is, with the contract, with the true exposure ratio
    (the same code as ``tools/evaluate.py --exposure none|auto|true``), and with the flash pre-aligned."""
    tile_opt = {}
    methods = {f'{label} {name}': network_method(net, device, tile_opt, exposure_for(weights, None, choice))
               for name, choice in (('as is', 'none'), ('contract', 'auto'), ('true ratio', 'true'))}
    if align:
        from fcdfn_plugin.utils.alignment import align_flash
        contract = exposure_for(weights, None, 'auto')
        run = network_method(net, device, tile_opt, contract)

        def aligned(scene):
            flash, _ = align_flash(scene_lowlight(scene, contract), scene['flash'])
            return run(dict(scene, flash=flash))
        methods[f'{label} contract + align'] = aligned
    return methods


def estimated_brightening(scene):
    """Plain brightening by the exposure contract's *estimated* ratio (no oracle): the photo's
    linear values times ``d``, so its mean luminance is the reference's."""
    from fcdfn_plugin.data.exposure import estimate_exposure_ratio, scale_exposure
    return scale_exposure(scene['lq'], estimate_exposure_ratio(scene['lq']))


def measure_reference(lmdb_path):
    """Median mean luminance (:func:`mean_luminance`) of the ambient images of a training set."""
    from fcdfn_plugin.data.exposure import mean_luminance
    from fcdfn_plugin.data.flash_dataset import FlashLowLightDataset
    from fcdfn_plugin.data.faid_io import to_linear
    backend = 'lmdb' if lmdb_path.rstrip('/').endswith('.lmdb') else 'disk'
    dataset = FlashLowLightDataset({'phase': 'train', 'dataroot': lmdb_path, 'io_backend': {'type': backend}})
    values = []
    for key in tqdm(dataset.keys, desc='ambient images', unit='image', disable=None):
        image, _, _ = dataset._read_image(dataset.pairs[key]['ambient'])
        linear = torch.from_numpy(np.ascontiguousarray(to_linear(image).transpose(2, 0, 1)))[None]
        values.append(float(mean_luminance(linear)))
    values = np.array(values)
    print(f'{len(values)} ambient images of {lmdb_path}: mean luminance median {np.median(values):.4f} '
          f'(quartiles {np.percentile(values, 25):.4f} / {np.percentile(values, 75):.4f}; '
          f'log10 spread {np.log10(values).std():.3f})')
    return float(np.median(values))


def measure_estimate(opt_path, crops, samples):
    """Estimated over true exposure ratio of training crops, after the options' exposure contract.

    Each of ``samples`` training samples of ``opt_path`` (its degradation law, ``crops`` pixels; the
    dataset's own seeded draws, epoch after epoch, so the numbers repeat) is brought into the band by
    the contract, which multiplies its linear values by a gain g; its true ratio is then the sampled
    ``exposure_ratio`` / g. Returns
    ``{crop: (samples,) estimated / true}`` and prints the median and 10-90 % range.
    """
    import yaml
    from basicsr.data import build_dataset
    from fcdfn_plugin.data.exposure import ExposureContract, estimate_exposure_ratio
    with open(opt_path) as handle:
        opt = yaml.safe_load(handle)
    if 'train' not in opt.get('datasets', {}):
        raise SystemExit(f'error: {opt_path} has no datasets.train section')
    contract = ExposureContract.from_options(opt)
    results = {}
    for crop in crops:
        dataset = build_dataset(dict(opt['datasets']['train'], phase='train', crop_size=crop, scale=1))
        errors = []
        for number in tqdm(range(samples), desc=f'{crop}-px crops', unit='crop', disable=None):
            sample = dataset[divmod(number, len(dataset))]  # (epoch, index)
            lq, gain = contract.apply(sample['lq'][None])
            true_ratio = float(sample['params']['exposure_ratio']) / float(gain[0])
            errors.append(float(estimate_exposure_ratio(lq)[0]) / true_ratio)
        results[crop] = errors = np.array(errors)
        low, high = np.percentile(errors, [10, 90])
        print(f'{crop}-px crops ({samples}): estimated / true exposure ratio median {np.median(errors):.2f}, '
              f'10-90 % {low:.2f}-{high:.2f}')
    return results


def plot(table, conditions, methods, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(conditions)), 4.5))
    width = 0.8 / len(methods)
    for index, method in enumerate(methods):
        values = [table[condition][method]['psnr'] for condition in conditions]
        ax.bar(np.arange(len(conditions)) + index * width - 0.4 + width / 2, values, width, label=method)
    ax.set_xticks(np.arange(len(conditions)), conditions)
    ax.set_ylabel('PSNR (dB)')
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--measure-reference', metavar='TRAIN_SET', default=None,
                        help='print the reference luminance of a training set (LMDB or folder of pairs) and stop')
    parser.add_argument('--measure-estimate', metavar='OPT', default=None,
                        help="print how far the contract's estimated exposure ratio is from the true one on the "
                             'training crops of an options file and stop')
    parser.add_argument('--estimate-crops', type=int, nargs='+', default=[48, 128], metavar='PX',
                        help='crop sizes for --measure-estimate (default 48 128)')
    parser.add_argument('--estimate-samples', type=int, default=1000, metavar='N',
                        help='training crops per size for --measure-estimate (default 1000)')
    parser.add_argument('--faid-root', help='folder of clean FAID-layout pairs (ambient, flash-only)')
    parser.add_argument('--weights', nargs='*', default=[], help='checkpoints to score')
    parser.add_argument('--labels', nargs='*', default=None, help='one label per --weights')
    parser.add_argument('--out', help='output folder (prepared conditions are kept in <out>/data)')
    parser.add_argument('--conditions', nargs='*', default=list(CONDITIONS), choices=list(CONDITIONS), metavar='C',
                        help=f'conditions to score (default all: {", ".join(CONDITIONS)})')
    parser.add_argument('--crop', type=int, default=256, help='centre crop of every test image, pixels (default 256)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the degradations')
    parser.add_argument('--max-scenes', type=int, default=None, help='score only the first N scenes')
    parser.add_argument('--align', action='store_true', help='also score the contract with the flash pre-aligned')
    args = parser.parse_args(argv)
    if args.measure_reference:
        measure_reference(args.measure_reference)
        return None
    if args.measure_estimate:
        if args.estimate_samples < 1 or min(args.estimate_crops) < 16:
            parser.error('--estimate-samples must be at least 1 and --estimate-crops at least 16 pixels')
        return measure_estimate(args.measure_estimate, args.estimate_crops, args.estimate_samples)
    if not args.faid_root or not args.out:
        parser.error('--faid-root and --out are required (unless --measure-reference or --measure-estimate)')
    if args.crop < 16:
        parser.error(f'--crop must be at least 16 pixels, got {args.crop}')
    if args.max_scenes is not None and args.max_scenes < 1:
        parser.error(f'--max-scenes must be at least 1, got {args.max_scenes}')
    labels = args.labels or [osp.splitext(osp.basename(path))[0] for path in args.weights]
    if len(labels) != len(args.weights) or len(set(labels)) != len(labels):
        parser.error('--labels needs one unique label per --weights')

    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    methods = {label: value for label, value in reference_methods().items() if label != 'low-light input'}
    methods['estimated brightening'] = estimated_brightening
    for label, weights in zip(labels, args.weights):
        try:
            net, source = build_trained_network(weights, None, device)
            contract, contract_source = exposure_contract(weights)
            methods.update(model_methods(label, net, weights, device, args.align))
        except InferenceSetupError as err:
            raise SystemExit(f'error: {err}')
        print(f'{label}: {type(net).__name__} from {source}; exposure band {contract.band} ({contract_source})')

    table = {}
    for name in args.conditions:
        folder = osp.join(args.out, 'data', name.replace('/', '_').replace(' ', '_'))
        print(f'{name}: preparing / reading {folder}', flush=True)
        test_dir = prepare_condition(args.faid_root, folder, name, args.crop, args.seed)
        keys = list_test_scenes(test_dir)[:args.max_scenes]
        with tqdm(total=len(keys), desc=name, unit='scene', disable=None) as bar:
            results = evaluate_methods(test_dir, methods, keys=keys, progress=bar, gain_corrected=True)
        table[name] = {label: entry['mean'] for label, entry in results.items()}
        print('  ' + ', '.join(f'{label} {entry["psnr"]:.2f}' for label, entry in table[name].items()), flush=True)

    rows = [[name] + [f'{table[name][m]["psnr"]:.2f} ({table[name][m]["psnr_gain_corrected"]:.2f})' for m in methods]
            for name in args.conditions]
    text = markdown_table(['condition'] + list(methods), rows)
    text += ('\nPSNR (dB), and in brackets the PSNR after the oracle global gain on the output: its quality with '
             'the global brightness, which one photo cannot determine, taken out.\n')
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'exposure_table.md'), 'w') as handle:
        handle.write(f'{args.faid_root}: centre crop {args.crop}, seed {args.seed}\n\n{text}')
    with open(osp.join(args.out, 'exposure_table.json'), 'w') as handle:
        json.dump({'faid_root': args.faid_root, 'crop': args.crop, 'seed': args.seed,
                   'weights': dict(zip(labels, args.weights)), 'table': table}, handle, indent=1)
    plot(table, args.conditions, list(methods), osp.join(args.out, 'exposure_table.png'))
    print('\n' + text)
    print(f'Wrote {osp.join(args.out, "exposure_table.md")}, .json, .png')
    return table


if __name__ == '__main__':
    main()
