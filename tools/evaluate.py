"""Score trained models on a prepared test set (toy or real FAID): PSNR / SSIM / LPIPS per scene and mean.

    python tools/evaluate.py --test-dir datasets/faid_mini_test \
        --weights experiments/FCDFN_demo/models/net_g_latest.pth \
        --out eval_output/faid_mini [--labels demo] [--save-images] [--figure-scenes 4]

A test set is what ``tools/prepare_faid.py`` writes under ``test/``; to score on a folder of real FAID
pairs, prepare all of them as a test set with the paper's law (the one every table here uses):

    python tools/prepare_faid.py --faid-root ../shared/faid_mini --out datasets/faid_mini --all-test \
        --opt options/fcdfn.yml
    python tools/evaluate.py --test-dir datasets/faid_mini/test --weights ... --out eval_output/faid_mini

Every model's options are found as ``tools/enhance.py`` finds them (``-opt`` with a single
``--weights``, else the ``network_g`` stored in the checkpoint, else the options file of its experiment
folder). The table always has two references: the low-light input and the oracle global gain
(``g = <lq, gt> / <lq, lq>`` per image, which knows the ground truth). Scoring is BasicSR's: 8-bit
outputs, crop_border 0, LPIPS with the VGG backbone (``--no-lpips`` to skip it); ``--gain-corrected`` adds each
output's PSNR after the oracle global gain and its brightness level (what of a PSNR difference is the level), and
``--detail`` how much fine structure it reproduces. Each model gets the
exposure contract it was trained with (``--exposure``: model, auto, none, or true: the true ratio
from params.json), as ``tools/enhance.py`` and ``tools/test.py`` do.

Writes ``metrics.md`` and ``metrics.json`` (per scene and mean, seconds per image), a comparison
figure (low-light | flash | each model | ground truth) and a figure of full-resolution detail crops
(where the ground truth has the most fine structure). Figures and images made from FAID scenes
fall under FAID's terms: keep them out of the repository.
"""
import argparse
import json
import os
import sys
from os import path as osp

import cv2
import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import fcdfn_plugin  # noqa: E402,F401  (first: makes BasicSR 1.4.2 importable)
from fcdfn_plugin.metrics import calculate_fcdfn_lpips  # noqa: E402
from fcdfn_plugin.models.fcdfn_model import TILE_DEFAULTS  # noqa: E402
from fcdfn_plugin.utils.cli import CliError, check_tiling, inside, int_at_least, write_image  # noqa: E402
from fcdfn_plugin.utils.evaluation import (EXPOSURE_CHOICES, evaluate_methods, exposure_for,  # noqa: E402
                                           list_test_scenes, network_method, reference_methods, scene_lowlight,
                                           summarise)
from fcdfn_plugin.utils.inference import InferenceSetupError, build_trained_network  # noqa: E402
from fcdfn_plugin.utils.report import comparison_grid, markdown_table  # noqa: E402


INPUT_LABEL = 'low-light input'  # the reference row that is the first column of the figures already
RESERVED_LABELS = tuple(reference_methods())  # rows of the table that --labels must not replace


def detail_window(gt8, size):
    """(top, left) of the ``size`` x ``size`` window with the most gradient energy in the ground truth."""
    grey = cv2.cvtColor(gt8, cv2.COLOR_BGR2GRAY).astype(np.float32)
    energy = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    size = min(size, *grey.shape)
    summed = cv2.boxFilter(energy, -1, (size, size), normalize=False, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    valid = summed[:grey.shape[0] - size + 1, :grey.shape[1] - size + 1]
    top, left = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(top), int(left), size


def parts_methods(label, net, device, importance, exposure=(None, False)):
    """The model and its two restored branches as three methods sharing one (untiled) forward pass.

    ``importance[label][scene]`` receives the mean fusion weight of the flash branch, overall and
    where the ground truth has fine structure (the strongest 10 % of its band-pass).
    """
    from fcdfn_plugin.utils.evaluation import band_pass, to_image8
    cache = {}

    def parts(scene):
        if scene['key'] not in cache:
            cache.clear()
            with torch.no_grad():
                result = net.forward_parts(scene_lowlight(scene, exposure).to(device), scene['flash'].to(device))
            cache[scene['key']] = {name: value.cpu() for name, value in result.items()}
            weight = cache[scene['key']]['importance'][0, 1].numpy()
            fine = np.abs(band_pass(to_image8(scene['gt'])))
            importance.setdefault(label, {})[scene['key']] = {
                'flash_weight': float(weight.mean()),
                'flash_weight_on_detail': float(weight[fine >= np.percentile(fine, 90)].mean())}
        return cache[scene['key']]

    return {label: lambda scene: parts(scene)['output'],
            f'{label} [low-light branch]': lambda scene: parts(scene)['lowlight'],
            f'{label} [flash branch]': lambda scene: parts(scene)['flash']}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--test-dir', required=True, help='prepared test folder with lq/, flash/, gt/')
    parser.add_argument('--weights', nargs='*', default=[], help='checkpoints to score (net_g_*.pth)')
    parser.add_argument('--labels', nargs='*', default=None, help='one label per --weights (default: file names)')
    parser.add_argument('-opt', default=None, help='options file of the (single) --weights')
    parser.add_argument('--out', required=True, help='folder for metrics.md/json and the figures')
    parser.add_argument('--no-references', action='store_true', help='leave out the input and oracle-gain rows')
    parser.add_argument('--no-lpips', action='store_true', help='score PSNR and SSIM only')
    parser.add_argument('--save-images', action='store_true', help='write every output under <out>/images/<label>/')
    parser.add_argument('--figure-scenes', type=int_at_least(0), default=4,
                        help='scenes in the comparison figures (0: none)')
    parser.add_argument('--crop', type=int_at_least(1), default=160, help='side of the detail crops, pixels')
    parser.add_argument('--max-scenes', type=int_at_least(1), default=None, help='score only the first N scenes')
    parser.add_argument('--gain-corrected', action='store_true',
                        help='also report each output\'s PSNR after the oracle global gain (its brightness level '
                             'taken out) and its level (output mean / ground-truth mean)')
    parser.add_argument('--detail', action='store_true',
                        help='also report how much fine structure each output reproduces (hf_corr, hf_gain)')
    parser.add_argument('--parts', action='store_true',
                        help='FCDFN models: also score each restored branch alone and report the mean fusion '
                        'weight of the flash branch (untiled)')
    parser.add_argument('--tile', type=int_at_least(1), default=TILE_DEFAULTS['size'],
                        help='tile size for large images')
    parser.add_argument('--overlap', type=int_at_least(0), default=TILE_DEFAULTS['overlap'], help='tile overlap')
    parser.add_argument('--min-pixels', type=int_at_least(0), default=TILE_DEFAULTS['min_pixels'],
                        help='tile from this size')
    parser.add_argument('--overwrite', action='store_true', help='write into an existing --out')
    parser.add_argument('--exposure', choices=EXPOSURE_CHOICES, default='model',
                        help="the exposure contract: 'model' (default: the one the weights were trained with; none "
                        "for weights trained without), 'auto' (always, the ratio estimated), 'none' (the input as "
                        "it is), 'true' (the contract given params.json's true exposure ratio)")
    args = parser.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.weights):
        parser.error(f'--labels needs one label per --weights ({len(args.weights)}), got {len(args.labels)}')
    if args.opt is not None and len(args.weights) != 1:
        parser.error('-opt applies to a single --weights; several checkpoints each bring their own options')
    if not args.weights and args.no_references:
        parser.error('nothing to score: give --weights or drop --no-references')
    for label in args.labels or []:
        if label in RESERVED_LABELS or not label.strip() or '/' in label or '\\' in label:
            parser.error(f'--labels: {label!r} is not usable: a label must be non-empty, without / or \\, and not one '
                         f'of the reference rows {list(RESERVED_LABELS)}; choose another label')
    try:
        check_tiling(args.tile, args.overlap)
    except CliError as err:
        parser.error(str(err))
    return args


def save(path, image):
    """Write an 8-bit BGR image, checked (an error line names the file when nothing was written)."""
    try:
        write_image(path, image, '--out')
    except CliError as err:
        raise SystemExit(f'error: {err}')


def check_out(out, test_dir, overwrite):
    """Refuse an ``--out`` that is a file, is or lies in the test set, or is a non-empty folder without overwrite."""
    if osp.exists(out) and not osp.isdir(out):
        raise SystemExit(f'error: --out {out!r} is a file; --out is the folder for metrics.md/json and the figures: '
                         'choose a folder name')
    if osp.isdir(test_dir) and inside(out, test_dir):
        raise SystemExit(f'error: --out {out!r} lies inside --test-dir {test_dir!r}; keep the results apart from the '
                         'test set: choose another --out')
    if osp.isdir(out) and os.listdir(out) and not overwrite:
        raise SystemExit(f'error: {out!r} exists and is not empty; pass --overwrite to write into it.')


def check_scenes(test_dir, keys):
    """Every image of the scenes to score opens (header) and the three of a scene share one size, before any work."""
    from PIL import Image
    for key in keys:
        sizes = {}
        for role in ('lq', 'flash', 'gt'):
            path = osp.join(test_dir, role, f'{key}.png')
            try:
                with Image.open(path) as image:
                    sizes[role] = image.size
            except Exception as error:
                raise SystemExit(f'error: {path}: not a readable image ({type(error).__name__}: {error}); replace it '
                                 '(tools/prepare_faid.py writes the test set again) or remove the scene from lq/, '
                                 'flash/ and gt/')
        if len(set(sizes.values())) != 1:
            raise SystemExit(f'error: scene {key} of {test_dir} has images of different sizes '
                             f'({", ".join(f"{role} {w}x{h}" for role, (w, h) in sizes.items())}); prepare the test '
                             'set again with tools/prepare_faid.py or remove the scene')


def unpaired_files(test_dir, keys):
    """lq/ and flash/ images without a gt/ partner (never scored): named so that nothing is skipped silently."""
    known = set(keys)
    return [f'{role}/{name}' for role in ('lq', 'flash') for name in sorted(os.listdir(osp.join(test_dir, role)))
            if name.endswith('.png') and osp.splitext(name)[0] not in known]


def main(argv=None):
    args = parse_args(argv)
    check_out(args.out, args.test_dir, args.overwrite)
    try:
        all_keys = list_test_scenes(args.test_dir)
    except FileNotFoundError as err:
        raise SystemExit(f'error: {err}')
    keys = all_keys[:args.max_scenes]
    unpaired = unpaired_files(args.test_dir, all_keys)
    if unpaired:
        print(f'Skipped (no gt/ partner, not scored): {", ".join(unpaired)}', flush=True)
    if len(keys) < len(all_keys):
        print(f'--max-scenes {args.max_scenes}: scoring the first {len(keys)} of {len(all_keys)} scenes; left out: '
              f'{", ".join(all_keys[len(keys):])}', flush=True)
    check_scenes(args.test_dir, keys)
    lpips_fn = None
    if not args.no_lpips:
        from fcdfn_plugin.metrics.lpips_metric import find_vgg16_weights
        try:
            find_vgg16_weights()
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f'error: {err} (or pass --no-lpips)')
        lpips_fn = calculate_fcdfn_lpips

    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    tile_opt = dict(size=args.tile, overlap=args.overlap, min_pixels=args.min_pixels)
    methods = {} if args.no_references else reference_methods()
    importance = {}  # label -> scene -> mean fusion weights of the flash branch (--parts)
    labels = args.labels or [osp.splitext(osp.basename(path))[0] for path in args.weights]
    if len(set(labels)) != len(labels):
        raise SystemExit(f'error: labels must be unique, got {labels}; pass --labels')
    for label, weights in zip(labels, args.weights):
        try:
            net, source = build_trained_network(weights, args.opt, device)
            exposure = exposure_for(weights, args.opt, args.exposure)
        except InferenceSetupError as err:
            raise SystemExit(f'error: {err}')
        contract_text = 'input as it is' if exposure[0] is None else (
            f'exposure contract, band {exposure[0].band}' + (', true ratio' if exposure[1] else ''))
        print(f'{label}: {type(net).__name__} from {source}; {contract_text}', flush=True)
        if args.parts and hasattr(net, 'forward_parts'):
            methods.update(parts_methods(label, net, device, importance, exposure))
        else:
            methods[label] = network_method(net, device, tile_opt, exposure)

    os.makedirs(args.out, exist_ok=True)
    figure_rows, crop_rows = [], []

    def on_scene(key, scene, outputs):
        if args.save_images:
            for label, image in outputs.items():
                folder = osp.join(args.out, 'images', label.replace(' ', '_'))
                os.makedirs(folder, exist_ok=True)
                save(osp.join(folder, f'{key}.png'), image)
        if len(figure_rows) < args.figure_scenes:
            from fcdfn_plugin.utils.evaluation import to_image8
            inputs = [to_image8(scene[role]) for role in ('lq', 'flash')]
            gt8 = to_image8(scene['gt'])
            row = inputs + [image for label, image in outputs.items() if label != INPUT_LABEL] + [gt8]
            figure_rows.append(row)
            top, left, size = detail_window(gt8, args.crop)
            crop_rows.append([image[top:top + size, left:left + size] for image in row])

    with tqdm(total=len(keys), desc='scenes', unit='scene', disable=None) as bar:
        try:
            results = evaluate_methods(args.test_dir, methods, lpips_fn, keys=keys, on_scene=on_scene, progress=bar,
                                       detail=args.detail, gain_corrected=args.gain_corrected)
        except (ValueError, FileNotFoundError) as err:  # a test image that decodes badly, named by faid_io
            raise SystemExit(f'error: {err}; prepare the test set again (tools/prepare_faid.py) or remove the scene')
    for label, per_scene in importance.items():
        results[label]['fusion'] = {'per_scene': per_scene, 'mean': summarise(per_scene)}

    names = {'psnr': 'PSNR', 'ssim': 'SSIM', 'lpips': 'LPIPS', 'psnr_gain_corrected': 'PSNR gain-corrected'}
    metrics = [m for m in ('psnr', 'ssim', 'lpips', 'psnr_gain_corrected', 'level', 'hf_corr', 'hf_gain')
               if m in next(iter(results.values()))['mean']]
    header = ['method'] + [names.get(m, m) for m in metrics] + ['s / image']
    rows = [[label] + [entry['mean'][m] for m in metrics] + [entry['seconds'] / len(keys)]
            for label, entry in results.items()]
    table = markdown_table(header, rows)
    if importance:
        table += '\nMean fusion weight of the flash branch (all pixels / the 10 % with the most fine structure):\n\n'
        table += markdown_table(['model', 'A_f', 'A_f on detail'], [
            [label, results[label]['fusion']['mean']['flash_weight'],
             results[label]['fusion']['mean']['flash_weight_on_detail']] for label in importance])
    with open(osp.join(args.out, 'metrics.md'), 'w') as f:
        f.write(f'{args.test_dir}: {len(keys)} scenes, 8-bit sRGB, crop_border 0\n\n{table}')
    with open(osp.join(args.out, 'metrics.json'), 'w') as f:
        json.dump({'test_dir': args.test_dir, 'scenes': keys, 'weights': dict(zip(labels, args.weights)),
                   'results': results}, f, indent=1)
    if figure_rows:
        columns = ['low-light', 'flash'] + [label for label in methods if label != INPUT_LABEL] + ['ground truth']
        save(osp.join(args.out, 'comparison.png'), comparison_grid(figure_rows, columns))
        save(osp.join(args.out, 'detail_crops.png'), comparison_grid(crop_rows, columns))
    print('\n' + table)
    print(f'Wrote {osp.join(args.out, "metrics.md")}, metrics.json'
          + (', comparison.png, detail_crops.png' if figure_rows else ''))
    return results


if __name__ == '__main__':
    main()
