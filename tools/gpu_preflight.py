"""Preflight of ``tools/gpu_check.sh``: every Python module its steps need, checked at once, before minutes are spent.

    python tools/gpu_preflight.py [--requirements requirements.txt] [--no-gpu]

A lent GPU machine runs its own Python and packages and reaches no package registry, so whatever
is missing has to be carried there as wheels; this says which, all in one message, instead of the
first ImportError of the first step. It checks, in order:

1. every package of ``requirements.txt`` (by its import name: opencv-python -> cv2, ...), plus torch,
   torchvision, triton and BasicSR's own imports (addict, yapf), is findable;
2. the modules the steps import (``tests/conftest.py``, ``tools/benchmark.py``, the fused op) import
   for real (this catches a package that is there but broken or of an incompatible version);
3. a CUDA GPU is visible (skipped by ``--no-gpu``).

Exit status 0 with one summary line (versions, GPU) when all is there, else 1 with the list.
"""
import argparse
import importlib
import importlib.util
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

#: Import name of each distribution whose name differs from it (lower-cased distribution names).
IMPORT_NAMES = {'opencv-python': 'cv2', 'opencv-python-headless': 'cv2', 'scikit-image': 'skimage', 'pillow': 'PIL',
                'pyyaml': 'yaml'}
#: Needed besides requirements.txt: torch first (installed before it), triton (the fused kernels),
#: and what BasicSR imports without declaring it in a way pip resolves offline.
EXTRA_PACKAGES = ('torch', 'torchvision', 'triton', 'addict', 'yapf')
#: What the gpu_check steps import: the test module's conftest, the benchmark's op and model steps.
STEP_MODULES = ('fcdfn_plugin', 'fcdfn_plugin.ops.basis_filter_triton', 'fcdfn_plugin.data.degradation',
                'fcdfn_plugin.data.toy_scenes', 'fcdfn_plugin.losses.fcdfn_loss', 'fcdfn_plugin.models.fcdfn_model',
                'basicsr.utils.registry', 'pytest', 'yaml', 'numpy')


def required_packages(requirements_path):
    """``{import name: distribution name}`` of requirements.txt's entries and :data:`EXTRA_PACKAGES`."""
    packages = {name: name for name in EXTRA_PACKAGES}
    with open(requirements_path) as handle:
        for line in handle:
            name = re.split(r'[<>=!~;\[\s@]', line.split('#')[0].strip())[0]
            if name:
                packages[IMPORT_NAMES.get(name.lower(), name.replace('-', '_'))] = name
    return packages


def missing_packages(packages):
    """``'module (package name)'`` for each of ``packages`` that cannot be found, sorted."""
    return sorted(f'{module} (package {name})' for module, name in packages.items()
                  if importlib.util.find_spec(module) is None)


def import_failures(modules):
    """``'module: error'`` for each of ``modules`` whose import raises (any exception, not only ImportError)."""
    failures = []
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001  (a broken package may raise anything on import)
            failures.append(f'{module}: {type(error).__name__}: {" ".join(str(error).split())}')
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requirements', default=os.path.join(ROOT, 'requirements.txt'))
    parser.add_argument('--no-gpu', action='store_true', help='do not require a visible CUDA GPU')
    args = parser.parse_args(argv)
    missing = missing_packages(required_packages(args.requirements))
    if missing:
        print(f'gpu_check preflight: {sys.executable} lacks {len(missing)} Python module(s): ' + ', '.join(missing),
              file=sys.stderr)
        print('  carry them as wheels and install them there: '
              'python -m pip install --no-index --find-links WHEEL_DIR PACKAGE...', file=sys.stderr)
        return 1
    failures = import_failures(STEP_MODULES)
    if failures:
        print('gpu_check preflight: these imports fail:\n  ' + '\n  '.join(failures), file=sys.stderr)
        return 1
    import torch
    import triton
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    if gpu is None and not args.no_gpu:
        print('gpu_check preflight: no CUDA GPU visible (torch.cuda.is_available() is False)', file=sys.stderr)
        return 1
    print(f'preflight ok: python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}, '
          f'GPU {gpu}, TF32 matmul {torch.backends.cuda.matmul.allow_tf32}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
