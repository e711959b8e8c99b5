"""Enhance a real low-light / flash pair of any size with trained FCDFN weights.

    python tools/enhance.py --lowlight dark.png --flash flash.png --out result.png \
        [--weights net_g_latest.pth] [-opt options/fcdfn.yml] [--tile 512] [--compare side_by_side.png] \
        [--sigma-read R --sigma-shot S] [--exposure-ratio D | --exposure none] [--align]

Without ``--weights`` the model shipped with the repository is used (``weights/fcdfn_small.pth``,
FCDFN small trained on the offline toy FAID by ``make small-model``; see docs/RESULTS.md).

The network is built from ``network_g`` of the options the weights were trained with: ``-opt`` if
given, else the ``network_g`` stored in the checkpoint, else the options file that ``tools/train.py``
copied into the experiment folder (``experiments/<name>/`` above ``models/net_g_X.pth``). Inputs
are sRGB photos (8- or 16-bit PNG, JPEG, anything OpenCV reads), turned upright by their EXIF
orientation; the result is written with the low-light input's bit depth (8 bits in a format without
16, such as JPEG). Outputs are checked before any work and never replace an input. Pairs above
``--min-pixels`` run tile by tile with blended overlaps.
Networks that take the noise level (DeepFnFArch, variant official) need ``--sigma-read`` and
``--sigma-shot``: the read and shot noise sigmas of the linear low-light image.

Any exposure: the no-flash photo may come at any exposure (a dim room, a very dark one, or gained
back to normal brightness by a phone). The exposure contract (``fcdfn_plugin/data/exposure.py``,
the one the model was trained with, else the training law's band) brings it into the band the
network was trained for: its exposure ratio (normal exposure / the photo's) is ``--exposure-ratio``
when given, else estimated from the photo; when both photos carry EXIF exposure time and ISO, the
no-flash photo is first brought to the flash photo's exposure. ``--exposure none`` feeds the photo
as it is. ``--align`` first warps the flash photo onto the no-flash one (one homography; a failed
estimate is reported and skipped), for pairs that moved more than the network's 8 px.
"""
import argparse
import sys
import time
from os import path as osp

import numpy as np
import torch
from tqdm import tqdm

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from fcdfn_plugin.utils.cli import (CliError, check_distinct, check_image_output, check_tiling,  # noqa: E402
                                    float_at_least, int_at_least, write_image)
#: A low-light photo with more than this share of clipped pixels gets a warning: it has no information left there.
SATURATED_FRACTION = 0.5


def read_photo(path, what):
    """The :class:`~fcdfn_plugin.utils.photo_io.Photo` in ``path`` (upright, EXIF read); errors exit with the reason."""
    from fcdfn_plugin.utils.photo_io import PhotoError
    from fcdfn_plugin.utils.photo_io import read_photo as read
    try:
        photo = read(path, what)
    except PhotoError as err:
        raise SystemExit(f'error: {err}')
    if photo.orientation != 1:
        print(f'{what} photo {path}: EXIF orientation {photo.orientation} applied ({photo.orientation_text}).',
              flush=True)
    return photo


def check_pair(lowlight, flash):
    """Warnings for a pair that will not enhance as expected; an error for sizes that differ."""
    from fcdfn_plugin.utils.photo_io import clipped_fraction
    if lowlight.orientation != flash.orientation:
        print(f'warning: the low-light photo has EXIF orientation {lowlight.orientation} ({lowlight.orientation_text}) '
              f'but the flash photo {flash.orientation} ({flash.orientation_text}); both were turned upright as '
              'tagged, so check that the two show the scene the same way up.', file=sys.stderr, flush=True)
    if lowlight.rgb.shape != flash.rgb.shape:
        raise SystemExit(f'error: the low-light image is {lowlight.rgb.shape[1]}x{lowlight.rgb.shape[0]} but the flash '
                         f'image is {flash.rgb.shape[1]}x{flash.rgb.shape[0]} (upright); the pair must have the same '
                         'size.')
    clipped = clipped_fraction(lowlight.rgb)
    if clipped > SATURATED_FRACTION:
        print(f'warning: the low-light photo {lowlight.path} is saturated: {clipped:.0%} of its pixels are clipped at '
              'white, so they hold no scene information and the result there will be wrong. Pass the dark, '
              'no-flash photo as --lowlight (not the flash photo, nor an over-exposed shot).', file=sys.stderr,
              flush=True)


def exposure_setup(args, photo, flash_photo):
    """``(ExposureContract or None, exposure ratio, relative exposure or None)`` for this pair, said on
    the console.

    The contract is the weights' own (:func:`fcdfn_plugin.utils.inference.exposure_contract`), applied
    in ``auto`` mode even for weights trained without one (their training band); ``--exposure none``
    gives None. The relative exposure comes from both photos' EXIF exposure time and ISO; the ratio is
    ``--exposure-ratio`` or estimated (once) on the photo brought to the flash photo's exposure.
    """
    from fcdfn_plugin.data.exposure import ExposureContract, estimate_exposure_ratio, exif_relative_exposure
    from fcdfn_plugin.utils.inference import InferenceSetupError, exposure_contract
    if args.exposure == 'none':
        print('Exposure: the no-flash photo is used as it is (--exposure none).', flush=True)
        return None, None, None
    try:
        contract, _ = exposure_contract(args.weights, args.opt)
    except InferenceSetupError as err:
        raise SystemExit(f'error: {err}')
    contract = ExposureContract('auto', contract.band, contract.reference_luminance)
    # a given ratio is the photo's own, as it is: EXIF is not needed then
    relative = None if args.exposure_ratio is not None else exif_relative_exposure(vars(photo), vars(flash_photo))
    band = f'{contract.band[0]:g}-{contract.band[1]:g}'
    if args.exposure_ratio is not None:
        ratio, how = args.exposure_ratio, 'given'
    else:
        lowlight = torch.from_numpy(photo.rgb.transpose(2, 0, 1).copy())[None]
        if relative is not None:
            from fcdfn_plugin.data.exposure import scale_exposure
            lowlight = scale_exposure(lowlight, torch.tensor([1 / relative]))
        ratio = float(estimate_exposure_ratio(lowlight, contract.reference_luminance))
        how = 'estimated from the photo'
    if relative is not None:
        print(f'Exposure: EXIF says the no-flash photo had {relative:.3g}x the flash photo\'s exposure; it is '
              'brought to the flash photo\'s exposure first.', flush=True)
    gain = ratio / min(max(ratio, contract.band[0]), contract.band[1])
    change = 'inside it, used as it is' if gain == 1 else f'scaled by {gain:.3g} into the band'
    print(f'Exposure: the no-flash photo is 1/{ratio:.3g} of a normal exposure ({how}); the network was trained on '
          f'1/{band}: {change}.', flush=True)
    return contract, ratio, relative


def to_file_pixels(rgb, bits):
    """HxWx3 float RGB -> BGR uint8/uint16 for cv2.imwrite."""
    scale = 65535 if bits == 16 else 255
    return np.round(np.clip(rgb[:, :, ::-1], 0, 1) * scale).astype(np.uint16 if bits == 16 else np.uint8)


def build_network(opt_path, weights_path, device):
    """The trained network and where its options came from; errors exit with the reason."""
    from fcdfn_plugin.utils.inference import InferenceSetupError, build_trained_network
    try:
        return build_trained_network(weights_path, opt_path, device)
    except InferenceSetupError as err:
        raise SystemExit(f'error: {err}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--lowlight', required=True, help='dark, noisy photo (no flash)')
    parser.add_argument('--flash', required=True, help='flash photo of the same scene')
    parser.add_argument('--weights', default=None,
                        help='net_g_*.pth written by tools/train.py; default: the shipped weights/fcdfn_small.pth')
    parser.add_argument('--out', required=True, help='where to write the enhanced image')
    parser.add_argument('-opt', default=None,
                        help='options file the weights were trained with (its network_g is used); default: the '
                        'network_g stored in the checkpoint, else the options file in its experiment folder')
    parser.add_argument('--tile', type=int_at_least(1), default=512, help='tile size for large images (pixels)')
    parser.add_argument('--overlap', type=int_at_least(0), default=64, help='tile overlap (pixels; as FCDFNModel)')
    parser.add_argument('--min-pixels', type=int_at_least(0), default=1024 * 1024,
                        help='tile images with at least this many pixels')
    parser.add_argument('--compare', default=None, help='also write low-light | flash | result side by side here')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output files')
    parser.add_argument('--sigma-read', type=float_at_least(0), default=None,
                        help='read-noise sigma (linear), for networks that take the noise level')
    parser.add_argument('--sigma-shot', type=float_at_least(0), default=None,
                        help='shot-noise sigma (linear), for networks that take the noise level')
    parser.add_argument('--exposure-ratio', type=float_at_least(0), default=None,
                        help='how many times darker than a normal exposure the no-flash photo is (1: normally '
                        'exposed or auto-exposed by a phone; 25-50: the benchmark); default: estimated')
    parser.add_argument('--exposure', choices=('auto', 'none'), default='auto',
                        help='auto (default): bring the no-flash photo into the exposure band the network was '
                        'trained for; none: feed it as it is')
    parser.add_argument('--align', action='store_true',
                        help='warp the flash photo onto the no-flash photo first (one homography, checked)')
    args = parser.parse_args(argv)
    if args.exposure_ratio is not None:
        from fcdfn_plugin.data.exposure import check_ratio
        try:
            check_ratio(args.exposure_ratio, '--exposure-ratio')
        except ValueError as err:
            parser.error(str(err))
        if args.exposure == 'none':
            parser.error('--exposure-ratio applies the exposure contract; drop --exposure none')

    # Every output checked before any work: a writable format, its folder, no clash with an input or each other.
    try:
        check_tiling(args.tile, args.overlap)
        inputs = {'--lowlight': args.lowlight, '--flash': args.flash, '--weights': args.weights, '-opt': args.opt}
        check_distinct({'--out': args.out, '--compare': args.compare})
        for option in ('--out', '--compare'):
            if getattr(args, option[2:]) is not None:
                check_image_output(getattr(args, option[2:]), option, args.overwrite, inputs)
    except CliError as err:
        raise SystemExit(f'error: {err}')
    photo = read_photo(args.lowlight, 'low-light')
    flash_photo = read_photo(args.flash, 'flash')
    check_pair(photo, flash_photo)
    lowlight, flash, bits = photo.rgb, flash_photo.rgb, photo.bits

    from fcdfn_plugin.models.fcdfn_model import enhance_pair, noise_level_tensors
    from fcdfn_plugin.utils.inference import SHIPPED_WEIGHTS

    if args.weights is None:
        if not osp.isfile(SHIPPED_WEIGHTS):
            raise SystemExit(f'error: no --weights given and the shipped weights {SHIPPED_WEIGHTS!r} are missing '
                             '(a partial checkout? `make small-model` trains them again).')
        args.weights = SHIPPED_WEIGHTS
        print(f'No --weights given: using the shipped FCDFN small model, {osp.relpath(SHIPPED_WEIGHTS)} '
              '(trained on the offline toy FAID; see docs/RESULTS.md).', flush=True)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    net, source = build_network(args.opt, args.weights, device)
    print(f'Network: {type(net).__name__} from {source}', flush=True)
    try:
        check_tiling(args.tile, args.overlap, getattr(net, 'pad_multiple', 1))
    except CliError as err:
        raise SystemExit(f'error: {err}')
    noise_given = (args.sigma_read, args.sigma_shot) != (None, None)
    noise_level = None
    if getattr(net, 'needs_noise_level', False):
        if None in (args.sigma_read, args.sigma_shot):
            raise SystemExit(f'error: {type(net).__name__} from {source} takes the noise level of the low-light '
                             'image; pass --sigma-read and --sigma-shot (linear read and shot noise sigmas).')
        noise_level = noise_level_tensors({'sigma_read': args.sigma_read, 'sigma_shot': args.sigma_shot}, device)
    elif noise_given:
        raise SystemExit(f'error: {type(net).__name__} from {source} takes no noise level; '
                         'drop --sigma-read/--sigma-shot.')

    def to_tensor(rgb):
        return torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None].to(device)

    lowlight_tensor, flash_tensor = to_tensor(lowlight), to_tensor(flash)
    contract, ratio, relative = exposure_setup(args, photo, flash_photo)
    if contract is not None:
        lowlight_tensor, _ = contract.apply(lowlight_tensor, ratio, relative)
    if args.align:
        from fcdfn_plugin.utils.alignment import align_flash
        flash_tensor, info = align_flash(lowlight_tensor, flash_tensor)
        if info['aligned']:
            print(f'Flash photo aligned: largest corner shift {info["max_corner_shift"]:.1f} px '
                  f'({info["inliers"]} consistent matches).', flush=True)
        else:
            print(f'warning: flash photo not aligned ({info["reason"]}); using it as it is.', file=sys.stderr,
                  flush=True)
    height, width = lowlight.shape[:2]
    print(f'Enhancing {width}x{height} ({height * width / 1e6:.1f} MP) on {device}...', flush=True)
    started = time.time()
    with tqdm(desc='tiles (context pass, then filtering pass)', unit='tile', disable=None) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)
        result = enhance_pair(net, lowlight_tensor, flash_tensor, size=args.tile, overlap=args.overlap,
                              min_pixels=args.min_pixels, progress=progress, noise_level=noise_level)
    result = result[0].clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    try:
        written = write_image(args.out, to_file_pixels(result, bits), '--out')
        depth = f', {written}-bit' + (f' ({osp.splitext(args.out)[1]} has no 16 bits)' if written < bits else '')
        print(f'Wrote {args.out} in {time.time() - started:.1f} s{depth}', flush=True)
        if args.compare:
            side = np.concatenate([lowlight, flash, result], axis=1)
            write_image(args.compare, to_file_pixels(side, 8), '--compare')
            print(f'Wrote {args.compare} (low-light | flash | result)', flush=True)
    except CliError as err:
        raise SystemExit(f'error: {err}')


if __name__ == '__main__':
    sys.exit(main())
