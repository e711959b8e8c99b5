"""A user's photo as the camera meant it: pixels upright (EXIF orientation applied), bit depth, exposure.

``read_photo(path, what)`` decodes with OpenCV (8- or 16-bit, through
:func:`fcdfn_plugin.data.faid_io.decode_image`, which ignores EXIF) and reads the EXIF block with
Pillow: the orientation tag (0x0112), applied to the pixels here, and the exposure time (0x829a)
and ISO (0x8827) of the Exif IFD (0x8769), for tools that compare the exposures of the two photos.
A tag that is absent or cannot be parsed is None (orientation: 1); a file Pillow cannot open
(a format only OpenCV reads) simply has no EXIF. Errors are :class:`PhotoError`, whose message
names the file.
"""
import io
from dataclasses import dataclass
from os import path as osp
from typing import Optional

import numpy as np

from fcdfn_plugin.data.faid_io import decode_image, read_file_bytes, to_unit_float

ORIENTATION_TAG, EXIF_IFD_TAG, EXPOSURE_TIME_TAG, ISO_TAG = 0x0112, 0x8769, 0x829a, 0x8827

#: EXIF orientation -> what turns the stored pixels upright (the display transform).
ORIENTATIONS = {
    1: 'upright',
    2: 'mirrored left-right',
    3: 'rotated 180 degrees',
    4: 'mirrored top-bottom',
    5: 'transposed (mirrored, then rotated 90 degrees counter-clockwise)',
    6: 'rotated 90 degrees clockwise',
    7: 'transversed (mirrored, then rotated 90 degrees clockwise)',
    8: 'rotated 90 degrees counter-clockwise',
}


class PhotoError(ValueError):
    """A photo that cannot be read, with a message naming the file."""


@dataclass
class Photo:
    """One decoded photo.

    Attributes:
        rgb: (H, W, 3) float32 RGB in [0, 1], upright (the EXIF orientation applied).
        bits: 8 or 16, the file's bit depth.
        orientation: the EXIF orientation tag that was applied (1 when none).
        exposure_time: EXIF ExposureTime in seconds, or None.
        iso: EXIF ISOSpeedRatings / PhotographicSensitivity, or None.
        path: the file it came from.
    """
    rgb: np.ndarray
    bits: int
    orientation: int = 1
    exposure_time: Optional[float] = None
    iso: Optional[float] = None
    path: str = ''

    @property
    def orientation_text(self):
        return ORIENTATIONS.get(self.orientation, 'upright')


def apply_orientation(image, orientation):
    """The stored (H, W, ...) pixels of a file turned upright as its EXIF ``orientation`` (1-8) says."""
    if orientation == 2:
        image = image[:, ::-1]
    elif orientation == 3:
        image = image[::-1, ::-1]
    elif orientation == 4:
        image = image[::-1]
    elif orientation == 5:
        image = np.swapaxes(image, 0, 1)
    elif orientation == 6:
        image = np.rot90(image, -1)
    elif orientation == 7:
        image = np.swapaxes(image, 0, 1)[::-1, ::-1]
    elif orientation == 8:
        image = np.rot90(image, 1)
    return np.ascontiguousarray(image)


def _number(value):
    """A float from an EXIF value (rational, int, or a tuple of them), or None."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def read_exif(buffer):
    """``(orientation, exposure_time, iso)`` from the EXIF block of encoded image bytes (1, None, None if absent)."""
    try:
        from PIL import Image
        with Image.open(io.BytesIO(buffer)) as image:
            exif = image.getexif()
            try:
                exif_ifd = exif.get_ifd(EXIF_IFD_TAG)
            except Exception:  # a malformed sub-IFD: keep what the main IFD has
                exif_ifd = {}
    except Exception:  # not a format Pillow knows, or a broken EXIF block: no EXIF
        return 1, None, None
    orientation = exif.get(ORIENTATION_TAG, 1)
    orientation = orientation if isinstance(orientation, int) and orientation in ORIENTATIONS else 1
    exposure_time = _number(exif_ifd.get(EXPOSURE_TIME_TAG, exif.get(EXPOSURE_TIME_TAG)))
    iso = _number(exif_ifd.get(ISO_TAG, exif.get(ISO_TAG)))
    return orientation, exposure_time, iso


def read_photo(path, what):
    """The :class:`Photo` in ``path``; ``what`` (e.g. 'low-light') names it in errors.

    Raises:
        PhotoError: the file is missing, unreadable, not an image, or of an unsupported depth.
    """
    if not osp.isfile(path):
        raise PhotoError(f'{what} image {path!r} does not exist' + (' (it is a folder)' if osp.isdir(path) else ''))
    try:
        buffer = read_file_bytes(path)
        image = decode_image(buffer, f'{what} image {path!r}')
    except (ValueError, FileNotFoundError) as error:
        raise PhotoError(str(error)) from error
    orientation, exposure_time, iso = read_exif(buffer)
    return Photo(rgb=to_unit_float(apply_orientation(image, orientation)), bits=16 if image.dtype == np.uint16 else 8,
                 orientation=orientation, exposure_time=exposure_time, iso=iso, path=path)


def clipped_fraction(rgb, level=0.99):
    """Share of pixels of an (H, W, 3) [0, 1] image with a channel at or above ``level`` (clipped: no information)."""
    return float(np.mean(rgb.max(axis=-1) >= level))
