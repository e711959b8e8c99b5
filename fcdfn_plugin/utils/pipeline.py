"""Steps shared by the demo and the ablation tools: run a tool, build the toy dataset once."""
import contextlib
import os
import shutil
import subprocess
import sys
import time
from os import path as osp

from .paths import REPO_ROOT

#: Where the demo and the ablation put the offline toy FAID (relative to the repository root).
TOY_DIR = osp.join('datasets', 'toy_faid')
TOY_PREPARED_DIR = osp.join('datasets', 'toy_faid_prepared')


def run_step(title, args, env_extra=None):
    """Run ``python <args>`` from the repository root, showing its output live; raise on failure."""
    print(f'\n=== {title}\n    $ python {" ".join(map(str, args))}', flush=True)
    started = time.time()
    env = dict(os.environ, **(env_extra or {}))
    subprocess.run([sys.executable] + [str(a) for a in args], cwd=REPO_ROOT, env=env, check=True)
    print(f'=== done in {time.time() - started:.0f} s', flush=True)


@contextlib.contextmanager
def exclusive(lock_path):
    """Hold an exclusive lock on ``lock_path`` (created if missing) for the block: other processes and
    threads asking for the same lock wait. Without ``fcntl`` (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - POSIX everywhere this project is tested
        yield
        return
    os.makedirs(osp.dirname(lock_path), exist_ok=True)
    with open(lock_path, 'a') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_toy_faid(toy):
    """Write the offline toy FAID to ``<toy>.partial``, then rename it to ``toy``: an interrupted build leaves
    only the ``.partial`` folder (replaced by the next build), never a half-written ``toy`` that would be
    reused as complete. (``tools/prepare_faid.py`` writes atomically itself.)"""
    staging = toy + '.partial'
    if osp.isdir(staging):
        shutil.rmtree(staging)
    run_step('Building the offline toy FAID', ['tools/make_toy_faid.py', '--out', staging])
    os.replace(staging, toy)


def ensure_toy_dataset(test_count=24, test_crop=128, options='options/fcdfn.yml'):
    """Build and prepare the toy FAID under ``datasets/`` unless it is already there; return its path.

    The fixed test set is degraded with the law of ``options`` (its ``datasets.train`` keys): the
    paper's (``options/fcdfn.yml``), so every model, whatever law it trains with, is scored on the
    same in-band test set (the demo and the shipped model train with a wider exposure law). Safe to call
    from several processes at once (``tools/run_tables.py`` side by side): one builds, the others wait
    for it and reuse its result.
    """
    prepared = osp.join(REPO_ROOT, TOY_PREPARED_DIR)
    toy = osp.join(REPO_ROOT, TOY_DIR)
    with exclusive(osp.join(REPO_ROOT, 'datasets', '.toy_faid.lock')):
        if osp.isdir(prepared):
            print(f'Reusing the prepared toy dataset in {TOY_PREPARED_DIR} (delete it to rebuild).', flush=True)
            return prepared
        if not osp.isdir(toy):
            build_toy_faid(toy)
        run_step('Preparing it (train LMDB + fixed test set)',
                 ['tools/prepare_faid.py', '--faid-root', toy, '--out', prepared, '--test-count', test_count,
                  '--test-crop', test_crop, '--opt', options])
    return prepared
