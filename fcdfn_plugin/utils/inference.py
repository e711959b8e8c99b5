"""Trained networks for inference: find the options a checkpoint was trained with, build, load.

Shared by ``tools/enhance.py`` and ``tools/evaluate.py``. BasicSR saves the options file of a run
into ``experiments/<name>/`` and its checkpoints into ``experiments/<name>/models/``, so a
checkpoint written by ``tools/train.py`` carries its options two folders up. A checkpoint may
also embed its ``network_g`` section (the shipped weights do), which makes it self-describing.
Errors are :class:`InferenceSetupError` with a message that names the file and the fix.
"""
import glob
import os
from os import path as osp

import torch
import yaml


class InferenceSetupError(RuntimeError):
    """A checkpoint or options file that cannot be used, with a message for the user."""


def _read_yaml(path):
    try:
        with open(path) as handle:
            return yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        detail = error.strerror if isinstance(error, OSError) else ' '.join(str(error).split())
        raise InferenceSetupError(f'cannot read options file {path!r}: {detail}') from error


def _network_of(path):
    opt = _read_yaml(path)
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict):
        return None
    return opt['network_g']


def _contract_of(opt, source):
    from ..data.exposure import ExposureContract
    try:
        return ExposureContract.from_options(opt)
    except ValueError as error:
        raise InferenceSetupError(f'{source}: {error}') from error


def options_beside_weights(weights_path):
    """The options file of the run that wrote ``weights_path``, or None.

    Looks for ``*.yml`` with a ``network_g`` section in the experiment folder
    (``experiments/<name>/`` for ``experiments/<name>/models/net_g_X.pth``) and, for weights kept
    elsewhere, next to the weights file. Several candidates with different ``network_g`` are an
    error (which one trained these weights cannot be told); identical ones are fine.
    """
    weights_dir = osp.dirname(osp.abspath(weights_path))
    folders = [osp.dirname(weights_dir)] if osp.basename(weights_dir) == 'models' else []
    folders.append(weights_dir)
    for folder in folders:
        candidates = [path for path in sorted(glob.glob(osp.join(folder, '*.yml'))) if _network_of(path) is not None]
        if not candidates:
            continue
        networks = {yaml.safe_dump(_network_of(path), sort_keys=True) for path in candidates}
        if len(networks) > 1:
            names = ', '.join(map(osp.basename, candidates))
            raise InferenceSetupError(
                f'{folder} holds several options files with different network_g sections ({names}); '
                'pass the one these weights were trained with as -opt.')
        return candidates[0]
    return None


#: Keys of BasicSR's training-state files (``training_states/<iter>.state``: optimizers and schedulers, no weights).
TRAINING_STATE_KEYS = ('optimizers', 'schedulers')


def is_training_state(checkpoint):
    """Whether a loaded checkpoint is a BasicSR training state rather than network weights."""
    return (isinstance(checkpoint, dict) and all(key in checkpoint for key in TRAINING_STATE_KEYS)
            and not any(key in checkpoint for key in ('params', 'params_ema')))


def weights_of_training_state(state_path, iteration=None):
    """The ``net_g_<iter>.pth`` that belongs to ``experiments/<name>/training_states/<iter>.state``."""
    folder = osp.dirname(osp.abspath(state_path))
    stem = osp.splitext(osp.basename(state_path))[0]
    iteration = iteration if iteration is not None else stem
    if osp.basename(folder) == 'training_states':
        return osp.join(osp.dirname(folder), 'models', f'net_g_{iteration}.pth')
    return f'experiments/<name>/models/net_g_{iteration}.pth'


def load_checkpoint(weights_path):
    """``torch.load`` of a network checkpoint (weights only), with clear errors; a training state is refused."""
    if not osp.isfile(weights_path):
        raise InferenceSetupError(f'weights file {weights_path!r} does not exist'
                                  + (' (it is a folder)' if osp.isdir(weights_path) else '') + '.')
    try:
        checkpoint = torch.load(weights_path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises several types for files that are not checkpoints
        raise InferenceSetupError(f'{weights_path!r} is not a PyTorch checkpoint ({error}).') from error
    if is_training_state(checkpoint):
        raise InferenceSetupError(
            f'{weights_path!r} is a BasicSR training state (optimizer and scheduler, for --auto_resume), not network '
            'weights; pass the weights of the same iteration, '
            f'{weights_of_training_state(weights_path, checkpoint.get("iter"))}.')
    return checkpoint


def check_network_options(network_opt, source):
    """``network_g`` that BasicSR can build: a ``type`` in ARCH_REGISTRY and keys its arch takes, else an error."""
    import inspect

    import fcdfn_plugin  # noqa: F401  (registers the archs)
    from basicsr.utils.registry import ARCH_REGISTRY
    if not isinstance(network_opt, dict):
        raise InferenceSetupError(f'network_g from {source} is not a mapping: {network_opt!r}')
    arch_type = network_opt.get('type')
    if arch_type is None:
        raise InferenceSetupError(f'network_g from {source} has no type; set e.g. type: FCDFNArch')
    known = sorted(ARCH_REGISTRY._obj_map)
    if arch_type not in known:
        raise InferenceSetupError(f'network_g from {source}: type {arch_type!r} is not a registered arch; '
                                  f'known: {", ".join(known)}')
    parameters = inspect.signature(ARCH_REGISTRY.get(arch_type)).parameters
    if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(network_opt) - {'type'} - set(parameters))
        if unknown:
            raise InferenceSetupError(f'network_g from {source}: {arch_type} takes no {", ".join(unknown)}; '
                                      f'its options are {", ".join(name for name in parameters)}')


def build_network_checked(network_opt, source):
    """BasicSR's ``build_network`` with errors (unknown type or keys, bad values) naming ``source``."""
    from basicsr.archs import build_network
    check_network_options(network_opt, source)
    try:
        return build_network(dict(network_opt))
    except (TypeError, ValueError, KeyError, AssertionError) as error:
        raise InferenceSetupError(f'network_g from {source} ({network_opt.get("type")}) cannot be built: '
                                  f'{error}') from error


def network_options(weights_path, opt_path=None, checkpoint=None):
    """``(network_g dict, where it came from)`` for a checkpoint.

    Order: an explicit ``opt_path``; the ``network_g`` embedded in the checkpoint; the options file
    of the run that wrote it (:func:`options_beside_weights`). None of them -> an error saying what
    to pass.
    """
    if opt_path is not None:
        if not osp.isfile(opt_path):
            raise InferenceSetupError(f'options file {opt_path!r} does not exist.')
        network = _network_of(opt_path)
        if network is None:
            raise InferenceSetupError(f'{opt_path!r} has no network_g section.')
        return network, opt_path
    checkpoint = load_checkpoint(weights_path) if checkpoint is None else checkpoint
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('network_g'), dict):
        return checkpoint['network_g'], f'{weights_path} (embedded network_g)'
    beside = options_beside_weights(weights_path)
    if beside is None:
        raise InferenceSetupError(
            f'no options for {weights_path!r}: no network_g inside it and no options file with network_g in its '
            'experiment folder (experiments/<name>/, where tools/train.py copies it). Pass the options file the '
            'weights were trained with as -opt.')
    return _network_of(beside), beside


def build_trained_network(weights_path, opt_path=None, device='cpu'):
    """The network of ``weights_path`` in eval mode on ``device``, and where its options came from.

    Loads ``params_ema`` if present, else ``params``, else the bare state dict; DDP's ``module.``
    prefixes are removed. A state dict that does not fit the options is an error naming both.
    """
    checkpoint = load_checkpoint(weights_path)
    network_opt, source = network_options(weights_path, opt_path, checkpoint)
    net = build_network_checked(network_opt, source)
    state = checkpoint.get('params_ema', checkpoint.get('params', checkpoint)) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise InferenceSetupError(f'{weights_path!r} holds no state dict.')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()
             if isinstance(v, torch.Tensor)}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise InferenceSetupError(
            f'the weights in {weights_path!r} do not fit network_g from {source} ({network_opt.get("type")}): '
            f'{str(error).splitlines()[0]} ... Pass the options file the weights were trained with (-opt).') from error
    return net.to(device).eval(), source


def exposure_contract(weights_path, opt_path=None, checkpoint=None):
    """``(ExposureContract, where it came from)`` of a checkpoint (:mod:`fcdfn_plugin.data.exposure`).

    Found as :func:`network_options` finds ``network_g``: ``opt_path``'s ``exposure`` section, the
    ``exposure`` stored in the checkpoint (:func:`export_checkpoint` stores it; a self-describing
    checkpoint without one was exported before the contract existed), or the options file of the
    run that wrote it. A network trained without one (the paper's preset, or weights from before
    the contract) gets ``mode: none``: its input as it is.
    """
    if opt_path is not None:
        return _contract_of(_read_yaml(opt_path) or {}, opt_path), opt_path
    checkpoint = load_checkpoint(weights_path) if checkpoint is None else checkpoint
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('exposure'), dict):
        return _contract_of({'exposure': checkpoint['exposure']}, weights_path), f'{weights_path} (embedded exposure)'
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('network_g'), dict):
        # self-describing weights exported before the contract existed were trained without one
        return _contract_of({}, weights_path), f'{weights_path} (exported without an exposure section)'
    beside = options_beside_weights(weights_path)
    if beside is not None:
        return _contract_of(_read_yaml(beside) or {}, beside), beside
    return _contract_of({}, weights_path), f'{weights_path} (no exposure section)'


#: The weights shipped with the repository (trained by ``make small-model``, see docs/RESULTS.md).
SHIPPED_WEIGHTS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'weights',
                           'fcdfn_small.pth')


def export_checkpoint(weights_path, out_path, opt_path=None, meta=None):
    """Write a self-describing copy of a checkpoint: ``{'params', 'network_g', 'exposure', 'meta'}``.

    The weights (``params_ema`` if present, else ``params``) are kept in float32 and
    ``network_g`` and the exposure contract (:func:`exposure_contract`) are stored beside them, so
    :func:`build_trained_network` needs no options file;
    ``meta`` (a JSON-friendly dict: how the weights were trained) travels along. Refuses to
    overwrite ``out_path``.
    """
    if osp.exists(out_path):
        raise InferenceSetupError(f'{out_path!r} exists; remove it first.')
    checkpoint = load_checkpoint(weights_path)
    network_opt, _ = network_options(weights_path, opt_path, checkpoint)
    contract, _ = exposure_contract(weights_path, opt_path, checkpoint)
    net, _ = build_trained_network(weights_path, opt_path)  # checks that the weights fit
    params = {key: value.detach().float().contiguous() for key, value in net.state_dict().items()}
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    partial = f'{out_path}.partial'
    torch.save({'params': params, 'network_g': dict(network_opt), 'exposure': contract.to_options(),
                'meta': dict(meta or {})}, partial)
    os.replace(partial, out_path)
    return out_path
