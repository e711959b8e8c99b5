"""Make the PyPI release of BasicSR 1.4.2 work with current torch/torchvision, on CPU and GPU.

Imported first by ``fcdfn_plugin/__init__.py``, before anything imports ``basicsr``. Every patch
below names the upstream problem it works around. No BasicSR code is copied: each patch either
adds a missing module alias or replaces one small function whose upstream version is broken,
delegating to the upstream code wherever it works. Importing this module twice is harmless.
"""
import os
import sys
from os import path as osp


def _alias_functional_tensor():
    # Upstream problem: basicsr/data/degradations.py (1.4.2) does
    # ``from torchvision.transforms.functional_tensor import rgb_to_grayscale``; torchvision 0.17
    # renamed that module to the private ``_functional_tensor`` and 0.29 has only the new name,
    # so ``import basicsr`` fails. The function itself is unchanged, so an alias suffices.
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401  (old torchvision: nothing to do)
    except ImportError:
        from torchvision.transforms import _functional_tensor
        sys.modules[name] = _functional_tensor


def _alias_distutils_version():
    # Upstream problem: basicsr/archs/arch_util.py (1.4.2) does
    # ``from distutils.version import LooseVersion``; distutils left the standard library in
    # Python 3.12 (PEP 632). setuptools still ships it, as ``setuptools._distutils``.
    try:
        import distutils.version  # noqa: F401  (Python <= 3.11, or setuptools' import hook)
    except ImportError:
        from setuptools import _distutils
        from setuptools._distutils import version
        sys.modules.setdefault('distutils', _distutils)
        sys.modules.setdefault('distutils.version', version)


_alias_functional_tensor()
_alias_distutils_version()

import re  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from tqdm import tqdm  # noqa: E402

import basicsr  # noqa: E402,F401  (must come after the alias above)
from basicsr import test as _bs_test  # noqa: E402
from basicsr import train as _bs_train  # noqa: E402
from basicsr.models import base_model as _bs_base_model  # noqa: E402
from basicsr.models import sr_model as _bs_sr_model  # noqa: E402
from basicsr.utils import dist_util as _bs_dist_util  # noqa: E402
from basicsr.utils import logger as _bs_logger  # noqa: E402
from basicsr.utils import options as _bs_options  # noqa: E402
from basicsr.utils.misc import check_resume  # noqa: E402

from fcdfn_plugin.data.sampler import EpochIndexSampler, resume_position  # noqa: E402

#: Environment variable that overrides the torch.distributed backend chosen from the device.
BACKEND_ENV = 'FCDFN_DIST_BACKEND'


def default_dist_backend():
    """The backend for this machine: ``$FCDFN_DIST_BACKEND`` if set, else NCCL with CUDA, else Gloo."""
    backend = os.environ.get(BACKEND_ENV)
    if backend:
        return backend
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_dist(launcher, backend=None, **kwargs):
    """Initialise torch.distributed for ``--launcher pytorch|slurm``.

    Upstream problem: ``basicsr.utils.dist_util.init_dist`` hard-codes ``backend='nccl'`` and
    ``torch.cuda.set_device`` (so CPU training with Gloo is impossible), picks the GPU from the
    global ``RANK`` instead of ``LOCAL_RANK`` (wrong on several nodes), and forces the ``spawn``
    start method, which makes every DataLoader worker re-import everything at each epoch. Here
    the backend follows the device (or ``$FCDFN_DIST_BACKEND``), and the platform's default start
    method (fork on Linux) is kept.
    """
    backend = backend or default_dist_backend()
    if launcher == 'pytorch':
        if torch.cuda.is_available() and backend == 'nccl':
            local_rank = int(os.environ.get('LOCAL_RANK', os.environ.get('RANK', 0)))
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend=backend, **kwargs)
        print(f'torch.distributed: rank {dist.get_rank()} of {dist.get_world_size()}, backend {backend}', flush=True)
    elif launcher == 'slurm':
        if not torch.cuda.is_available():
            raise RuntimeError('--launcher slurm needs CUDA (upstream BasicSR maps tasks to GPUs); '
                               'on CPU use torchrun with --launcher pytorch.')
        _bs_dist_util._init_dist_slurm(backend, **kwargs)
    else:
        raise ValueError(f'Invalid launcher {launcher!r}: expected "pytorch" or "slurm".')


def saved_states(training_states_dir):
    """Paths of the ``<iter>.state`` files in ``training_states_dir``, newest (highest iteration) first."""
    if not osp.isdir(training_states_dir):
        return []
    iters = [int(name[:-len('.state')]) for name in os.listdir(training_states_dir)
             if name.endswith('.state') and name[:-len('.state')].isdigit()]
    return [osp.join(training_states_dir, f'{it}.state') for it in sorted(iters, reverse=True)]


#: Keys every training state written by ``BaseModel.save_training_state`` has.
TRAINING_STATE_KEYS = ('epoch', 'iter', 'optimizers', 'schedulers')


def _read_state(state_path):
    # Our own checkpoint (optimizer and scheduler state, with a collections.Counter inside), so the
    # full unpickler is needed; torch >= 2.6 defaults to weights_only=True.
    state = torch.load(state_path, map_location='cpu', weights_only=False)
    if not isinstance(state, dict) or not all(key in state for key in TRAINING_STATE_KEYS):
        # Upstream problem (BasicSR issue 717): a network file given as the resume state ends in
        # ``KeyError: 'iter'`` deep inside train_pipeline.
        if isinstance(state, dict) and any(key in state for key in ('params', 'params_ema')):
            what = 'a network weights file (net_g_*.pth)'
        else:
            found = sorted(state)[:6] if isinstance(state, dict) else type(state).__name__
            what = f'not a training state (keys: {found})'
        raise ValueError(
            f'path.resume_state: {state_path!r} is {what}, not a training state. Resume from '
            "experiments/<name>/training_states/<iter>.state (or use --auto_resume); to start a new run from these "
            'weights, set path.pretrain_network_g instead.')
    return state


def _try_read_state(state_path):
    """(state, None), or (None, why) for a state ``--auto_resume`` passes over: truncated (a run killed while
    saving it), or complete but not a training state."""
    try:
        return _read_state(state_path), None
    except Exception as err:  # a truncated zip or pickle raises one of several types
        return None, f'{type(err).__name__}: {err}'


def state_problem(state_path):
    """Why ``--auto_resume`` would pass over ``state_path``, or None (the rule :func:`load_resume_state` uses)."""
    return _try_read_state(state_path)[1]


def load_resume_state(opt):
    """Load the training state to resume from, or return None.

    Upstream problems in ``basicsr.train.load_resume_state``: ``--auto_resume`` looks under
    ``experiments/<name>`` relative to the *working directory* (not the experiment root the run
    writes to); the state is mapped with ``torch.cuda.current_device()``, which fails without CUDA;
    and a state truncated by a run killed while saving it makes every later ``--auto_resume`` crash.
    Here the state is searched in ``opt['path']['training_states']``, an unreadable newest state is
    reported and the next older one used, and states are loaded on the CPU
    (``optimizer.load_state_dict`` moves them to the parameters' device).
    """
    resume_state = None
    if opt['auto_resume']:
        for state_path in saved_states(opt['path']['training_states']):
            resume_state, problem = _try_read_state(state_path)
            if problem is not None:
                print(f'Skipping unreadable training state {state_path}: {problem}', flush=True)
                continue
            opt['path']['resume_state'] = state_path
            break
    elif opt['path'].get('resume_state'):
        state_path = opt['path']['resume_state']
        if not osp.isfile(state_path):
            raise FileNotFoundError(f'path.resume_state: training state {state_path!r} does not exist.')
        resume_state = _read_state(state_path)
    if resume_state is None:
        return None
    check_resume(opt, resume_state['iter'])
    # Read by create_train_val_dataloader below, to start the sampler where the saved run stopped.
    opt['resume_progress'] = {'epoch': resume_state['epoch'], 'iter': resume_state['iter']}
    return resume_state


_upstream_parse_options = _bs_options.parse_options
_LOCAL_RANK_ARG = re.compile(r'^--local-rank(=|$)')


def normalise_launcher_argv(argv):
    """``--local-rank`` (what ``python -m torch.distributed.launch`` passes since torch 2.0) -> ``--local_rank``."""
    return [_LOCAL_RANK_ARG.sub(r'--local_rank\1', arg) for arg in argv]


def parse_options(root_path, is_train=True):
    """BasicSR's ``parse_options``, accepting the launcher's ``--local-rank`` spelling.

    Upstream problem (BasicSR issue 626): the parser defines only ``--local_rank``, and
    ``torch.distributed.launch`` passes ``--local-rank=N``, so every launched process exits with
    "unrecognized arguments". The rank itself is read from ``LOCAL_RANK`` (see :func:`init_dist`).
    """
    sys.argv[1:] = normalise_launcher_argv(sys.argv[1:])
    return _upstream_parse_options(root_path, is_train)


def terminal_only_tqdm(*args, **kwargs):
    """``tqdm`` that draws only on a terminal.

    Upstream problem: ``SRModel.nondist_validation`` draws its progress bar unconditionally; when
    output goes to a file (a cluster job, ``nohup``, CI) every refresh is a new line in the log.
    ``disable=None`` is tqdm's own "only if attached to a terminal".
    """
    kwargs.setdefault('disable', None)
    return tqdm(*args, **kwargs)


_upstream_create_train_val_dataloader = _bs_train.create_train_val_dataloader


def create_train_val_dataloader(opt, logger):
    """Build the loaders as upstream, then start a resumed run's sampler mid-epoch.

    Upstream problem: a resumed run restarts its last epoch from the first batch, so it trains on
    different data than an uninterrupted run. With :class:`EpochIndexSampler` as the sampler (see
    :func:`apply`), the samples the saved run had already used in that epoch are skipped.
    """
    result = _upstream_create_train_val_dataloader(opt, logger)
    train_loader, train_sampler = result[0], result[1]
    progress = opt.get('resume_progress')
    if progress is not None and isinstance(train_sampler, EpochIndexSampler):
        done = resume_position(progress['epoch'], progress['iter'], train_sampler, train_loader.batch_size)
        train_sampler.resume(progress['epoch'], done)
        logger.info(f"Resuming epoch {progress['epoch']} after its first {done} samples per process.")
    return result


_upstream_model_to_device = _bs_base_model.BaseModel.model_to_device


def model_to_device(self, net):
    """Move ``net`` to the model's device and wrap it for (distributed) data parallelism.

    Upstream problem: ``BaseModel.model_to_device`` always passes
    ``device_ids=[torch.cuda.current_device()]`` to DistributedDataParallel, so DDP on CPU (Gloo)
    fails. CPU DDP takes no device ids; everything else is the upstream code.
    """
    if self.opt['dist'] and self.device.type == 'cpu':
        return DistributedDataParallel(
            net.to(self.device), find_unused_parameters=self.opt.get('find_unused_parameters', False))
    return _upstream_model_to_device(self, net)


def get_env_info():
    """BasicSR's banner and versions, then the machine (CPU, torch threads, GPUs): every training and test
    log says what it ran on (upstream logs the software versions only)."""
    from fcdfn_plugin.utils.machine import machine_info
    return _bs_logger.get_env_info() + machine_info()


def apply():
    """Install the patches (idempotent). Called on ``import fcdfn_plugin``."""
    _bs_dist_util.init_dist = init_dist
    _bs_options.init_dist = init_dist  # parse_options calls it through its own module globals
    _bs_train.parse_options = parse_options  # both pipelines call it through their module globals
    _bs_test.parse_options = parse_options
    _bs_sr_model.tqdm = terminal_only_tqdm
    _bs_train.load_resume_state = load_resume_state
    _bs_train.EnlargedSampler = EpochIndexSampler  # the name train_pipeline builds its sampler with
    _bs_train.create_train_val_dataloader = create_train_val_dataloader
    _bs_base_model.BaseModel.model_to_device = model_to_device
    _bs_train.get_env_info = get_env_info  # both pipelines log it through their module globals
    _bs_test.get_env_info = get_env_info


apply()
