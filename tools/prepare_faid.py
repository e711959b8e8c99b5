"""Prepare FAID (or the toy stand-in) for training and testing.

    python tools/prepare_faid.py --faid-root DIR --out DIR [--opt options/fcdfn.yml]
        [--test-count 100 | --test-list FILE | --all-test] [--seed 0 --test-crop S]
        [--raw-colour camera|linear_srgb] [--overwrite]

Writes, under ``--out``:

* ``train.lmdb``: the clean training pairs in BasicSR's LMDB layout (``data.mdb``, ``lock.mdb``,
  ``meta_info.txt``), keys ``<Category>_<NNN>_ambient`` / ``_flash``, PNG-encoded with their bit
  depth kept (8-bit sRGB or 16-bit linear). Degradations are drawn at read time by the dataset.
  With 16-bit camera-RGB pairs (FAID's raw release) also ``colour.json``: per scene, the colour
  data of the ambient PNG's text chunks and the camera -> linear sRGB matrix built from it (the
  re-encoded PNGs lose their text chunks). Not written with ``--all-test``.
* ``test/{lq,flash,gt}/<Category>_<NNN>.png``: the held-out pairs, degraded once with a fixed seed
  (SPEC.md Sec. 2), 16-bit sRGB PNG, plus ``test/params.json`` (the drawn parameters per key).
* ``split.json``: the seed, the degradation law, the raw colour space, and the sorted train and
  test keys.

The degradation law of the test set is the training law: ``--opt`` reads the degradation keys of
``datasets.train`` of an options file through the same code as the dataset
(``DegradationLaw.from_options``); without ``--opt`` it is the dataset's default (the paper's).
The split is deterministic (seeded) and stratified by category; scenes of one source group
(``<Category>-<source>_<NNN>``, see ``fcdfn_plugin.data.faid_io``) stay on one side. ``--test-list``
takes the test scenes from a file instead (e.g. deepFnF's ``data/test.txt``), ``--all-test`` puts
every valid pair in the test set (to score models on a folder of real pairs). Everything is
written under ``<out>.partial-<pid>`` and renamed at the end, so a crash never leaves a half
output under the final name. Every skipped pair is reported with its reason and counted; a 16-bit
image without its colour data is an error (see ``--raw-colour``).
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
import yaml
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import fcdfn_plugin  # noqa: E402,F401  (first: makes BasicSR 1.4.2 importable)
from basicsr.utils import scandir  # noqa: E402
from basicsr.utils.lmdb_util import LmdbMaker  # noqa: E402
from fcdfn_plugin.data import degradation  # noqa: E402
from fcdfn_plugin.data.degradation import DegradationLaw  # noqa: E402
from fcdfn_plugin.data.faid_io import (RAW_COLOUR_SPACES, ColourDataError, colour_data_of,  # noqa: E402
                                       decode_image, encode_png16, pair_by_name, parse_faid_name,
                                       read_file_bytes, scene_group, scene_stratum, to_linear)
from fcdfn_plugin.data.flash_dataset import COLOUR_FILE  # noqa: E402
from fcdfn_plugin.utils.cli import inside, int_at_least  # noqa: E402

# Independent generator streams: (seed, stream, ...).
SPLIT_STREAM, TEST_DEGRADATION_STREAM = 0, 1
PNG_COMPRESSION = 1
DEFAULT_TEST_COUNT = 100
MAX_NAMED = 40  # missing test-list scenes named in the error


def load_options(opt_path):
    """``(DegradationLaw, raw_colour_space or None)`` from ``datasets.train`` of a BasicSR options file."""
    try:
        with open(opt_path) as handle:
            options = yaml.safe_load(handle)
    except OSError as error:
        raise FileNotFoundError(f'--opt {opt_path}: cannot read ({error.strerror})') from error
    except yaml.YAMLError as error:
        raise ValueError(f'--opt {opt_path}: not valid YAML ({" ".join(str(error).split())})') from error
    train = ((options or {}).get('datasets') or {}).get('train') if isinstance(options, dict) else None
    if not isinstance(train, dict):
        raise ValueError(f'--opt {opt_path}: no datasets.train section (the degradation keys are read from it)')
    try:
        law = DegradationLaw.from_options(train)
        raw_colour_space = degradation.option_choice(train, 'raw_colour_space', None, RAW_COLOUR_SPACES + (None, ))
    except ValueError as error:
        raise ValueError(f'--opt {opt_path}: datasets.train: {error}') from error
    return law, raw_colour_space


def read_test_list(list_path):
    """Scene keys of a test list, one a line: ``#`` comments and blank lines are ignored; a line may
    name a file (``path/Toys_242``, ``Toys_242_ambient.png``): its folder, extension and role
    suffix are stripped, so deepFnF's ``data/test.txt`` works as it is."""
    try:
        with open(list_path) as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise FileNotFoundError(f'--test-list {list_path}: cannot read ({error.strerror})') from error
    keys, seen = [], {}
    for number, line in enumerate(lines, 1):
        entry = line.split('#', 1)[0].strip()
        if not entry:
            continue
        stem = entry.replace('\\', '/').rsplit('/', 1)[-1]
        if stem.lower().endswith(('.png', '.tif', '.tiff', '.jpg', '.jpeg')):
            stem = osp.splitext(stem)[0]
        parsed = parse_faid_name(stem)
        key = parsed[0] if parsed else stem
        category, _, scene_number = key.rpartition('_')
        if not category or not scene_number.isdigit():
            raise ValueError(f'--test-list {list_path}:{number}: {entry!r} is not a scene key <Category>_<NNN>')
        if key in seen:
            raise ValueError(f'--test-list {list_path}:{number}: {key} is listed twice (also line {seen[key]})')
        seen[key] = number
        keys.append(key)
    if not keys:
        raise ValueError(f'--test-list {list_path}: no scene keys')
    return keys


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


def check_pair(paths, min_size, raw_colour_space='camera'):
    """Decode both images of a pair and read the colour data of a 16-bit ambient image.

    Returns:
        ((H, W, C), bytes per sample, colour data or None (see ``faid_io.colour_data_of``)).
    Raises:
        ValueError: the pair is unusable (reason in the message; the pair is skipped).
        ColourDataError: a 16-bit image without its colour data (an error: no pair is usable).
    """
    images, buffers = {}, {}
    for role in ('ambient', 'flash'):
        buffers[role] = read_file_bytes(paths[role])
        images[role] = decode_image(buffers[role], paths[role])
    ambient, flash = images['ambient'], images['flash']
    if ambient.shape != flash.shape or ambient.dtype != flash.dtype:
        raise ValueError(f'sizes/depths differ: ambient {ambient.shape} {ambient.dtype}, '
                         f'flash {flash.shape} {flash.dtype}')
    if min(ambient.shape[:2]) < min_size:
        raise ValueError(f'image {ambient.shape[0]}x{ambient.shape[1]} smaller than {min_size} px '
                         f'(--test-crop, or the whole-image test window)')
    colour = colour_data_of(buffers['ambient'], ambient, paths['ambient'], raw_colour_space)
    return ambient.shape, ambient.dtype.itemsize, colour


def split_train_test(scenes, test_count, seed):
    """Deterministic, stratified, grouped split of scene keys -> (train keys, test keys), both sorted.

    Strata are categories without their source tag; each stratum gets a share of the test set
    proportional to its size (allocated stratum by stratum, so the shares sum to ``test_count``),
    filled with whole groups drawn in a seeded random order. A stratum whose groups are larger
    than its share may overshoot; later strata then take fewer, so strata with large groups go
    first. For FAID every group is one scene and the split is exactly ``test_count``.
    """
    if not 0 < test_count < len(scenes):
        raise ValueError(f'--test-count must be between 1 and {len(scenes) - 1} (valid pairs: {len(scenes)}); '
                         f'--all-test puts every pair in the test set')
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


def split_by_list(scenes, test_keys, list_path, skipped):
    """(train keys, test keys) with the test keys of a list; every listed scene must be a valid pair."""
    valid = set(scenes)
    missing = [key for key in test_keys if key not in valid]
    if missing:
        reasons = {}
        for path, reason in skipped:
            parsed = parse_faid_name(osp.splitext(osp.basename(path))[0])
            if parsed:
                reasons.setdefault(parsed[0], reason)
        described = [f'{key} ({"skipped: " + reasons[key] if key in reasons else "not found"})' for key in missing]
        more = f', and {len(described) - MAX_NAMED} more' if len(described) > MAX_NAMED else ''
        raise ValueError(f'--test-list {list_path}: {len(missing)} of {len(test_keys)} scenes are not valid pairs '
                         f'in --faid-root: {", ".join(described[:MAX_NAMED])}{more}')
    test_set = set(test_keys)
    return sorted(s for s in scenes if s not in test_set), sorted(test_set)


def test_window(height, width, test_crop, law):
    """``(top, left, out_height, out_width, margin)`` of a test image's window (SPEC.md Sec. 2).

    The warp needs ``law.margin()`` = ceil(s) px around the output (s in pixels of the stored image,
    as in training). With ``test_crop`` the output is the centre S x S crop and its margin is
    clamped to the room the image has; without, the window is the whole image and the output is
    the image less the margin on every side.
    """
    if test_crop:
        margin = min(law.margin(), (min(height, width) - test_crop) // 2)
        out_height = out_width = test_crop
    else:
        margin = law.margin()
        out_height, out_width = height - 2 * margin, width - 2 * margin
    top, left = (height - out_height) // 2 - margin, (width - out_width) // 2 - margin
    return top, left, out_height, out_width, margin


def degrade_test_pair(paths, position, seed, test_crop, law, colour_matrix=None):
    """(lq, flash, gt, params) of one test pair: the training law, seeded by the test position.

    ``colour_matrix``: camera -> linear sRGB of a raw pair (applied after the noise and the warp,
    as in training), None for 8-bit or linear-sRGB pairs.
    """
    ambient = to_linear(decode_image(read_file_bytes(paths['ambient']), paths['ambient']))
    flash_only = to_linear(decode_image(read_file_bytes(paths['flash']), paths['flash']))
    top, left, out_height, out_width, margin = test_window(*ambient.shape[:2], test_crop, law)
    window = (slice(top, top + out_height + 2 * margin), slice(left, left + out_width + 2 * margin))
    rng = np.random.default_rng([seed, TEST_DEGRADATION_STREAM, position])
    return degradation.degrade_window(ambient[window], flash_only[window], margin, rng, law=law,
                                      colour_matrix=colour_matrix)


#: What ``prepare_faid`` writes under ``--out`` (folder -> the entries it may hold; None: any file).
OUTPUT_LAYOUT = {'': {'train.lmdb', 'test', 'split.json'},
                 'train.lmdb': {'data.mdb', 'lock.mdb', 'meta_info.txt', COLOUR_FILE},
                 'test': {'lq', 'flash', 'gt', 'params.json'}, 'test/lq': None, 'test/flash': None, 'test/gt': None}


def foreign_entries(out):
    """Paths under an existing ``out`` that ``prepare_faid`` does not write (what ``--overwrite`` must not delete)."""
    foreign = []
    for folder, names in OUTPUT_LAYOUT.items():
        full = osp.join(out, folder)
        if not osp.isdir(full):
            continue
        for name in sorted(os.listdir(full)):
            entry = osp.join(full, name)
            if names is None:
                expected = name.endswith('.png') and osp.isfile(entry)
            else:
                expected = name in names and osp.isdir(entry) == (f'{folder}/{name}'.lstrip('/') in OUTPUT_LAYOUT)
            if not expected or osp.islink(entry):
                foreign.append(entry)
    return foreign


def check_output_folder(out, faid_root, overwrite, inputs=None):
    """Refuse an ``out`` that is, holds or lies inside an input, or (``overwrite``) holds files not written here."""
    if inside(out, faid_root) or inside(faid_root, out):
        relation = 'is' if inside(out, faid_root) and inside(faid_root, out) else \
            'lies inside' if inside(out, faid_root) else 'contains'
        raise ValueError(f'--out {out} {relation} --faid-root {faid_root}; the prepared data must go to a folder '
                         'outside the photos (and --overwrite would delete them): choose another --out')
    for option, path in (inputs or {}).items():
        if path is not None and inside(path, out):
            raise ValueError(f'{option} {path} lies inside --out {out}, which is replaced; move it or choose another '
                             '--out')
    if not osp.exists(out) and not osp.islink(out):
        return
    if not overwrite:
        raise FileExistsError(f'{out} exists; pass --overwrite to replace it')
    if not osp.isdir(out) or osp.islink(out):
        raise FileExistsError(f'--out {out} exists and is not a folder; --overwrite replaces only a folder written by '
                              'prepare_faid: choose another --out')
    foreign = foreign_entries(out)
    if foreign:
        more = f' and {len(foreign) - 5} more' if len(foreign) > 5 else ''
        raise FileExistsError(f'--out {out} holds files prepare_faid did not write ({", ".join(foreign[:5])}{more}); '
                              '--overwrite would delete them: move them or choose another --out')


def _write_atomically(out, partial):
    if osp.exists(out):  # --overwrite: the old output goes only once the new one is complete
        retired = f'{out}.old-{os.getpid()}'
        os.rename(out, retired)
        os.rename(partial, out)
        shutil.rmtree(retired)
    else:
        os.rename(partial, out)


def prepare_faid(faid_root, out, test_count=None, seed=0, test_crop=None, overwrite=False, law=None,
                 raw_colour_space='camera', test_list=None, all_test=False, progress=True, log=print):
    """Write ``out/train.lmdb``, ``out/test/`` and ``out/split.json`` (see the module docstring).

    Args:
        law (DegradationLaw | None): the degradation law of the test set (None: the default, the
            paper's); pass the training law (``load_options``) so both match.
        raw_colour_space (str): ``camera`` (FAID's raw release; 16-bit files need their colour
            data) or ``linear_srgb`` (16-bit files are linear sRGB).
        test_count (int | None): size of the seeded, stratified test split (default 100).
        test_list (str | None): file of test scene keys instead of the seeded split.
        all_test (bool): every valid pair goes to the test set; no train LMDB is written.
    Returns:
        dict: summary counts (``valid``, ``train``, ``test``, ``skipped``) and ``skipped_reasons``.
    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ValueError: no valid pair, an impossible ``test_count``, a bad or unmatched test list,
            conflicting split options, or (``ColourDataError``) a 16-bit image without colour data.
    """
    law = DegradationLaw() if law is None else law
    if sum((test_count is not None, test_list is not None, bool(all_test))) > 1:
        raise ValueError('choose one of --test-count, --test-list and --all-test')
    if raw_colour_space not in RAW_COLOUR_SPACES:
        raise ValueError(f'--raw-colour: unknown value {raw_colour_space!r}; expected one of {RAW_COLOUR_SPACES}')
    out = osp.abspath(out).rstrip(os.sep)
    if not osp.isdir(faid_root):
        raise FileNotFoundError(f'--faid-root {faid_root} is not a folder')
    check_output_folder(out, faid_root, overwrite, {'--test-list': test_list})
    listed = read_test_list(test_list) if test_list is not None else None
    bar = None if progress else True  # tqdm: None hides the bar when stderr is not a terminal

    pairs, skipped = find_pairs(faid_root)
    shapes, colours = {}, {}
    min_size = test_crop or 2 * law.margin() + 1
    for scene, paths in tqdm(pairs.items(), desc='check pairs', unit='pair', disable=bar):
        try:
            shape, itemsize, colour = check_pair(paths, min_size, raw_colour_space)
        except ColourDataError:
            raise
        except (ValueError, FileNotFoundError) as error:
            skipped.append((paths['ambient'], str(error)))
            continue
        shapes[scene] = (shape, itemsize)
        if colour is not None:
            colours[scene] = colour
    for path, reason in skipped:
        log(f'skipped {path}: {reason}')
    if not shapes:
        raise ValueError(f'no valid ambient/flash pair in {faid_root} ({len(skipped)} skipped)')
    if all_test:
        train_keys, test_keys = [], sorted(shapes)
    elif listed is not None:
        train_keys, test_keys = split_by_list(list(shapes), listed, test_list, skipped)
    else:
        train_keys, test_keys = split_train_test(
            list(shapes), DEFAULT_TEST_COUNT if test_count is None else test_count, seed)

    partial = f'{out}.partial-{os.getpid()}'
    if osp.exists(partial):
        shutil.rmtree(partial)
    os.makedirs(partial)
    try:
        if train_keys:
            _write_train_lmdb(osp.join(partial, 'train.lmdb'), train_keys, pairs, shapes, colours,
                              raw_colour_space, bar)

        # Test: degraded once, with a generator per test position.
        test_params = {}
        for role in ('lq', 'flash', 'gt'):
            os.makedirs(osp.join(partial, 'test', role))
        for position, scene in enumerate(tqdm(test_keys, desc='test set', unit='pair', disable=bar)):
            colour_matrix = colours[scene]['camera_to_linear_srgb'] if scene in colours else None
            lq, flash, gt, params = degrade_test_pair(pairs[scene], position, seed, test_crop, law, colour_matrix)
            for role, image in (('lq', lq), ('flash', flash), ('gt', gt)):
                with open(osp.join(partial, 'test', role, f'{scene}.png'), 'wb') as handle:
                    handle.write(encode_png16(image))
            test_params[scene] = params
        with open(osp.join(partial, 'test', 'params.json'), 'w') as handle:
            json.dump(test_params, handle, indent=1, sort_keys=True)
        split = {'seed': seed, 'test_crop': test_crop, 'law': law.to_options(), 'raw_colour_space': raw_colour_space,
                 'test_list': test_list and osp.basename(test_list), 'all_test': bool(all_test),
                 'train': train_keys, 'test': test_keys}
        with open(osp.join(partial, 'split.json'), 'w') as handle:
            json.dump(split, handle, indent=1)
        _write_atomically(out, partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise

    summary = {'valid': len(shapes), 'train': len(train_keys),
               'test': len(test_keys), 'skipped': len(skipped), 'skipped_reasons': skipped}
    train_note = f'{len(train_keys)} train pairs -> {osp.join(out, "train.lmdb")}' if train_keys else 'no train set'
    log(f'{train_note}; {len(test_keys)} test triplets -> {osp.join(out, "test")}; {len(skipped)} skipped')
    return summary


def _write_train_lmdb(lmdb_path, train_keys, pairs, shapes, colours, raw_colour_space, bar):
    """Clean pairs, re-encoded losslessly (bit depth kept) so meta_info's level is true, plus colour.json."""
    raw_bytes = sum(2 * int(np.prod(shapes[key][0])) * shapes[key][1] for key in train_keys)
    maker = LmdbMaker(lmdb_path, map_size=int(raw_bytes * 1.2) + (64 << 20), compress_level=PNG_COMPRESSION)
    for scene in tqdm(train_keys, desc='train.lmdb', unit='pair', disable=bar):
        for role in ('ambient', 'flash'):
            path = pairs[scene][role]
            image = decode_image(read_file_bytes(path), path)
            ok, encoded = cv2.imencode('.png', np.ascontiguousarray(image[..., ::-1]),
                                       [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
            if not ok:
                raise RuntimeError(f'{path}: OpenCV failed to re-encode')
            maker.put(encoded.tobytes(), f'{scene}_{role}', image.shape)
    maker.close()
    # The re-encoded PNGs have no text chunks: the colour data travels in a side file.
    train_colours = {key: colours[key] for key in train_keys if key in colours}
    if train_colours:
        with open(osp.join(lmdb_path, COLOUR_FILE), 'w') as handle:
            json.dump({'raw_colour_space': raw_colour_space, 'scenes': train_colours}, handle, indent=1, sort_keys=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--faid-root', required=True, help='folder of <Category>_<NNN>_{ambient,flash}.png')
    parser.add_argument('--out', required=True, help='output folder (must not exist unless --overwrite)')
    parser.add_argument('--opt', default=None,
                        help='options file whose datasets.train degradation keys (ranges, sampling laws, flash '
                             'gain, homography strength, flash noise order, raw_colour_space) the test set uses; '
                             "default: the dataset's defaults (the paper's law)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument('--test-count', type=int_at_least(1), default=None,
                       help=f'held-out pairs of the seeded, stratified split '
                            f'(default {DEFAULT_TEST_COUNT}, as the paper)')
    split.add_argument('--test-list', default=None,
                       help="file of test scene keys, one a line (e.g. deepFnF's data/test.txt)")
    split.add_argument('--all-test', action='store_true',
                       help='every valid pair goes to the test set and no train LMDB is written')
    parser.add_argument('--seed', type=int_at_least(0), default=0, help='seed of the split and of the test degradation')
    parser.add_argument('--test-crop', type=int_at_least(1), default=None,
                        help='centre-crop the test images to S x S (default: whole image less the warp margin)')
    parser.add_argument('--raw-colour', choices=RAW_COLOUR_SPACES, default=None,
                        help="16-bit files: 'camera' (FAID's raw release, colour matrix in the PNG text chunks; "
                             "default) or 'linear_srgb' (already linear sRGB); default from --opt's "
                             'raw_colour_space, else camera')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    args = parser.parse_args(argv)
    try:
        if args.opt and inside(args.opt, args.out):
            raise ValueError(f'--opt {args.opt} lies inside --out {args.out}, which is replaced; move it or choose '
                             'another --out')
        law, opt_raw_colour = load_options(args.opt) if args.opt else (DegradationLaw(), None)
        prepare_faid(args.faid_root, args.out, args.test_count, args.seed, args.test_crop, args.overwrite,
                     law=law, raw_colour_space=args.raw_colour or opt_raw_colour or 'camera',
                     test_list=args.test_list, all_test=args.all_test,
                     log=lambda message: print(message, file=sys.stderr))
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
