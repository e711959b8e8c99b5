"""``FlashLowLightDataset``: clean FAID pairs -> (lq, flash, gt), synthesised on the fly or read fixed."""
import json
from collections import OrderedDict
from os import path as osp

import numpy as np
from torch.utils import data as data

from basicsr.utils import FileClient, img2tensor, scandir
from basicsr.utils.registry import DATASET_REGISTRY

from . import degradation
from .degradation import DegradationLaw, option_choice, option_number
from .faid_io import (RAW_COLOUR_SPACES, ColourDataError, colour_data_of, decode_image, pair_by_name,
                      read_file_bytes, to_linear, to_unit_float)

PHASES = ('train', 'val', 'test')
IO_BACKENDS = ('disk', 'lmdb')
TEST_PARAMS_FILE = 'params.json'
#: Written by ``tools/prepare_faid.py`` next to ``meta_info.txt``: the colour data of 16-bit scenes.
COLOUR_FILE = 'colour.json'
#: Every sample's ``params`` has these (a baseline network may need the noise level).
REQUIRED_PARAMS = ('dim_factor', 'sigma_read', 'sigma_shot')
_FRESH_SEED_HIGH = np.iinfo(np.int64).max
#: Default of the ``decoded_cache_mb`` option (per process that reads: each data-loader worker has its own).
DEFAULT_DECODED_CACHE_MB = 256


class DecodedImageCache:
    """Decoded images by file path or LMDB key, least recently used dropped first, at most ``max_bytes``.

    Decoding a PNG costs more than the whole synthesis of a 64-pixel crop from it (3.4 ms of the 11 ms
    of a toy sample), and a training run reads every scene once per epoch. The arrays are returned
    read-only, so a caller that writes into one fails loudly instead of changing later samples.
    """

    def __init__(self, max_bytes):
        self.max_bytes = int(max_bytes)
        self.entries = OrderedDict()
        self.bytes = 0

    def get(self, key):
        image = self.entries.get(key)
        if image is not None:
            self.entries.move_to_end(key)
        return image

    def put(self, key, image):
        if image.nbytes > self.max_bytes or key in self.entries:
            return
        image.flags.writeable = False
        self.entries[key] = image
        self.bytes += image.nbytes
        while self.bytes > self.max_bytes:
            _, dropped = self.entries.popitem(last=False)
            self.bytes -= dropped.nbytes


@DATASET_REGISTRY.register()
class FlashLowLightDataset(data.Dataset):
    """Flash / low-light pairs of FAID (or its toy stand-in), as in SPEC.md Sec. 2.

    ``phase: train`` reads clean ambient/flash-only pairs and synthesises a new degradation at
    every read (random crop, identical flips/rotation, dimming, read/shot noise, homography warp;
    see :mod:`fcdfn_plugin.data.degradation`). ``phase: val``/``test`` reads the fixed triplets
    written by ``tools/prepare_faid.py``.

    Options (the ``opt`` dict, i.e. the YAML under ``datasets: train:`` / ``val:``):
        name (str): shown in logs.
        phase (str): set by BasicSR: ``train``, ``val`` or ``test``.
        dataroot (str): train: a folder of FAID-layout pairs (``<Category>_<NNN>_ambient.png`` /
            ``_flash.png``, searched recursively) or, with ``io_backend: lmdb``, an ``.lmdb``
            folder with ``meta_info.txt`` (keys ``<Category>_<NNN>_ambient`` / ``_flash``).
            val/test: the folder with ``lq/``, ``flash/``, ``gt/`` (16-bit or 8-bit sRGB PNG)
            and optionally ``params.json``.
        io_backend (dict): ``{type: disk}`` (default) or ``{type: lmdb}`` (train only). The LMDB
            is opened lazily, in the worker process that first reads.
        crop_size (int): training crop, default 224 (images smaller than this are an error).
        use_flip (bool): random horizontal and vertical flips, default True.
        use_rot (bool): random 90-degree rotation (transpose), default True.
        seed (int): base of the per-sample generators, default 0.
        dim_range ([float, float]): dimming factor d (low light = ambient / d), default [25, 50].
        sigma_read_range ([float, float]): read-noise sigma, default [1e-3, 1e-2].
        sigma_shot_range ([float, float]): shot-noise sigma, default [1e-2, 10**-1.3].
        noise_sampling (str): preset of the three sampling laws below: ``paper`` (default: all
            uniform, the paper's "sampled uniformly") or ``deepfnf`` (all log-uniform, as deepFnF
            draws them); ``uniform`` / ``log_uniform`` are older spellings of the two.
        dim_sampling, sigma_read_sampling, sigma_shot_sampling (str): ``uniform`` or
            ``log_uniform`` for one quantity; default from ``noise_sampling``.
        flash_gain (float): multiplies the flash-only image, default 1.0.
        homography_strength (float): corner offsets U(-s, s) in pixels of the stored image, for a
            crop of any size (and, in ``prepare_faid.py``, the whole test image); default 8.
            Clamped to the room an image has around its crop.
        flash_noise_order (str): ``before_warp`` (default, SPEC.md) or ``after_warp``.
        raw_colour_space (str): how 16-bit images are read: ``camera`` (default; FAID's raw
            release: linear camera RGB, mapped to linear sRGB after the degradation with the
            colour data of the ambient PNG's text chunks, or of ``colour.json`` next to an LMDB's
            ``meta_info.txt``) or ``linear_srgb`` (the files are linear sRGB already). 8-bit images
            are always sRGB. The law keys above are parsed by
            :meth:`fcdfn_plugin.data.degradation.DegradationLaw.from_options`, the same code that
            ``tools/prepare_faid.py --opt`` uses for the fixed test set.
        max_samples (int | None): keep only the first N scenes (sorted by key), default all.
        decoded_cache_mb (float): decoded images kept in memory, least recently used dropped first,
            default 256 (MB per process that reads: each data-loader worker holds its own; 0: off).
            The toy FAID's 400 images take 78 MB, so from its second epoch nothing is decoded.

    Randomness. ``dataset[(epoch, index)]`` draws everything (crop, flips, rotation, dimming,
    sigmas, noise, homography) from ``numpy.random.default_rng([seed, epoch, index])``: the same
    triple gives a bit-identical sample in any process. ``index`` may exceed ``len(dataset)``
    (BasicSR's ``dataset_enlarge_ratio``): the scene is ``index % len``, the generator uses the
    full index. ``dataset[index]`` (an int, as stock samplers give) seeds the generator from
    numpy's global stream instead, so every read is new but NOT reproducible.

    Returns:
        dict: ``lq``, ``flash``, ``gt``: (3, H, W) float32 tensors, sRGB in [0, 1]; ``lq_path``
        (str: the ambient file or LMDB key in train, the lq file in test); ``params``: dict of
        python floats (``dim_factor``, ``sigma_read``, ``sigma_shot``, ``flash_gain``,
        ``homography_strength``, ``homography_max_offset``). In val/test ``params`` comes from
        ``params.json`` (every entry must have ``dim_factor``, ``sigma_read``, ``sigma_shot``)
        and is omitted when that file is absent.
    """

    #: Tells ``fcdfn_plugin.data.sampler.EpochIndexSampler`` to yield ``(epoch, index)`` pairs.
    accepts_epoch_index = True

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.phase = option_choice(opt, 'phase', None, PHASES)
        if not opt.get('dataroot'):
            raise ValueError('option dataroot is required')
        self.dataroot = str(opt['dataroot'])
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.backend = option_choice(self.io_backend_opt, 'type', 'disk', IO_BACKENDS)
        self.seed = option_number(opt, 'seed', 0, int)
        max_samples = opt.get('max_samples')
        if max_samples is not None:
            max_samples = option_number(opt, 'max_samples', None, int, minimum=1)
        self.file_client = None  # opened lazily, per worker (an LMDB handle must not cross fork)
        cache_mb = option_number(opt, 'decoded_cache_mb', DEFAULT_DECODED_CACHE_MB, float, minimum=0)
        self.decoded_cache = DecodedImageCache(cache_mb * 2**20) if cache_mb > 0 else None
        if not osp.isdir(self.dataroot):
            raise FileNotFoundError(f'option dataroot: {self.dataroot} is not a folder')

        if self.phase == 'train':
            self.crop_size = option_number(opt, 'crop_size', 224, int, minimum=1)
            self.use_flip = bool(opt.get('use_flip', True))
            self.use_rot = bool(opt.get('use_rot', True))
            self.law = DegradationLaw.from_options(opt)
            self.raw_colour_space = option_choice(opt, 'raw_colour_space', 'camera', RAW_COLOUR_SPACES)
            self.pairs = self._find_train_pairs()
            self.stored_colour = self._load_stored_colour()
            self.colour_cache = {}  # scene key -> camera-to-linear-sRGB matrix (disk backend, per worker)
        else:
            if self.backend != 'disk':
                raise ValueError(f'option io_backend.type: {self.backend!r} is not supported for phase '
                                 f'{self.phase!r}; the fixed test triplets are read from disk')
            self.pairs = self._find_test_triplets()
        self.keys = sorted(self.pairs)[:max_samples]
        if not self.keys:
            raise ValueError(f'{self.dataroot}: no {"pairs" if self.phase == "train" else "triplets"} found')
        self.test_params = self._load_test_params() if self.phase != 'train' else None

    # ---------------------------------------------------------------- discovery
    def _find_train_pairs(self):
        if self.backend == 'lmdb':
            if not self.dataroot.endswith('.lmdb'):
                raise ValueError(f'option dataroot: {self.dataroot} must end with .lmdb for io_backend lmdb')
            meta_info = osp.join(self.dataroot, 'meta_info.txt')
            if not osp.isfile(meta_info):
                raise FileNotFoundError(f'{meta_info}: missing (BasicSR LMDB layout expected)')
            with open(meta_info) as handle:
                keys = [osp.splitext(line.split()[0])[0] for line in handle if line.strip()]
            stems = {key: key for key in keys}
        else:
            stems = {osp.splitext(osp.basename(path))[0]: osp.join(self.dataroot, path)
                     for path in scandir(self.dataroot, suffix='.png', recursive=True)}
        pairs, unpaired = pair_by_name(stems)
        if unpaired:
            path, reason = unpaired[0]
            raise FileNotFoundError(f'{path}: {reason} ({len(unpaired)} unpaired image(s) in {self.dataroot})')
        return pairs

    def _find_test_triplets(self):
        folders = {role: osp.join(self.dataroot, role) for role in ('lq', 'flash', 'gt')}
        for folder in folders.values():
            if not osp.isdir(folder):
                raise FileNotFoundError(f'{folder}: missing; phase {self.phase!r} expects lq/, flash/, gt/ in dataroot')
        triplets = {}
        for name in scandir(folders['gt'], suffix='.png'):
            key = osp.splitext(name)[0]
            triplets[key] = {role: osp.join(folder, name) for role, folder in folders.items()}
            for path in triplets[key].values():
                if not osp.isfile(path):
                    raise FileNotFoundError(f'{path}: missing partner of {osp.join(folders["gt"], name)}')
        return triplets

    def _load_test_params(self):
        params_path = osp.join(self.dataroot, TEST_PARAMS_FILE)
        if not osp.isfile(params_path):
            return None
        with open(params_path) as handle:
            params = json.load(handle)
        for key in self.keys:
            if key not in params:
                raise KeyError(f'{params_path}: no entry for {key}')
            missing = [name for name in REQUIRED_PARAMS if name not in params[key]]
            if missing:
                raise KeyError(f'{params_path}: entry {key} lacks {", ".join(missing)}')
        return params

    def _load_stored_colour(self):
        """LMDB backend: the per-scene colour data that ``prepare_faid.py`` wrote to ``colour.json``."""
        colour_path = osp.join(self.dataroot, COLOUR_FILE)
        if self.backend != 'lmdb' or not osp.isfile(colour_path):
            return {}
        with open(colour_path) as handle:
            scenes = json.load(handle).get('scenes', {})
        matrices = {}
        for key, entry in scenes.items():
            matrix = np.asarray(entry.get('camera_to_linear_srgb'), dtype=np.float32)
            if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
                raise ValueError(f'{colour_path}: entry {key} has no valid 3x3 camera_to_linear_srgb matrix')
            matrices[key] = matrix
        return matrices

    def _colour_matrix(self, key, ambient, ambient_buffer, ambient_name):
        """Camera -> linear sRGB matrix of a scene, or None when its pixels are linear sRGB already."""
        if ambient.dtype != np.uint16 or self.raw_colour_space == 'linear_srgb':
            return None
        if self.backend == 'lmdb':
            if key not in self.stored_colour:
                raise ColourDataError(
                    f'{ambient_name}: 16-bit image without colour data: no entry {key} in '
                    f'{osp.join(self.dataroot, COLOUR_FILE)} (written by tools/prepare_faid.py). If the 16-bit '
                    f'files are linear sRGB already, set the dataset option raw_colour_space: linear_srgb')
            return self.stored_colour[key]
        if key not in self.colour_cache:
            if ambient_buffer is None:  # decoded cache hit: the colour data lives in the file's text chunks
                ambient_buffer = self._read_bytes(self.pairs[key]['ambient'])
            colour = colour_data_of(ambient_buffer, ambient, ambient_name, self.raw_colour_space)
            self.colour_cache[key] = np.asarray(colour['camera_to_linear_srgb'], dtype=np.float32)
        return self.colour_cache[key]

    # ---------------------------------------------------------------- reading
    def _read_bytes(self, path_or_key):
        if self.file_client is None:
            backend_opt = {k: v for k, v in self.io_backend_opt.items() if k != 'type'}
            if self.backend == 'lmdb':
                backend_opt.update(db_paths=[self.dataroot], client_keys=['default'])
            self.file_client = FileClient(self.backend, **backend_opt)
        if self.backend == 'lmdb':
            buffer = self.file_client.get(path_or_key, 'default')
            if buffer is None:
                raise KeyError(f'key {path_or_key} missing from LMDB {self.dataroot}')
            return buffer
        return read_file_bytes(path_or_key)

    def _read_image(self, path_or_key):
        """(image, name, encoded bytes); the bytes are None when the image came from the decoded cache."""
        name = f'{self.dataroot}:{path_or_key}' if self.backend == 'lmdb' else path_or_key
        image = None if self.decoded_cache is None else self.decoded_cache.get(path_or_key)
        if image is not None:
            return image, name, None
        buffer = self._read_bytes(path_or_key)
        image = decode_image(buffer, name)
        if self.decoded_cache is not None:
            self.decoded_cache.put(path_or_key, image)
        return image, name, buffer

    def _read_same_size(self, paths):
        images, names, buffers = zip(*(self._read_image(path) for path in paths))
        for image, name in zip(images[1:], names[1:]):
            if image.shape != images[0].shape:
                raise ValueError(f'{names[0]} {images[0].shape[:2]} and {name} {image.shape[:2]} differ in size')
            if image.dtype != images[0].dtype:
                raise ValueError(f'{names[0]} ({images[0].dtype}) and {name} ({image.dtype}) differ in bit depth')
        return images, names, buffers

    # ---------------------------------------------------------------- samples
    def __len__(self):
        return len(self.keys)

    def _generator(self, item):
        if isinstance(item, (tuple, list)):
            epoch, index = (int(v) for v in item)
            return np.random.default_rng([self.seed, epoch, index]), index
        index = int(item)
        fresh = int(np.random.randint(_FRESH_SEED_HIGH, dtype=np.int64))  # global stream: new every read
        return np.random.default_rng([self.seed, fresh]), index

    def __getitem__(self, item):
        rng, index = self._generator(item)
        key = self.keys[index % len(self.keys)]
        if self.phase == 'train':
            return self._synthesise(key, rng)
        return self._read_fixed(key)

    def _synthesise(self, key, rng):
        (ambient, flash_only), (ambient_name, _), (ambient_buffer, _) = self._read_same_size(
            [self.pairs[key]['ambient'], self.pairs[key]['flash']])
        height, width = ambient.shape[:2]
        crop = self.crop_size
        if height < crop or width < crop:
            raise ValueError(f'{ambient_name}: image {height}x{width} is smaller than crop_size {crop}')
        colour_matrix = self._colour_matrix(key, ambient, ambient_buffer, ambient_name)
        # Corner offsets (in pixels of the stored image) need a margin around the crop; small images
        # get a smaller warp, never a border.
        margin = min(self.law.margin(), (min(height, width) - crop) // 2)
        window = crop + 2 * margin
        top = int(rng.integers(0, height - window + 1))
        left = int(rng.integers(0, width - window + 1))
        # Three draws always, whatever the options, so the rest of the stream does not shift.
        hflip, vflip, transpose = rng.random(3) < 0.5
        windows = []
        for image in (ambient, flash_only):
            patch = image[top:top + window, left:left + window]
            if self.use_flip and hflip:
                patch = patch[:, ::-1]
            if self.use_flip and vflip:
                patch = patch[::-1]
            if self.use_rot and transpose:
                patch = patch.transpose(1, 0, 2)
            windows.append(to_linear(np.ascontiguousarray(patch)))
        lq, flash, gt, params = degradation.degrade_window(windows[0], windows[1], margin, rng, law=self.law,
                                                           colour_matrix=colour_matrix)
        lq, flash, gt = img2tensor([lq, flash, gt], bgr2rgb=False, float32=True)
        return {'lq': lq, 'flash': flash, 'gt': gt, 'lq_path': self.pairs[key]['ambient'], 'params': params}

    def _read_fixed(self, key):
        paths = self.pairs[key]
        (lq, flash, gt), _, _ = self._read_same_size([paths['lq'], paths['flash'], paths['gt']])
        lq, flash, gt = img2tensor([to_unit_float(lq), to_unit_float(flash), to_unit_float(gt)],
                                   bgr2rgb=False, float32=True)
        sample = {'lq': lq, 'flash': flash, 'gt': gt, 'lq_path': paths['lq']}
        if self.test_params is not None:
            sample['params'] = {name: float(value) for name, value in self.test_params[key].items()}
        return sample
