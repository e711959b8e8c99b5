"""Training, scoring and recording the runs: BasicSR's runner (``tools/train.py``) and ``tools/evaluate.py`` in
subprocesses, one thread each or more, with the run's progress printed from its logs."""
import datetime
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from os import path as osp

import yaml

from .experiments import (finished_log, latest_state, log_minutes, parked_info, parsed_validation_curve, segment_cpus,
                          segment_logs, set_aside_unvalidated, unfinished_dir, validation_curve)
from .ladder import CONVERGED_DB, curve_gain, minutes_per_iteration
from .recipes import LOG_MINUTES, METRICS, REPO, bounded_interval, options_digest, run_name, run_options
from .store import real_set_name, test_set_digest, write_json

#: A training run's progress is printed at each new validation and at least every this many minutes.
PROGRESS_MINUTES = 10


class Progress:
    """Called while a run trains: prints its iteration, speed and newest toy validation from its BasicSR logs,
    at each new validation and at least every :data:`PROGRESS_MINUTES` (a table run takes hours, and its
    output goes to a log file)."""

    def __init__(self, out, name, iters, every_minutes=PROGRESS_MINUTES):
        self.out, self.name, self.iters, self.every = out, name, iters, every_minutes * 60
        self.validations = len(validation_curve(segment_logs(out, name))['iter'])
        self.printed = (time.time(), self.validations)

    def line(self):
        """The progress line now, or None before the run has logged an iteration. The speed is BasicSR's own
        (logged with each training line: the mean of its last 200 iterations)."""
        from fcdfn_plugin.utils.report import parse_train_log

        parsed = [parse_train_log(log) for log in segment_logs(self.out, self.name)]
        curve = parsed_validation_curve(parsed)
        self.validations = len(curve['iter'])
        if not parsed or not parsed[-1]['seconds']:
            return None
        iteration, seconds = parsed[-1]['seconds'][-1]
        left = (self.iters - iteration) * seconds
        text = (f'{self.name}: iteration {iteration:,} of {self.iters:,} ({seconds:.2f} s each, about '
                + (f'{left / 3600:.1f} h' if left >= 3600 else f'{left / 60:.0f} min') + ' left)')
        if curve['iter']:
            text += f', toy PSNR {curve["psnr"][-1]:.2f} at {curve["iter"][-1]:,}'
        return text

    def __call__(self):
        text = self.line()
        if text is not None and (self.validations != self.printed[1] or time.time() - self.printed[0] >= self.every):
            print(text, flush=True)
            self.printed = (time.time(), self.validations)


def run_tool(args, log_path, threads, poll=None, poll_seconds=30):
    """``python <args>`` from the repository root, output to ``log_path``; raise with its tail on failure.
    ``poll`` (no arguments) is called every ``poll_seconds`` while it runs."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log_path, 'a') as log:
        process = subprocess.Popen([sys.executable] + [str(a) for a in args], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        while True:
            try:
                process.wait(timeout=poll_seconds)
                break
            except subprocess.TimeoutExpired:
                try:
                    if poll is not None:
                        poll()
                except Exception as err:  # a courtesy: a log it cannot read must not stop the run
                    print(f'warning: progress of {args[0]}: {type(err).__name__}: {err}', file=sys.stderr,
                          flush=True)
    if process.returncode:
        with open(log_path) as log:
            tail = ''.join(log.readlines()[-20:])
        raise RuntimeError(f'{" ".join(map(str, args))} failed (exit {process.returncode}); end of {log_path}:\n{tail}')


class Runner:
    """Trains (unless recorded), scores and records the runs of the tables; safe to call from threads."""

    def __init__(self, out, records_dir, records, prepared, crop, threads, real_test, first_seed, started,
                 real_digest=None):
        self.out, self.records_dir, self.records, self.prepared = out, records_dir, records, prepared
        self.crop, self.threads, self.real_test, self.first_seed = crop, threads, real_test, first_seed
        self.real_name = real_set_name(real_test) if real_test else None
        self.real_digest = real_digest or (test_set_digest(real_test) if real_test else None)  # main passes its own
        self.started = started
        self.lock = threading.Lock()

    def run(self, method, seed, iters, lr, purpose):
        """The record of one run (``purpose`` 'sweep' or 'table'), made here if it is not recorded yet."""
        name = run_name(method, seed, iters, self.crop, lr)
        opt = run_options(method, seed, iters, self.crop, lr)
        digest = options_digest(opt)
        record_path = osp.join(self.records_dir, f'{name}.json')
        record = self.records.get(name)
        if record is not None and record['digest'] != digest:
            raise RuntimeError(f'{record_path} was made with other options than options/table1 gives now '
                               f'(digest {record["digest"]} != {digest}); delete it to run it again.')
        score_real = purpose == 'table' and self.real_test is not None
        if record is not None and (not score_real or self.real_name in record.get('real', {})):
            return record
        run_started = time.time()
        if record is None:
            record = self.train(name, opt, digest, method, seed, iters, lr, purpose)
        if score_real:
            self.score_real(name, record, record_path)
        with self.lock:
            write_json(record_path, record)
            self.records[name] = record
            parked = unfinished_dir(self.records_dir, name)
            if osp.isdir(parked):
                shutil.rmtree(parked)
                print(f'{name}: recorded, its parked state removed from {parked} (commit the removal)', flush=True)
            gain = record.get('last_quarter_gain_db')
            print(f'{name}: toy PSNR {record["toy"]["psnr"]:.2f}'
                  + (f', real PSNR {record["real"][self.real_name]["psnr"]:.2f}'
                     if self.real_name in record['real'] else '')
                  + (f', last quarter {gain:+.2f} dB' if gain is not None and purpose == 'table' else '')
                  + f' ({(time.time() - run_started) / 60:.1f} min; '
                    f'{(time.time() - self.started) / 60:.0f} min so far)',
                  flush=True)
        return record

    def train(self, name, opt, digest, method, seed, iters, lr, purpose):
        """Train one run with tools/train.py (or reuse its finished training) and read its record from the logs.

        ``--auto_resume``: a run stopped before its end (a session's end, a killed process) continues
        from its last training state, so only the iterations after it are trained again; its minutes
        are this call's plus those of the earlier segments' logs.
        """
        run_started = time.time()
        opt['name'] = name
        opt['datasets']['train']['dataroot'] = osp.join(self.prepared, 'train.lmdb')
        opt['datasets']['val']['dataroot'] = osp.join(self.prepared, 'test')
        opt['val']['save_img'] = purpose == 'table' and seed == self.first_seed
        if purpose == 'sweep':
            opt['val']['val_freq'] = 10 * iters  # the final validation only
        with self.lock:  # other threads add records
            per_iteration = minutes_per_iteration(self.records, method, self.crop, pick=max)
        logger = opt['logger']
        logger['save_checkpoint_freq'] = bounded_interval(logger['save_checkpoint_freq'], per_iteration)
        logger['print_freq'] = bounded_interval(logger['print_freq'], per_iteration, LOG_MINUTES)
        run_dir = osp.join(self.out, 'runs', name)
        os.makedirs(run_dir, exist_ok=True)
        log = finished_log(self.out, name)
        options = osp.join(run_dir, f'{name}.yml')
        if log is not None:  # a finished training without its record: reuse it if its options are these
            with open(options) as handle:
                if options_digest(yaml.safe_load(handle)) != digest:
                    raise RuntimeError(f'{osp.join(self.out, "experiments", name)} was trained with other options '
                                       f'than options/table1 gives now; delete it (and runs/{name}) to train it again.')
        else:
            with open(options, 'w') as handle:
                yaml.safe_dump(opt, handle, sort_keys=False)
            self.restore(name, digest)
            earlier = segment_logs(self.out, name)
            moved = set_aside_unvalidated(osp.join(self.out, 'experiments', name), earlier, opt['val']['val_freq'])
            if moved:
                print(f'{name}: its states at {moved} cannot be resumed from (saved before a validation that never '
                      'ran, or unreadable: the run was stopped between the two, or while saving); set aside in '
                      'training_states/unvalidated, so it resumes before them and validates again', flush=True)
            if latest_state(osp.join(self.out, 'experiments', name))[1] is not None:
                print(f'{name}: resuming from its last training state', flush=True)
            run_tool(['tools/train.py', '-opt', options, '--auto_resume'], osp.join(run_dir, 'train.out'),
                     self.threads, poll=Progress(self.out, name, iters))
            log = finished_log(self.out, name)
            # the segments this call did not train: logs left by earlier, stopped calls (a fresh start
            # instead moves the folder aside, so then there are none)
            run_started -= 60 * sum(log_minutes(path) for path in segment_logs(self.out, name) if path in earlier)
        curve = validation_curve(segment_logs(self.out, name))
        record = {'method': method, 'seed': seed, 'iters': iters, 'crop': self.crop,
                  'batch': opt['datasets']['train']['batch_size_per_gpu'], 'lr': float(lr), 'purpose': purpose,
                  'digest': digest, 'toy': {metric: curve[metric][-1] for metric in METRICS}, 'curve': curve,
                  'last_quarter_gain_db': curve_gain(curve, iters), 'threads': self.threads,
                  'train_minutes': round((time.time() - run_started) / 60, 2),
                  'finished': datetime.date.today().isoformat(), 'cpu': segment_cpus(segment_logs(self.out, name)),
                  'real': {}}
        if record['last_quarter_gain_db'] is not None:
            record['converged'] = record['last_quarter_gain_db'] < CONVERGED_DB
        return record

    def restore(self, name, digest):
        """Bring a run parked by another machine (:func:`park`) into this one's experiments folder, unless this
        machine's own state is as far: its state, weights and logs, so that ``--auto_resume`` continues it and
        the record counts its earlier segments. A park made with other options is an error."""
        info = parked_info(self.records_dir, name)
        if info is None:
            return
        parked = unfinished_dir(self.records_dir, name)
        if info['digest'] != digest:
            raise RuntimeError(f'{parked} was parked with other options than options/table1 gives now; delete it '
                               'to train the run from the start.')
        run_path = osp.join(self.out, 'experiments', name)
        if latest_state(run_path)[0] >= info['iter']:
            return
        for sub in ('training_states', 'models'):
            os.makedirs(osp.join(run_path, sub), exist_ok=True)
        for file in sorted(os.listdir(parked)):
            sub = {'.state': 'training_states', '.pth': 'models', '.log': ''}.get(osp.splitext(file)[1])
            if sub is not None:  # a log of the same name here is an earlier copy of the same segment
                shutil.copy2(osp.join(parked, file), osp.join(run_path, sub, file))
        print(f'{name}: restored the state parked at iteration {info["iter"]} from {parked}', flush=True)

    def score_real(self, name, record, record_path):
        """Add the scores on the real test folder to ``record`` (tools/evaluate.py on the run's weights)."""
        weights = osp.join(self.out, 'experiments', name, 'models', 'net_g_latest.pth')
        if not osp.isfile(weights):
            print(f'warning: {record_path} has no scores on {self.real_name}, and this machine has not the weights '
                  f'({weights}) to compute them: the row counts it on the toy set only (delete the record '
                  'to train it again here).', file=sys.stderr, flush=True)
            return
        run_dir = osp.join(self.out, 'runs', name)
        real_dir = osp.join(run_dir, f'real_{self.real_name}')
        if not osp.isfile(osp.join(real_dir, 'metrics.json')):
            run_tool(['tools/evaluate.py', '--test-dir', self.real_test, '--weights', weights, '--labels', name,
                      '--out', real_dir, '--no-references', '--figure-scenes', '0', '--overwrite'],
                     osp.join(run_dir, 'evaluate.out'), self.threads)
        with open(osp.join(real_dir, 'metrics.json')) as handle:
            record['real'][self.real_name] = json.load(handle)['results'][name]['mean']
        record.setdefault('real_digest', {})[self.real_name] = self.real_digest
