"""Albedo textures with the fine structure of indoor surfaces, for the toy scenes (numpy + OpenCV).

Real photographs are full of detail at the scale of one or two pixels: print on book covers and
labels, fabric weaves, wood and stone grain, thin edges. A network trained on smooth textures
learns to smooth; these textures teach it to carry such detail over from the flash image.

Every kind is a function ``texture_<kind>(rng, height, width) -> (H, W, 3) float32`` linear
reflectance in [0, 1], drawing every choice from the explicit ``numpy.random.Generator``:

* ``flat``, ``stripes``, ``checkerboard``, ``blotches``, ``grain``: the first toy generator's kinds;
* ``spectral``: colour noise whose radial power spectrum falls as ``f ** slope``, slope drawn in
  :data:`SPECTRAL_SLOPE_RANGE` (natural images: about -2 to -3), mixing 2-4 random colours;
* ``text``: lines of random words in OpenCV's Hershey fonts, glyphs 5-20 px tall with 1-2 px
  strokes, on a flat or textured ground (book covers, labels, packaging);
* ``lines``: thin parallel lines, grids and cross-hatching (1-2 px wide), plus stray thin strokes;
* ``weave``: a fabric-like plain or twill weave with threads 2.5-8 px apart;
* ``photo``: a texture photograph shipped inside scikit-image's wheel (brick, grass, gravel, text,
  page, ...) or matplotlib's (grace_hopper), scaled down, rotated and tinted.

Colours are drawn in sRGB (:func:`random_colour`: mostly muted) and linearised, so linear
reflectances are skewed towards dark values as in real scenes. :func:`random_texture` draws a
kind with :data:`TEXTURE_WEIGHTS`; :func:`wall_texture` makes a light, mostly smooth wall.
"""
import colorsys
import functools
import math
from os import path as osp

import cv2
import numpy as np
from PIL import Image

from .degradation import linear_to_srgb, srgb_to_linear

#: Range of the power-spectrum slope of ``spectral`` textures (power ~ f ** slope).
SPECTRAL_SLOPE_RANGE = (-3.2, -2.0)
#: Range of the glyph (capital letter) height of ``text`` textures, in pixels.
GLYPH_HEIGHT_RANGE = (5.0, 20.0)
#: Range of the spacing of ``lines`` (pixels between line centres) and their width.
LINE_PERIOD_RANGE = (4.0, 20.0)
LINE_WIDTH_RANGE = (0.8, 2.0)
#: Range of the thread spacing of ``weave`` textures, in pixels.
THREAD_PERIOD_RANGE = (2.5, 8.0)
#: Range of the scale of ``photo`` textures (output pixels per photograph pixel; log-uniform).
PHOTO_SCALE_RANGE = (0.2, 1.0)

#: Texture photographs read from scikit-image's installed wheel (grey unless noted). They must stay
#: disjoint from the photographs that ``tools/make_toy_faid.py`` cuts into whole ``Photo-<name>``
#: scenes (astronaut, chelsea, coffee, rocket, motorcycle_left/right): those scenes are split into
#: train and test by source photograph, and a texture made of one of them would leak test content
#: into training scenes. ``tests/test_textures.py`` checks that the two sets are disjoint.
SKIMAGE_TEXTURE_FILES = ('brick.png', 'grass.png', 'gravel.png', 'text.png', 'page.png', 'camera.png', 'coins.png',
                         'ihc.png', 'hubble_deep_field.jpg', 'retina.jpg')  # the last three in colour
#: Texture photographs read from matplotlib's installed ``mpl-data/sample_data``.
MATPLOTLIB_TEXTURE_FILES = ('grace_hopper.jpg', )

#: Relative frequency of each texture kind in :func:`random_texture`.
TEXTURE_WEIGHTS = {
    'flat': 0.10,
    'stripes': 0.04,
    'checkerboard': 0.03,
    'blotches': 0.06,
    'grain': 0.07,
    'spectral': 0.20,
    'text': 0.12,
    'lines': 0.06,
    'weave': 0.08,
    'photo': 0.24,
}
TEXTURE_KINDS = tuple(TEXTURE_WEIGHTS)
#: Mean sRGB luminance of wall textures (walls are mostly light).
WALL_LEVEL_RANGE = (0.45, 0.9)
#: Relative frequency of each kind on walls, mostly smooth (paint, plaster, paper; some brick and curtains).
WALL_TEXTURE_WEIGHTS = {
    'flat': 0.25,
    'grain': 0.25,
    'blotches': 0.15,
    'spectral': 0.15,
    'photo': 0.1,
    'weave': 0.05,
    'stripes': 0.05,
}

_HERSHEY_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                  cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)
_MAX_PHOTO_SIDE = 768
_LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'


def random_colour(rng, low=0.05, high=0.95):
    """(3,) float32 linear RGB colour: uniform hue, mostly muted saturation, sRGB value in [low, high].

    Drawn in HSV on sRGB values (value = the largest channel, uniform in [low, high]; saturation
    ``U(0, 1) ** 2``, so most materials are muted and a few are vivid), then linearised.
    """
    value = rng.uniform(low, high)
    saturation = rng.uniform()**2
    hue = rng.uniform()
    return srgb_to_linear(np.float32(colorsys.hsv_to_rgb(hue, saturation, value))).astype(np.float32)


def luminance(linear):
    """Rec. 709 luminance of linear RGB ``(..., 3)``."""
    return linear @ np.float32([0.2126, 0.7152, 0.0722])


def contrasting_colour(rng, reference, min_difference=0.3):
    """A random colour whose sRGB luminance differs from ``reference``'s by at least ``min_difference``.

    Lighter or darker, whichever has room; the hue is random.
    """
    reference_level = float(linear_to_srgb(luminance(np.asarray(reference, np.float32))))
    lighter = reference_level + min_difference <= 0.95
    darker = reference_level - min_difference >= 0.03
    go_lighter = lighter if lighter != darker else bool(rng.integers(0, 2))
    if go_lighter:
        low, high = min(reference_level + min_difference, 0.95), 0.95
    else:
        low, high = 0.03, max(reference_level - min_difference, 0.03)
    colour = random_colour(rng)
    # rescale to a random target luminance inside the allowed band (the hue stays random)
    target = srgb_to_linear(np.float32(rng.uniform(low, high)))
    colour = colour * (target / max(float(luminance(colour)), 1e-4))
    return np.clip(colour, 0.0, 1.0).astype(np.float32)


def _mix(background, ink, coverage):
    """Blend two albedos by ``coverage`` (H, W) in [0, 1]: reflectances mix linearly."""
    weight = coverage[..., None].astype(np.float32)
    return ((1 - weight) * background + weight * ink).astype(np.float32)


def _rotated_coordinates(height, width, angle):
    """(a, b): pixel coordinates rotated by ``angle`` radians about the image centre."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    u -= (width - 1) / 2
    v -= (height - 1) / 2
    cosine, sine = math.cos(angle), math.sin(angle)
    return u * cosine + v * sine, -u * sine + v * cosine


def smooth_random_field(rng, height, width, grid=4, low=0.0, high=1.0):
    """(H, W) float32 smooth random field in [low, high]: a random ``grid`` x ``grid`` lattice, bicubic-upsampled."""
    lattice = rng.uniform(low, high, size=(grid, grid)).astype(np.float32)
    field = cv2.resize(lattice, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(field, low, high)


def spectral_noise(rng, height, width, slope):
    """(H, W) float32 Gaussian noise with radial power spectrum ``~ f ** slope``, zero mean, unit std.

    White noise shaped in the Fourier domain by ``f ** (slope / 2)`` (the DC term set to zero);
    it wraps around at the borders. ``slope = -2`` is the classical 1/f amplitude of natural images.
    """
    frequency_y = np.fft.fftfreq(height)[:, None]
    frequency_x = np.fft.rfftfreq(width)[None, :]
    frequency = np.sqrt(frequency_y**2 + frequency_x**2)
    frequency[0, 0] = 1.0
    amplitude = frequency**(slope / 2)
    amplitude[0, 0] = 0.0
    spectrum = np.fft.rfft2(rng.standard_normal((height, width))) * amplitude
    field = np.fft.irfft2(spectrum, s=(height, width))
    return (field / max(float(field.std()), 1e-12)).astype(np.float32)


def texture_flat(rng, height, width):
    """One random colour."""
    return np.broadcast_to(random_colour(rng), (height, width, 3)).astype(np.float32)


def _two_colour(rng, pattern, amplitude_range=(0.3, 1.0)):
    """A base colour modulated towards a second colour by ``pattern`` (H, W) in [0, 1]."""
    base = random_colour(rng)
    second = random_colour(rng)
    return _mix(base, second, rng.uniform(*amplitude_range) * pattern)


def texture_stripes(rng, height, width):
    """Sinusoidal stripes at a random angle and period (3-40 px)."""
    a, _ = _rotated_coordinates(height, width, rng.uniform(0, math.pi))
    period = math.exp(rng.uniform(math.log(3), math.log(40)))
    return _two_colour(rng, 0.5 + 0.5 * np.sin(2 * math.pi * a / period + rng.uniform(0, 2 * math.pi)))


def texture_checkerboard(rng, height, width):
    """A checkerboard of random cell size (4-40 px) and angle."""
    a, b = _rotated_coordinates(height, width, rng.uniform(0, math.pi / 2))
    cell = math.exp(rng.uniform(math.log(4), math.log(40)))
    return _two_colour(rng, ((np.floor(a / cell) + np.floor(b / cell)) % 2).astype(np.float32))


def texture_blotches(rng, height, width):
    """Smooth blotches (a bicubic random lattice)."""
    return _two_colour(rng, smooth_random_field(rng, height, width, grid=int(rng.integers(4, 16))))


def texture_grain(rng, height, width):
    """Fine isotropic grain: white noise blurred by 0.5-2 px (paper, plaster, matte plastic)."""
    pattern = cv2.GaussianBlur(rng.uniform(size=(height, width)).astype(np.float32), (0, 0), rng.uniform(0.5, 2))
    pattern = (pattern - pattern.min()) / max(float(np.ptp(pattern)), 1e-6)
    return _two_colour(rng, pattern, amplitude_range=(0.2, 0.8))


def texture_spectral(rng, height, width, slope=None):
    """Colour noise with a power spectrum ``~ f ** slope``: a random base colour moved towards 1-3
    other random colours, each by its own field from :func:`spectral_noise` (amplitude 0.1-0.35).

    The colour is linear in the fields, so every channel keeps the slope (up to clipping to [0, 1]).

    Args:
        slope (float | None): the spectral slope; None draws it in :data:`SPECTRAL_SLOPE_RANGE`.
    """
    if slope is None:
        slope = rng.uniform(*SPECTRAL_SLOPE_RANGE)
    base = random_colour(rng)
    albedo = np.broadcast_to(base, (height, width, 3)).copy()
    for _ in range(int(rng.integers(1, 4))):
        direction = random_colour(rng) - base
        albedo += (rng.uniform(0.1, 0.35) * spectral_noise(rng, height, width, slope))[..., None] * direction
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)


def _random_words(rng, character_count):
    """A line of random 'words' (1-9 letters and digits, one space apart), at least ``character_count`` long."""
    words = []
    length = 0
    while length < character_count:
        word = ''.join(rng.choice(list(_LETTERS), size=int(rng.integers(1, 10))))
        if rng.uniform() < 0.6:
            word = word.lower()
        words.append(word)
        length += len(word) + 1
    return ' '.join(words)


@functools.lru_cache(maxsize=None)
def _capital_height_per_scale(font):
    """Height in pixels of the capital 'H' of a Hershey ``font`` at ``fontScale`` 1, measured on its ink
    (``cv2.getTextSize`` reports a taller box)."""
    canvas = np.zeros((256, 256), np.uint8)
    cv2.putText(canvas, 'H', (40, 220), font, 8.0, 255, 1, cv2.LINE_8)
    rows = np.nonzero(canvas.any(axis=1))[0]
    return (rows[-1] - rows[0]) / 8.0


def glyph_scale(font, glyph_height):
    """OpenCV ``fontScale`` that makes capital letters of a Hershey ``font`` ``glyph_height`` pixels tall."""
    return glyph_height / _capital_height_per_scale(font)


def text_coverage(rng, height, width):
    """(H, W) float32 ink coverage in [0, 1] of 1-3 blocks of random text lines (antialiased).

    Each block has its own Hershey font, glyph height (in :data:`GLYPH_HEIGHT_RANGE`, log-uniform),
    stroke (1 px, or 2 px for glyphs of 10 px and more) and line spacing. The text is rotated by a
    small angle (70 %), about 90 degrees (20 %, book spines) or any angle (10 %).
    """
    choice = rng.uniform()
    if choice < 0.7:
        angle = rng.uniform(-8, 8)
    elif choice < 0.9:
        angle = 90 * rng.choice([-1, 1]) + rng.uniform(-5, 5)
    else:
        angle = rng.uniform(0, 360)
    side = int(math.ceil(math.hypot(height, width))) + 4  # the rotated canvas covers the output
    canvas = np.zeros((side, side), np.uint8)
    y = rng.uniform(0, 15)
    while y < side:
        font = int(rng.choice(_HERSHEY_FONTS))
        glyph_height = math.exp(rng.uniform(*np.log(GLYPH_HEIGHT_RANGE)))
        scale = glyph_scale(font, glyph_height)
        thickness = int(rng.integers(1, 3)) if glyph_height >= 10 else 1
        spacing = glyph_height * rng.uniform(1.3, 2.2)
        line_count = int(rng.integers(1, 12))
        margin = rng.uniform(0, 0.15) * side
        for _ in range(line_count):
            y += spacing
            if y >= side + spacing:
                break
            text = _random_words(rng, int(side / max(glyph_height * 0.5, 1)) + 2)
            cv2.putText(canvas, text, (int(margin), int(round(y))), font, scale, 255, thickness, cv2.LINE_AA)
        y += spacing * rng.uniform(0.5, 3)  # gap between blocks
    rotation = cv2.getRotationMatrix2D(((side - 1) / 2, (side - 1) / 2), float(angle), 1.0)
    rotation[:, 2] -= [(side - width) / 2, (side - height) / 2]
    coverage = cv2.warpAffine(canvas, rotation, (width, height), flags=cv2.INTER_LINEAR)
    return coverage.astype(np.float32) / 255


def texture_text(rng, height, width):
    """Random words in a contrasting colour on a flat, grainy or mottled ground."""
    ground_kind = rng.uniform()
    if ground_kind < 0.5:
        ground = texture_flat(rng, height, width)
    elif ground_kind < 0.75:
        ground = texture_grain(rng, height, width)
    else:
        ground = texture_spectral(rng, height, width)
    ink = contrasting_colour(rng, ground.reshape(-1, 3).mean(0), rng.uniform(0.25, 0.6))
    return _mix(ground, ink, text_coverage(rng, height, width))


def line_coverage(rng, height, width):
    """(H, W) float32 coverage in [0, 1] of 1-3 families of thin parallel lines (lines, grid, hatching).

    Each family has its angle, period (:data:`LINE_PERIOD_RANGE`) and width
    (:data:`LINE_WIDTH_RANGE`); coverage is the box-filtered line profile (antialiased). With
    probability 0.3, stray thin straight strokes are drawn on top.
    """
    coverage = np.zeros((height, width), np.float32)
    family_count = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
    base_angle = rng.uniform(0, math.pi)
    for family in range(family_count):
        angle = base_angle + (family * math.pi / 2 if rng.uniform() < 0.6 else rng.uniform(0, math.pi))
        a, _ = _rotated_coordinates(height, width, angle)
        period = rng.uniform(*LINE_PERIOD_RANGE)
        line_width = min(rng.uniform(*LINE_WIDTH_RANGE), period / 2)
        distance = np.abs((a / period + rng.uniform()) % 1.0 - 0.5) * period  # to the nearest line centre
        family_coverage = np.clip(line_width / 2 + 0.5 - distance, 0.0, 1.0)
        coverage = 1 - (1 - coverage) * (1 - family_coverage)
    if rng.uniform() < 0.3:
        strokes = np.zeros((height, width), np.uint8)
        for _ in range(int(rng.integers(1, 8))):
            start = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(strokes, start, end, 255, 1, cv2.LINE_AA)
        coverage = np.maximum(coverage, strokes.astype(np.float32) / 255)
    return coverage.astype(np.float32)


def texture_lines(rng, height, width):
    """Thin lines, grids or cross-hatching in a contrasting colour on a flat or mottled ground."""
    ground = texture_flat(rng, height, width) if rng.uniform() < 0.6 else texture_spectral(rng, height, width)
    ink = contrasting_colour(rng, ground.reshape(-1, 3).mean(0), rng.uniform(0.1, 0.4))
    return _mix(ground, ink, line_coverage(rng, height, width))


def texture_weave(rng, height, width, period=None):
    """A woven fabric: warp and weft threads, plain or twill, slightly irregular.

    The thread on top at each crossing shows its colour with a rounded brightness profile across
    it; the gaps between threads are darker.

    Args:
        period (float | None): thread spacing in pixels; None draws it in :data:`THREAD_PERIOD_RANGE`.
    """
    if period is None:
        period = rng.uniform(*THREAD_PERIOD_RANGE)
    a, b = _rotated_coordinates(height, width, rng.uniform(0, math.pi))
    # irregular threads: a smooth displacement of about a third of a thread
    a = a + period * 0.3 * (smooth_random_field(rng, height, width, grid=6) - 0.5)
    b = b + period * 0.3 * (smooth_random_field(rng, height, width, grid=6) - 0.5)
    column, row = np.floor(a / period), np.floor(b / period)
    across_warp, across_weft = a / period - column, b / period - row
    twill = int(rng.choice([2, 3, 4]))  # 2: plain weave, 3-4: twill
    warp_on_top = ((column + row) % twill) < (twill / 2)
    profile = np.where(warp_on_top, np.sin(math.pi * across_warp), np.sin(math.pi * across_weft))**0.7
    depth = rng.uniform(0.1, 0.4)  # how dark the gaps between threads are
    warp_colour = random_colour(rng)
    weft_colour = warp_colour if rng.uniform() < 0.5 else random_colour(rng)
    colour = np.where(warp_on_top[..., None], warp_colour, weft_colour)
    fibres = 1 + 0.15 * spectral_noise(rng, height, width, -1.5)  # fibre-scale irregularity
    albedo = colour * ((1 - depth) + depth * profile)[..., None] * np.clip(fibres, 0.5, 1.5)[..., None]
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)


def photo_texture_paths():
    """name -> path of every texture photograph present in the installed scikit-image and matplotlib.

    Only files inside the installed wheels are read (scikit-image would otherwise try to download
    some of its data); a file a wheel does not ship is left out.
    """
    import matplotlib
    import skimage.data
    folders = ((osp.dirname(skimage.data.__file__), SKIMAGE_TEXTURE_FILES),
               (osp.join(osp.dirname(matplotlib.__file__), 'mpl-data', 'sample_data'), MATPLOTLIB_TEXTURE_FILES))
    paths = {}
    for folder, names in folders:
        for name in names:
            if osp.isfile(osp.join(folder, name)):
                paths[osp.splitext(name)[0]] = osp.join(folder, name)
    return paths


@functools.lru_cache(maxsize=None)
def load_photo_textures():
    """name -> linear float32 image, (H, W) for grey photographs, (H, W, 3) RGB for colour ones (cached).

    Colour photographs whose channels are (nearly) equal are read as grey; photographs larger than
    768 px are shrunk to 768 px (INTER_AREA) once.
    """
    textures = {}
    for name, file_path in sorted(photo_texture_paths().items()):
        try:
            with Image.open(file_path) as handle:  # Pillow: quiet about the ICC profiles libpng warns of
                image = np.asarray(handle.convert('RGB'), np.float32) / 255
        except OSError as error:
            raise OSError(f'{file_path}: cannot decode the texture photograph ({error})') from error
        scale = _MAX_PHOTO_SIDE / max(image.shape[:2])
        if scale < 1:  # textures are used at most at full scale: shrink big photographs once
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        if np.abs(image - image.mean(-1, keepdims=True)).max() < 0.02:
            image = image.mean(-1)
        textures[name] = np.ascontiguousarray(srgb_to_linear(image)).astype(np.float32)
    return textures


def texture_photo(rng, height, width, name=None):
    """A texture photograph, scaled by :data:`PHOTO_SCALE_RANGE`, rotated, shifted and tinted.

    Grey photographs are tinted (multiplied by a colour, or mapped between a dark and a light
    colour); colour photographs keep their colours. Beyond its borders the photograph is mirrored.

    Args:
        name (str | None): the photograph (a key of :func:`load_photo_textures`); None draws one.
    Raises:
        RuntimeError: when no texture photograph is installed.
    """
    textures = load_photo_textures()
    if not textures:
        raise RuntimeError(f'no texture photograph ({", ".join(SKIMAGE_TEXTURE_FILES + MATPLOTLIB_TEXTURE_FILES)}) '
                           'is shipped in the installed scikit-image or matplotlib')
    if name is None:
        name = sorted(textures)[int(rng.integers(0, len(textures)))]
    source = textures[name]
    scale = math.exp(rng.uniform(*np.log(PHOTO_SCALE_RANGE)))
    source_height, source_width = source.shape[:2]
    small = cv2.resize(source, (max(int(source_width * scale), 2), max(int(source_height * scale), 2)),
                       interpolation=cv2.INTER_AREA)
    angle = rng.uniform(0, 360) if rng.uniform() < 0.5 else rng.uniform(-10, 10)
    centre = (rng.uniform(0, small.shape[1]), rng.uniform(0, small.shape[0]))
    transform = cv2.getRotationMatrix2D(centre, float(angle), 1.0)
    transform[:, 2] += [(width - 1) / 2 - centre[0], (height - 1) / 2 - centre[1]]
    albedo = cv2.warpAffine(small, transform, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    if albedo.ndim == 2:
        if rng.uniform() < 0.5:
            albedo = albedo[..., None] * random_colour(rng, 0.5, 1.0)
        else:
            dark, light = random_colour(rng, 0.03, 0.5), random_colour(rng, 0.5, 0.95)
            albedo = _mix(dark, light, albedo)
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)


_TEXTURES = {
    'flat': texture_flat,
    'stripes': texture_stripes,
    'checkerboard': texture_checkerboard,
    'blotches': texture_blotches,
    'grain': texture_grain,
    'spectral': texture_spectral,
    'text': texture_text,
    'lines': texture_lines,
    'weave': texture_weave,
    'photo': texture_photo,
}


def random_texture(rng, height, width, kind=None, weights=None):
    """(H, W, 3) float32 linear albedo in [0, 1] of one texture kind.

    Args:
        rng (numpy.random.Generator): every random choice.
        height, width (int): the texture size in pixels.
        kind (str | None): one of :data:`TEXTURE_KINDS`; None draws one with ``weights``.
        weights (dict | None): kind -> relative frequency; None: :data:`TEXTURE_WEIGHTS`.
    """
    if kind is None:
        weights = TEXTURE_WEIGHTS if weights is None else weights
        unknown = sorted(set(weights) - set(_TEXTURES))
        if unknown:
            raise ValueError(f'unknown texture kinds {unknown} in weights; expected some of {TEXTURE_KINDS}')
        kinds = sorted(weights)
        probabilities = np.float64([weights[k] for k in kinds])
        if not (np.all(probabilities >= 0) and probabilities.sum() > 0):
            raise ValueError(f'texture weights must be >= 0 with a positive sum, got {dict(weights)}')
        kind = kinds[int(rng.choice(len(kinds), p=probabilities / probabilities.sum()))]
    if kind not in _TEXTURES:
        raise ValueError(f'unknown texture kind {kind!r}; expected one of {TEXTURE_KINDS}')
    return _TEXTURES[kind](rng, int(height), int(width))


def wall_texture(rng, height, width):
    """(H, W, 3) float32 albedo of a wall: a mostly smooth kind (:data:`WALL_TEXTURE_WEIGHTS`), muted
    (its saturation scaled by U(0, 0.35)) and tinted white, cream, beige or grey (hue 0.08-0.17,
    saturation <= 0.3), with a mean sRGB luminance in :data:`WALL_LEVEL_RANGE`.
    """
    texture = random_texture(rng, height, width, weights=WALL_TEXTURE_WEIGHTS)
    grey = luminance(texture)[..., None]
    texture = grey + rng.uniform(0, 0.35) * (texture - grey)
    tint = np.float32(colorsys.hsv_to_rgb(rng.uniform(0.08, 0.17), rng.uniform(0, 0.3), 1.0))
    texture = texture * srgb_to_linear(tint)
    level = srgb_to_linear(np.float32(rng.uniform(*WALL_LEVEL_RANGE)))
    return np.clip(texture * (level / max(float(luminance(texture).mean()), 1e-4)), 0.0, 1.0).astype(np.float32)
