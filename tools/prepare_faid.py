"""Prepare FAID (or the toy stand-in) for training and testing.

    python tools/prepare_faid.py --faid-root DIR --out DIR [--test-count 100 --seed 0 --test-crop S --overwrite]

Writes, under ``--out``:

* ``train.lmdb``: the clean training pairs in BasicSR's LMDB layout (``data.mdb``, ``lock.mdb``,
  ``meta_info.txt``), keys ``<Category>_<NNN>_ambient`` / ``_flash``, PNG-encoded with their bit
  depth kept (8-bit sRGB or 16-bit linear). Degradations are drawn at read time by the dataset.
* ``test/{lq,flash,gt}/<Category>_<NNN>.png``: the held-out pairs, degraded once with a fixed seed
  (SPEC.md Sec. 2), 16-bit sRGB PNG, plus ``test/params.json`` (the drawn parameters per key).
* ``split.json``: the seed and the sorted train and test keys.

The split is deterministic (seeded) and stratified by category; scenes of one source group
(``<Category>-<source>_<NNN>``, see ``fcdfn_plugin.data.faid_io``) stay on one side. Everything is
written under ``<out>.partial-<pid>`` and renamed at the end, so a crash never leaves a half
output under the final name. Every skipped pair is reported with its reason and counted.
"""
import argparse
import json
import math
import os
import shutil
import sys
from os import path as osp

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import fcdfn_plugin  # noqa: E402,F401  (first: makes BasicSR 1.4.2 importable)
from basicsr.utils import scandir  # noqa: E402
from basicsr.utils.lmdb_util import LmdbMaker  # noqa: E402
from fcdfn_plugin.data import degradation  # noqa: E402
from fcdfn_plugin.data.faid_io import (decode_image, encode_png16, pair_by_name, read_file_bytes,  # noqa: E402
                                       scene_group, scene_stratum, to_linear)

# Independent generator streams: (seed, stream, ...).
SPLIT_STREAM, TEST_DEGRADATION_STREAM = 0, 1
PNG_COMPRESSION = 1


def find_pairs(faid_root):
    """Pair every ``*_ambient.png`` / ``*_flash.png`` under ``faid_root`` (recursive) by scene key."""
    stems = {}
    duplicates = []
    for relative in sorted(scandir(faid_root, suffix='.png', recursive=True)):
        stem = osp.splitext(osp.basename(relative))[0]
        if stem in stems:
            duplicates.append((osp.join(faid_root, relative), f'duplicate name (also {stems[stem]})'))
            continue
        stems[stem] = osp.join(faid_root, relative)
    pairs, unpaired = pair_by_name(stems)
    return pairs, unpaired + duplicates


def check_pair(paths, min_size):
    """Decode both images of a pair; returns ((H, W, C), bytes per sample) or raises ValueError with the reason."""
    images = {}
    for role in ('ambient', 'flash'):
        images[role] = decode_image(read_file_bytes(paths[role]), paths[role])
    ambient, flash = images['ambient'], images['flash']
    if ambient.shape != flash.shape or ambient.dtype != flash.dtype:
        raise ValueError(f'sizes/depths differ: ambient {ambient.shape} {ambient.dtype}, flash {flash.shape} {flash.dtype}')
    if min(ambient.shape[:2]) < min_size:
        raise ValueError(f'image {ambient.shape[0]}x{ambient.shape[1]} smaller than --test-crop {min_size}')
    return ambient.shape, ambient.dtype.itemsize


def split_train_test(scenes, test_count, seed):
    """Deterministic, stratified, grouped split of scene keys -> (train keys, test keys), both sorted.

    Strata are categories without their source tag; each stratum gets a share of the test set
    proportional to its size (allocated stratum by stratum, so the shares sum to ``test_count``),
    filled with whole groups drawn in a seeded random order. A stratum whose groups are larger
    than its share may overshoot; later strata then take fewer, so strata with large groups go
    first. For FAID every group is one scene and the split is exactly ``test_count``.
    """
    if not 0 < test_count < len(scenes):
        raise ValueError(f'--test-count must be between 1 and {len(scenes) - 1} (valid pairs: {len(scenes)})')
    strata = {}
    for scene in sorted(scenes):
        strata.setdefault(scene_stratum(scene), {}).setdefault(scene_group(scene), []).append(scene)
    order = sorted(strata, key=lambda name: (-max(len(g) for g in strata[name].values()), name))
    rng = np.random.default_rng([seed, SPLIT_STREAM])
    remaining_test, remaining_total = test_count, len(scenes)
    test = []
    for name in order:
        groups = [strata[name][group] for group in sorted(strata[name])]
        stratum_size = sum(len(g) for g in groups)
        quota = max(0, math.floor(remaining_test * stratum_size / remaining_total + 0.5))
        taken = []
        for position in rng.permutation(len(groups)):
            if len(taken) >= quota:
                break
            taken += groups[position]
        test += taken
        remaining_test -= len(taken)
        remaining_total -= stratum_size
    test_set = set(test)
    return sorted(s for s in scenes if s not in test_set), sorted(test)


def degrade_test_pair(paths, position, seed, test_crop, homography_strength):
    """(lq, flash, gt, params) of one test pair: centre crop, then the train-time synthesis, seeded by position."""
    ambient = to_linear(decode_image(read_file_bytes(paths['ambient']), paths['ambient']))
    flash_only = to_linear(decode_image(read_file_bytes(paths['flash']), paths['flash']))
    height, width = ambient.shape[:2]
    crop = test_crop or min(height, width)
    strength = homography_strength * crop / degradation.REFERENCE_CROP
    margin = min(int(math.ceil(strength)), (min(height, width) - crop) // 2) if test_crop else int(math.ceil(strength))
    # Without --test-crop the whole image is the window and the output loses a margin on each side.
    out_height, out_width = (crop, crop) if test_crop else (height - 2 * margin, width - 2 * margin)
    top, left = (height - out_height) // 2 - margin, (width - out_width) // 2 - margin
    window = (slice(top, top + out_height + 2 * margin), slice(left, left + out_width + 2 * margin))
    rng = np.random.default_rng([seed, TEST_DEGRADATION_STREAM, position])
    return degradation.degrade_window(ambient[window], flash_only[window], margin, rng, corner_strength=strength)


def prepare_faid(faid_root, out, test_count=100, seed=0, test_crop=None, overwrite=False,
                 homography_strength=degradation.DEFAULT_HOMOGRAPHY_STRENGTH, progress=True, log=print):
    """Write ``out/train.lmdb``, ``out/test/`` and ``out/split.json`` (see the module docstring).

    Returns:
        dict: summary counts (``valid``, ``train``, ``test``, ``skipped``) and ``skipped_reasons``.
    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ValueError: no valid pair, or an impossible ``test_count``.
    """
    out = osp.abspath(out).rstrip(os.sep)
    if osp.exists(out) and not overwrite:
        raise FileExistsError(f'{out} exists; pass --overwrite to replace it')
    if not osp.isdir(faid_root):
        raise FileNotFoundError(f'--faid-root {faid_root} is not a folder')

    pairs, skipped = find_pairs(faid_root)
    shapes = {}
    for scene, paths in tqdm(pairs.items(), desc='check pairs', unit='pair', disable=not progress):
        try:
            shapes[scene] = check_pair(paths, test_crop or 1)  # ((H, W, C), bytes per sample)
        except (ValueError, FileNotFoundError) as error:
            skipped.append((paths['ambient'], str(error)))
    for path, reason in skipped:
        log(f'skipped {path}: {reason}')
    if not shapes:
        raise ValueError(f'no valid ambient/flash pair in {faid_root} ({len(skipped)} skipped)')
    train_keys, test_keys = split_train_test(list(shapes), test_count, seed)

    partial = f'{out}.partial-{os.getpid()}'
    if osp.exists(partial):
        shutil.rmtree(partial)
    os.makedirs(partial)
    try:
        # Train: clean pairs, re-encoded losslessly (bit depth kept) so meta_info's level is true.
        raw_bytes = sum(2 * int(np.prod(shapes[key][0])) * shapes[key][1] for key in train_keys)
        maker = LmdbMaker(osp.join(partial, 'train.lmdb'), map_size=int(raw_bytes * 1.2) + (64 << 20),
                          compress_level=PNG_COMPRESSION)
        for scene in tqdm(train_keys, desc='train.lmdb', unit='pair', disable=not progress):
            for role in ('ambient', 'flash'):
                path = pairs[scene][role]
                image = decode_image(read_file_bytes(path), path)
                ok, encoded = cv2.imencode('.png', np.ascontiguousarray(image[..., ::-1]),
                                           [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
                if not ok:
                    raise RuntimeError(f'{path}: OpenCV failed to re-encode')
                maker.put(encoded.tobytes(), f'{scene}_{role}', image.shape)
        maker.close()

        # Test: degraded once, with a generator per test position.
        test_params = {}
        for role in ('lq', 'flash', 'gt'):
            os.makedirs(osp.join(partial, 'test', role))
        for position, scene in enumerate(tqdm(test_keys, desc='test set', unit='pair', disable=not progress)):
            lq, flash, gt, params = degrade_test_pair(pairs[scene], position, seed, test_crop, homography_strength)
            for role, image in (('lq', lq), ('flash', flash), ('gt', gt)):
                with open(osp.join(partial, 'test', role, f'{scene}.png'), 'wb') as handle:
                    handle.write(encode_png16(image))
            test_params[scene] = params
        with open(osp.join(partial, 'test', 'params.json'), 'w') as handle:
            json.dump(test_params, handle, indent=1, sort_keys=True)
        with open(osp.join(partial, 'split.json'), 'w') as handle:
            json.dump({'seed': seed, 'test_crop': test_crop, 'train': train_keys, 'test': test_keys}, handle, indent=1)

        if osp.exists(out):  # --overwrite: the old output goes only once the new one is complete
            retired = f'{out}.old-{os.getpid()}'
            os.rename(out, retired)
            os.rename(partial, out)
            shutil.rmtree(retired)
        else:
            os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise

    summary = {'valid': len(shapes), 'train': len(train_keys),
               'test': len(test_keys), 'skipped': len(skipped), 'skipped_reasons': skipped}
    log(f'{len(train_keys)} train pairs -> {osp.join(out, "train.lmdb")}; {len(test_keys)} test triplets -> '
        f'{osp.join(out, "test")}; {len(skipped)} skipped')
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--faid-root', required=True, help='folder of <Category>_<NNN>_{ambient,flash}.png')
    parser.add_argument('--out', required=True, help='output folder (must not exist unless --overwrite)')
    parser.add_argument('--test-count', type=int, default=100, help='held-out pairs (default 100, as the paper)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the split and of the test degradation')
    parser.add_argument('--test-crop', type=int, default=None,
                        help='centre-crop the test images to S x S (default: whole image less the warp margin)')
    parser.add_argument('--homography-strength', type=float, default=degradation.DEFAULT_HOMOGRAPHY_STRENGTH,
                        help='test-set corner offsets in pixels at a 224 crop (default 8)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    args = parser.parse_args(argv)
    if args.test_crop is not None and args.test_crop < 1:
        parser.error('--test-crop must be positive')
    try:
        prepare_faid(args.faid_root, args.out, args.test_count, args.seed, args.test_crop, args.overwrite,
                     args.homography_strength, log=lambda message: print(message, file=sys.stderr))
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        sys.exit(f'prepare_faid: {error}')


if __name__ == '__main__':
    main()
