"""Reading a user's photo: EXIF orientation applied, exposure time and ISO read, errors naming the file."""
import numpy as np
import pytest
from PIL import Image, ImageOps

from fcdfn_plugin.utils.photo_io import PhotoError, apply_orientation, clipped_fraction, read_photo


def write_jpeg(path, orientation=None, exposure_time=None, iso=None, height=12, width=20):
    """A tiny JPEG with an asymmetric pattern (bright top-left block) and the given EXIF tags."""
    pixels = np.full((height, width, 3), 40, np.uint8)
    pixels[:4, :6] = 250
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    sub = {}
    if exposure_time is not None:
        sub[0x829a] = exposure_time
    if iso is not None:
        sub[0x8827] = iso
    if sub:
        exif[0x8769] = sub
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=100)
    return str(path)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_orientation_matches_pillow(tmp_path, orientation):
    path = write_jpeg(tmp_path / 'p.jpg', orientation=orientation)
    photo = read_photo(path, 'low-light')
    with Image.open(path) as image:
        upright = np.asarray(ImageOps.exif_transpose(image).convert('RGB'), np.float32) / 255
    assert photo.orientation == orientation and photo.bits == 8
    assert photo.rgb.shape == upright.shape and photo.rgb.dtype == np.float32
    np.testing.assert_allclose(photo.rgb, upright, atol=1e-6)


def test_rotations_move_the_bright_corner(tmp_path):
    corners = {}
    for orientation in (3, 6, 8):
        rgb = read_photo(write_jpeg(tmp_path / f'{orientation}.jpg', orientation=orientation), 'flash').rgb
        corners[orientation] = rgb.shape[:2], rgb[0, 0, 0] > 0.8, rgb[0, -1, 0] > 0.8, rgb[-1, -1, 0] > 0.8
    assert corners[6] == ((20, 12), False, True, False)  # rotated 90 degrees clockwise: top-left -> top-right
    assert corners[8] == ((20, 12), False, False, False) and corners[3] == ((12, 20), False, False, True)
    assert apply_orientation(np.arange(6).reshape(2, 3), 1).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_exposure_tags(tmp_path):
    photo = read_photo(write_jpeg(tmp_path / 'e.jpg', orientation=6, exposure_time=0.125, iso=1600), 'low-light')
    assert (photo.exposure_time, photo.iso, photo.orientation) == (0.125, 1600.0, 6)
    plain = read_photo(write_jpeg(tmp_path / 'n.jpg'), 'flash')
    assert (plain.exposure_time, plain.iso, plain.orientation) == (None, None, 1)


def test_png_16_bit_and_errors(tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / 'd.png'), np.full((4, 5, 3), 40000, np.uint16))
    photo = read_photo(str(tmp_path / 'd.png'), 'low-light')
    assert photo.bits == 16 and photo.orientation == 1 and photo.rgb.max() == pytest.approx(40000 / 65535)
    with pytest.raises(PhotoError, match=r"low-light image '.*missing.png' does not exist"):
        read_photo(str(tmp_path / 'missing.png'), 'low-light')
    (tmp_path / 'bad.jpg').write_bytes(b'not an image')
    with pytest.raises(PhotoError, match=r"flash image '.*bad.jpg': cannot decode"):
        read_photo(str(tmp_path / 'bad.jpg'), 'flash')


def test_clipped_fraction():
    image = np.zeros((2, 2, 3), np.float32)
    image[0, 0] = 1
    image[0, 1, 2] = 1
    assert clipped_fraction(image) == 0.5 and clipped_fraction(np.ones((3, 3, 3))) == 1
