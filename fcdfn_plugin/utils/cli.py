"""Checks shared by the command-line tools: argument ranges, output paths, image writes.

Everything here fails with :class:`CliError`, whose message names the argument, the path or the
value and says what to do instead; the tools print it as one ``error:`` line. Outputs are checked
before any work, so a bad ``--out`` costs nothing; writes are checked after, so "Wrote X" is only
printed once X exists.
"""
import argparse
import functools
import os
from os import path as osp

import numpy as np


class CliError(ValueError):
    """A bad command line (argument, path or file), with a message for the user."""


def int_at_least(minimum):
    """argparse ``type``: an integer >= ``minimum`` (the error names the value and the bound)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}')
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be at least {minimum}, got {value}')
        return value
    parse.__name__ = f'integer >= {minimum}'
    return parse


def float_at_least(minimum):
    """argparse ``type``: a finite float >= ``minimum``."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected a number, got {text!r}')
        if not np.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(f'must be a finite number >= {minimum}, got {text}')
        return value
    parse.__name__ = f'number >= {minimum}'
    return parse


def check_tiling(tile, overlap, multiple=1):
    """Tiling arguments that :func:`fcdfn_plugin.utils.tiling.tiled_forward` accepts, else a CliError."""
    if tile < 1:
        raise CliError(f'--tile must be at least 1, got {tile}')
    if overlap < 0:
        raise CliError(f'--overlap must be at least 0, got {overlap}')
    if tile - overlap < multiple:
        raise CliError(f'--overlap ({overlap}) must be smaller than --tile ({tile}) by at least {multiple} '
                       f'(the network pads to multiples of {multiple}); e.g. --overlap {max(0, tile // 4)}')


def same_path(first, second):
    """Whether two paths name the same file (existing or not; symbolic links resolved)."""
    if osp.exists(first) and osp.exists(second):
        return osp.samefile(first, second)
    return osp.realpath(first) == osp.realpath(second)


def inside(path, folder):
    """Whether ``path`` is ``folder`` or lies under it (symbolic links resolved)."""
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


@functools.lru_cache(maxsize=None)
def keeps_16_bits(extension):
    """Whether OpenCV writes 16-bit pixels to ``extension`` (e.g. '.png') and reads them back as 16-bit."""
    import cv2
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # no warning for a format without 16 bits
    try:
        ok, encoded = cv2.imencode(extension, np.full((2, 2, 3), 40000, np.uint16))
    except cv2.error:
        return False
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not ok:
        return False
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return decoded is not None and decoded.dtype == np.uint16 and int(decoded.max()) > 255


def check_image_output(path, option, overwrite=False, inputs=()):
    """Check an image path to write before any work: a writable format, a folder to put it in, no clash.

    Refuses a folder, a name OpenCV has no writer for, an existing file without ``overwrite``, a path
    that is one of ``inputs`` ({option: path}), and a parent that cannot be a folder. The parent
    folder is created when missing. Returns ``path``.
    """
    import cv2
    for input_option, input_path in inputs.items() if isinstance(inputs, dict) else inputs:
        if input_path is not None and same_path(path, input_path):
            raise CliError(f'{option} {path!r} is the {input_option} file: it would be overwritten; '
                           f'choose another {option}')
    if osp.isdir(path):
        raise CliError(f'{option} {path!r} is a folder; give a file name such as {osp.join(path, "result.png")!r}')
    extension = osp.splitext(path)[1].lower()
    if not extension:
        raise CliError(f'{option} {path!r} has no extension, so no image format; add one (.png keeps 16 bits, '
                       '.jpg, .tif)')
    if not cv2.haveImageWriter(f'x{extension}'):
        raise CliError(f'{option} {path!r}: OpenCV cannot write {extension} files; use .png, .jpg or .tif')
    if osp.exists(path) and not overwrite:
        raise CliError(f'{option} {path!r} exists; pass --overwrite to replace it')
    make_folder(osp.dirname(osp.abspath(path)), option)
    return path


def make_folder(folder, option):
    """Create ``folder`` (and its parents), or a CliError saying which part of it is in the way."""
    try:
        os.makedirs(folder, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = folder
        while blocker and not osp.exists(blocker):
            blocker = osp.dirname(blocker)
        raise CliError(f'{option}: cannot create the folder {folder!r}: {blocker!r} is a file, not a folder')
    except OSError as error:
        raise CliError(f'{option}: cannot create the folder {folder!r} ({error.strerror})')


def check_distinct(outputs):
    """No two of ``outputs`` ({option: path or None}) name the same file."""
    given = [(option, path) for option, path in outputs.items() if path is not None]
    for index, (option, path) in enumerate(given):
        for other_option, other_path in given[index + 1:]:
            if same_path(path, other_path):
                raise CliError(f'{option} and {other_option} are the same file {path!r}: the second write would '
                               'replace the first; give them different names')


def write_image(path, pixels, option='--out'):
    """``cv2.imwrite`` of BGR uint8/uint16 ``pixels``, checked; 16-bit pixels become 8-bit for a format without 16.

    Returns the bit depth written. Raises CliError when nothing was written.
    """
    import cv2
    bits = 16 if pixels.dtype == np.uint16 else 8
    if bits == 16 and not keeps_16_bits(osp.splitext(path)[1].lower()):
        pixels = np.round(pixels.astype(np.float64) / 257.0).astype(np.uint8)
        bits = 8
    try:
        ok = cv2.imwrite(path, pixels)
    except cv2.error as error:
        raise CliError(f'{option}: OpenCV could not write {path!r} ({str(error).strip().splitlines()[-1]})')
    if not ok or not osp.isfile(path):
        raise CliError(f'{option}: could not write {path!r} (is the folder writable and the disk not full?)')
    return bits


def check_runner_options(argv):
    """Check the ``-opt`` file of BasicSR's train/test runner before BasicSR reads it (which fails with a traceback).

    The file must exist and parse as BasicSR parses it, and its ``network_g`` / ``network_d``, ``model_type``
    and dataset types must be registered, with keys the arch takes. Raises CliError naming the file and key.
    """
    import yaml
    from basicsr.utils.options import ordered_yaml
    from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY

    from .inference import InferenceSetupError, check_network_options
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', default=None)
    opt_path = parser.parse_known_args(argv)[0].opt
    if opt_path is None:
        return  # BasicSR's own parser says that -opt is required
    if not osp.isfile(opt_path):
        raise CliError(f'-opt {opt_path!r} does not exist' + (' (it is a folder)' if osp.isdir(opt_path) else '')
                       + '; pass a BasicSR options file such as options/fcdfn_demo.yml')
    try:
        with open(opt_path) as handle:
            opt = yaml.load(handle, Loader=ordered_yaml()[0])
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise CliError(f'-opt {opt_path!r} is not a readable YAML file: {" ".join(str(error).split())}')
    if not isinstance(opt, dict):
        raise CliError(f'-opt {opt_path!r} holds no mapping of options (got {type(opt).__name__})')
    for key in ('network_g', 'network_d'):
        if key in opt:
            try:
                check_network_options(opt[key], f'{opt_path} ({key})')
            except InferenceSetupError as error:
                raise CliError(str(error))
    model_type = opt.get('model_type', 'SRModel')
    if model_type not in MODEL_REGISTRY._obj_map:
        raise CliError(f'-opt {opt_path}: model_type {model_type!r} is not a registered model; known: '
                       f'{", ".join(sorted(MODEL_REGISTRY._obj_map))}')
    for phase, dataset in (opt.get('datasets') or {}).items():
        kind = dataset.get('type') if isinstance(dataset, dict) else None
        if kind not in DATASET_REGISTRY._obj_map:
            raise CliError(f'-opt {opt_path}: datasets.{phase}.type {kind!r} is not a registered dataset; known: '
                           f'{", ".join(sorted(DATASET_REGISTRY._obj_map))}')
