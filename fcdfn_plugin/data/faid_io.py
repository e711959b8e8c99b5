"""FAID file names, pairing and image decoding, shared by the dataset and ``tools/prepare_faid.py``.

FAID names its files ``<Category>_<NNN>_ambient.png`` and ``<Category>_<NNN>_flash.png`` (the
flash file is the flash-only image). The scene key is ``<Category>_<NNN>``. Bit depth decides the
space: 8-bit files are sRGB (FAID's processed release), 16-bit files are linear (its raw release).

Split groups. A category may carry a source tag after a dash, ``<Category>-<source>``: scenes
with the same tag come from the same source photograph and must land on the same side of a
train/test split (``tools/make_toy_faid.py`` uses this for its photo cuts). FAID has no dashes,
so every FAID scene is its own group.
"""
import cv2
import numpy as np

from .degradation import srgb_to_linear

ROLES = ('ambient', 'flash')


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


def encode_png16(rgb_unit):
    """(H, W, 3) float RGB in [0, 1] -> 16-bit PNG bytes (fastest compression; deterministic)."""
    quantised = np.round(np.clip(rgb_unit, 0.0, 1.0) * 65535.0).astype(np.uint16)
    ok, encoded = cv2.imencode('.png', np.ascontiguousarray(quantised[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError('OpenCV failed to encode a PNG')
    return encoded.tobytes()
