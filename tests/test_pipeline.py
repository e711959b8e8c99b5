"""ensure_toy_dataset: built once when several callers race for it, never reused half-written."""
import os
import threading
import time
from os import path as osp

import pytest

from fcdfn_plugin.utils import pipeline


class Calls(list):
    """The tools run, in order; ``failing``: the tools that fail after creating their output folder."""
    failing = None


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """REPO_ROOT in a temporary folder and run_step replaced by a slow fake writing what each tool writes;
    returns the list of the tools run (in order)."""
    calls = Calls()
    calls.failing = failing = set()

    def run_step(title, args, env_extra=None):
        tool, out = args[0], args[args.index('--out') + 1]
        calls.append(tool)
        os.makedirs(out)
        time.sleep(0.2)  # long enough for a racing caller to see a missing folder without the lock
        if tool in failing:
            raise RuntimeError(f'{tool} interrupted')
        with open(osp.join(out, 'done'), 'w') as handle:
            handle.write(tool)

    monkeypatch.setattr(pipeline, 'REPO_ROOT', str(tmp_path))
    monkeypatch.setattr(pipeline, 'run_step', run_step)
    return calls


def test_racing_callers_build_once(fake_tools):
    results, errors = [], []

    def call():
        try:
            results.append(pipeline.ensure_toy_dataset())
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert fake_tools == ['tools/make_toy_faid.py', 'tools/prepare_faid.py']
    assert len(set(results)) == 1 and osp.isfile(osp.join(results[0], 'done'))


def test_interrupted_toy_build_is_not_reused(fake_tools, tmp_path):
    fake_tools.failing.add('tools/make_toy_faid.py')
    with pytest.raises(RuntimeError, match='interrupted'):
        pipeline.ensure_toy_dataset()
    assert not osp.exists(tmp_path / pipeline.TOY_DIR)  # only the .partial folder is left
    assert osp.isdir(str(tmp_path / pipeline.TOY_DIR) + '.partial')
    fake_tools.failing.clear()
    prepared = pipeline.ensure_toy_dataset()  # rebuilds from scratch, replacing the .partial folder
    assert fake_tools[-2:] == ['tools/make_toy_faid.py', 'tools/prepare_faid.py']
    assert osp.isfile(tmp_path / pipeline.TOY_DIR / 'done') and osp.isfile(osp.join(prepared, 'done'))
    assert not osp.exists(str(tmp_path / pipeline.TOY_DIR) + '.partial')
