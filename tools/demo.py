"""The whole main job on the offline toy data (``make demo``).

1. build the toy FAID (``tools/make_toy_faid.py``) and prepare it (``tools/prepare_faid.py``),
   unless ``datasets/`` already holds them;
2. train a small FCDFN with BasicSR's runner (``tools/train.py -opt options/fcdfn_demo.yml``);
3. test it (``tools/test.py -opt options/test_fcdfn_demo.yml``);
4. write, under ``--out``: the metrics table (input vs the demo's FCDFN vs the shipped FCDFN small of
   ``weights/fcdfn_small.pth``, PSNR/SSIM/LPIPS on the fixed test set), a comparison grid (low-light |
   flash | demo FCDFN | shipped FCDFN small | ground truth) and the training curves.
"""
import argparse
import glob
import json
import os
from os import path as osp

import cv2
import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='demo_output', help='folder for the metrics, grid and curves')
    parser.add_argument('--grid-scenes', type=int, default=4, help='test scenes shown in the comparison grid')
    args = parser.parse_args()

    import fcdfn_plugin  # noqa: F401
    from basicsr.metrics import calculate_psnr, calculate_ssim

    from fcdfn_plugin.metrics import calculate_fcdfn_lpips
    from fcdfn_plugin.utils.evaluation import exposure_for, network_method, read_test_scene, to_image8
    from fcdfn_plugin.utils.inference import SHIPPED_WEIGHTS, build_trained_network
    from fcdfn_plugin.utils.paths import experiments_root
    from fcdfn_plugin.utils.pipeline import ensure_toy_dataset, run_step
    from fcdfn_plugin.utils.report import (comparison_grid, markdown_table, parse_train_log, plot_training_curves,
                                           read_image_bgr8)

    print('=== 1/4 The offline toy FAID', flush=True)
    prepared = ensure_toy_dataset()
    root = experiments_root()
    weights = osp.join(root, 'experiments', 'FCDFN_demo', 'models', 'net_g_latest.pth')
    run_step('2/4 Training FCDFN on CPU', ['tools/train.py', '-opt', 'options/fcdfn_demo.yml'])
    run_step('3/4 Testing it on the fixed test set', ['tools/test.py', '-opt', 'options/test_fcdfn_demo.yml',
                                                      '--force_yml', f'path:pretrain_network_g={weights}'])

    print('\n=== 4/4 Writing the report', flush=True)
    out = osp.join(REPO, args.out) if not osp.isabs(args.out) else args.out
    os.makedirs(out, exist_ok=True)
    test_dir = osp.join(prepared, 'test')
    result_dir = osp.join(root, 'results', 'FCDFN_demo_test', 'visualization', 'ToyFAID_test')
    shipped = None
    if osp.isfile(SHIPPED_WEIGHTS):
        # its own exposure contract (none for weights trained without one), as tools/evaluate.py scores it
        shipped = network_method(build_trained_network(SHIPPED_WEIGHTS)[0], 'cpu', {},
                                 exposure_for(SHIPPED_WEIGHTS, None, 'model'))
        print(f'Beside it: the shipped FCDFN small ({osp.relpath(SHIPPED_WEIGHTS, REPO)}, trained by '
              '`make small-model`)', flush=True)
    else:
        print(f'The shipped weights {SHIPPED_WEIGHTS} are missing: the report shows the demo model only.', flush=True)
    rows, grid_rows = [], []
    for gt_path in sorted(glob.glob(osp.join(test_dir, 'gt', '*.png'))):
        key = osp.splitext(osp.basename(gt_path))[0]
        gt = read_image_bgr8(gt_path)
        lq = read_image_bgr8(osp.join(test_dir, 'lq', f'{key}.png'))
        flash = read_image_bgr8(osp.join(test_dir, 'flash', f'{key}.png'))
        result_path = osp.join(result_dir, f'{key}_FCDFN_demo_test.png')
        result = read_image_bgr8(result_path)
        images = [lq, result]
        if shipped is not None:
            scene = read_test_scene(test_dir, key)  # 16-bit, as the test run reads it
            images.append(to_image8(shipped(dict(scene, key=key, params={}))))
        # LPIPS: the network is built (and its weights verified) once, then cached for every image.
        rows.append([key] + [calculate_psnr(image, gt, 0) for image in images]
                    + [calculate_ssim(image, gt, 0) for image in images]
                    + [calculate_fcdfn_lpips(image, gt) for image in images])
        if len(grid_rows) < args.grid_scenes:
            grid_rows.append([lq, flash] + images[1:] + [gt])
    if not rows:
        raise RuntimeError(f'no test images found in {test_dir}')
    columns = ['input', 'FCDFN demo'] + (['FCDFN small (shipped)'] if shipped is not None else [])
    header = ['scene'] + [f'{metric} {column}' for metric in ('PSNR', 'SSIM', 'LPIPS') for column in columns]
    mean = ['mean'] + [float(np.mean([r[i] for r in rows])) for i in range(1, len(header))]
    with open(osp.join(out, 'metrics.md'), 'w') as f:
        f.write(markdown_table(header, rows + [mean]))
    with open(osp.join(out, 'metrics.json'), 'w') as f:
        json.dump({'per_scene': [dict(zip(header, r)) for r in rows], 'mean': dict(zip(header, mean))}, f, indent=1)
    cv2.imwrite(osp.join(out, 'comparison.png'),
                comparison_grid(grid_rows, ['low-light input', 'flash input', 'FCDFN demo']
                                + (['shipped small'] if shipped is not None else []) + ['ground truth']))
    logs = sorted(glob.glob(osp.join(root, 'experiments', 'FCDFN_demo', 'train_FCDFN_demo_*.log')))
    plot_training_curves(parse_train_log(logs[-1]), osp.join(out, 'training_curves.png'), 'FCDFN demo (toy FAID, CPU)')

    print(markdown_table(header[1:], [mean[1:]]))
    print(f'Enhanced test images: {result_dir}')
    print(f'Metrics:              {osp.join(out, "metrics.md")} (and metrics.json)')
    print(f'Comparison grid:      {osp.join(out, "comparison.png")}')
    print(f'Training curves:      {osp.join(out, "training_curves.png")}')
    print(f'Weights:              {weights}')


if __name__ == '__main__':
    main()
