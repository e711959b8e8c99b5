"""The synthetic degradation of SPEC.md Sec. 2 (paper Sec. 3.1): dimming, noise, misalignment.

Plain numpy/OpenCV functions, no BasicSR, so they are reusable and testable alone. Images are
float32 arrays of shape (H, W, C) in [0, 1]; "linear" means linear RGB, "sRGB" means encoded with
the standard sRGB transfer curve. Every random draw takes an explicit ``numpy.random.Generator``,
never a global stream, so a sample is reproducible from the generator's seed alone.

The order of draws inside :func:`degrade_window` is part of the contract (a fixed generator seed
gives a bit-identical sample): dimming factor, read sigma, shot sigma, low-light noise, then
flash noise and homography corners (in the order set by ``flash_noise_order``).
"""
import math

import cv2
import numpy as np

#: Sampling laws accepted for the dimming factor and the noise sigmas.
NOISE_SAMPLINGS = ('uniform', 'log_uniform')
#: Where the flash image's noise is added relative to its warp.
FLASH_NOISE_ORDERS = ('before_warp', 'after_warp')

#: Paper defaults (Sec. 3.1).
DEFAULT_DIM_RANGE = (25.0, 50.0)
DEFAULT_SIGMA_READ_RANGE = (1e-3, 1e-2)
DEFAULT_SIGMA_SHOT_RANGE = (1e-2, 10**-1.3)
#: Homography corner offset bound, in pixels, for a 224-pixel crop (scaled with the crop size).
DEFAULT_HOMOGRAPHY_STRENGTH = 8.0
REFERENCE_CROP = 224


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


def homography_margin(crop_size, homography_strength=DEFAULT_HOMOGRAPHY_STRENGTH):
    """Pixels needed around a crop so its warp never leaves the window.

    ``homography_strength`` is given for a 224-pixel crop and scales linearly with ``crop_size``.
    """
    return int(math.ceil(homography_strength * crop_size / REFERENCE_CROP))


def degrade_window(ambient_window,
                   flash_only_window,
                   margin,
                   rng,
                   dim_range=DEFAULT_DIM_RANGE,
                   sigma_read_range=DEFAULT_SIGMA_READ_RANGE,
                   sigma_shot_range=DEFAULT_SIGMA_SHOT_RANGE,
                   noise_sampling='uniform',
                   flash_gain=1.0,
                   corner_strength=None,
                   flash_noise_order='before_warp'):
    """Synthesize (lq, flash, gt) from a clean linear pair, exactly as SPEC.md Sec. 2.

    The inputs are a window larger than the output by ``margin`` pixels on every side; ``lq`` and
    ``gt`` are its centre, ``flash`` is warped from the whole window so no empty border appears.

    Args:
        ambient_window (ndarray): (H + 2m, W + 2m, 3) float32 linear ambient image in [0, 1].
        flash_only_window (ndarray): same shape, linear flash-only image in [0, 1].
        margin (int): m, pixels around the output crop (>= 0).
        rng (numpy.random.Generator): the only source of randomness.
        dim_range ((float, float)): dimming factor d; the low-light image is ``ambient / d``.
        sigma_read_range, sigma_shot_range ((float, float)): noise sigma ranges.
        noise_sampling (str): 'uniform' or 'log_uniform', for d and both sigmas.
        flash_gain (float): flash-only image is multiplied by this before adding.
        corner_strength (float | None): corner offset bound in pixels (clamped to ``margin``);
            None means ``margin``.
        flash_noise_order (str): 'before_warp' (SPEC.md: ``warp(noisy(fl))``; the bilinear warp
            then slightly smooths the flash noise) or 'after_warp' (``noisy(warp(fl))``: noise on
            the flash camera's own pixel grid, physically closer).
    Returns:
        tuple: ``lq``, ``flash``, ``gt``, each (H, W, 3) float32 sRGB in [0, 1], and ``params``,
        a dict of python floats (``dim_factor``, ``sigma_read``, ``sigma_shot``, ``flash_gain``,
        ``homography_strength``, ``homography_max_offset``).
    """
    if ambient_window.shape != flash_only_window.shape:
        raise ValueError(f'ambient {ambient_window.shape} and flash-only {flash_only_window.shape} differ in shape')
    if noise_sampling not in NOISE_SAMPLINGS:
        raise ValueError(f'unknown noise_sampling {noise_sampling!r}; expected one of {NOISE_SAMPLINGS}')
    if flash_noise_order not in FLASH_NOISE_ORDERS:
        raise ValueError(f'unknown flash_noise_order {flash_noise_order!r}; expected one of {FLASH_NOISE_ORDERS}')
    window_height, window_width = ambient_window.shape[:2]
    height, width = window_height - 2 * margin, window_width - 2 * margin
    if height <= 0 or width <= 0:
        raise ValueError(f'window {window_height}x{window_width} too small for margin {margin}')
    strength = float(margin if corner_strength is None else min(corner_strength, margin))

    # Draw order is fixed (see module docstring).
    dim_factor = sample_in_range(rng, dim_range, noise_sampling)
    sigma_read = sample_in_range(rng, sigma_read_range, noise_sampling)
    sigma_shot = sample_in_range(rng, sigma_shot_range, noise_sampling)

    centre = (slice(margin, margin + height), slice(margin, margin + width))
    ambient = ambient_window[centre]
    low_light = dim(ambient, dim_factor)  # (H, W, 3) clean low-light image
    noisy_low_light = add_read_shot_noise(low_light, sigma_read, sigma_shot, rng)

    # The flash image also contains the dimmed ambient light (the flash adds to it).
    flash_clean = dim(ambient_window, dim_factor) + np.float32(flash_gain) * flash_only_window
    if flash_noise_order == 'before_warp':
        noisy_flash = add_read_shot_noise(flash_clean, sigma_read, sigma_shot, rng)
        corner_offsets = sample_corner_offsets(rng, strength)
        crop_to_window = homography_from_offsets(height, width, margin, corner_offsets)
        warped_flash = warp_crop(noisy_flash, crop_to_window, height, width)
    else:
        corner_offsets = sample_corner_offsets(rng, strength)
        crop_to_window = homography_from_offsets(height, width, margin, corner_offsets)
        warped_flash = add_read_shot_noise(
            warp_crop(flash_clean, crop_to_window, height, width), sigma_read, sigma_shot, rng)

    lq = linear_to_srgb(np.clip(noisy_low_light, 0.0, 1.0))
    flash = linear_to_srgb(np.clip(warped_flash, 0.0, 1.0))
    gt = linear_to_srgb(np.clip(ambient, 0.0, 1.0))
    params = {
        'dim_factor': dim_factor,
        'sigma_read': sigma_read,
        'sigma_shot': sigma_shot,
        'flash_gain': float(flash_gain),
        'homography_strength': strength,
        'homography_max_offset': float(np.abs(corner_offsets).max()),
    }
    return lq, flash, gt, params
