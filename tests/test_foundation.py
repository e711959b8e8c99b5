"""The plugin installs, patches BasicSR 1.4.2 and exposes the two BasicSR entry points."""
import os
import subprocess
import sys

import torch

import fcdfn_plugin
from fcdfn_plugin import compat


def _run(args, cwd, env=None, timeout=120):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_basicsr_imports_after_plugin():
    import basicsr
    from basicsr.data import degradations  # the module that imports the removed torchvision module
    assert basicsr.__version__ == '1.4.2'
    assert callable(degradations.rgb_to_grayscale)


#: Modules the plugin's import must not pull in (plotting, the LPIPS network, the GPU kernel and the C++
#: build are loaded where they are used): a property, not a timing (a timed bound fails on a loaded machine).
DEFERRED = ('matplotlib', 'lpips', 'fcdfn_plugin.ops.basis_filter_triton', 'fcdfn_plugin.ops.basis_filter_native',
            'torch.utils.cpp_extension')


def test_plugin_import_defers_the_heavy_parts(repo_root):
    code = ('import sys; import fcdfn_plugin, basicsr; '
            f'print(",".join(m for m in {DEFERRED!r} if m in sys.modules))')
    result = _run([sys.executable, '-c', code], cwd=repo_root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1:] in ([], ['']), f'imported by the plugin: {result.stdout}'


def test_tools_help(repo_root):
    # side by side: each is mostly the import of torch and BasicSR, one core each
    tools = {tool: subprocess.Popen([sys.executable, tool, '--help'], cwd=repo_root, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for tool in ('tools/train.py', 'tools/test.py')}
    for tool, process in tools.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, f'{tool}: {stderr}'
        assert '-opt' in stdout and '--launcher' in stdout, tool


def test_patches_installed():
    from basicsr import train
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import dist_util, options
    assert options.init_dist is compat.init_dist
    assert dist_util.init_dist is compat.init_dist
    assert train.load_resume_state is compat.load_resume_state
    assert BaseModel.model_to_device is compat.model_to_device
    from basicsr import test
    from basicsr.models import sr_model
    assert train.parse_options is compat.parse_options and test.parse_options is compat.parse_options
    assert sr_model.tqdm is compat.terminal_only_tqdm
    assert train.get_env_info is compat.get_env_info and test.get_env_info is compat.get_env_info
    assert compat.get_env_info().endswith(')') and '\tCPU: ' in compat.get_env_info()  # after the versions


def test_launcher_local_rank_spelling_is_accepted():
    # torch.distributed.launch passes --local-rank=N (BasicSR issue 626); the end-to-end run is in
    # tests/test_distributed.py
    assert compat.normalise_launcher_argv(['-opt', 'a.yml', '--local-rank=1', '--launcher', 'pytorch']) == [
        '-opt', 'a.yml', '--local_rank=1', '--launcher', 'pytorch']
    assert compat.normalise_launcher_argv(['--local-rank', '0', '--local-ranks']) == [
        '--local_rank', '0', '--local-ranks']


def test_validation_progress_bar_only_on_a_terminal():
    # pytest captures the output: not a terminal, so BasicSR's validation bar must not draw
    from basicsr.models import sr_model
    bar = sr_model.tqdm(total=3, unit='image')
    assert bar.disable
    bar.close()


def test_default_backend_follows_device(monkeypatch):
    monkeypatch.delenv(compat.BACKEND_ENV, raising=False)
    expected = 'nccl' if torch.cuda.is_available() else 'gloo'
    assert compat.default_dist_backend() == expected
    monkeypatch.setenv(compat.BACKEND_ENV, 'mpi')
    assert compat.default_dist_backend() == 'mpi'


def test_saved_states_newest_first(tmp_path):
    assert compat.saved_states(str(tmp_path / 'missing')) == []
    for name in ('5.state', '40.state', '100.state', 'notes.txt', 'x.state'):
        (tmp_path / name).write_bytes(b'')
    assert compat.saved_states(str(tmp_path)) == [str(tmp_path / f'{it}.state') for it in (100, 40, 5)]


def test_auto_resume_skips_truncated_newest_state(tmp_path):
    states = tmp_path / 'training_states'
    states.mkdir()
    torch.save({'epoch': 0, 'iter': 2, 'optimizers': [], 'schedulers': []}, str(states / '2.state'))
    torch.save({'epoch': 0, 'iter': 4, 'optimizers': [], 'schedulers': []}, str(states / '4.state'))
    data = (states / '4.state').read_bytes()
    (states / '4.state').write_bytes(data[:len(data) // 2])  # killed while saving
    opt = {'auto_resume': True, 'network_g': {},
           'path': {'training_states': str(states), 'models': str(tmp_path / 'models')}}
    state = compat.load_resume_state(opt)
    assert state['iter'] == 2
    assert opt['path']['resume_state'] == str(states / '2.state')
    assert opt['path']['pretrain_network_g'] == str(tmp_path / 'models' / 'net_g_2.pth')
    assert opt['resume_progress'] == {'epoch': 0, 'iter': 2}


def test_resume_state_missing_file_is_clear_error(tmp_path):
    opt = {'auto_resume': False, 'path': {'resume_state': str(tmp_path / 'nope.state')}}
    try:
        compat.load_resume_state(opt)
    except FileNotFoundError as err:
        assert 'nope.state' in str(err)
    else:
        raise AssertionError('a missing resume_state must raise')


def test_resume_state_that_is_a_network_file_is_clear_error(tmp_path):
    weights = tmp_path / 'net_g_4.pth'
    torch.save({'params': {'w': torch.zeros(1)}}, str(weights))
    opt = {'auto_resume': False, 'path': {'resume_state': str(weights)}}
    try:
        compat.load_resume_state(opt)
    except ValueError as err:
        assert 'net_g_4.pth' in str(err) and 'network weights' in str(err) and 'pretrain_network_g' in str(err)
    else:
        raise AssertionError('a network file as resume_state must raise')


def test_no_copied_basicsr_source(repo_root):
    """No file of the repository is a copy of a BasicSR module (compared line by line)."""
    import basicsr
    upstream_root = os.path.dirname(basicsr.__file__)
    upstream_lines = set()
    for folder, _, files in os.walk(upstream_root):
        for name in files:
            if name.endswith('.py'):
                with open(os.path.join(folder, name), encoding='utf-8') as f:
                    upstream_lines.update(line.strip() for line in f if len(line.strip()) > 40)
    for folder, dirs, files in os.walk(repo_root):
        dirs[:] = [d for d in dirs if not d.startswith('.') and d not in ('experiments', 'results', 'datasets')]
        for name in files:
            if not name.endswith('.py'):
                continue
            with open(os.path.join(folder, name), encoding='utf-8') as f:
                lines = [line.strip() for line in f if len(line.strip()) > 40]
            shared = [line for line in lines if line in upstream_lines]
            assert len(shared) <= 8, f'{name} shares {len(shared)} long lines with BasicSR: {shared[:3]}'
