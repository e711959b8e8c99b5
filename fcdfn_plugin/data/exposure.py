"""The exposure contract: the network sees the no-flash photo at an exposure it was trained for.

The synthesis (SPEC.md Sec. 2) makes the no-flash photo ``d`` times darker than a normal exposure
of the ambient light, ``d`` in the training law's ``dim_range`` (the paper: 25-50). A camera's own
photo comes at whatever exposure and gain the camera chose: a dim room at 1/5, a very dark one at
1/200, or auto-exposed (gained back to normal brightness, noise and all). :class:`ExposureContract`
brings any of them into the network's band before it runs:

1. ``d``, the photo's *exposure ratio* (how many times darker than a normal exposure), is known
   (given by the user, or the test set's ``dim_factor``) or estimated from the photo itself:
   :func:`estimate_exposure_ratio` compares a robust mean linear luminance of the photo with the
   mean luminance of a normally exposed ambient image (``reference_luminance``, measured on the
   training set's ambient images). The luminance mean is clipping-aware: where noise has pushed
   dark pixels below zero and the camera clipped them, a censored-normal fit recovers the true
   block mean, so a 1/200 photo is not read as brighter than it is.
2. The photo's linear values are multiplied by ``d / clamp(d, band)``: a photo inside the band is
   left exactly as it is (the paper's fixed test set is unchanged), a brighter one is darkened to
   the band's bright edge, a darker one brightened to its dark edge. Its noise scales with it.

Two photos' EXIF (exposure time x ISO of each) tell how the no-flash photo was exposed *relative
to the flash photo*; the synthesis shoots both at one exposure, so :func:`exif_relative_exposure`
first brings the no-flash photo to the flash photo's exposure (exactly, no estimate), and step 1
continues from there. The result is the ambient scene at a normal exposure, as FAID's ground truth:
the brightness of the output is a convention, which ``--exposure-ratio`` overrides.

Options (the ``exposure:`` section of an options file; :meth:`ExposureContract.from_options`)::

    exposure:
      mode: auto            # auto | none (none: the input as it is, the paper's preset)
      band: [25, 50]        # default: datasets.train.dim_range
      reference_luminance: 0.164  # default: REFERENCE_LUMINANCE

Tensors are (B, 3, H, W) sRGB in [0, 1]; everything works per image of the batch.
"""
import dataclasses
import math

import torch
import torch.nn.functional as F

from .degradation import DEFAULT_DIM_RANGE, option_choice, option_number, option_range

MODES = ('auto', 'none')
#: Mean linear luminance (Rec. 709 weights, clipping-aware block means, see :func:`mean_luminance`)
#: of a normally exposed ambient image: the median over the offline toy FAID's training ambient
#: images (``tools/exposure_table.py --measure-reference datasets/toy_faid_prepared/train.lmdb``).
REFERENCE_LUMINANCE = 0.164
#: Side of the blocks whose means :func:`mean_luminance` fits: this many pixels at 512 px and below,
#: growing with larger images (fewer pixels per block bias the clipping correction).
BLOCK = 8
#: Rec. 709 / sRGB luminance weights of linear R, G, B.
LUMA = (0.2126, 0.7152, 0.0722)
#: Exposure ratios outside this range are refused as input mistakes (an exposure ratio is
#: normal exposure / photo exposure: 1 = normally exposed, 40 = the benchmark's dark photos).
RATIO_LIMITS = (1e-3, 1e4)


def srgb_to_linear(srgb):
    """Inverse sRGB curve on a tensor (same formula as :func:`degradation.srgb_to_linear`)."""
    srgb = srgb.clamp(0, 1)
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055)**2.4)


def linear_to_srgb(linear):
    """sRGB curve on a tensor; negatives are 0 (same formula as :func:`degradation.linear_to_srgb`)."""
    linear = linear.clamp(min=0)
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp(min=1e-12)**(1 / 2.4) - 0.055)


def _censored_means(mean, zero_fraction):
    """Mean of a normal variable from the mean of its values clipped at 0 and the fraction clipped.

    For ``v = max(0, x)``, ``x ~ N(m, s)``: ``P(v = 0) = p = Phi(-m/s)`` and
    ``E[v] = m (1 - p) + s phi(m/s)``; with ``z = Phi^-1(p)`` (so ``m = -z s``) this gives
    ``s = E[v] / (phi(z) - z (1 - p))``. ``p`` is capped at 0.99 (a block that is nearly all
    zeros says only that its mean is well below its noise).
    """
    p = zero_fraction.clamp(0, 0.99)
    z = torch.special.ndtri(p.clamp(min=1e-6))
    phi = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    sigma = mean / (phi - z * (1 - p)).clamp(min=1e-6)
    return torch.where(zero_fraction > 0, -z * sigma, mean)


def mean_luminance(linear, block=None):
    """(B,) robust mean luminance of linear images (B,3,H,W), corrected for clipping at zero.

    The luminance is averaged over blocks (``block`` px, default scaled with the image so a block
    covers the same share of any size); each block's mean is corrected for the pixels the camera
    clipped at zero (:func:`_censored_means`, per channel before the luminance weights), and the
    image's value is the mean of its block means. Highlights clipped at 1 are left as they are:
    they make a bright photo look a little darker than it is, never brighter.
    """
    height, width = linear.shape[-2:]
    if block is None:
        block = max(BLOCK, round(BLOCK * max(height, width) / 512))
    block = max(1, min(block, height, width))
    means = F.avg_pool2d(linear, block, ceil_mode=True)
    zeros = F.avg_pool2d((linear <= 0).to(linear.dtype), block, ceil_mode=True)
    corrected = _censored_means(means, zeros)  # (B,3,h,w)
    weights = corrected.new_tensor(LUMA).view(1, 3, 1, 1)
    return (corrected * weights).sum(1).flatten(1).mean(1)


def estimate_exposure_ratio(lq, reference_luminance=REFERENCE_LUMINANCE):
    """(B,) estimated exposure ratio ``d`` of sRGB no-flash photos (B,3,H,W): reference / their luminance."""
    luminance = mean_luminance(srgb_to_linear(lq)).clamp(min=1e-7)
    return (reference_luminance / luminance).clamp(*RATIO_LIMITS)


def check_ratio(value, what='exposure ratio'):
    """``value`` as a float inside :data:`RATIO_LIMITS`, else a ``ValueError`` naming it."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{what} must be a number, got {value!r}') from None
    if not (math.isfinite(value) and RATIO_LIMITS[0] <= value <= RATIO_LIMITS[1]):
        raise ValueError(f'{what} must be between {RATIO_LIMITS[0]:g} and {RATIO_LIMITS[1]:g} (normal exposure / '
                         f'photo exposure: 1 for a normally exposed photo, 25-50 for the benchmark), got {value!r}')
    return value


def exif_relative_exposure(lowlight_exif, flash_exif):
    """Exposure of the no-flash photo relative to the flash photo from EXIF, or None when unknown.

    Each argument is a mapping with ``exposure_time`` (s) and ``iso``; the exposure is their
    product (aperture is assumed the same for both shots, as a phone's is). None when either photo
    lacks either value or a value is not positive.
    """
    values = []
    for exif in (lowlight_exif, flash_exif):
        exif = exif or {}
        time_s, iso = exif.get('exposure_time'), exif.get('iso')
        if time_s is None or iso is None:
            return None
        if not (float(time_s) > 0 and float(iso) > 0):
            return None
        values.append(float(time_s) * float(iso))
    return values[0] / values[1]


def scale_exposure(srgb, gain):
    """sRGB images (B,3,H,W) with their linear values multiplied by ``gain`` (B,), clipped to [0, 1]."""
    gain = torch.as_tensor(gain, dtype=srgb.dtype, device=srgb.device).reshape(-1, 1, 1, 1)
    if bool((gain == 1).all()):
        return srgb
    return linear_to_srgb((srgb_to_linear(srgb) * gain).clamp(0, 1))


@dataclasses.dataclass(frozen=True)
class ExposureContract:
    """How a no-flash photo is brought into the network's exposure band (module docstring).

    Attributes:
        mode (str): ``auto`` (known ratio if given, else estimated) or ``none`` (input unchanged).
        band ((float, float)): exposure ratios the network was trained on; photos inside are
            left as they are.
        reference_luminance (float): mean linear luminance of a normally exposed ambient image.
    """
    mode: str = 'auto'
    band: tuple = DEFAULT_DIM_RANGE
    reference_luminance: float = REFERENCE_LUMINANCE

    OPTION_KEYS = ('mode', 'band', 'reference_luminance')

    def __post_init__(self):
        if self.mode is None:  # `mode: ~` (and BasicSR's --force_yml exposure:mode=none) read as 'none'
            object.__setattr__(self, 'mode', 'none')
        option_choice(self.__dict__, 'mode', None, MODES)
        object.__setattr__(self, 'band', option_range(self.__dict__, 'band', None))
        luminance = option_number(self.__dict__, 'reference_luminance', None)
        if not 0 < luminance <= 1:
            raise ValueError(f'option reference_luminance must be in (0, 1], got {luminance!r}')
        object.__setattr__(self, 'reference_luminance', float(luminance))

    @classmethod
    def from_options(cls, opt):
        """The contract of a whole options dict: its ``exposure`` section, the band defaulting to
        ``datasets.train.dim_range``. No section: ``mode: none`` (the paper's input, as it is), with
        that band (what a tool that always applies the contract, ``tools/enhance.py``, uses)."""
        section = opt.get('exposure')
        train = ((opt.get('datasets') or {}).get('train') or {})
        band = train.get('dim_range', DEFAULT_DIM_RANGE)
        if section is None:
            return cls(mode='none', band=band)
        if not isinstance(section, dict):
            raise ValueError(f'option exposure must be a mapping with keys {list(cls.OPTION_KEYS)}, got {section!r}')
        unknown = sorted(set(section) - set(cls.OPTION_KEYS))
        if unknown:
            raise ValueError(f'option exposure: unknown key(s) {unknown}; expected {list(cls.OPTION_KEYS)}')
        return cls(mode=section.get('mode', 'auto'), band=section.get('band', band),
                   reference_luminance=section.get('reference_luminance', REFERENCE_LUMINANCE))

    def to_options(self):
        """The contract as an ``exposure`` section (JSON/YAML friendly)."""
        return {'mode': self.mode, 'band': list(self.band), 'reference_luminance': self.reference_luminance}

    def exposure_ratios(self, lq, known=None):
        """(B,) exposure ratios of the batch: ``known`` ((B,) or a number) where given, else estimated."""
        if known is not None:
            known = torch.as_tensor(known, dtype=lq.dtype, device=lq.device).reshape(-1)
            return known.expand(lq.shape[0]) if known.numel() == 1 else known
        return estimate_exposure_ratio(lq, self.reference_luminance)

    def gains(self, lq, known=None, relative=None):
        """(B,) linear gains that bring each photo into the band: ``d / clamp(d, band)`` (1 inside it).

        ``relative`` (a number: the no-flash photo's exposure over the flash photo's, from EXIF)
        first brings the photo to the flash photo's exposure (gain ``1 / relative``); the ratio is
        then known or estimated on that photo.
        """
        if self.mode == 'none':
            return lq.new_ones(lq.shape[0])
        first = 1.0
        if relative is not None:
            first = 1.0 / check_ratio(relative, 'relative exposure of the no-flash photo')
            lq = scale_exposure(lq, lq.new_full((lq.shape[0],), first))
        ratios = self.exposure_ratios(lq, known)
        return first * ratios / ratios.clamp(*self.band)

    def apply(self, lq, known=None, relative=None):
        """``(lq inside the band, (B,) gains applied)``; ``mode: none`` returns ``lq`` unchanged."""
        gains = self.gains(lq, known, relative)
        return scale_exposure(lq, gains), gains
