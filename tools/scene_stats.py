"""Image statistics of ambient / flash-only pairs, to compare the toy FAID with real FAID scenes.

    python tools/scene_stats.py FOLDER [FOLDER ...] [--limit 60]

For each folder in FAID's layout (searched recursively for ``*_ambient.png`` with a ``*_flash.png``
partner), the first ``--limit`` pairs in sorted order are read (8-bit files are sRGB, 16-bit
linear), and for each statistic the median and the 10th-90th percentiles over the pairs are
printed. Luminance here is the channel mean of the linear image.

* ``ambient R/G``, ``ambient B/G``, ``flash R/G``, ``flash B/G``: ratios of the mean linear channels;
* ``ambient/flash R/G``, ``ambient/flash B/G``: the ambient's ratio over the flash-only image's
  (the colour of the ambient light relative to the flash, under the camera's one white balance);
* ``ambient p97``, ``flash p97``: 97th percentile of the luminance;
* ``ambient mean/p97``, ``flash mean/p97``: mean / 97th percentile of the luminance (contrast);
* ``flash dark fraction``: share of flash-only pixels below 2 % of its p97;
* ``ambient clipped``, ``flash clipped``: share of pixels with a channel above 0.99 (linear);
* ``|Laplacian| correlation``: correlation of the absolute 3x3 Laplacians of the two luminances;
* ``ambient sRGB |Laplacian|``: mean absolute Laplacian of the sRGB-encoded ambient luminance
  (fine detail);
* ``ambient slope``, ``flash slope``: slope of the log radial power spectrum of the sRGB-encoded
  luminance (square top-left crop, Hann window, 4 cycles to 80 % of Nyquist).

Numbers only: nothing is written.
"""
import argparse
import glob
import sys
from os import path as osp

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from fcdfn_plugin.data.degradation import linear_to_srgb  # noqa: E402
from fcdfn_plugin.data.faid_io import decode_image, read_file_bytes, to_linear  # noqa: E402

STATISTICS = ('ambient R/G', 'ambient B/G', 'flash R/G', 'flash B/G', 'ambient/flash R/G', 'ambient/flash B/G',
              'ambient p97', 'flash p97', 'ambient mean/p97', 'flash mean/p97', 'flash dark fraction',
              'ambient clipped', 'flash clipped', '|Laplacian| correlation', 'ambient sRGB |Laplacian|',
              'ambient slope', 'flash slope')


def spectrum_slope(image):
    """Slope of the log radial power spectrum of a 2-D image (square top-left crop, Hann window)."""
    side = min(image.shape)
    crop = image[:side, :side] - image[:side, :side].mean()
    window = np.outer(np.hanning(side), np.hanning(side))
    power = np.abs(np.fft.fftshift(np.fft.fft2(crop * window)))**2
    y, x = np.indices(power.shape)
    radius = np.hypot(y - side / 2, x - side / 2).astype(int)
    radial = np.bincount(radius.ravel(), power.ravel()) / np.maximum(np.bincount(radius.ravel()), 1)
    frequency = np.arange(len(radial))
    band = (frequency > 4) & (frequency < side // 2 * 0.8)
    return float(np.polyfit(np.log(frequency[band]), np.log(radial[band]), 1)[0])


def pair_statistics(ambient, flash_only):
    """The :data:`STATISTICS` of one pair of (H, W, 3) linear float images, as a list in that order."""
    ambient_luminance, flash_luminance = ambient.mean(-1), flash_only.mean(-1)
    ambient_colour, flash_colour = ambient.reshape(-1, 3).mean(0), flash_only.reshape(-1, 3).mean(0)
    ambient_p97, flash_p97 = np.percentile(ambient_luminance, 97), np.percentile(flash_luminance, 97)
    ambient_laplacian = np.abs(cv2.Laplacian(ambient_luminance.astype(np.float32), cv2.CV_32F))
    flash_laplacian = np.abs(cv2.Laplacian(flash_luminance.astype(np.float32), cv2.CV_32F))
    ambient_srgb, flash_srgb = linear_to_srgb(ambient_luminance), linear_to_srgb(flash_luminance)
    ambient_ratios = ambient_colour[[0, 2]] / ambient_colour[1]
    flash_ratios = flash_colour[[0, 2]] / flash_colour[1]
    return [*ambient_ratios, *flash_ratios, *(ambient_ratios / flash_ratios),
            ambient_p97, flash_p97, ambient_luminance.mean() / ambient_p97, flash_luminance.mean() / flash_p97,
            np.mean(flash_luminance < 0.02 * flash_p97),
            np.mean(ambient.max(-1) > 0.99), np.mean(flash_only.max(-1) > 0.99),
            np.corrcoef(ambient_laplacian.ravel(), flash_laplacian.ravel())[0, 1],
            np.abs(cv2.Laplacian(ambient_srgb, cv2.CV_32F)).mean(),
            spectrum_slope(ambient_srgb), spectrum_slope(flash_srgb)]


def folder_statistics(folder, limit):
    """(pair count, (N, len(STATISTICS)) array) for the first ``limit`` sorted pairs under ``folder``."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{folder}: not a folder')
    ambient_paths = sorted(glob.glob(osp.join(folder, '**', '*_ambient.png'), recursive=True))[:limit]
    if not ambient_paths:
        raise FileNotFoundError(f'{folder}: no *_ambient.png file')
    rows = []
    for ambient_path in tqdm(ambient_paths, desc=osp.basename(osp.normpath(folder)), unit='pair', disable=None):
        flash_path = ambient_path[:-len('_ambient.png')] + '_flash.png'
        ambient, flash_only = (to_linear(decode_image(read_file_bytes(path), path))
                               for path in (ambient_path, flash_path))
        if ambient.shape != flash_only.shape:
            raise ValueError(f'{ambient_path}: {ambient.shape[:2]} but its flash image is {flash_only.shape[:2]}')
        rows.append(pair_statistics(ambient, flash_only))
    return len(rows), np.array(rows, np.float64)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('folders', nargs='+', help='folders in FAID layout')
    parser.add_argument('--limit', type=int, default=60, help='pairs per folder, first in sorted order (default 60)')
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error('--limit must be >= 1')
    for folder in args.folders:
        try:
            count, rows = folder_statistics(folder, args.limit)
        except (OSError, ValueError) as error:
            sys.exit(f'error: {error}')
        print(f'{folder}: {count} pairs, median (p10-p90)')
        for name, column in zip(STATISTICS, rows.T):
            low, median, high = np.percentile(column, [10, 50, 90])
            print(f'  {name:26s} {median:7.3f} ({low:.3f} to {high:.3f})')


if __name__ == '__main__':
    main()
