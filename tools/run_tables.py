"""Table 1 (the seven systems) and Table 2 (FCDFN's ablations) at CPU scale, in one command.

Every method is trained by BasicSR's runner from its ``options/table1/<method>_small.yml`` (Table 2's
variants from ``fcdfn_small.yml`` with the components removed in turn), on the offline toy FAID, with
the same schedule, crop, batch and seeds; then scored on the toy test set (BasicSR's final
validation) and, with ``--real-test``, on a prepared folder of real pairs (``tools/evaluate.py``),
PSNR / SSIM / LPIPS, mean +- std over seeds, parameters and FLOPs beside each row:

    python tools/prepare_faid.py --faid-root ../shared/faid_mini --out datasets/faid_mini --all-test \
        --opt options/fcdfn.yml
    python tools/run_tables.py --out tables_output --real-test datasets/faid_mini/test \
        [--seeds 10 11 12] [--iters 400] [--crop 64] [--jobs 2] [--threads 1] [--methods fcdfn deepfnf ...]

``--iters`` and ``--crop`` scale the preset for every method alike (the milestone keeps its place in
the schedule); ``--jobs`` runs that many trainings side by side, one thread each. Runs that finished
earlier are reused (delete ``<out>/experiments/<run>`` to redo one). Writes ``tables.md``,
``tables.json`` and ``comparison_table1.png`` / ``comparison_table2.png`` (toy test scenes, first seed).

Table 2's rows (the paper removes the components in turn):

    fcdfn       the full model (also Table 1's "Ours")
    no_fusion   Ihat_n + Ihat_f instead of the adaptive fusion
    no_saecnn   ... and the kernels in parallel, one layer (no SAECNN)
    no_flash    ... and the flash input replaced by the low-light input
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from os import path as osp

import numpy as np
import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TABLE1_DIR = osp.join(REPO, 'options', 'table1')

#: Table 1 columns in the paper's order, with the paper's FAID scores (PSNR, SSIM, LPIPS).
TABLE1 = {
    'dsn': ('DSN', (19.14, 0.5266, 0.5530)),
    'frl': ('FRL', (18.07, 0.5931, 0.4909)),
    'djf': ('DJF', (20.94, 0.4321, 0.5072)),
    'cunet': ('CU-Net', (21.95, 0.6007, 0.5442)),
    'lsd2': ('LSD2', (22.34, 0.6058, 0.4095)),
    'deepfnf': ('deepFnF', (24.09, 0.6768, 0.3163)),
    'fcdfn': ('FCDFN (ours)', (25.10, 0.7050, 0.2834)),
}
#: Table 2 rows: changes to FCDFN's network_g, made in turn, with the paper's scores.
TABLE2 = {
    'fcdfn': ('FCDFN (full)', {}, (25.10, 0.7050, 0.2834)),
    'no_fusion': ('w/o adaptive fusion', {'fusion': 'add'}, (24.72, 0.7016, 0.2897)),
    'no_saecnn': ('w/o fusion, w/o SAECNN', {'fusion': 'add', 'kernel_mode': 'parallel'}, (24.29, 0.7005, 0.2990)),
    'no_flash': ('w/o fusion, SAECNN, flash', {'fusion': 'add', 'kernel_mode': 'parallel', 'use_flash': False},
                 (23.83, 0.6478, 0.3581)),
}
METHODS = list(TABLE1) + [m for m in TABLE2 if m not in TABLE1]
METRICS = ('psnr', 'ssim', 'lpips')


def method_options(method):
    """The options of a method at CPU scale (a dict): its Table 1 file, or FCDFN's with Table 2's changes."""
    name = method if method in TABLE1 else 'fcdfn'
    with open(osp.join(TABLE1_DIR, f'{name}_small.yml')) as handle:
        opt = yaml.safe_load(handle)
    if method in TABLE2:
        opt['network_g'] = {**opt['network_g'], **TABLE2[method][1]}
    return opt


def write_run_options(path, method, seed, iters, crop, prepared, save_images):
    """Options of one run: the method's preset with this seed, length, crop and data; one final validation."""
    opt = method_options(method)
    opt['name'] = run_name(method, seed)
    opt['manual_seed'] = seed
    train = opt['datasets']['train']
    train.update(seed=seed, crop_size=crop, dataroot=osp.join(prepared, 'train.lmdb'))
    opt['datasets']['val']['dataroot'] = osp.join(prepared, 'test')
    schedule = opt['train']
    fractions = [m / schedule['total_iter'] for m in schedule['scheduler']['milestones']]
    schedule['total_iter'] = iters
    schedule['scheduler']['milestones'] = [int(iters * f) for f in fractions]
    opt['val'].update(val_freq=10 * iters, save_img=save_images)  # BasicSR's final validation only
    opt['logger'].update(save_checkpoint_freq=iters, print_freq=max(1, iters // 10))
    with open(path, 'w') as handle:
        yaml.safe_dump(opt, handle, sort_keys=False)


def run_name(method, seed):
    return f'table_{method}_s{seed}'


def finished_log(out, name):
    logs = sorted(glob.glob(osp.join(out, 'experiments', name, f'train_{name}_*.log')))
    if logs and 'End of training' in open(logs[-1]).read():
        return logs[-1]
    return None


def run_tool(args, log_path, threads):
    """``python <args>`` from the repository root, output to ``log_path``; raise with its tail on failure."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log_path, 'a') as log:
        done = subprocess.run([sys.executable] + [str(a) for a in args], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    if done.returncode:
        with open(log_path) as log:
            tail = ''.join(log.readlines()[-20:])
        raise RuntimeError(f'{" ".join(map(str, args))} failed (exit {done.returncode}); end of {log_path}:\n{tail}')


def complexity_rows(methods, size=224):
    """method -> (parameters, GFLOPs at size x size), from tools/flops.py."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    from flops import complexity
    rows = {}
    for method in methods:
        params, flops = complexity(method_options(method)['network_g'], size, size)
        rows[method] = (params, flops / 1e9)
    return rows


def mean_std(values):
    return float(np.mean(values)), float(np.std(values))


def format_cell(stats, metric):
    mean, std = stats[metric]
    return f'{mean:.2f} +- {std:.2f}' if metric == 'psnr' else f'{mean:.3f} +- {std:.3f}'


def references(test_dir, out_dir, threads):
    """Scores of the low-light input and the oracle global gain on a test folder (tools/evaluate.py)."""
    metrics_file = osp.join(out_dir, 'metrics.json')
    if not osp.isfile(metrics_file):
        os.makedirs(out_dir, exist_ok=True)
        run_tool(['tools/evaluate.py', '--test-dir', test_dir, '--out', out_dir, '--figure-scenes', '0',
                  '--overwrite'], osp.join(out_dir, 'evaluate.log'), threads)
    with open(metrics_file) as handle:
        return {label: entry['mean'] for label, entry in json.load(handle)['results'].items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='tables_output', help='folder for runs, tables and figures')
    parser.add_argument('--seeds', type=int, nargs='+', default=[10, 11, 12])
    parser.add_argument('--iters', type=int, default=None, help='iterations per run (default: the presets\', 400)')
    parser.add_argument('--crop', type=int, default=None, help='training crop for every method (default: 64)')
    parser.add_argument('--methods', nargs='+', default=METHODS, choices=METHODS)
    parser.add_argument('--real-test', default=None,
                        help='prepared folder of real pairs (lq/, flash/, gt/) to score every run on as well')
    parser.add_argument('--jobs', type=int, default=1, help='runs side by side')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads per run (default: all cores for one job, one each for several)')
    args = parser.parse_args()
    if args.real_test and not osp.isdir(osp.join(args.real_test, 'gt')):
        parser.error(f'--real-test {args.real_test!r} is not a prepared test folder (no gt/ inside); '
                     'prepare one with tools/prepare_faid.py --all-test')

    import cv2

    import fcdfn_plugin  # noqa: F401
    from fcdfn_plugin.utils.pipeline import ensure_toy_dataset
    from fcdfn_plugin.utils.report import comparison_grid, final_validation, markdown_table, read_image_bgr8

    preset = method_options('fcdfn')
    iters = args.iters or preset['train']['total_iter']
    crop = args.crop or preset['datasets']['train']['crop_size']
    threads = args.threads or (1 if args.jobs > 1 else (os.cpu_count() or 1))
    out = osp.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.environ['FCDFN_ROOT'] = out  # experiments/ of every run under --out
    prepared = ensure_toy_dataset()
    runs = [(method, seed) for seed in args.seeds for method in args.methods]  # seed-major: whole tables first
    started = time.time()
    lock = threading.Lock()
    done_count = [0]

    def one_run(method, seed):
        name = run_name(method, seed)
        run_dir = osp.join(out, 'runs', name)
        os.makedirs(run_dir, exist_ok=True)
        run_started = time.time()
        if finished_log(out, name) is None:
            options = osp.join(run_dir, f'{name}.yml')
            write_run_options(options, method, seed, iters, crop, prepared, save_images=seed == args.seeds[0])
            run_tool(['tools/train.py', '-opt', options], osp.join(run_dir, 'train.out'), threads)
        result = {'toy': final_validation(finished_log(out, name))}
        if args.real_test:
            real_dir = osp.join(run_dir, 'real')
            if not osp.isfile(osp.join(real_dir, 'metrics.json')):
                weights = osp.join(out, 'experiments', name, 'models', 'net_g_latest.pth')
                run_tool(['tools/evaluate.py', '--test-dir', args.real_test, '--weights', weights, '--labels', name,
                          '--out', real_dir, '--no-references', '--figure-scenes', '0', '--overwrite'],
                         osp.join(run_dir, 'evaluate.out'), threads)
            with open(osp.join(real_dir, 'metrics.json')) as handle:
                result['real'] = json.load(handle)['results'][name]['mean']
        with lock:
            done_count[0] += 1
            print(f'[{done_count[0]}/{len(runs)}] {name}: toy PSNR {result["toy"]["psnr"]:.2f}'
                  + (f', real PSNR {result["real"]["psnr"]:.2f}' if 'real' in result else '')
                  + f' ({(time.time() - run_started) / 60:.1f} min; {(time.time() - started) / 60:.0f} min so far)',
                  flush=True)
        return method, seed, result

    print(f'{len(runs)} runs ({len(args.methods)} methods x seeds {args.seeds}), {iters} iterations, crop {crop}, '
          f'{args.jobs} at a time', flush=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(pool.map(lambda run: one_run(*run), runs))
    results = {}
    for method, seed, result in outcomes:
        results.setdefault(method, {})[seed] = result

    sets = ['toy'] + (['real'] if args.real_test else [])
    summary = {}
    for method, per_seed in results.items():
        summary[method] = {s: {m: mean_std([r[s][m] for r in per_seed.values()]) for m in METRICS} for s in sets}
    size = complexity_rows(args.methods)
    refs = {'toy': references(osp.join(prepared, 'test'), osp.join(out, 'references_toy'), threads)}
    if args.real_test:
        refs['real'] = references(args.real_test, osp.join(out, 'references_real'), threads)

    set_names = {'toy': 'toy test set (24 scenes, 128x128)', 'real': f'real pairs ({args.real_test})'}
    text = [f'{iters} iterations, crop {crop}, batch {preset["datasets"]["train"]["batch_size_per_gpu"]}, '
            f'seeds {args.seeds}; mean +- std over seeds; wall time {(time.time() - started) / 60:.0f} min\n']
    for table, rows in (('Table 1', [m for m in TABLE1 if m in results]), ('Table 2', [m for m in TABLE2 if m in results])):
        if not rows:
            continue
        labels = TABLE1 if table == 'Table 1' else TABLE2
        for s in sets:
            header = ['method', 'PSNR', 'SSIM', 'LPIPS', 'params (M)', 'GFLOPs 224x224', 'paper PSNR / SSIM / LPIPS']
            lines = [[labels[m][0]] + [format_cell(summary[m][s], metric) for metric in METRICS]
                     + [f'{size[m][0] / 1e6:.3f}', f'{size[m][1]:.2f}', ' / '.join(map(str, labels[m][-1]))]
                     for m in rows]
            for label, scores in refs[s].items():
                lines.append([label, f'{scores["psnr"]:.2f}', f'{scores["ssim"]:.3f}', f'{scores["lpips"]:.3f}',
                              '', '', ''])
            text.append(f'\n### {table}, {set_names[s]}\n\n' + markdown_table(header, lines))
    with open(osp.join(out, 'tables.md'), 'w') as handle:
        handle.write(''.join(text))
    with open(osp.join(out, 'tables.json'), 'w') as handle:
        json.dump({'iters': iters, 'crop': crop, 'seeds': args.seeds, 'real_test': args.real_test,
                   'wall_minutes': (time.time() - started) / 60, 'complexity': size, 'references': refs,
                   'results': {m: {'per_seed': results[m], 'mean_std': summary[m]} for m in results}},
                  handle, indent=1)
    print(''.join(text), flush=True)

    seed = args.seeds[0]
    test_dir = osp.join(prepared, 'test')
    keys = [osp.splitext(osp.basename(p))[0] for p in sorted(glob.glob(osp.join(test_dir, 'gt', '*.png')))][:4]
    for table, labels in (('table1', TABLE1), ('table2', TABLE2)):
        shown = [m for m in labels if m in results]
        if not shown:
            continue
        grid = []
        for key in keys:
            cells = [read_image_bgr8(osp.join(test_dir, role, f'{key}.png')) for role in ('lq', 'flash')]
            for method in shown:  # BasicSR names the final validation's images after the iteration (total + 1)
                images = glob.glob(osp.join(out, 'experiments', run_name(method, seed), 'visualization', key,
                                            f'{key}_*.png'))
                cells.append(read_image_bgr8(max(images, key=osp.getmtime)))
            cells.append(read_image_bgr8(osp.join(test_dir, 'gt', f'{key}.png')))
            grid.append(cells)
        figure = osp.join(out, f'comparison_{table}.png')
        cv2.imwrite(figure, comparison_grid(grid, ['low-light', 'flash'] + [labels[m][0] for m in shown] + ['ground truth']))
        print(f'Comparison figure: {figure}', flush=True)
    print(f'Tables: {osp.join(out, "tables.md")} and tables.json; total {(time.time() - started) / 60:.1f} min')


if __name__ == '__main__':
    main()
