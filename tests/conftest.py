"""Shared pytest set-up: the plugin is imported once so BasicSR is patched and registries are filled."""
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tools' own packages (tools/table_runs) import as they do when a tool runs; appended, so that no tool
# script (tools/test.py) hides a module of the standard library.
sys.path.append(os.path.join(REPO_ROOT, 'tools'))

# Tests run on CPU only and must not try the network.
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import fcdfn_plugin  # noqa: E402,F401


@pytest.fixture
def repo_root():
    return REPO_ROOT


@pytest.fixture
def python():
    """The interpreter running the tests (the project's virtual environment)."""
    return sys.executable


def load_tool(name):
    """Import ``tools/<name>.py`` as a module (the tools are scripts, not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(args, root=None, timeout=600, env_extra=None, check=True):
    """Run ``python <args>`` from the repository root, with ``$FCDFN_ROOT`` = ``root``."""
    import subprocess
    env = dict(os.environ, PYTHONUNBUFFERED='1', **(env_extra or {}))
    if root is not None:
        env['FCDFN_ROOT'] = str(root)
    result = subprocess.run([sys.executable] + [str(a) for a in args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'{" ".join(map(str, args))} failed ({result.returncode}):\n'
                             f'{result.stdout[-3000:]}\n{result.stderr[-5000:]}')
    return result


@pytest.fixture(scope='session')
def toy_prepared(tmp_path_factory):
    """A tiny toy FAID, prepared (train LMDB + fixed test set), shared by the end-to-end tests."""
    base = tmp_path_factory.mktemp('toy')
    run_tool(['tools/make_toy_faid.py', '--out', base / 'toy', '--count', 24, '--size', 128, '--seed', 3])
    run_tool(['tools/prepare_faid.py', '--faid-root', base / 'toy', '--out', base / 'prepared',
              '--test-count', 4, '--test-crop', 64, '--seed', 0, '--opt', 'options/fcdfn.yml'])
    return base / 'prepared'


def write_options(path, base_options, prepared, **changes):
    """Write ``base_options`` (a path relative to the repository) pointed at ``prepared``, with changes.

    ``changes`` maps 'section:key:subkey' (BasicSR's --force_yml spelling, with '__' for ':') to values.
    """
    import yaml
    with open(os.path.join(REPO_ROOT, base_options)) as f:
        opt = yaml.safe_load(f)
    for phase, dataset in opt['datasets'].items():
        if phase == 'train':
            dataset['dataroot'] = str(prepared / 'train.lmdb')
        else:
            dataset['dataroot'] = str(prepared / 'test')
    for dotted, value in changes.items():
        keys = dotted.split('__')
        node = opt
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path
