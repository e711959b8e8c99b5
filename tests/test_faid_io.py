"""FAID raw colour data: PNG text chunks and the camera -> linear sRGB mapping (deepFnF's), by hand."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from fcdfn_plugin.data import faid_io as F

# Published values (Lindbloom, "Chromatic Adaptation" and "RGB/XYZ Matrices"), typed in here so
# the test does not share the implementation's derivation.
PUBLISHED_XYZ_TO_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                                  [-0.9692660, 1.8760108, 0.0415560],
                                  [0.0556434, -0.2040259, 1.0572252]])
PUBLISHED_BRADFORD_A_TO_D65 = np.array([[0.8446965, -0.1179225, 0.3948108],
                                        [-0.1366303, 1.1041226, 0.1291718],
                                        [0.0798489, -0.1348999, 3.1924009]])
PUBLISHED_BRADFORD_D50_TO_D65 = np.array([[0.9555766, -0.0230393, 0.0631636],
                                          [-0.0282895, 1.0099416, 0.0210077],
                                          [0.0122982, -0.0204830, 1.3299098]])
# A plausible XYZ -> camera matrix (a DSLR's DNG ColorMatrix, /10000), far from the identity.
CAMERA_MATRIX = np.array([[0.4716, 0.0603, -0.0830],
                          [-0.7798, 1.5474, 0.2480],
                          [-0.1496, 0.1937, 0.6651]])


def png16(rgb_uint16, text=None):
    """16-bit RGB PNG bytes (OpenCV), with tEXt chunks inserted by ``faid_io.add_png_text``."""
    encoded = cv2.imencode('.png', np.ascontiguousarray(rgb_uint16[..., ::-1]))[1].tobytes()
    return F.add_png_text(encoded, text) if text else encoded


def colour_text(matrix, light_source):
    return {'Comment': '     '.join(f'{v:.10g}' for v in np.ravel(matrix)), 'Description': str(light_source)}


def test_published_matrices():
    np.testing.assert_allclose(F.XYZ_TO_LINEAR_SRGB, PUBLISHED_XYZ_TO_SRGB, atol=2e-6)
    white = F.ILLUMINANT_WHITE
    np.testing.assert_allclose(F.bradford_adaptation(white['A'], white['D65']), PUBLISHED_BRADFORD_A_TO_D65, atol=1e-6)
    np.testing.assert_allclose(F.bradford_adaptation(white['D50'], white['D65']), PUBLISHED_BRADFORD_D50_TO_D65,
                               atol=1e-6)
    np.testing.assert_allclose(F.LINEAR_SRGB_TO_XYZ @ np.ones(3), white['D65'], atol=1e-12)  # white stays white


def test_text_chunks_written_here_are_read_by_pillow_and_back():
    image = np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3) * 1000
    data = png16(image, {'Comment': '1 2 3', 'Description': '17'})
    with Image.open(io.BytesIO(data)) as pil:  # an independent PNG reader sees the chunks
        assert pil.text == {'Comment': '1 2 3', 'Description': '17'}
    np.testing.assert_array_equal(F.decode_image(data, 'x'), image)  # pixels untouched
    assert F.read_png_text(data, 'x') == {'Comment': '1 2 3', 'Description': '17'}


@pytest.mark.parametrize('kind', ['tEXt', 'zTXt', 'iTXt'])
def test_chunks_written_by_pillow_are_read(kind):
    info = PngImagePlugin.PngInfo()
    text = colour_text(np.eye(3), 21)
    for key, value in text.items():
        if kind == 'iTXt':
            info.add_itxt(key, value)
        else:
            info.add_text(key, value, zip=kind == 'zTXt')
    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 7), 40000, np.uint16)).save(buffer, format='PNG', pnginfo=info)  # 16-bit grey
    data = buffer.getvalue()
    image = F.decode_image(data, 'grey.png')
    assert image.dtype == np.uint16 and image.shape == (6, 7, 3)
    colour = F.colour_data_of(data, image, 'grey.png')
    assert colour['light_source'] == 21 and colour['xyz_to_camera'] == list(np.eye(3).ravel())
    np.testing.assert_allclose(colour['camera_to_linear_srgb'], F.XYZ_TO_LINEAR_SRGB)  # camera = XYZ


def test_camera_to_linear_srgb_by_hand_for_one_pixel():
    """Illuminant A (EXIF 17): solve with the colour matrix, Bradford A -> D65, XYZ -> sRGB, by hand."""
    camera = np.array([0.21, 0.35, 0.16])
    xyz = np.linalg.solve(CAMERA_MATRIX, camera)
    expected = PUBLISHED_XYZ_TO_SRGB @ PUBLISHED_BRADFORD_A_TO_D65 @ xyz
    assert np.all((expected > 0.05) & (expected < 0.95))  # a pixel well inside the gamut, not clipped
    matrix = F.camera_to_linear_srgb(CAMERA_MATRIX.ravel(), 17)
    np.testing.assert_allclose(matrix @ camera, expected, rtol=2e-5)
    # D65 calibration: no adaptation; an unknown code also means D65 (as deepFnF)
    np.testing.assert_allclose(F.camera_to_linear_srgb(CAMERA_MATRIX, 21) @ camera, PUBLISHED_XYZ_TO_SRGB @ xyz,
                               rtol=2e-5)
    np.testing.assert_array_equal(F.camera_to_linear_srgb(CAMERA_MATRIX, 255),
                                  F.camera_to_linear_srgb(CAMERA_MATRIX, 21))
    assert F.illuminant_of(23) == 'D50' and F.illuminant_of(20) == 'D55' and F.illuminant_of(19) == 'C'


def test_an_srgb_camera_maps_to_the_identity():
    """XYZ -> camera = XYZ -> sRGB with D65: the camera is linear sRGB and the mapping is the identity."""
    colour = F.colour_data_of(png16(np.zeros((2, 2, 3), np.uint16), colour_text(PUBLISHED_XYZ_TO_SRGB, 21)),
                              np.zeros((2, 2, 3), np.uint16), 'srgb_camera.png')
    np.testing.assert_allclose(colour['camera_to_linear_srgb'], np.eye(3), atol=5e-6)


def test_eight_bit_and_declared_linear_files_need_no_colour_data():
    eight = np.zeros((2, 2, 3), np.uint8)
    sixteen = np.zeros((2, 2, 3), np.uint16)
    assert F.colour_data_of(cv2.imencode('.png', eight)[1].tobytes(), eight, 'a.png') is None
    assert F.colour_data_of(png16(sixteen), sixteen, 'b.png', raw_colour_space='linear_srgb') is None
    with pytest.raises(ValueError, match='raw colour space'):
        F.colour_data_of(png16(sixteen), sixteen, 'b.png', raw_colour_space='xyz')


@pytest.mark.parametrize('text, message', [
    ({}, 'Toys_001_ambient.png: 16-bit image without its colour matrix.*Comment.*raw-colour linear_srgb'),
    ({'Comment': '1 2 3 4 5 6 7 8', 'Description': '21'}, 'Comment" is not 9 numbers'),
    ({'Comment': '1 0 0 0 1 0 0 0 x', 'Description': '21'}, 'Comment" is not 9 numbers'),
    ({'Comment': '1 2 3 2 4 6 0 0 1', 'Description': '21'}, 'singular'),
    ({'Comment': '1 0 0 0 1 0 0 0 1'}, 'without its illuminant code.*Description'),
    ({'Comment': '1 0 0 0 1 0 0 0 1', 'Description': 'daylight'}, 'not an EXIF LightSource code'),
])
def test_missing_or_bad_colour_data_is_a_clear_error(text, message):
    image = np.zeros((2, 2, 3), np.uint16)
    with pytest.raises(F.ColourDataError, match=message):
        F.colour_data_of(png16(image, text), image, 'Toys_001_ambient.png')
