"""A run's logs and training states under ``<out>/experiments/<run>``: its validation curve, its minutes and
CPUs, the state it resumes from, and parking that state in the records folder for another machine."""
import datetime
import glob
import json
import os
import re
import shutil
from os import path as osp

import yaml

from .recipes import METRICS, options_digest
from .store import write_json


def segment_logs(out, name):
    """The training logs of a run, oldest first: one per start of ``tools/train.py`` (a resumed run has several)."""
    return sorted(glob.glob(osp.join(out, 'experiments', name, f'train_{name}_*.log')))


def finished_log(out, name):
    logs = segment_logs(out, name)
    if logs and 'End of training' in open(logs[-1]).read():
        return logs[-1]
    return None


def segment_cpus(logs):
    """The CPUs a run's logs were trained on, each once, in order (' + ' between): a parked run moves between
    machines. A log from before the logs named it counts as 'unknown'."""
    from fcdfn_plugin.utils.machine import logged_cpu

    cpus = []
    for log in logs:
        cpu = logged_cpu(log) or 'unknown'
        if cpu not in cpus:
            cpus.append(cpu)
    return ' + '.join(cpus)


def saved_states(run_path):
    """[(iteration, path)] of the training states in a run's experiments folder, newest first: the files
    ``--auto_resume`` chooses among (``fcdfn_plugin.compat.saved_states``), so the two agree on the newest."""
    from fcdfn_plugin.compat import saved_states as states_in

    paths = states_in(osp.join(run_path, 'training_states'))
    return [(int(osp.basename(path)[:-len('.state')]), path) for path in paths]


def latest_state(run_path):
    """(iteration, path) of the newest training state in a run's experiments folder, or (0, None)."""
    return next(iter(saved_states(run_path)), (0, None))


def resume_point(run_path, logs, val_freq):
    """(iteration, path) of the training state a stopped run resumes from, or (0, None): the newest, unless it was
    saved at a validation iteration whose validation is not in ``logs`` (BasicSR saves, then validates: a run
    stopped between the two), or cannot be read (a run killed while saving it; ``--auto_resume`` passes over it
    too). Resuming at an unvalidated state would leave that point out of the validation curve for good, and the
    convergence criterion reads it; so then the newest state before it, and the stretch is trained again."""
    from fcdfn_plugin.compat import state_problem

    validated = set(validation_curve(logs)['iter'])
    for iteration, path in saved_states(run_path):
        if (iteration % val_freq == 0 and iteration not in validated) or state_problem(path) is not None:
            continue
        return iteration, path
    return 0, None


def set_aside_unvalidated(run_path, logs, val_freq):
    """Move the states newer than :func:`resume_point` (unvalidated or unreadable, and their weights) into
    ``training_states/unvalidated/``, so that ``--auto_resume`` (the newest state) starts there; returns the
    iterations moved."""
    start, _ = resume_point(run_path, logs, val_freq)
    aside = osp.join(run_path, 'training_states', 'unvalidated')
    moved = [(it, path) for it, path in saved_states(run_path) if it > start]
    for iteration, path in moved:
        os.makedirs(aside, exist_ok=True)
        for file in (path, osp.join(run_path, 'models', f'net_g_{iteration}.pth')):
            if osp.isfile(file):
                shutil.move(file, osp.join(aside, osp.basename(file)))
    return sorted(it for it, _ in moved)


def unfinished_dir(records_dir, name):
    """Where ``--park`` keeps a run's training state between machines (committed with the records)."""
    return osp.join(records_dir, 'unfinished', name)


def parked_info(records_dir, name):
    """``{'iter', 'digest'}`` of a run parked in ``records_dir`` (:func:`park`), or None if it is not parked."""
    path = osp.join(unfinished_dir(records_dir, name), 'park.json')
    if not osp.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


#: An absolute path of two or more parts in a log (not BasicSR's ASCII-art banner).
_ABSOLUTE_PATH = re.compile(r'(?<![\w.:/])/[A-Za-z0-9][\w.+-]*(?:/[\w.+-]+)+/?')


def park(out, records_dir, records):
    """Copy the training state each unfinished run under ``out`` resumes from (:func:`resume_point`: the newest
    whose validation, if due, was logged), the weights of that iteration, its logs so far with this machine's
    paths replaced by ``<path>``, and its options' digest to ``unfinished_dir``, for another machine to resume
    from (:meth:`Runner.restore`). Returns one line per run. A parked state newer than this machine's is kept:
    another machine went further."""
    lines = []
    for run_path in sorted(glob.glob(osp.join(out, 'experiments', '*'))):
        name = osp.basename(run_path)
        if name in records or finished_log(out, name) is not None:
            continue  # done, or finished and recorded by the next run_tables call here
        if not saved_states(run_path):
            lines.append(f'{name}: no training state yet, nothing to park')
            continue
        with open(osp.join(run_path, f'{name}.yml')) as handle:
            opt = yaml.safe_load(handle)
        iteration, state = resume_point(run_path, segment_logs(out, name), opt['val']['val_freq'])
        if state is None:
            lines.append(f'{name}: no training state with its validation logged yet, nothing to park')
            continue
        target = unfinished_dir(records_dir, name)
        parked = parked_info(records_dir, name)
        if parked is not None and parked['iter'] > iteration:
            lines.append(f'{name}: kept the parked state at {parked["iter"]} (newer than this machine\'s, '
                         f'{iteration})')
            continue
        weights = osp.join(run_path, 'models', f'net_g_{iteration}.pth')
        if not osp.isfile(weights):
            raise FileNotFoundError(f'{weights} is missing: the training state at {iteration} needs its weights')
        digest = options_digest(opt)
        if osp.isdir(target):
            shutil.rmtree(target)  # an older park of this run, superseded
        os.makedirs(target)
        for path in (state, weights):
            shutil.copy2(path, target)
        for path in segment_logs(out, name):  # committed: without this machine's paths (the options dump)
            with open(path, encoding='utf-8') as handle:
                text = _ABSOLUTE_PATH.sub('<path>', handle.read())
            with open(osp.join(target, osp.basename(path)), 'w', encoding='utf-8') as handle:
                handle.write(text)
        write_json(osp.join(target, 'park.json'), {'iter': iteration, 'digest': digest})
        size = sum(osp.getsize(osp.join(target, f)) for f in os.listdir(target)) / 2**20
        lines.append(f'{name}: parked its state at iteration {iteration} in {target} ({size:.1f} MB)')
    return lines


_LOG_TIME = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d{3} ')


def log_minutes(path):
    """Minutes between the first and the last time-stamped line of a BasicSR log."""
    stamps = []
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            match = _LOG_TIME.match(line)
            if match:
                stamps.append(datetime.datetime.strptime(match.group(1), '%Y-%m-%d %H:%M:%S'))
    return (stamps[-1] - stamps[0]).total_seconds() / 60 if stamps else 0.0


def validation_curve(logs):
    """``{'iter': [...], metric: [...]}`` from the validations of a run's logs, oldest first. A resumed
    segment may validate an iteration again (its state predates the stop); its value replaces the
    older one, which exact resume makes equal anyway."""
    from fcdfn_plugin.utils.report import parse_train_log

    return parsed_validation_curve([parse_train_log(log) for log in logs])


def parsed_validation_curve(parsed_logs):
    """:func:`validation_curve` of logs already parsed (``parse_train_log``'s answers, oldest first)."""
    points = {}
    for parsed in parsed_logs:
        for metric, series in parsed['val'].items():
            points.setdefault(metric, {}).update(series)
    iters = sorted(points.get('psnr', {}))
    curve = {'iter': iters}
    curve.update({metric: [points.get(metric, {}).get(it) for it in iters] for metric in METRICS})
    return curve
