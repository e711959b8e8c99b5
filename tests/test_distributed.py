"""torchrun with Gloo on CPU, and exact resume: the data and the weights do not depend on either."""
import glob
import shutil
import signal
import subprocess
import sys
import time

import torch

from conftest import REPO_ROOT, run_tool, write_options

# options/fcdfn_demo.yml as it is (random crops, flips, dimming, noise and homography on), made short.
SHORT = dict(logger__print_freq=1, val__val_freq=1000, datasets__train__crop_size=64)
# ... and without BasicSR's validation after the last iteration, where a test reads only the weights and states
# (the two-process test keeps it: rank 0 validates alone while rank 1 waits, which must not hang).
NO_VAL = dict({k: v for k, v in SHORT.items() if not k.startswith('val__')}, val=None)


def free_port():
    import socket
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def weights(root, name, iteration):
    path = root / 'experiments' / name / 'models' / f'net_g_{iteration}.pth'
    return torch.load(path, map_location='cpu', weights_only=True)['params']


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def state_tensors(state):
    """Flatten a training state's optimizer and scheduler contents into {name: tensor}."""
    flat = {}
    for i, opt_state in enumerate(state['optimizers']):
        for pid, values in opt_state['state'].items():
            for key, value in values.items():
                flat[f'opt{i}.{pid}.{key}'] = torch.as_tensor(value)
    for i, sched in enumerate(state['schedulers']):
        for key in ('last_epoch', '_step_count'):
            flat[f'sched{i}.{key}'] = torch.as_tensor(sched[key])
        flat[f'sched{i}.lr'] = torch.as_tensor(sched['_last_lr'])
    return flat


def test_two_processes_match_one_process_with_double_batch(tmp_path, toy_prepared):
    batch = 2
    one = write_options(tmp_path / 'one.yml', 'options/fcdfn_demo.yml', toy_prepared, name='one',
                        train__total_iter=4, logger__save_checkpoint_freq=4,
                        datasets__train__batch_size_per_gpu=2 * batch, **SHORT)
    two = write_options(tmp_path / 'two.yml', 'options/fcdfn_demo.yml', toy_prepared, name='two',
                        train__total_iter=4, logger__save_checkpoint_freq=4,
                        datasets__train__batch_size_per_gpu=batch, **SHORT)
    run_tool(['tools/train.py', '-opt', one], root=tmp_path)
    run_tool(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', 'tools/train.py', '-opt', two,
              '--launcher', 'pytorch'], root=tmp_path, env_extra={'FCDFN_DIST_BACKEND': 'gloo'})
    assert max_diff(weights(tmp_path, 'one', 4), weights(tmp_path, 'two', 4)) <= 1e-5
    # and training did change the weights (the comparison above is not vacuous)
    logs = glob.glob(str(tmp_path / 'experiments' / 'two' / 'train_two_*.log'))
    assert len(logs) == 1  # only rank 0 writes the log (and the checkpoints)
    log = open(logs[0]).read()
    assert 'World size (gpu number): 2' in log


def test_legacy_launcher_with_local_rank_argument(tmp_path, toy_prepared):
    """``python -m torch.distributed.launch`` passes ``--local-rank=0``, which BasicSR alone rejects."""
    options = write_options(tmp_path / 'launch.yml', 'options/fcdfn_demo.yml', toy_prepared, name='launch',
                            train__total_iter=1, logger__save_checkpoint_freq=1, datasets__train__batch_size_per_gpu=2,
                            datasets__train__num_worker_per_gpu=0, datasets__train__persistent_workers=False, **NO_VAL)
    result = run_tool(['-m', 'torch.distributed.launch', '--nproc_per_node=1', f'--master_port={free_port()}',
                       'tools/train.py', '-opt', options, '--launcher', 'pytorch'], root=tmp_path, timeout=300,
                      env_extra={'FCDFN_DIST_BACKEND': 'gloo'})
    assert 'backend gloo' in result.stdout + result.stderr
    assert (tmp_path / 'experiments' / 'launch' / 'models' / 'net_g_1.pth').is_file()


def test_resume_continues_exactly(tmp_path, toy_prepared):
    """7 iterations straight == 3 iterations, then a new process resuming for 4 (crossing an epoch)."""
    changes = dict(train__total_iter=7, logger__save_checkpoint_freq=1, datasets__train__batch_size_per_gpu=4,
                   datasets__train__dataset_enlarge_ratio=1, **NO_VAL)  # 20 scenes / 4 = 5 iterations per epoch
    straight_root, resumed_root = tmp_path / 'straight', tmp_path / 'resumed'
    options = write_options(tmp_path / 'run.yml', 'options/fcdfn_demo.yml', toy_prepared, name='run', **changes)
    run_tool(['tools/train.py', '-opt', options], root=straight_root)

    # The resumed run: the state a run interrupted after iteration 3 left behind, resumed by a new process.
    shutil.copytree(straight_root / 'experiments' / 'run', resumed_root / 'experiments' / 'run',
                    ignore=lambda folder, names: [n for n in names if n.endswith('.log') or any(
                        n in (f'{i}.state', f'net_g_{i}.pth') for i in range(4, 8)) or n == 'net_g_latest.pth'])
    run_tool(['tools/train.py', '-opt', options, '--auto_resume'], root=resumed_root)
    log = open(glob.glob(str(resumed_root / 'experiments' / 'run' / 'train_run_*.log'))[0]).read()
    assert 'Resuming training from epoch: 0, iter: 3' in log

    assert max_diff(weights(straight_root, 'run', 7), weights(resumed_root, 'run', 7)) <= 1e-6
    straight = torch.load(straight_root / 'experiments' / 'run' / 'training_states' / '7.state', weights_only=False)
    resumed = torch.load(resumed_root / 'experiments' / 'run' / 'training_states' / '7.state', weights_only=False)
    assert (straight['epoch'], straight['iter']) == (resumed['epoch'], resumed['iter']) == (1, 7)
    a, b = state_tensors(straight), state_tensors(resumed)
    assert a.keys() == b.keys() and len(a) > 3
    assert max((a[k].double() - b[k].double()).abs().max().item() for k in a) <= 1e-6


def test_killed_run_resumes_with_auto_resume(tmp_path, toy_prepared):
    options = write_options(tmp_path / 'kill.yml', 'options/fcdfn_demo.yml', toy_prepared, name='kill',
                            train__total_iter=12, logger__save_checkpoint_freq=2,
                            datasets__train__batch_size_per_gpu=2, **NO_VAL)
    env = dict(__import__('os').environ, FCDFN_ROOT=str(tmp_path))
    process = subprocess.Popen([sys.executable, 'tools/train.py', '-opt', str(options)], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    states = tmp_path / 'experiments' / 'kill' / 'training_states'
    deadline = time.time() + 240
    while not (states / '4.state').exists():
        assert process.poll() is None, 'training ended before it could be killed'
        assert time.time() < deadline, 'no checkpoint within 240 s'
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert not (tmp_path / 'experiments' / 'kill' / 'models' / 'net_g_latest.pth').exists()

    run_tool(['tools/train.py', '-opt', options, '--auto_resume'], root=tmp_path)
    log = sorted(glob.glob(str(tmp_path / 'experiments' / 'kill' / 'train_kill_*.log')))[-1]
    assert 'Resuming training from epoch: 0, iter: ' in open(log).read()
    assert (tmp_path / 'experiments' / 'kill' / 'models' / 'net_g_latest.pth').is_file()
    assert (states / '12.state').is_file()
