"""Preflight of ``tools/gpu_check.sh``: every Python module its steps need, checked at once, before minutes are spent.

    python tools/gpu_preflight.py [--requirements requirements.txt] [--no-gpu]

A lent GPU machine runs its own Python and packages and reaches no package registry, so whatever
is missing has to be carried there as wheels (``tools/gpu_wheels.sh`` fills ``.whl/``, which
``tools/gpu_check.sh`` installs); this says which, all in one message, instead of the first
ImportError of the first step. It checks, and reports together:

1. every package of ``requirements.txt`` (by its import name: opencv-python -> cv2, ...), plus torch,
   torchvision, triton and what mmengine imports at import time (addict, yapf and its platformdirs,
   termcolor), is findable;
2. the modules the steps import (``fcdfn_plugin``, which imports BasicSR through ``fcdfn_plugin/compat.py``,
   the test module's imports, lpips, mmengine, the op and model steps of ``tools/benchmark.py``) and the
   tools the script runs import for real (this catches a package that is there but broken or of an
   incompatible version; a module that such an import finds missing is added to the list of step 1);
3. a CUDA GPU is visible (skipped by ``--no-gpu``).

Exit status 0 with one summary line (versions, GPU) when all is there, else 1 with the lists.
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
#: and what mmengine imports at import time without requirements.txt naming it (the wheels of
#: tools/gpu_wheels.sh carry them; installed there with --no-deps, so nothing resolves them).
EXTRA_PACKAGES = ('torch', 'torchvision', 'triton', 'addict', 'yapf', 'platformdirs', 'termcolor')
#: What the gpu_check steps import: fcdfn_plugin (BasicSR through fcdfn_plugin/compat.py, which needs
#: lmdb), tests/test_ops_fused.py and its conftest, the benchmark's op and model steps, and the
#: optional metric and FLOP counter (lpips, mmengine) the project's tools use.
STEP_MODULES = ('fcdfn_plugin', 'fcdfn_plugin.ops.basis_filter_triton', 'fcdfn_plugin.data.degradation',
                'fcdfn_plugin.data.toy_scenes', 'fcdfn_plugin.losses.fcdfn_loss', 'fcdfn_plugin.models.fcdfn_model',
                'basicsr', 'basicsr.archs', 'basicsr.utils.registry', 'lmdb', 'lpips', 'mmengine',
                'mmengine.analysis', 'pytest', 'yaml', 'numpy')
#: The tools/*.py that tools/gpu_check.sh runs (imported as modules: their main() does not run).
STEP_TOOLS = ('kernel_report', 'benchmark')
#: What to do about missing modules.
HINT = ('  carry them as wheels: run tools/gpu_wheels.sh where pip reaches a package registry (it fills .whl/), '
        'then tools/gpu_check.sh installs .whl/*.whl there (pip install --no-index --no-deps --target /tmp/site) '
        'and puts /tmp/site and the repository on PYTHONPATH')


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


def import_errors(modules):
    """``(module, exception)`` for each of ``modules`` whose import raises (any exception, not only ImportError).

    A name ending in ``.py`` is a file, imported as a module under a private name (its ``__main__``
    block does not run).
    """
    errors = []
    for module in modules:
        try:
            if module.endswith('.py'):
                name = '_gpu_preflight_' + os.path.basename(module)[:-3]
                spec = importlib.util.spec_from_file_location(name, module)
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            else:
                importlib.import_module(module)
        except Exception as error:  # noqa: BLE001  (a broken package may raise anything on import)
            errors.append((module, error))
    return errors


def describe(module, error):
    """``'module: ErrorType: message'`` on one line."""
    return f'{module}: {type(error).__name__}: {" ".join(str(error).split())}'


def import_failures(modules):
    """``'module: error'`` for each of ``modules`` whose import raises (see :func:`import_errors`)."""
    return [describe(module, error) for module, error in import_errors(modules)]


def absent_module(error):
    """The top-level module an import error says is not installed at all, or None.

    A missing submodule of a package that is there (an incompatible version) is not "absent".
    """
    if isinstance(error, ModuleNotFoundError) and error.name:
        top = error.name.split('.')[0]
        try:
            if importlib.util.find_spec(top) is None:
                return top
        except (ImportError, ValueError):
            return top
    return None


def step_modules():
    """:data:`STEP_MODULES` and the paths of :data:`STEP_TOOLS`."""
    return list(STEP_MODULES) + [os.path.join(ROOT, 'tools', f'{tool}.py') for tool in STEP_TOOLS]


def problems(requirements_path, need_gpu=True, modules=None):
    """``(missing, failures, gpu_problem)``: modules not installed (from the list and found by the imports),
    other import failures, and why no GPU is usable (None when one is, or when ``need_gpu`` is False)."""
    packages = required_packages(requirements_path)
    missing = missing_packages(packages)
    absent = {module for module in packages if importlib.util.find_spec(module) is None}
    failures = []
    for module, error in import_errors(step_modules() if modules is None else modules):
        top = absent_module(error)
        if top is None:
            failures.append(describe(module, error))
        elif top not in absent:  # found only by importing: not in requirements.txt or EXTRA_PACKAGES
            absent.add(top)
            missing.append(f'{top} (imported by {os.path.basename(module)})')
    gpu_problem = None
    if need_gpu:
        try:
            import torch
            if not torch.cuda.is_available():
                gpu_problem = 'no CUDA GPU visible (torch.cuda.is_available() is False)'
        except Exception as error:  # noqa: BLE001
            gpu_problem = f'torch does not import: {type(error).__name__}: {error}'
    return missing, failures, gpu_problem


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requirements', default=os.path.join(ROOT, 'requirements.txt'))
    parser.add_argument('--no-gpu', action='store_true', help='do not require a visible CUDA GPU')
    args = parser.parse_args(argv)
    missing, failures, gpu_problem = problems(args.requirements, need_gpu=not args.no_gpu)
    if missing:
        print(f'gpu_check preflight: {sys.executable} lacks {len(missing)} Python module(s): ' + ', '.join(missing),
              file=sys.stderr)
    if failures:
        print('gpu_check preflight: these imports fail' + (' (besides the missing modules)' if missing else '')
              + ':\n  ' + '\n  '.join(failures), file=sys.stderr)
    if missing or failures:
        print(HINT, file=sys.stderr)
    if gpu_problem:
        print(f'gpu_check preflight: {gpu_problem}', file=sys.stderr)
    if missing or failures or gpu_problem:
        return 1
    import basicsr
    import torch
    import triton
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    print(f'preflight ok: python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}, '
          f'basicsr {basicsr.__version__}, GPU {gpu}, TF32 matmul {torch.backends.cuda.matmul.allow_tf32}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
