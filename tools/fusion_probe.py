"""Why the adaptive fusion weights stay at 0.5: train FCDFN with one input made useless and watch A_f; or read
what the fusion of trained checkpoints does (``--checkpoints``).

FCDFN fuses its two restored images as ``A_n * Ihat_n + A_f * Ihat_f`` with ``A_n + A_f = 1``
(softmax, paper Eq. 6). In every model trained for a few thousand iterations here A_f stays at its initial 0.5
(longer runs drift: ``--checkpoints``, docs/DESIGN.md "The fusion weights"). This probe trains
the network of an options file (default: the demo's) on its training data, with one input corrupted
in every batch, training and test alike:

    none            the data as it is
    black_flash     the flash photo all zeros: the flash branch can only output 0
    noise_lowlight  the low-light photo replaced by uniform noise: it carries nothing about the scene

and logs, every ``--eval-every`` iterations on the toy test set: the mean fusion weight A_f, the PSNR of
the output and of each branch alone (its Ihat with weight 1, as if it had the whole say), both branches'
learned global gains, and the share of the gradient norm that reaches the fusion head. If A_f moves
when one input is useless but not otherwise, the fusion works and is only redundant with the
branches' own gains and per-pixel kernels, which can scale each branch by themselves.

    python tools/fusion_probe.py --out fusion_probe --iters 600 [--corruptions none black_flash noise_lowlight]

Writes ``<out>/fusion_probe.json`` and ``<out>/fusion_probe.png`` (A_f and branch gains over training).

``--checkpoints`` instead reads trained models (e.g. the saved states of a long table run) on a prepared test
set and says what their fusion does: the mean of A_f and its spread over the pixels, each branch's brightness
level alone and its share of the output (``A * Ihat``, against the truth's mean), and the PSNR of the output
beside the PSNR with A replaced by its per-image mean, which is what per-pixel selection is worth; and the
same pair gain-corrected (each output scaled first by the oracle global gain, as ``tools/evaluate.py
--gain-corrected`` scores), which leaves out what the weights' variation does to the output's brightness:

    python tools/fusion_probe.py --out fusion_anatomy --test-dir datasets/toy_faid_prepared/test \
        --checkpoints experiments/<run>/models/net_g_{4000,16000,28000}.pth

Writes ``<out>/fusion_anatomy.json``, ``.md`` and ``.png``. Read a state at a time as a run advances, the
outputs of several calls on one test set merge into one table and figure, in the order given:

    python tools/fusion_probe.py --out fusion_anatomy_all --merge anatomy_100000 anatomy_104000 ...
"""
import argparse
import json
import os
import sys
import time
from os import path as osp

import numpy as np
import torch
import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
CORRUPTIONS = ('none', 'black_flash', 'noise_lowlight')
ANATOMY_JSON = 'fusion_anatomy.json'  # what --checkpoints writes and --merge reads


def corrupt(batch, corruption, generator):
    """The batch with one input made useless (a new dict; tensors (B,3,H,W))."""
    batch = dict(batch)
    if corruption == 'black_flash':
        batch['flash'] = torch.zeros_like(batch['flash'])
    elif corruption == 'noise_lowlight':
        batch['lq'] = torch.rand(batch['lq'].shape, generator=generator, dtype=batch['lq'].dtype)
    elif corruption != 'none':
        raise ValueError(f'corruption must be one of {CORRUPTIONS}, got {corruption!r}')
    return batch


def psnr(image, target):
    mse = ((image.clamp(0, 1) - target) ** 2).flatten(1).mean(1)
    return float((10 * torch.log10(1 / mse.clamp(min=1e-10))).mean())


def psnr_gain_corrected(image, target):
    """PSNR after the oracle global gain (``evaluation.oracle_gain``, as ``tools/evaluate.py --gain-corrected``
    scores): what is left when the output's overall brightness is set right, so a brightness error does not
    count."""
    from fcdfn_plugin.utils.evaluation import oracle_gain

    return psnr(oracle_gain(image.clamp(0, 1), target), target)


@torch.no_grad()
def evaluate(net, contract, test_batch):
    """Mean A_f and the PSNR of the output and of each branch alone on the (corrupted) test batch."""
    net.eval()
    lq, _ = contract.apply(test_batch['lq'])
    parts = net.forward_parts(lq, test_batch['flash'])
    net.train()
    gt = test_batch['gt']
    importance = parts['importance']
    return {'a_f': float(importance[:, 1].mean()), 'psnr': psnr(parts['output'], gt),
            'psnr_lowlight_branch': psnr(parts['lowlight'], gt), 'psnr_flash_branch': psnr(parts['flash'], gt),
            'gain_lowlight': float(net.log_gain[0].exp()), 'gain_flash': float(net.log_gain[1].exp())}


def scene_anatomy(parts, gt):
    """What the fusion of one scene does (``parts``: ``forward_parts`` of one image, ``gt`` (1,3,H,W)).

    ``a_f`` and ``a_f_spatial_std``: the flash branch's weight, mean and spread over the pixels;
    ``level_*``: each branch alone against the truth's mean (1 = as bright); ``share_*``: what the weighted
    branch brings, ``mean(A * Ihat) / mean(gt)`` (the two add up to the output's level); ``psnr`` and
    ``psnr_constant_weights``: the output, and the output with each weight map replaced by its mean over the
    image, so that their difference is what the per-pixel variation of the weights is worth; the ``*_gain_corrected``
    pair: the same two after :func:`psnr_gain_corrected`'s brightness match, so that a change of the output's overall
    level (which the weights' variation also brings, and which helps or hurts with the output's brightness
    error) is not counted as selection."""
    importance = parts['importance']
    truth = float(gt.mean())
    weights = importance.mean((2, 3), keepdim=True)
    constant = weights[:, :1] * parts['lowlight'] + weights[:, 1:] * parts['flash']
    return {'a_f': float(importance[:, 1].mean()), 'a_f_spatial_std': float(importance[:, 1].std()),
            'level_lowlight': float(parts['lowlight'].mean()) / truth,
            'level_flash': float(parts['flash'].mean()) / truth,
            'share_lowlight': float((importance[:, :1] * parts['lowlight']).mean()) / truth,
            'share_flash': float((importance[:, 1:] * parts['flash']).mean()) / truth,
            'psnr': psnr(parts['output'], gt), 'psnr_constant_weights': psnr(constant, gt),
            'psnr_gain_corrected': psnr_gain_corrected(parts['output'], gt),
            'psnr_constant_weights_gain_corrected': psnr_gain_corrected(constant, gt)}


@torch.no_grad()
def checkpoint_anatomy(weights, test_dir, progress=print):
    """:func:`scene_anatomy` of each scene of a prepared test set, for each checkpoint; returns
    ``{checkpoint: {'mean': {...}, 'per_scene': {key: {...}}}}``. Each model gets its own exposure contract,
    as ``tools/evaluate.py`` gives it."""
    import fcdfn_plugin  # noqa: F401 (makes BasicSR importable, registers the arch)
    from fcdfn_plugin.utils.evaluation import (exposure_for, list_test_scenes, read_test_params, read_test_scene,
                                               scene_lowlight, summarise)
    from fcdfn_plugin.utils.inference import build_trained_network

    keys, params = list_test_scenes(test_dir), read_test_params(test_dir)
    results = {}
    for path in weights:
        net, _ = build_trained_network(path, None, torch.device('cpu'))
        if getattr(net, 'importance_head', None) is None:
            raise ValueError(f'{path}: {type(net).__name__} has no fusion weights to read (FCDFNArch, fusion '
                             'softmax or free)')
        exposure = exposure_for(path, None, 'model')
        per_scene = {}
        for key in keys:
            scene = dict(read_test_scene(test_dir, key), key=key, params=params.get(key, {}))
            parts = net.forward_parts(scene_lowlight(scene, exposure), scene['flash'])
            per_scene[key] = scene_anatomy(parts, scene['gt'])
        mean = summarise(per_scene)
        results[path] = {'mean': mean, 'per_scene': per_scene}
        progress(f'{path}: A_f {mean["a_f"]:.3f} (spatial std {mean["a_f_spatial_std"]:.3f}), PSNR {mean["psnr"]:.2f}, '
                 f'constant weights {mean["psnr_constant_weights"]:.2f}; gain-corrected PSNR '
                 f'{mean["psnr_gain_corrected"]:.2f}, constant weights '
                 f'{mean["psnr_constant_weights_gain_corrected"]:.2f}')
    return results


ANATOMY_COLUMNS = ('a_f', 'a_f_spatial_std', 'level_lowlight', 'level_flash', 'share_lowlight', 'share_flash',
                   'psnr', 'psnr_constant_weights', 'psnr_gain_corrected',
                   'psnr_constant_weights_gain_corrected')


def anatomy_table(results):
    """Markdown table of :func:`checkpoint_anatomy`'s means, one row per checkpoint (3 decimals)."""
    from fcdfn_plugin.utils.report import markdown_table

    return markdown_table(('checkpoint',) + ANATOMY_COLUMNS, [
        [osp.basename(path)] + [f'{result["mean"][column]:.3f}' for column in ANATOMY_COLUMNS]
        for path, result in results.items()])


def plot_anatomy(results, out_path):
    """Figure of :func:`checkpoint_anatomy`, one point per checkpoint in the given order: A_f (mean, +- its spread
    over the pixels), each branch's level and share, and what constant weights change in PSNR and in
    gain-corrected PSNR."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = [osp.splitext(osp.basename(path))[0] for path in results]
    if all(label.startswith('net_g_') and label[6:].isdigit() for label in labels):  # a run's states: iterations
        labels = [label[6:] for label in labels]
    means = [result['mean'] for result in results.values()]
    x = np.arange(len(labels))
    every = -(-len(labels) // 16)  # at most 16 tick labels a panel, however many states
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    a_f, spread = np.array([m['a_f'] for m in means]), np.array([m['a_f_spatial_std'] for m in means])
    axes[0].plot(x, a_f, marker='o')
    axes[0].fill_between(x, a_f - spread, a_f + spread, alpha=0.25, label='+- spread over the pixels')
    axes[0].axhline(0.5, color='grey', linewidth=0.8)
    axes[0].set_title('flash weight A_f')
    for branch, style in (('lowlight', '-'), ('flash', '--')):
        axes[1].plot(x, [m[f'level_{branch}'] for m in means], style, marker='o', label=f'{branch} branch: level')
        axes[1].plot(x, [m[f'share_{branch}'] for m in means], style, marker='s', label=f'{branch} branch: share')
    axes[1].set_title('branch brightness alone (level) and in the output (share), / truth')
    axes[2].bar(x - 0.2, [m['psnr_constant_weights'] - m['psnr'] for m in means], width=0.4, label='PSNR')
    axes[2].bar(x + 0.2, [m['psnr_constant_weights_gain_corrected'] - m['psnr_gain_corrected'] for m in means],
                width=0.4, label='gain-corrected PSNR')
    axes[2].axhline(0, color='grey', linewidth=0.8)
    axes[2].set_title('with constant weights - as trained (dB)')
    for ax in axes:
        ax.set_xticks(x[::every], labels[::every], rotation=30, ha='right', fontsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


def merge_anatomies(folders):
    """(test_dir, results) of the ``fusion_anatomy.json`` in each of ``folders`` (outputs of ``--checkpoints``),
    their checkpoints in the order given; they must share one test set and name each checkpoint once."""
    test_dir, merged = None, {}
    for folder in folders:
        path = osp.join(folder, ANATOMY_JSON)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path}: no such file (--merge takes output folders of --checkpoints)')
        try:
            with open(path) as handle:
                loaded = json.load(handle)
            read_on, results = str(loaded['test_dir']), dict(loaded['results'])
        except (ValueError, KeyError, TypeError) as err:  # ValueError: not JSON at all
            raise ValueError(f'{path}: not a fusion anatomy written by --checkpoints ({err!r})') from None
        if test_dir is not None and osp.normpath(read_on) != osp.normpath(test_dir):
            raise ValueError(f'{path} was read on {read_on}, the folders before it on {test_dir}: '
                             'merge one test set at a time')
        test_dir = test_dir or read_on
        for checkpoint, result in results.items():
            if checkpoint in merged:
                raise ValueError(f'{path}: {checkpoint} is also in an earlier folder')
            merged[checkpoint] = result
    return test_dir, merged


def write_anatomy(out, test_dir, results):
    """``<out>/fusion_anatomy.json``, ``.md`` (the table, also printed) and ``.png``."""
    os.makedirs(out, exist_ok=True)
    written = osp.join(out, ANATOMY_JSON)
    with open(written, 'w') as handle:
        json.dump({'test_dir': test_dir, 'results': results}, handle, indent=1)
    table = anatomy_table(results)
    with open(osp.join(out, 'fusion_anatomy.md'), 'w') as handle:
        handle.write(table)
    plot_anatomy(results, osp.join(out, 'fusion_anatomy.png'))
    print(table + f'Wrote {written}, .md and .png')


def probe(options, corruption, iters, crop, eval_every, seed, progress=print):
    """Train a fresh network of ``options`` with ``corruption``; returns the logged curve (list of dicts)."""
    import fcdfn_plugin  # noqa: F401 (registers the arch, loss and dataset)
    from basicsr.archs import build_network
    from basicsr.losses import build_loss
    from fcdfn_plugin.data.exposure import ExposureContract
    from fcdfn_plugin.data.flash_dataset import FlashLowLightDataset

    torch.manual_seed(seed)
    net = build_network(dict(options['network_g']))
    if getattr(net, 'importance_head', None) is None:
        raise ValueError(f"{options['network_g']['type']} with fusion {options['network_g'].get('fusion')!r} has no "
                         'fusion weights to probe (FCDFNArch, fusion softmax or free)')
    loss_fn = build_loss(dict(options['train']['pixel_opt']))
    contract = ExposureContract.from_options(options)
    train_opt = dict(options['datasets']['train'], phase='train', crop_size=crop, seed=seed)
    train_set = FlashLowLightDataset(train_opt)
    test_set = FlashLowLightDataset(dict(options['datasets']['val'], phase='val'))
    test_batch = {key: torch.stack([test_set[i][key] for i in range(len(test_set))]) for key in ('lq', 'flash', 'gt')}
    generator = torch.Generator().manual_seed(seed)
    test_batch = corrupt(test_batch, corruption, generator)
    optimizer = torch.optim.Adam(net.parameters(), lr=float(options['train']['optim_g']['lr']))
    batch_size = int(options['datasets']['train']['batch_size_per_gpu'])
    curve, fusion_share = [], []
    started = time.time()
    for step in range(1, iters + 1):
        samples = [train_set[(0, (step - 1) * batch_size + i)] for i in range(batch_size)]
        batch = corrupt({key: torch.stack([s[key] for s in samples]) for key in ('lq', 'flash', 'gt')},
                        corruption, generator)
        lq, _ = contract.apply(batch['lq'])
        optimizer.zero_grad()
        loss = loss_fn(net(lq, batch['flash']), batch['gt'])
        loss.backward()
        total = torch.sqrt(sum((p.grad ** 2).sum() for p in net.parameters() if p.grad is not None))
        fusion = torch.sqrt(sum((p.grad ** 2).sum() for p in net.importance_head.parameters()))
        fusion_share.append(float(fusion / total.clamp(min=1e-20)))
        optimizer.step()
        if step % eval_every == 0 or step == iters:
            point = {'iter': step, 'loss': loss.item(), 'fusion_grad_share': float(np.mean(fusion_share)),
                     **evaluate(net, contract, test_batch)}
            fusion_share = []
            curve.append(point)
            progress(f'[{corruption}] {step}/{iters}: A_f {point["a_f"]:.3f}, PSNR {point["psnr"]:.2f} '
                     f'(branches {point["psnr_lowlight_branch"]:.2f} / {point["psnr_flash_branch"]:.2f}), gains '
                     f'{point["gain_lowlight"]:.2f} / {point["gain_flash"]:.2f}, fusion gradient share '
                     f'{point["fusion_grad_share"]:.4f} ({time.time() - started:.0f} s)')
    return curve


def plot(results, out_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for corruption, curve in results.items():
        its = [p['iter'] for p in curve]
        axes[0].plot(its, [p['a_f'] for p in curve], marker='o', markersize=3, label=corruption)
        axes[1].plot(its, [p['gain_lowlight'] for p in curve], label=f'{corruption}: low-light branch')
        axes[1].plot(its, [p['gain_flash'] for p in curve], linestyle='--', label=f'{corruption}: flash branch')
        axes[2].plot(its, [p['psnr'] for p in curve], label=corruption)
    axes[0].set_title('mean fusion weight A_f (toy test set)')
    axes[1].set_title('learned global gain of each branch')
    axes[2].set_title('toy test PSNR (dB)')
    for ax in axes:
        ax.set_xlabel('iteration')
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', default=osp.join(REPO, 'options', 'fcdfn_demo.yml'),
                        help='training options: network_g, pixel_opt, datasets, exposure (default: the demo)')
    parser.add_argument('--out', required=True, help='folder for fusion_probe.json / .png')
    parser.add_argument('--corruptions', nargs='+', default=list(CORRUPTIONS), choices=CORRUPTIONS)
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument('--crop', type=int, default=64)
    parser.add_argument('--eval-every', type=int, default=100)
    parser.add_argument('--seed', type=int, default=10)
    parser.add_argument('--checkpoints', nargs='+', metavar='WEIGHTS',
                        help='instead of training: read these trained models on --test-dir (see above)')
    parser.add_argument('--test-dir', help='with --checkpoints: a prepared test set (lq/, flash/, gt/)')
    parser.add_argument('--merge', nargs='+', metavar='FOLDER',
                        help='instead: merge the --out folders of --checkpoints calls into one table and figure')
    parser.add_argument('--overwrite', action='store_true', help='replace the results of an earlier call in --out')
    args = parser.parse_args(argv)
    anatomy = args.checkpoints or args.merge
    written = osp.join(args.out, ANATOMY_JSON if anatomy else 'fusion_probe.json')
    if osp.exists(written) and not args.overwrite:
        parser.error(f'{written} exists; pass --overwrite to replace it, or another --out')
    if args.merge:
        if args.checkpoints or args.test_dir:
            parser.error('--merge reads finished --checkpoints outputs: it takes no --checkpoints or --test-dir')
        try:
            write_anatomy(args.out, *merge_anatomies(args.merge))
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f'error: {err}')
        return
    if args.checkpoints:
        if not args.test_dir:
            parser.error('--checkpoints needs --test-dir (a prepared test set: lq/, flash/, gt/)')
        missing = [path for path in args.checkpoints if not osp.isfile(path)]
        if missing:
            parser.error(f'--checkpoints: no such file: {", ".join(missing)}')
        from fcdfn_plugin.utils.inference import InferenceSetupError
        try:
            results = checkpoint_anatomy(args.checkpoints, args.test_dir)
        except (FileNotFoundError, ValueError, InferenceSetupError) as err:  # no test set, a bad image or model
            raise SystemExit(f'error: {err}')
        write_anatomy(args.out, args.test_dir, results)
        return
    if args.test_dir:
        parser.error('--test-dir goes with --checkpoints')
    if args.iters < 1 or args.eval_every < 1:
        parser.error('--iters and --eval-every must be positive')
    with open(args.opt) as handle:
        options = yaml.safe_load(handle)
    for key in ('network_g', 'datasets', 'train'):
        if key not in options:
            parser.error(f'-opt {args.opt}: no {key} section')
    for split in ('train', 'val'):  # relative data roots are the repository's
        root = options['datasets'][split]['dataroot']
        if not osp.isabs(root) and not osp.exists(root):
            options['datasets'][split]['dataroot'] = osp.join(REPO, root)
    os.makedirs(args.out, exist_ok=True)
    results = {c: probe(options, c, args.iters, args.crop, args.eval_every, args.seed) for c in args.corruptions}
    with open(osp.join(args.out, 'fusion_probe.json'), 'w') as handle:
        json.dump({'options': args.opt, 'iters': args.iters, 'crop': args.crop, 'seed': args.seed,
                   'results': results}, handle, indent=1)
    plot(results, osp.join(args.out, 'fusion_probe.png'))
    print(f'Wrote {osp.join(args.out, "fusion_probe.json")} and fusion_probe.png')


if __name__ == '__main__':
    main()
