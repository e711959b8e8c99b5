"""FAID file names, pairing, image decoding and raw colour data, shared by the dataset and ``tools/prepare_faid.py``.

FAID names its files ``<Category>_<NNN>_ambient.png`` and ``<Category>_<NNN>_flash.png`` (the
flash file is the flash-only image). The scene key is ``<Category>_<NNN>``. Bit depth decides the
space: 8-bit files are sRGB (FAID's processed release), 16-bit files are linear (its raw release).

Raw colour. FAID's raw release is linear *camera* RGB. Each ``_ambient.png`` carries, in PNG text
chunks, its colour matrix (``Comment``: 9 numbers, XYZ -> camera, row-major) and the EXIF
LightSource code of that matrix's calibration illuminant (``Description``). Camera RGB maps to
linear sRGB as deepFnF does: camera -> XYZ (solve with the colour matrix), Bradford adaptation of
the illuminant to D65, XYZ -> linear sRGB (:func:`camera_to_linear_srgb`). OpenCV drops text
chunks, so they are read with Pillow (:func:`read_png_text`).

Split groups. A category may carry a source tag after a dash, ``<Category>-<source>``: scenes
with the same tag come from the same source photograph and must land on the same side of a
train/test split (``tools/make_toy_faid.py`` uses this for its photo cuts). FAID has no dashes,
so every FAID scene is its own group.
"""
import io
import struct
import zlib

import cv2
import numpy as np

from .degradation import srgb_to_linear

ROLES = ('ambient', 'flash')
#: How 16-bit files are read: ``camera`` (FAID's raw release: camera RGB + colour data in the
#: PNG text chunks) or ``linear_srgb`` (already linear sRGB; no colour data needed).
RAW_COLOUR_SPACES = ('camera', 'linear_srgb')

#: CIE XYZ of the white of each illuminant, normalised to Y = 1 (CIE 1931 2-degree observer,
#: the values of the ASTM E308 tables that deepFnF's ``dump_exif.py`` uses too).
ILLUMINANT_WHITE = {
    'A': (1.09850, 1.0, 0.35585),
    'C': (0.98074, 1.0, 1.18232),
    'D50': (0.96422, 1.0, 0.82521),
    'D55': (0.95682, 1.0, 0.92149),
    'D65': (0.95047, 1.0, 1.08883),
}
#: EXIF LightSource codes FAID uses for the calibration illuminant; any other code means D65.
EXIF_LIGHT_SOURCE = {17: 'A', 19: 'C', 20: 'D55', 21: 'D65', 23: 'D50'}
#: Bradford cone response matrix (Lam 1985), XYZ -> sharpened "cone" RGB.
BRADFORD = np.array([[0.8951, 0.2664, -0.1614],
                     [-0.7502, 1.7135, 0.0367],
                     [0.0389, -0.0685, 1.0296]])
#: sRGB primaries (IEC 61966-2-1), chromaticity (x, y) of R, G, B.
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))


def _linear_srgb_to_xyz():
    """3x3 linear sRGB -> XYZ from the sRGB primaries, scaled so RGB (1, 1, 1) is exactly our D65 white."""
    primaries = np.array([[x / y, 1.0, (1.0 - x - y) / y] for x, y in SRGB_PRIMARIES]).T  # columns: XYZ of R, G, B
    scale = np.linalg.solve(primaries, np.array(ILLUMINANT_WHITE['D65']))
    return primaries * scale


LINEAR_SRGB_TO_XYZ = _linear_srgb_to_xyz()
XYZ_TO_LINEAR_SRGB = np.linalg.inv(LINEAR_SRGB_TO_XYZ)


class ColourDataError(ValueError):
    """A 16-bit image read as camera RGB lacks usable colour data (a setup error, never skipped)."""


def parse_faid_name(stem):
    """``'Toys_012_flash'`` -> ``('Toys_012', 'flash')``; None when the stem is not a FAID image name."""
    scene, _, role = stem.rpartition('_')
    if role not in ROLES or not scene:
        return None
    category, _, number = scene.rpartition('_')
    if not category or not number.isdigit():
        return None
    return scene, role


def scene_category(scene):
    """``'Photo-astronaut_003'`` -> ``'Photo-astronaut'``."""
    return scene.rpartition('_')[0]


def scene_stratum(scene):
    """The category without its source tag: the unit of the stratified split (``'Photo'``)."""
    return scene_category(scene).split('-')[0]


def scene_group(scene):
    """Scenes of one group are never split apart: the tagged category, else the scene itself."""
    category = scene_category(scene)
    return category if '-' in category else scene


def pair_by_name(stems_to_paths):
    """Pair ambient and flash-only images by scene key.

    Args:
        stems_to_paths (dict): file stem (no extension) -> path or LMDB key.
    Returns:
        (pairs, unpaired): ``pairs`` maps scene key -> ``{'ambient': path, 'flash': path}`` (sorted
        by key); ``unpaired`` lists ``(path, reason)`` for every image whose partner is missing.
        Stems that are not FAID image names are ignored.
    """
    found = {}
    for stem, path in stems_to_paths.items():
        parsed = parse_faid_name(stem)
        if parsed is not None:
            scene, role = parsed
            found.setdefault(scene, {})[role] = path
    pairs, unpaired = {}, []
    for scene in sorted(found):
        roles = found[scene]
        if len(roles) == 2:
            pairs[scene] = roles
        else:
            (present_role, path), = roles.items()
            missing_role = 'flash' if present_role == 'ambient' else 'ambient'
            unpaired.append((path, f'missing partner {scene}_{missing_role}'))
    return pairs, unpaired


def decode_image(buffer, name):
    """Decode PNG (or any OpenCV-readable) bytes to an (H, W, 3) RGB uint8 or uint16 array.

    Grey images are repeated to 3 channels and an alpha channel is dropped. Uses
    ``cv2.IMREAD_UNCHANGED`` because BasicSR's ``imfrombytes`` drops 16 bits.

    Raises:
        ValueError: naming ``name`` when the bytes are missing, not an image, or of another depth.
    """
    if buffer is None or len(buffer) == 0:
        raise ValueError(f'{name}: empty or missing image bytes')
    image = cv2.imdecode(np.frombuffer(buffer, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'{name}: cannot decode image bytes (corrupt or not an image)')
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'{name}: unsupported pixel type {image.dtype} (expected 8 or 16 bits)')
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    elif image.shape[2] == 4:
        image = image[..., :3]
    elif image.shape[2] != 3:
        raise ValueError(f'{name}: unsupported channel count {image.shape[2]}')
    return np.ascontiguousarray(image[..., ::-1])  # BGR -> RGB


def read_file_bytes(path):
    """Bytes of a file, with a clear error naming it when it is missing."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except OSError as error:
        raise FileNotFoundError(f'{path}: cannot read ({error.strerror})') from error


def to_unit_float(image):
    """uint8/uint16 (H, W, 3) -> float32 in [0, 1], scaled by the dtype's maximum."""
    return (image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)).astype(np.float32)


def to_linear(image):
    """A FAID image to linear float32: 8-bit is sRGB (curve undone), 16-bit is already linear."""
    unit = to_unit_float(image)
    return srgb_to_linear(unit) if image.dtype == np.uint8 else unit


def bradford_adaptation(source_white, target_white):
    """3x3 XYZ -> XYZ von Kries adaptation in Bradford space: maps ``source_white`` to ``target_white``."""
    source_cone = BRADFORD @ np.asarray(source_white, dtype=np.float64)
    target_cone = BRADFORD @ np.asarray(target_white, dtype=np.float64)
    return np.linalg.solve(BRADFORD, np.diag(target_cone / source_cone) @ BRADFORD)


def illuminant_of(light_source):
    """EXIF LightSource code -> illuminant name (``EXIF_LIGHT_SOURCE``; any other code: D65)."""
    return EXIF_LIGHT_SOURCE.get(int(light_source), 'D65')


def camera_to_linear_srgb(xyz_to_camera, light_source):
    """3x3 matrix taking linear camera RGB to linear sRGB (D65), as deepFnF's ``camera_to_rgb``.

    ``XYZ_TO_LINEAR_SRGB @ bradford(illuminant -> D65) @ inv(xyz_to_camera)``: camera -> XYZ by
    solving with the colour matrix (used as stored; deepFnF does not normalise its rows), then
    chromatic adaptation from the matrix's calibration illuminant to D65, then XYZ -> linear sRGB.

    Args:
        xyz_to_camera (array-like): (3, 3) or 9 numbers, row-major (FAID's ``Comment`` chunk).
        light_source (int): EXIF LightSource code of the calibration illuminant (``Description``).
    """
    xyz_to_camera = np.asarray(xyz_to_camera, dtype=np.float64).reshape(3, 3)
    adaptation = bradford_adaptation(ILLUMINANT_WHITE[illuminant_of(light_source)], ILLUMINANT_WHITE['D65'])
    return XYZ_TO_LINEAR_SRGB @ adaptation @ np.linalg.inv(xyz_to_camera)


def read_png_text(buffer, name):
    """Text chunks (tEXt, zTXt, iTXt) of PNG bytes as ``{keyword: text}``, read with Pillow.

    Chunks before the image data are read without decoding it; the image is decoded only when
    ``Comment`` is not among them (text chunks may also follow the image data).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(buffer)) as image:
            if image.format != 'PNG':
                return {}
            text = {k: v for k, v in image.info.items() if isinstance(v, str)}
            if 'Comment' not in text:
                text = {k: str(v) for k, v in image.text.items()}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f'{name}: cannot read the PNG text chunks ({error})') from error
    return text


def parse_colour_data(text, name):
    """``(xyz_to_camera (3, 3) float64, light_source int)`` from FAID's ``Comment``/``Description`` chunks.

    Raises:
        ColourDataError: naming ``name`` when a chunk is missing or malformed, or the matrix is singular.
    """
    hint = ('FAID\'s raw release stores the XYZ-to-camera matrix (9 numbers) in the PNG text chunk '
            '"Comment" and the EXIF LightSource code in "Description"; if these 16-bit files are '
            'already linear sRGB, say so (prepare_faid.py --raw-colour linear_srgb, dataset option '
            'raw_colour_space: linear_srgb)')
    if 'Comment' not in text:
        raise ColourDataError(f'{name}: 16-bit image without its colour matrix (no PNG text chunk "Comment"). {hint}')
    try:
        numbers = [float(v) for v in text['Comment'].replace(',', ' ').split()]
    except ValueError:
        numbers = []
    if len(numbers) != 9 or not all(np.isfinite(numbers)):
        raise ColourDataError(f'{name}: PNG text chunk "Comment" is not 9 numbers: {text["Comment"][:120]!r}. {hint}')
    matrix = np.array(numbers, dtype=np.float64).reshape(3, 3)
    if np.linalg.cond(matrix) > 1e12:
        raise ColourDataError(f'{name}: the colour matrix in "Comment" is singular: {numbers}')
    if 'Description' not in text:
        raise ColourDataError(f'{name}: 16-bit image without its illuminant code (no PNG text chunk '
                              f'"Description"). {hint}')
    try:
        code = float(text['Description'].strip())
    except ValueError:
        code = float('nan')
    if not np.isfinite(code) or code != int(code):
        raise ColourDataError(f'{name}: PNG text chunk "Description" is not an EXIF LightSource code: '
                              f'{text["Description"][:120]!r}')
    return matrix, int(code)


def colour_data_of(buffer, image, name, raw_colour_space='camera'):
    """The colour data of a FAID ambient image, or None when its pixels are linear sRGB already.

    8-bit files are sRGB (None). 16-bit files in ``camera`` space need their chunks: returns
    ``{'xyz_to_camera': 9 floats, 'light_source': int, 'camera_to_linear_srgb': (3, 3) list}``.
    In ``linear_srgb`` space: None.

    Raises:
        ColourDataError: a 16-bit camera-space image without usable colour data (names ``name``).
    """
    if raw_colour_space not in RAW_COLOUR_SPACES:
        raise ValueError(f'unknown raw colour space {raw_colour_space!r}; expected one of {RAW_COLOUR_SPACES}')
    if image.dtype != np.uint16 or raw_colour_space == 'linear_srgb':
        return None
    matrix, light_source = parse_colour_data(read_png_text(buffer, name), name)
    return {'xyz_to_camera': [float(v) for v in matrix.ravel()], 'light_source': light_source,
            'camera_to_linear_srgb': camera_to_linear_srgb(matrix, light_source).tolist()}


def add_png_text(png_bytes, text):
    """PNG bytes with ``tEXt`` chunks ``{keyword: latin-1 text}`` inserted after the IHDR chunk."""
    signature = b'\x89PNG\r\n\x1a\n'
    if png_bytes[:8] != signature or png_bytes[12:16] != b'IHDR':
        raise ValueError('not PNG bytes (missing signature or IHDR)')
    header_end = 8 + 8 + struct.unpack('>I', png_bytes[8:12])[0] + 4  # length, type, data, CRC
    chunks = []
    for keyword, value in text.items():
        if not 1 <= len(keyword) <= 79:
            raise ValueError(f'PNG text keyword must have 1-79 characters, got {keyword!r}')
        body = b'tEXt' + keyword.encode('latin-1') + b'\0' + str(value).encode('latin-1')
        chunks.append(struct.pack('>I', len(body) - 4) + body + struct.pack('>I', zlib.crc32(body) & 0xffffffff))
    return png_bytes[:header_end] + b''.join(chunks) + png_bytes[header_end:]


def encode_png16(rgb_unit):
    """(H, W, 3) float RGB in [0, 1] -> 16-bit PNG bytes (fastest compression; deterministic)."""
    quantised = np.round(np.clip(rgb_unit, 0.0, 1.0) * 65535.0).astype(np.uint16)
    ok, encoded = cv2.imencode('.png', np.ascontiguousarray(quantised[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError('OpenCV failed to encode a PNG')
    return encoded.tobytes()
