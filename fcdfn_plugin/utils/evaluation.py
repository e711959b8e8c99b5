"""Scoring enhanced images against a fixed test set: PSNR / SSIM / LPIPS as the paper reports them.

A test set is a folder with ``lq/``, ``flash/``, ``gt/`` (16- or 8-bit sRGB PNG, same names) and
optionally ``params.json``, as ``tools/prepare_faid.py`` writes it (``--all-test`` turns a folder
of real FAID pairs into one). Every method is scored exactly as BasicSR's validation scores it:
the output clamped to [0, 1], rounded to 8 bits (``tensor2img``), against the 8-bit ground truth,
PSNR and SSIM with ``crop_border`` 0 on RGB, and LPIPS-VGG (``calculate_fcdfn_lpips``).

Two references need no training and bound what a method must beat:

* ``low-light input``: the dark input itself;
* ``oracle global gain``: the input times the one scalar ``g = <lq, gt> / <lq, lq>`` per image, the
  least-squares gain, which knows the ground truth: what brightening alone can reach, with the
  noise and none of the detail the flash shows. The gain is fitted and applied to the *linear*
  values (sRGB curve undone, then re-applied): brightening is a linear-light operation, and on the
  toy test set this is 0.1-1.7 dB better than the same formula on sRGB values, so the reference
  is not a straw man.
"""
import json
from os import path as osp

import numpy as np
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import img2tensor, scandir, tensor2img

from ..data.degradation import linear_to_srgb, srgb_to_linear
from ..data.faid_io import decode_image, read_file_bytes, to_unit_float

ROLES = ('lq', 'flash', 'gt')
METRICS = ('psnr', 'ssim', 'lpips')


def list_test_scenes(test_dir):
    """Sorted scene keys of a prepared test folder; a clear error when it is not one."""
    for role in ROLES:
        if not osp.isdir(osp.join(test_dir, role)):
            raise FileNotFoundError(f'{osp.join(test_dir, role)}: missing; a test set holds lq/, flash/ and gt/ '
                                    '(tools/prepare_faid.py writes them)')
    keys = sorted(osp.splitext(name)[0] for name in scandir(osp.join(test_dir, 'gt'), suffix='.png'))
    if not keys:
        raise FileNotFoundError(f'{osp.join(test_dir, "gt")}: no PNG images')
    for key in keys:
        for role in ('lq', 'flash'):
            if not osp.isfile(osp.join(test_dir, role, f'{key}.png')):
                raise FileNotFoundError(f'{osp.join(test_dir, role, key + ".png")}: missing partner of gt/{key}.png')
    return keys


def read_test_scene(test_dir, key):
    """``{'lq', 'flash', 'gt'}`` as (1,3,H,W) float32 tensors in [0, 1] (RGB), checked to share one size."""
    images = {}
    for role in ROLES:
        path = osp.join(test_dir, role, f'{key}.png')
        images[role] = to_unit_float(decode_image(read_file_bytes(path), path))
    shapes = {role: image.shape for role, image in images.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f'{test_dir}: scene {key} has images of different sizes {shapes}')
    return {role: img2tensor(image, bgr2rgb=False, float32=True)[None] for role, image in images.items()}


def read_test_params(test_dir):
    """``params.json`` of a test folder (per-scene degradation parameters), or {} when absent."""
    path = osp.join(test_dir, 'params.json')
    if not osp.isfile(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def least_squares_gain(x, y):
    """``clamp(g * x)`` with the scalar ``g = <x, y> / <x, x>`` of each image (B,...) that best maps x onto y."""
    dims = tuple(range(1, x.dim()))
    gain = (x * y).sum(dims, keepdim=True) / (x * x).sum(dims, keepdim=True).clamp_min(1e-12)
    return (gain * x).clamp(0, 1)


def oracle_gain(lq, gt):
    """The oracle global gain of sRGB images (B,3,H,W): :func:`least_squares_gain` on their linear values."""
    linear = [torch.from_numpy(srgb_to_linear(image.cpu().numpy())) for image in (lq, gt)]
    return torch.from_numpy(linear_to_srgb(least_squares_gain(*linear).numpy())).to(lq.device)


def to_image8(tensor):
    """(1,3,H,W) RGB in [0, 1] -> HxWx3 uint8 BGR, exactly as BasicSR's validation saves and scores it."""
    return tensor2img(tensor.detach().cpu(), rgb2bgr=True, out_type=np.uint8, min_max=(0, 1))


def score(output8, gt8, lpips_fn=None):
    """``{'psnr', 'ssim'[, 'lpips']}`` of two HxWx3 uint8 BGR images (BasicSR's metrics, crop_border 0)."""
    result = {'psnr': float(calculate_psnr(output8, gt8, crop_border=0)),
              'ssim': float(calculate_ssim(output8, gt8, crop_border=0))}
    if lpips_fn is not None:
        result['lpips'] = float(lpips_fn(output8, gt8))
    return result


def band_pass(image8, sigma=1.0):
    """Fine structure of an HxWx3 uint8 BGR image: luminance minus its Gaussian blur (float32, HxW)."""
    import cv2
    grey = cv2.cvtColor(image8, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    return grey - cv2.GaussianBlur(grey, (0, 0), sigma)


def detail_scores(output8, gt8, sigma=1.0):
    """How much of the ground truth's fine structure an output reproduces.

    ``hf_corr``: correlation of the two band-passed luminances (1: every fine edge in place, 0:
    none); ``hf_gain``: their ratio of standard deviations (below 1: smoother than the truth, above:
    sharper or noisier). Blur lowers both; noise raises ``hf_gain`` but not ``hf_corr``.
    """
    out, ref = band_pass(output8, sigma).ravel(), band_pass(gt8, sigma).ravel()
    ref_std = float(ref.std())
    if ref_std == 0:
        return {'hf_corr': float('nan'), 'hf_gain': float('nan')}
    out_std = float(out.std())
    corr = float(np.mean((out - out.mean()) * (ref - ref.mean())) / max(out_std * ref_std, 1e-12))
    return {'hf_corr': corr, 'hf_gain': out_std / ref_std}


def summarise(per_scene):
    """``{metric: mean}`` over the scenes of ``{scene: {metric: value}}``."""
    metrics = sorted({name for values in per_scene.values() for name in values})
    return {name: float(np.mean([values[name] for values in per_scene.values() if name in values]))
            for name in metrics}


def evaluate_methods(test_dir, methods, lpips_fn=None, keys=None, on_scene=None, progress=None, detail=False,
                     gain_corrected=False):
    """Score every method on every scene of ``test_dir``.

    Args:
        test_dir (str): prepared test folder.
        methods (dict): label -> ``fn(scene) -> (1,3,H,W) tensor`` where ``scene`` is the dict of
            :func:`read_test_scene` plus ``'key'`` and ``'params'`` (the scene's entry of params.json).
        lpips_fn: ``fn(img8, img8) -> float`` or None (no LPIPS).
        keys (list | None): scenes to score, default all.
        on_scene: ``fn(key, scene, {label: HxWx3 uint8 BGR output})`` called after each scene (to save
            images or build figures), or None.
        progress: a tqdm-like object with ``update()``, or None.
        detail (bool): also report :func:`detail_scores` (``hf_corr``, ``hf_gain``).
        gain_corrected (bool): also report ``psnr_gain_corrected``, the PSNR of the output after the
            oracle global gain (:func:`oracle_gain`): its quality with its global brightness taken
            out (which a single photo of unknown exposure cannot determine); and ``level``, the mean of
            the 8-bit output over the mean of the 8-bit ground truth (1: as bright as the truth).
    Returns:
        dict: label -> ``{'per_scene': {key: {metric: value}}, 'mean': {metric: value}, 'seconds': float}``.
    """
    import time

    keys = list_test_scenes(test_dir) if keys is None else keys
    params = read_test_params(test_dir)
    results = {label: {'per_scene': {}, 'seconds': 0.0} for label in methods}
    for key in keys:
        scene = dict(read_test_scene(test_dir, key), key=key, params=params.get(key, {}))
        gt8 = to_image8(scene['gt'])
        outputs = {}
        for label, method in methods.items():
            started = time.time()
            with torch.no_grad():
                output = method(scene)
            results[label]['seconds'] += time.time() - started
            if output.shape != scene['gt'].shape:
                raise ValueError(f'{label}: output {tuple(output.shape)} differs from the ground truth '
                                 f'{tuple(scene["gt"].shape)} for scene {key}')
            outputs[label] = to_image8(output)
            results[label]['per_scene'][key] = score(outputs[label], gt8, lpips_fn)
            if detail:
                results[label]['per_scene'][key].update(detail_scores(outputs[label], gt8))
            if gain_corrected:
                corrected8 = to_image8(oracle_gain(output.clamp(0, 1), scene['gt']))
                results[label]['per_scene'][key].update(
                    psnr_gain_corrected=float(calculate_psnr(corrected8, gt8, 0)),
                    level=float(outputs[label].mean(dtype=np.float64) / max(gt8.mean(dtype=np.float64), 1e-12)))
        if on_scene is not None:
            on_scene(key, scene, outputs)
        if progress is not None:
            progress.update()
    for entry in results.values():
        entry['mean'] = summarise(entry['per_scene'])
    return results


def reference_methods():
    """The two references every table shows: the input and the oracle global gain."""
    return {'low-light input': lambda scene: scene['lq'],
            'oracle global gain': lambda scene: oracle_gain(scene['lq'], scene['gt'])}


#: Values of ``--exposure``: the weights' own contract, always auto, never, or auto with params.json's true ratio.
EXPOSURE_CHOICES = ('model', 'auto', 'none', 'true')


def exposure_for(weights, opt, choice):
    """``(contract or None, use the true ratio)`` of ``--exposure choice`` for one checkpoint."""
    from ..data.exposure import ExposureContract
    from .inference import exposure_contract
    contract, _ = exposure_contract(weights, opt)
    if choice == 'none' or (choice == 'model' and contract.mode == 'none'):
        return None, False
    return ExposureContract('auto', contract.band, contract.reference_luminance), choice == 'true'


def scene_lowlight(scene, exposure):
    """The scene's low-light input after the exposure contract ``(contract, true ratio?)``, if any."""
    contract, true_ratio = exposure
    if contract is None:
        return scene['lq']
    if true_ratio and 'exposure_ratio' not in scene['params'] and 'dim_factor' not in scene['params']:
        raise ValueError(f'--exposure true needs the exposure ratio of scene {scene["key"]} in params.json '
                         '(tools/prepare_faid.py writes it).')
    known = scene['params'].get('exposure_ratio', scene['params'].get('dim_factor')) if true_ratio else None
    return contract.apply(scene['lq'], known)[0]


def network_method(net, device, tile_opt, exposure=(None, False)):
    """``scene -> output``; networks that take the noise level get the scene's sigmas from params.json;
    ``exposure`` (see :func:`exposure_for`) brings the low-light input into the network's band first.
    A scene without what the network or ``--exposure true`` needs is a ``ValueError`` naming it."""
    from ..models.fcdfn_model import NOISE_LEVEL_KEYS, enhance_pair, noise_level_tensors

    def run(scene):
        noise_level = None
        if getattr(net, 'needs_noise_level', False):
            missing = [name for name in NOISE_LEVEL_KEYS if name not in scene['params']]
            if missing:
                raise ValueError(f'{type(net).__name__} takes the noise level, but params.json of the test '
                                 f'set has no {missing} for scene {scene["key"]}.')
            noise_level = noise_level_tensors(scene['params'], device)
        return enhance_pair(net, scene_lowlight(scene, exposure).to(device), scene['flash'].to(device),
                            noise_level=noise_level, **tile_opt).cpu()
    return run
