"""Build an offline stand-in for FAID, in FAID's file layout, from rendered scenes.

    python tools/make_toy_faid.py --out datasets/toy_faid [--count 224 --size 256 --seed 0 --bits 8]

Writes ``<Category>_<NNN>_ambient.png`` and ``<Category>_<NNN>_flash.png`` (flash = flash-only),
8-bit sRGB (like FAID's processed release) or 16-bit linear (like its raw release, including its
colour data: the PNG text chunks ``Comment``, the XYZ-to-camera matrix, and ``Description``, the
EXIF illuminant code; the toy camera's RGB is linear sRGB, so the matrix is XYZ -> linear sRGB
and the illuminant D65). Two sources:

* ``Leaves_<NNN>``: procedural dead-leaves scenes (unique by construction), rendered with exact
  depth, normals, fine albedo textures (``fcdfn_plugin.data.textures``: 1/f noise, text, thin
  lines, weaves, texture photographs), specular highlights, hard flash shadows and a warm
  ambient lamp's soft shadows (``fcdfn_plugin.data.toy_scenes``);
* ``Photo-<name>_<NNN>``: random cuts of the colour photographs shipped inside scikit-image's
  wheel (the motorcycle with its stereo disparity as real depth), rendered with the same light
  model. The ``-<name>`` tag makes ``tools/prepare_faid.py`` keep all cuts of one photograph on
  the same side of the train/test split; these photographs are never used as textures of the
  ``Leaves`` scenes (``textures.SKIMAGE_TEXTURE_FILES`` is disjoint from :data:`PHOTOS`), so no
  test content leaks into training scenes.

Scene ``i`` is drawn from ``numpy.random.default_rng([seed, i])``: same arguments, same files.
"""
import argparse
import multiprocessing
import os
import re
import sys
from os import path as osp

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from fcdfn_plugin.data.degradation import linear_to_srgb  # noqa: E402
from fcdfn_plugin.data.faid_io import XYZ_TO_LINEAR_SRGB, add_png_text  # noqa: E402
from fcdfn_plugin.data.toy_scenes import render_dead_leaves, render_photo  # noqa: E402
from fcdfn_plugin.utils.cli import int_at_least  # noqa: E402

#: The names this tool writes (``scene_plan`` keys plus the role): ``--overwrite`` removes these and nothing else.
TOY_FILE = re.compile(r'^(Leaves|Photo-[A-Za-z0-9]+)_\d{3,}_(ambient|flash)\.png$')

#: Colour photographs of scikit-image's wheel that look like scenes (name -> optional disparity file).
#: Keep them out of ``fcdfn_plugin.data.textures`` (tests/test_textures.py checks it).
PHOTOS = {
    'astronaut': ('astronaut.png', None),
    'chelsea': ('chelsea.png', None),
    'coffee': ('coffee.png', None),
    'rocket': ('rocket.jpg', None),
    'motorcycle': ('motorcycle_left.png', 'motorcycle_disp.npz'),
}


def shipped_photos():
    """name -> (sRGB float32 image, disparity or None) for every photo present in the installed wheel.

    Only files inside the wheel are used (scikit-image would otherwise try to download them).
    """
    import skimage.data
    data_dir = osp.dirname(skimage.data.__file__)
    photos = {}
    for name, (image_file, disparity_file) in PHOTOS.items():
        image = cv2.imread(osp.join(data_dir, image_file), cv2.IMREAD_COLOR)
        if image is None:
            continue
        disparity = None
        if disparity_file is not None and osp.isfile(osp.join(data_dir, disparity_file)):
            with np.load(osp.join(data_dir, disparity_file)) as archive:
                disparity = archive[archive.files[0]]
            if disparity.shape != image.shape[:2]:
                disparity = None
        photos[name] = (image[..., ::-1].astype(np.float32) / 255.0, disparity)
    return photos, data_dir


def encode(linear, bits):
    """(H, W, 3) linear RGB -> BGR array for cv2.imwrite: 8-bit sRGB or 16-bit linear."""
    if bits == 8:
        image = np.round(linear_to_srgb(linear) * 255.0).astype(np.uint8)
    else:
        image = np.round(np.clip(linear, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return np.ascontiguousarray(image[..., ::-1])


def scene_plan(count, photo_fraction, photo_names):
    """[(scene key, photo name or None)]: procedural scenes, then photo cuts spread over the photos."""
    photo_count = int(round(count * photo_fraction)) if photo_names else 0
    plan = [(f'Leaves_{number:03d}', None) for number in range(count - photo_count)]
    per_photo = {name: 0 for name in photo_names}
    for cut in range(photo_count):
        name = photo_names[cut % len(photo_names)]
        plan.append((f'Photo-{name}_{per_photo[name]:03d}', name))
        per_photo[name] += 1
    return plan


_PHOTOS = {}
#: FAID raw colour data of a camera whose RGB is linear sRGB: XYZ -> camera = XYZ -> linear sRGB, D65 (21).
RAW_COLOUR_TEXT = {'Comment': ' '.join(f'{v:.17g}' for v in XYZ_TO_LINEAR_SRGB.ravel()), 'Description': '21'}


def _set_photos(photos):
    _PHOTOS.clear()
    _PHOTOS.update(photos)


def _render_and_write(task):
    """Render scene ``scene_index`` from ``default_rng([seed, scene_index])`` and write its two files."""
    seed, scene_index, key, photo_name, size, bits, out = task
    rng = np.random.default_rng([seed, scene_index])
    if photo_name is None:
        ambient, flash_only = render_dead_leaves(rng, size)
    else:
        photo, disparity = _PHOTOS[photo_name]
        ambient, flash_only = render_photo(photo, rng, size, disparity=disparity)
    for role, linear in (('ambient', ambient), ('flash', flash_only)):
        path = osp.join(out, f'{key}_{role}.png')
        ok, encoded = cv2.imencode('.png', encode(linear, bits), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise OSError(f'{path}: cannot encode')
        encoded = encoded.tobytes()
        if bits == 16:
            encoded = add_png_text(encoded, RAW_COLOUR_TEXT)
        with open(path, 'wb') as handle:
            handle.write(encoded)


def clear_output(out, overwrite):
    """Make ``out`` ready: refuse a file or a folder holding anything but toy scenes; with ``overwrite``, remove
    the toy scenes of an earlier run (and only those), so no scene of another ``--count`` stays behind."""
    if osp.exists(out) and not osp.isdir(out):
        sys.exit(f'error: --out {out} is a file, not a folder; choose another --out')
    names = sorted(os.listdir(out)) if osp.isdir(out) else []
    if not names:
        return
    foreign = [name for name in names if not (TOY_FILE.match(name) and osp.isfile(osp.join(out, name)))]
    if foreign:
        more = f' and {len(foreign) - 5} more' if len(foreign) > 5 else ''
        sys.exit(f'error: --out {out} holds files that are not toy scenes ({", ".join(foreign[:5])}{more}); '
                 'choose an empty or new folder (--overwrite replaces only toy scenes)')
    if not overwrite:
        sys.exit(f'error: --out {out} exists and holds {len(names)} toy files; pass --overwrite to replace them')
    for name in names:
        os.remove(osp.join(out, name))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True, help='output folder (FAID layout)')
    parser.add_argument('--count', type=int_at_least(1), default=224, help='number of scenes (default 224)')
    parser.add_argument('--size', type=int_at_least(16), default=256,
                        help='image height and width in pixels (default 256)')
    parser.add_argument('--seed', type=int_at_least(0), default=0, help='base seed (default 0)')
    parser.add_argument('--bits', type=int, choices=(8, 16), default=8,
                        help='8: 8-bit sRGB (processed FAID); 16: 16-bit linear (raw FAID). Default 8')
    parser.add_argument('--photo-fraction', type=float, default=0.25,
                        help='share of scenes cut from photographs, the rest procedural (default 0.25)')
    parser.add_argument('--workers', type=int_at_least(1), default=min(2, os.cpu_count() or 1),
                        help='worker processes (default min(2, CPUs)); the output does not depend on it')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the toy scenes of an existing --out (a folder holding other files is refused)')
    args = parser.parse_args(argv)
    if not 0 <= args.photo_fraction <= 1:
        parser.error('--photo-fraction must be in [0, 1]')
    return args


def main(argv=None):
    args = parse_args(argv)
    clear_output(args.out, args.overwrite)
    photos = {}
    if args.photo_fraction > 0:
        photos, data_dir = shipped_photos()
        if not photos:
            sys.exit(f'error: none of the photographs {sorted(v[0] for v in PHOTOS.values())} is shipped in '
                     f'{data_dir}; use --photo-fraction 0 for procedural scenes only')
    os.makedirs(args.out, exist_ok=True)
    plan = scene_plan(args.count, args.photo_fraction, sorted(photos))
    tasks = [(args.seed, scene_index, key, photo_name, args.size, args.bits, args.out)
             for scene_index, (key, photo_name) in enumerate(plan)]
    # Each scene has its own generator, so the output does not depend on the number of workers.
    progress = tqdm(total=len(tasks), desc='toy FAID', unit='scene', disable=None)
    if args.workers > 1:
        with multiprocessing.Pool(args.workers, initializer=_set_photos, initargs=(photos, )) as pool:
            for _ in pool.imap_unordered(_render_and_write, tasks, chunksize=4):
                progress.update()
    else:
        _set_photos(photos)
        for task in tasks:
            _render_and_write(task)
            progress.update()
    progress.close()
    print(f'wrote {len(plan)} scenes ({sum(p is None for _, p in plan)} procedural, '
          f'{sum(p is not None for _, p in plan)} photo cuts from {len(photos)} photos) to {args.out}')


if __name__ == '__main__':
    main()
