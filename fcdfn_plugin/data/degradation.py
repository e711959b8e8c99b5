"""The synthetic degradation of SPEC.md Sec. 2 (paper Sec. 3.1): dimming, noise, misalignment.

Plain numpy/OpenCV functions, no BasicSR, so they are reusable and testable alone. Images are
float32 arrays of shape (H, W, C) in [0, 1]; "linear" means linear RGB (linear sRGB, or the
camera's own linear RGB for FAID's raw release), "sRGB" means encoded with the standard sRGB
transfer curve. Every random draw takes an explicit ``numpy.random.Generator``, never a global
stream, so a sample is reproducible from the generator's seed alone.

:class:`DegradationLaw` is the one place where the law's options, defaults and validation live:
the training dataset and ``tools/prepare_faid.py`` (the fixed test set) both build it from the
same ``datasets.train`` keys and both draw through :func:`degrade_window`.

The order of draws inside :func:`degrade_window` is part of the contract (a fixed generator seed
gives a bit-identical sample): (for a law with wide-exposure samples, whether this is one), dimming
factor, read sigma, shot sigma
(:meth:`DegradationLaw.sample_parameters`), low-light noise, then flash noise and homography
corners (in the order set by ``flash_noise_order``), then, only for a law with auto-exposed
samples, whether this one is and its brightness target.
"""
import dataclasses
import math

import cv2
import numpy as np

#: Sampling laws of one quantity: uniform on the range, or uniform in the logarithm.
SAMPLINGS = ('uniform', 'log_uniform')
NOISE_SAMPLINGS = SAMPLINGS  # the earlier name
#: Where the flash image's noise is added relative to its warp.
FLASH_NOISE_ORDERS = ('before_warp', 'after_warp')
#: ``noise_sampling`` presets: the laws of (dimming factor, read sigma, shot sigma).
#: ``paper``: the paper's literal "sampled uniformly". ``deepfnf``: deepFnF's data generation
#: (``utils/dataset.py: gen_random_params``) draws the exponents uniformly, so all three are
#: log-uniform (it dims by ``alpha = 10**U(log10 .02, log10 .2)``, log-uniform as well).
#: ``uniform`` / ``log_uniform`` are the earlier spellings (one law for all three quantities).
SAMPLING_PRESETS = {
    'paper': ('uniform', 'uniform', 'uniform'),
    'deepfnf': ('log_uniform', 'log_uniform', 'log_uniform'),
    'uniform': ('uniform', 'uniform', 'uniform'),
    'log_uniform': ('log_uniform', 'log_uniform', 'log_uniform'),
}

#: Paper defaults (Sec. 3.1).
DEFAULT_DIM_RANGE = (25.0, 50.0)
DEFAULT_SIGMA_READ_RANGE = (1e-3, 1e-2)
DEFAULT_SIGMA_SHOT_RANGE = (1e-2, 10**-1.3)
#: Homography corner offset bound, in pixels of the stored image (any crop or image size).
DEFAULT_HOMOGRAPHY_STRENGTH = 8.0


def srgb_to_linear(srgb):
    """Inverse sRGB transfer curve (IEC 61966-2-1). Any shape, values in [0, 1] -> [0, 1]."""
    srgb = np.asarray(srgb, dtype=np.float32)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055)**2.4).astype(np.float32)


def linear_to_srgb(linear):
    """sRGB transfer curve (IEC 61966-2-1). Any shape, values in [0, 1] -> [0, 1].

    Negative inputs are clamped to 0 before the power so the result is never NaN.
    """
    linear = np.maximum(np.asarray(linear, dtype=np.float32), 0.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear**(1 / 2.4) - 0.055).astype(np.float32)


def sample_in_range(rng, value_range, sampling='uniform'):
    """One draw from ``value_range`` = (low, high), uniform or log-uniform, as a python float."""
    low, high = (float(v) for v in value_range)
    if not 0 < low <= high:
        raise ValueError(f'range must satisfy 0 < low <= high, got {value_range}')
    if sampling == 'uniform':
        return float(rng.uniform(low, high))
    if sampling == 'log_uniform':
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    raise ValueError(f'unknown sampling {sampling!r}; expected one of {NOISE_SAMPLINGS}')


def dim(linear, dim_factor):
    """Dim a linear image by ``dim_factor`` (the paper's 25-50): returns ``linear / dim_factor``."""
    return (linear / np.float32(dim_factor)).astype(np.float32)


def noise_variance(linear, sigma_read, sigma_shot):
    """Per-pixel variance of the heteroscedastic model, ``sigma_read**2 + sigma_shot**2 * x``.

    ``x`` is clamped at 0 so a (noisy) negative value never gives a negative variance.
    """
    return (sigma_read**2 + sigma_shot**2 * np.maximum(linear, 0.0)).astype(np.float32)


def add_read_shot_noise(linear, sigma_read, sigma_shot, rng):
    """``x + N(0, sigma_read**2 + sigma_shot**2 * x)``, independently per pixel and channel.

    Args:
        linear (ndarray): (H, W, C) float32 linear image.
        sigma_read (float): read-noise standard deviation (signal independent).
        sigma_shot (float): shot-noise scale (variance grows linearly with the signal).
        rng (numpy.random.Generator): source of the noise.
    Returns:
        ndarray: (H, W, C) float32, not clipped (clipping is the caller's choice).
    """
    standard_normal = rng.standard_normal(linear.shape, dtype=np.float32)
    return (linear + np.sqrt(noise_variance(linear, sigma_read, sigma_shot)) * standard_normal).astype(np.float32)


def sample_corner_offsets(rng, strength):
    """(4, 2) float32 corner displacements, each coordinate U(-strength, strength) pixels."""
    return rng.uniform(-strength, strength, size=(4, 2)).astype(np.float32)


def homography_from_offsets(height, width, margin, corner_offsets):
    """3x3 matrix mapping output (crop) pixel coordinates to source (window) coordinates.

    The crop of size (height, width) sits at ``(margin, margin)`` inside the source window; its
    four corners (top-left, top-right, bottom-right, bottom-left) are moved by ``corner_offsets``
    (4, 2) in (x, y). With zero offsets the matrix is the pure translation by ``margin``.
    """
    crop_corners = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    source_corners = crop_corners + np.float32(margin) + np.asarray(corner_offsets, dtype=np.float32)
    return cv2.getPerspectiveTransform(crop_corners, source_corners)


def warp_crop(window, crop_to_window, height, width):
    """Bilinear warp: ``out[y, x] = window[crop_to_window(x, y)]``, output (height, width, C) float32.

    ``crop_to_window`` is a 3x3 homography (see :func:`homography_from_offsets`). When every
    corner stays inside the window (offsets no larger than the margin) the warped quadrilateral is
    convex and inside the window too, so no empty border appears; the replicate border only
    guards against rounding at the very edge.
    """
    warped = cv2.warpPerspective(
        window, crop_to_window, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(height, width, -1).astype(np.float32)


def homography_margin(homography_strength=DEFAULT_HOMOGRAPHY_STRENGTH):
    """Pixels needed on every side of a crop (or of a whole image) so its warp never leaves the window.

    ``homography_strength`` is in pixels of the stored image, whatever the crop size: ``ceil(s)``.
    """
    return int(math.ceil(homography_strength))


def apply_colour_matrix(linear, colour_matrix):
    """``colour_matrix @ pixel`` for every pixel of an (H, W, 3) linear image; None is the identity.

    Used to map camera RGB to linear sRGB (see ``faid_io.camera_to_linear_srgb``). Not clipped.
    """
    if colour_matrix is None:
        return linear
    matrix = np.asarray(colour_matrix, dtype=np.float32)
    if matrix.shape != (3, 3):
        raise ValueError(f'colour matrix must be 3x3, got shape {matrix.shape}')
    return (linear @ matrix.T).astype(np.float32)


# ------------------------------------------------------------------ options
def option_range(opt, name, default):
    """``opt[name]`` as ``(low, high)`` floats with ``0 < low <= high`` (``default`` when absent)."""
    value = opt.get(name, default)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not 0 < value[0] <= value[1]):
        raise ValueError(f'option {name} must be [low, high] with 0 < low <= high, got {value!r}')
    return (float(value[0]), float(value[1]))


def option_choice(opt, name, default, choices):
    """``opt[name]``, which must be one of ``choices`` (``default`` when absent)."""
    value = opt.get(name, default)
    if value not in choices:
        raise ValueError(f'option {name}: unknown value {value!r}; expected one of {list(choices)}')
    return value


def option_number(opt, name, default, kind=float, minimum=0):
    """``opt[name]`` as a number (``kind`` float or int) no smaller than ``minimum``."""
    value = opt.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise ValueError(f'option {name} must be a{"n integer" if kind is int else " number"}, got {value!r}')
    if value < minimum:
        raise ValueError(f'option {name} must be >= {minimum}, got {value!r}')
    return kind(value)


@dataclasses.dataclass(frozen=True)
class DegradationLaw:
    """The law of one synthetic sample (SPEC.md Sec. 2); field names are the YAML keys.

    Attributes:
        dim_range ((float, float)): dimming factor d, the low-light image is ``ambient / d``;
            default (25, 50).
        sigma_read_range ((float, float)): read-noise sigma; default (1e-3, 1e-2).
        sigma_shot_range ((float, float)): shot-noise sigma; default (1e-2, 10**-1.3).
        dim_sampling, sigma_read_sampling, sigma_shot_sampling (str): ``uniform`` (default, the
            paper) or ``log_uniform``, per quantity. In options files the preset
            ``noise_sampling: paper|deepfnf`` sets all three; a per-quantity key overrides it.
        flash_gain (float): multiplies the flash-only image; default 1.
        homography_strength (float): s, corner offsets U(-s, s) in pixels of the stored image, the
            same for a training crop of any size and for a whole test image; default 8. Clamped
            to the room an image has around its crop.
        flash_noise_order (str): ``before_warp`` (default, SPEC.md) or ``after_warp``.
        wide_dim_probability (float): share of samples whose dimming factor is drawn from
            ``wide_dim_range`` (log-uniform) instead of ``dim_range``: photos at any exposure, while
            the rest keeps the band the network is trained for; default 0 (the paper).
        wide_dim_range ((float, float)): the exposure ratios of those samples; default (2, 200).
        auto_exposure_probability (float): share of samples whose no-flash photo is *auto-exposed*,
            as a phone camera does: the noisy dark photo gained back to a normal brightness (noise
            gained with the signal, highlights clipped); default 0 (the paper).
        auto_exposure_range ((float, float)): the camera's target brightness relative to a normal
            exposure (log-uniform): the gain is ``d * k``, so the photo's exposure ratio is ``1 / k``;
            default (1, 1).
    """
    dim_range: tuple = DEFAULT_DIM_RANGE
    sigma_read_range: tuple = DEFAULT_SIGMA_READ_RANGE
    sigma_shot_range: tuple = DEFAULT_SIGMA_SHOT_RANGE
    dim_sampling: str = 'uniform'
    sigma_read_sampling: str = 'uniform'
    sigma_shot_sampling: str = 'uniform'
    flash_gain: float = 1.0
    homography_strength: float = DEFAULT_HOMOGRAPHY_STRENGTH
    flash_noise_order: str = 'before_warp'
    wide_dim_probability: float = 0.0
    wide_dim_range: tuple = (2.0, 200.0)
    auto_exposure_probability: float = 0.0
    auto_exposure_range: tuple = (1.0, 1.0)

    #: Option keys read by :meth:`from_options` (``noise_sampling`` is the preset).
    OPTION_KEYS = ('dim_range', 'sigma_read_range', 'sigma_shot_range', 'noise_sampling', 'dim_sampling',
                   'sigma_read_sampling', 'sigma_shot_sampling', 'flash_gain', 'homography_strength',
                   'flash_noise_order', 'wide_dim_probability', 'wide_dim_range', 'auto_exposure_probability',
                   'auto_exposure_range')

    def __post_init__(self):
        fields = self.__dict__
        for name in ('dim_range', 'sigma_read_range', 'sigma_shot_range', 'wide_dim_range', 'auto_exposure_range'):
            object.__setattr__(self, name, option_range(fields, name, None))
        for name in ('wide_dim_probability', 'auto_exposure_probability'):
            probability = option_number(fields, name, None)
            if probability > 1:
                raise ValueError(f'option {name} must be in [0, 1], got {probability!r}')
            object.__setattr__(self, name, probability)
        for name in ('dim_sampling', 'sigma_read_sampling', 'sigma_shot_sampling'):
            option_choice(fields, name, None, SAMPLINGS)
        option_choice(fields, 'flash_noise_order', None, FLASH_NOISE_ORDERS)
        object.__setattr__(self, 'flash_gain', option_number(fields, 'flash_gain', None))
        object.__setattr__(self, 'homography_strength', option_number(fields, 'homography_strength', None))

    @classmethod
    def from_options(cls, opt):
        """The law from an options dict (the ``datasets.train`` section; other keys are ignored).

        Absent keys take the defaults above; ``noise_sampling`` (preset, default ``paper``) gives
        the default of the three per-quantity ``*_sampling`` keys.
        """
        opt = dict(opt or {})
        preset = option_choice(opt, 'noise_sampling', 'paper', SAMPLING_PRESETS)
        dim_law, read_law, shot_law = SAMPLING_PRESETS[preset]
        defaults = cls()
        return cls(
            dim_range=opt.get('dim_range', defaults.dim_range),
            sigma_read_range=opt.get('sigma_read_range', defaults.sigma_read_range),
            sigma_shot_range=opt.get('sigma_shot_range', defaults.sigma_shot_range),
            dim_sampling=opt.get('dim_sampling', dim_law),
            sigma_read_sampling=opt.get('sigma_read_sampling', read_law),
            sigma_shot_sampling=opt.get('sigma_shot_sampling', shot_law),
            flash_gain=opt.get('flash_gain', defaults.flash_gain),
            homography_strength=opt.get('homography_strength', defaults.homography_strength),
            flash_noise_order=opt.get('flash_noise_order', defaults.flash_noise_order),
            wide_dim_probability=opt.get('wide_dim_probability', defaults.wide_dim_probability),
            wide_dim_range=opt.get('wide_dim_range', defaults.wide_dim_range),
            auto_exposure_probability=opt.get('auto_exposure_probability', defaults.auto_exposure_probability),
            auto_exposure_range=opt.get('auto_exposure_range', defaults.auto_exposure_range))

    def to_options(self):
        """The law as plain option keys (JSON/YAML friendly); ``from_options`` of it is this law."""
        options = dataclasses.asdict(self)
        for name in ('dim_range', 'sigma_read_range', 'sigma_shot_range', 'wide_dim_range', 'auto_exposure_range'):
            options[name] = list(options[name])
        return options

    def margin(self):
        """Pixels of room a crop needs on every side for its warp: ``ceil(homography_strength)``."""
        return homography_margin(self.homography_strength)

    def sample_parameters(self, rng):
        """Draw ``dim_factor``, ``sigma_read``, ``sigma_shot`` (in this order) from ``rng``.

        With ``wide_dim_probability`` > 0 one more draw comes first: whether the dimming factor is
        drawn from ``wide_dim_range`` (log-uniform); a law without it keeps the paper's stream.
        """
        wide = self.wide_dim_probability > 0 and rng.random() < self.wide_dim_probability
        return {
            'dim_factor': (sample_in_range(rng, self.wide_dim_range, 'log_uniform') if wide
                           else sample_in_range(rng, self.dim_range, self.dim_sampling)),
            'sigma_read': sample_in_range(rng, self.sigma_read_range, self.sigma_read_sampling),
            'sigma_shot': sample_in_range(rng, self.sigma_shot_range, self.sigma_shot_sampling),
        }

    def sample_auto_exposure(self, rng):
        """The camera's brightness target ``k`` (relative to a normal exposure) when this sample is
        auto-exposed, else None. Draws nothing when ``auto_exposure_probability`` is 0, so the
        paper's law keeps its stream."""
        if self.auto_exposure_probability <= 0:
            return None
        auto = rng.random() < self.auto_exposure_probability
        target = sample_in_range(rng, self.auto_exposure_range, 'log_uniform')
        return target if auto else None


def degrade_window(ambient_window, flash_only_window, margin, rng, law=None, colour_matrix=None):
    """Synthesize (lq, flash, gt) from a clean linear pair, exactly as SPEC.md Sec. 2.

    The inputs are a window larger than the output by ``margin`` pixels on every side; ``lq`` and
    ``gt`` are its centre, ``flash`` is warped from the whole window so no empty border appears.

    Dimming and noise act in the input's own linear space (the camera's RGB for FAID's raw
    release); ``colour_matrix`` then maps the noisy, warped images and the clean target to linear
    sRGB, and only then are they clipped to [0, 1] and sRGB-encoded (one clip, at the end).

    Args:
        ambient_window (ndarray): (H + 2m, W + 2m, 3) float32 linear ambient image in [0, 1].
        flash_only_window (ndarray): same shape, linear flash-only image in [0, 1].
        margin (int): m, pixels around the output crop (>= 0).
        rng (numpy.random.Generator): the only source of randomness.
        law (DegradationLaw | None): ranges, sampling laws, flash gain, homography strength (in
            pixels; clamped to ``margin``) and flash noise order; None is the paper's default.
        colour_matrix (ndarray | None): (3, 3) input linear RGB -> linear sRGB; None: the input is
            linear sRGB already (8-bit FAID, or 16-bit files declared linear sRGB).
    Returns:
        tuple: ``lq``, ``flash``, ``gt``, each (H, W, 3) float32 sRGB in [0, 1], and ``params``,
        a dict of python floats (``dim_factor``, ``sigma_read``, ``sigma_shot``, ``flash_gain``,
        ``homography_strength`` (after the clamp), ``homography_max_offset``, ``exposure_ratio``: how
        many times darker than the ambient the no-flash photo is (``dim_factor``, or ``1 / k`` when
        auto-exposed), ``auto_exposed``: 1.0 or 0.0).
    """
    law = DegradationLaw() if law is None else law
    if not isinstance(law, DegradationLaw):
        raise TypeError(f'law must be a DegradationLaw, got {type(law).__name__}')
    if ambient_window.shape != flash_only_window.shape:
        raise ValueError(f'ambient {ambient_window.shape} and flash-only {flash_only_window.shape} differ in shape')
    window_height, window_width = ambient_window.shape[:2]
    height, width = window_height - 2 * margin, window_width - 2 * margin
    if height <= 0 or width <= 0:
        raise ValueError(f'window {window_height}x{window_width} too small for margin {margin}')
    strength = float(min(law.homography_strength, margin))

    # Draw order is fixed (see module docstring).
    params = law.sample_parameters(rng)
    dim_factor, sigma_read, sigma_shot = params['dim_factor'], params['sigma_read'], params['sigma_shot']

    centre = (slice(margin, margin + height), slice(margin, margin + width))
    ambient = ambient_window[centre]
    low_light = dim(ambient, dim_factor)  # (H, W, 3) clean low-light image
    noisy_low_light = add_read_shot_noise(low_light, sigma_read, sigma_shot, rng)

    # The flash image also contains the dimmed ambient light (the flash adds to it).
    flash_clean = dim(ambient_window, dim_factor) + np.float32(law.flash_gain) * flash_only_window
    if law.flash_noise_order == 'before_warp':
        noisy_flash = add_read_shot_noise(flash_clean, sigma_read, sigma_shot, rng)
        corner_offsets = sample_corner_offsets(rng, strength)
        crop_to_window = homography_from_offsets(height, width, margin, corner_offsets)
        warped_flash = warp_crop(noisy_flash, crop_to_window, height, width)
    else:
        corner_offsets = sample_corner_offsets(rng, strength)
        crop_to_window = homography_from_offsets(height, width, margin, corner_offsets)
        warped_flash = add_read_shot_noise(
            warp_crop(flash_clean, crop_to_window, height, width), sigma_read, sigma_shot, rng)

    def finish(linear):
        return linear_to_srgb(np.clip(apply_colour_matrix(linear, colour_matrix), 0.0, 1.0))

    exposure_ratio = dim_factor
    auto_target = law.sample_auto_exposure(rng)
    if auto_target is not None:  # gained back to the camera's target brightness, noise and all
        noisy_low_light = noisy_low_light * np.float32(dim_factor * auto_target)
        exposure_ratio = 1.0 / auto_target
    lq, flash, gt = finish(noisy_low_light), finish(warped_flash), finish(ambient)
    params.update({
        'exposure_ratio': float(exposure_ratio),
        'auto_exposed': float(auto_target is not None),
        'flash_gain': float(law.flash_gain),
        'homography_strength': strength,
        'homography_max_offset': float(np.abs(corner_offsets).max()),
    })
    return lq, flash, gt, params
