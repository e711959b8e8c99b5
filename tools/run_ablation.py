"""Toy-scale reproduction of the paper's Table 2 (ablations) and Table 1 (deepFnF vs FCDFN).

Trains, with the CPU schedule of ``options/fcdfn_demo.yml`` on the offline toy FAID, each variant
for every seed, then reports the final validation PSNR/SSIM/LPIPS on the fixed toy test set as
mean +- std over seeds (markdown table, JSON, and a comparison figure low-light | flash | DeepFnF |
FCDFN | ground truth).

    python tools/run_ablation.py --out ablation_output [--seeds 10 11 12] [--iters 500]

The variants follow Table 2, where the substitutions are made in turn:

    fcdfn       the full model
    no_fusion   Ihat_n + Ihat_f instead of adaptive fusion
    no_saecnn   ... and the kernels in parallel, one layer (no SAECNN)
    no_flash    ... and the flash input replaced by the low-light input
    deepfnf     the deepFnF baseline (Table 1), same backbone width, data, loss and schedule
"""
import argparse
import glob
import json
import os
import time
from os import path as osp

import numpy as np
import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE_OPTIONS = osp.join(REPO, 'options', 'fcdfn_demo.yml')

VARIANTS = {
    'fcdfn': {},
    'no_fusion': {'fusion': 'add'},
    'no_saecnn': {'fusion': 'add', 'kernel_mode': 'parallel'},
    'no_flash': {'fusion': 'add', 'kernel_mode': 'parallel', 'use_flash': False},
    'deepfnf': 'DeepFnFArch',
}
LABELS = {
    'fcdfn': 'FCDFN (full)', 'no_fusion': 'w/o adaptive fusion', 'no_saecnn': 'w/o fusion, w/o SAECNN',
    'no_flash': 'w/o fusion, SAECNN, flash', 'deepfnf': 'deepFnF',
}


def variant_network(base_network, variant):
    """network_g of a variant, derived from the demo's FCDFNArch options."""
    change = VARIANTS[variant]
    if change == 'DeepFnFArch':
        return {'type': 'DeepFnFArch', 'base_channels': base_network['base_channels'], 'depth': base_network['depth'],
                'num_basis': base_network['num_basis'], 'kernel_size': base_network['kernel_sizes'][0],
                'coarse_kernel_size': base_network['coarse_kernel_size'],
                'coarse_dilation': base_network['coarse_dilation']}
    return {**base_network, **change}


def write_run_options(path, variant, seed, iters, prepared, save_images):
    with open(BASE_OPTIONS) as f:
        opt = yaml.safe_load(f)
    opt['name'] = f'ablation_{variant}_s{seed}'
    opt['manual_seed'] = seed
    opt['network_g'] = variant_network(opt['network_g'], variant)
    train = opt['datasets']['train']
    train['seed'] = seed
    train['dataroot'] = osp.join(prepared, 'train.lmdb')
    opt['datasets']['val']['dataroot'] = osp.join(prepared, 'test')
    milestone_fraction = opt['train']['scheduler']['milestones'][0] / opt['train']['total_iter']
    opt['train']['total_iter'] = iters
    opt['train']['scheduler']['milestones'] = [int(iters * milestone_fraction)]
    opt['val']['val_freq'] = 10 * iters  # validate once: BasicSR's final validation after training
    opt['val']['save_img'] = save_images
    opt['logger']['save_checkpoint_freq'] = iters
    opt['logger']['print_freq'] = max(1, iters // 10)
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='ablation_output', help='folder for runs, tables and the figure')
    parser.add_argument('--seeds', type=int, nargs='+', default=[10, 11, 12])
    parser.add_argument('--iters', type=int, default=500, help='training iterations per run (the demo schedule, scaled)')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()

    import cv2

    import fcdfn_plugin  # noqa: F401
    from fcdfn_plugin.utils.pipeline import ensure_toy_dataset, run_step
    from fcdfn_plugin.utils.report import comparison_grid, final_validation, markdown_table, read_image_bgr8

    out = osp.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    prepared = ensure_toy_dataset()
    results = {}
    runs = [(v, s) for v in args.variants for s in args.seeds]
    started = time.time()
    for number, (variant, seed) in enumerate(runs, start=1):
        name = f'ablation_{variant}_s{seed}'
        log_glob = osp.join(out, 'experiments', name, f'train_{name}_*.log')
        if not glob.glob(log_glob) or 'End of training' not in open(sorted(glob.glob(log_glob))[-1]).read():
            options = osp.join(out, f'{name}.yml')
            write_run_options(options, variant, seed, args.iters, prepared, save_images=seed == args.seeds[0])
            elapsed = time.time() - started
            run_step(f'[{number}/{len(runs)}] {LABELS[variant]}, seed {seed} ({elapsed / 60:.0f} min so far)',
                     ['tools/train.py', '-opt', options], env_extra={'FCDFN_ROOT': out})
        else:
            print(f'[{number}/{len(runs)}] {name}: finished earlier, reusing its log', flush=True)
        results.setdefault(variant, {})[seed] = final_validation(sorted(glob.glob(log_glob))[-1])

    metrics = sorted({m for per_seed in results.values() for values in per_seed.values() for m in values})
    for variant, per_seed in results.items():
        for seed, values in per_seed.items():
            if set(values) != set(metrics):  # e.g. a run reused from before LPIPS joined the demo's metrics
                raise RuntimeError(f'ablation_{variant}_s{seed} reports {sorted(values)}, other runs {metrics}: delete '
                                   f'{osp.join(out, "experiments", f"ablation_{variant}_s{seed}")} to rerun it')
    header = ['variant'] + [f'{m.upper()} (mean +- std)' for m in metrics] + ['seeds']
    rows = []
    summary = {}
    for variant in args.variants:
        per_seed = results[variant]
        stats = {m: (float(np.mean([v[m] for v in per_seed.values()])), float(np.std([v[m] for v in per_seed.values()])))
                 for m in metrics}
        summary[variant] = {'label': LABELS[variant], 'per_seed': per_seed, 'mean_std': stats}
        rows.append([LABELS[variant]] + [f'{mean:.4f} +- {std:.4f}' for mean, std in stats.values()]
                    + [len(per_seed)])
    table = markdown_table(header, rows)
    with open(osp.join(out, 'ablation.md'), 'w') as f:
        f.write(f'Toy FAID, {args.iters} iterations per run, seeds {args.seeds}\n\n{table}')
    with open(osp.join(out, 'ablation.json'), 'w') as f:
        json.dump({'iters': args.iters, 'seeds': args.seeds, 'results': summary}, f, indent=1)
    print('\n' + table)

    if {'fcdfn', 'deepfnf'} <= set(args.variants):
        seed = args.seeds[0]
        test_dir = osp.join(prepared, 'test')
        grid = []
        for gt_path in sorted(glob.glob(osp.join(test_dir, 'gt', '*.png')))[:4]:
            key = osp.splitext(osp.basename(gt_path))[0]
            cells = [read_image_bgr8(osp.join(test_dir, role, f'{key}.png')) for role in ('lq', 'flash')]
            for variant in ('deepfnf', 'fcdfn'):
                # BasicSR names the final validation's images after the iteration counter (total + 1)
                vis = glob.glob(osp.join(out, 'experiments', f'ablation_{variant}_s{seed}', 'visualization', key,
                                         f'{key}_*.png'))
                cells.append(read_image_bgr8(max(vis, key=osp.getmtime)))
            cells.append(read_image_bgr8(gt_path))
            grid.append(cells)
        figure = osp.join(out, 'comparison.png')
        cv2.imwrite(figure, comparison_grid(grid, ['low-light', 'flash', 'DeepFnF', 'FCDFN', 'ground truth']))
        print(f'Comparison figure: {figure}')
    print(f'Tables: {osp.join(out, "ablation.md")} and ablation.json; total {(time.time() - started) / 60:.1f} min')


if __name__ == '__main__':
    main()
