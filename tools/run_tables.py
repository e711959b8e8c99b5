"""Table 1 (the seven systems) and Table 2 (FCDFN's ablations) at CPU scale, run by run, resumable.

Every method is trained by BasicSR's runner from its ``options/table1/<method>_small.yml``: the same
data, exposure law and exposure contract for all (the demo's), each with its own code's recipe
(optimiser, schedule shape, loss, weight decay, clipping; docs/DESIGN.md "Table 1 recipes") scaled to
one budget (``--iters`` iterations of ``--crop``-pixel crops, batch 8). Then scored on the toy test set
(BasicSR's validation, also every eighth of the run: the validation curve) and, with ``--real-test``,
on a prepared folder of real pairs (``tools/evaluate.py``): PSNR / SSIM / LPIPS, mean +- std over seeds.

Two phases (``--phase``, default both):

* ``sweep``: each Table 1 method at every rate of :data:`SWEEP_RATES` and its official rate, for
  ``--sweep-iters`` (seed ``--sweep-seed``), scored on the toy test set only (never on real photos). The
  table uses the official rate unless a swept rate beats it by more than :data:`CONVERGED_DB`, then
  the best one (:func:`choose_rate`). Table 2's variants use FCDFN's rate.
* ``table``: every method and seed at the full budget with the chosen rate. A run is *converged* when
  the last quarter of its schedule improved the toy PSNR by less than :data:`CONVERGED_DB`.

The sweep runs ``--sweep-iters`` iterations (a quarter of the standard budget) whatever ``--iters`` is, so
one sweep chooses the rates of every budget. The budget check: where runs at ``2 * --iters`` are recorded
too (``--iters 4000 --seeds 10``, say), the report compares each seed's two runs; a method has converged
at ``--iters`` when doubling its schedule gains less than :data:`CONVERGED_DB` (:func:`budget_doubling`).
Runs at ``4 * --iters``, ``8 * --iters``, ... extend the check one doubling each (:func:`budget_ladder`).

Every finished run leaves a record, ``<records>/<run>.json`` (default ``docs/tables_cpu/``, committed):
its scores, validation curve, rate, wall time and a digest of its options. A run with a record is never
run again, so the tables can be completed a piece at a time, on different machines; a record whose
options digest no longer matches the presets is an error (delete it to run it again). A run stopped
before its end (the end of a session) resumes from its last training state, saved every eighth of the
run or more often (:func:`checkpoint_interval`), when it is asked for again with the same ``--out``;
``--park`` copies that state into the records folder (``unfinished/<run>/``, committed), so that the run
resumes on another machine. The tables and figures are written from the records alone: rows with missing
seeds say so. While a run trains, its iteration, speed and newest toy validation are printed at each
validation and every :data:`PROGRESS_MINUTES` (:class:`Progress`). ``--todo`` prints what the tables at
converged budgets still lack (:func:`next_runs`): per row the next runs, their estimated minutes (less where
a run is parked) and the command that runs them.

    python tools/prepare_faid.py --faid-root ../shared/faid_mini --out datasets/faid_mini_c256 --all-test \\
        --test-crop 256 --opt options/fcdfn_demo.yml
    python tools/run_tables.py --real-test datasets/faid_mini_c256/test [--phase sweep|table|all] \\
        [--methods fcdfn deepfnf ...] [--seeds 10 11 12] [--jobs 2] [--out tables_output]
    python tools/run_tables.py --todo --real-test datasets/faid_mini_c256/test
    python tools/run_tables.py --park --out tables_output   # before the machine goes: then commit docs/tables_cpu

Writes ``<out>/tables.md``, ``tables.json``, ``validation_curves_converged.png`` and ``validation_curves.png``
(toy PSNR over the run, every method, at converged budgets and at ``--iters``), ``budget_check.png`` and
``comparison_table1.png`` / ``comparison_table2.png`` (toy test scenes, first seed, where this machine ran it).

Table 2's rows (the paper removes the components in turn):

    fcdfn       the full model (also Table 1's "Ours")
    no_fusion   Ihat_n + Ihat_f instead of the adaptive fusion
    no_saecnn   ... and the kernels in parallel, one layer (no SAECNN)
    no_flash    ... and the flash input replaced by the low-light input
"""
import argparse
import datetime
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from os import path as osp

import numpy as np
import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TABLE1_DIR = osp.join(REPO, 'options', 'table1')
RECORDS = osp.join(REPO, 'docs', 'tables_cpu')

#: Table 1 columns in the paper's order, with the paper's FAID scores (PSNR, SSIM, LPIPS).
TABLE1 = {
    'dsn': ('DSN', (19.14, 0.5266, 0.5530)),
    'frl': ('FRL', (18.07, 0.5931, 0.4909)),
    'djf': ('DJF', (20.94, 0.4321, 0.5072)),
    'cunet': ('CU-Net', (21.95, 0.6007, 0.5442)),
    'lsd2': ('LSD2', (22.34, 0.6058, 0.4095)),
    'deepfnf': ('deepFnF', (24.09, 0.6768, 0.3163)),
    'fcdfn': ('FCDFN (ours)', (25.10, 0.7050, 0.2834)),
}
#: Table 2 rows: changes to FCDFN's network_g, made in turn, with the paper's scores.
TABLE2 = {
    'fcdfn': ('FCDFN (full)', {}, (25.10, 0.7050, 0.2834)),
    'no_fusion': ('w/o adaptive fusion', {'fusion': 'add'}, (24.72, 0.7016, 0.2897)),
    'no_saecnn': ('w/o fusion, w/o SAECNN', {'fusion': 'add', 'kernel_mode': 'parallel'}, (24.29, 0.7005, 0.2990)),
    'no_flash': ('w/o fusion, SAECNN, flash', {'fusion': 'add', 'kernel_mode': 'parallel', 'use_flash': False},
                 (23.83, 0.6478, 0.3581)),
}
METHODS = list(TABLE1) + [m for m in TABLE2 if m not in TABLE1]
#: Each method's name in figures (Table 2's for FCDFN).
LABELS = {**{m: v[0] for m, v in TABLE1.items()}, **{m: v[0] for m, v in TABLE2.items()}}
METRICS = ('psnr', 'ssim', 'lpips')
#: The budget of every run of the tables (batch 8, the presets'); the sweep runs a quarter of it.
BUDGET = {'iters': 2000, 'crop': 48}
SWEEP_FRACTION = 0.25
#: The seed of the sweep runs (the first of the default seeds).
SWEEP_SEED = 10
#: Learning rates every Table 1 method is swept over (besides its official rate), Adam or its own optimiser.
SWEEP_RATES = (1e-4, 3e-4, 1e-3)
#: A run is converged when the last quarter of its schedule gains less than this (toy PSNR, dB); a swept
#: rate replaces the official one when it beats it by more than this.
CONVERGED_DB = 0.1
#: A table run diverged when a validation falls more than this below the best before it (toy PSNR, dB), and
#: its rate is then no rate for the tables (:func:`choose_rate`). Every run that trained on falls at most
#: 3.0 dB (deepFnF's noisy first validations); CU-Net's 16000-iteration run at 3e-4 fell 11 dB.
DIVERGED_DB = 5.0
#: Validations per run (the curve): every eighth of the schedule.
CURVE_POINTS = 8
#: A run saves its training state at least every this many minutes of its method's recorded speed
#: (:func:`checkpoint_interval`), so that the end of a session (:func:`park`) loses little of a long run.
SAVE_MINUTES = 15
#: A training run's progress is printed at each new validation and at least every this many minutes.
PROGRESS_MINUTES = 10


def method_options(method):
    """The options of a method at CPU scale (a dict): its Table 1 file, or FCDFN's with Table 2's changes."""
    name = method if method in TABLE1 else 'fcdfn'
    with open(osp.join(TABLE1_DIR, f'{name}_small.yml')) as handle:
        opt = yaml.safe_load(handle)
    if method in TABLE2:
        opt['network_g'] = {**opt['network_g'], **TABLE2[method][1]}
    return opt


def official_rate(method):
    return float(method_options(method)['train']['optim_g']['lr'])


def run_options(method, seed, iters, crop, lr):
    """Options of one run: the method's preset with this seed, length (milestones keep their place in
    the schedule), crop and rate; validation and a training state every eighth of the run (a run
    stopped by the end of a session resumes from its last state when run_tables is called again;
    :meth:`Runner.train` saves more often where the method is slow, :func:`checkpoint_interval`)."""
    opt = method_options(method)
    opt['manual_seed'] = seed
    opt['datasets']['train'].update(seed=seed, crop_size=crop)
    schedule = opt['train']
    fractions = [m / schedule['total_iter'] for m in schedule['scheduler']['milestones']]
    schedule['total_iter'] = iters
    schedule['scheduler']['milestones'] = [int(round(iters * f)) for f in fractions]
    schedule['optim_g']['lr'] = float(lr)
    opt['val']['val_freq'] = max(1, iters // CURVE_POINTS)
    opt['logger'].update(save_checkpoint_freq=opt['val']['val_freq'], print_freq=max(1, iters // (5 * CURVE_POINTS)))
    return opt


def checkpoint_interval(every, per_iteration):
    """Iterations between a run's saved training states: ``every`` (its validation interval), halved until one
    interval takes at most :data:`SAVE_MINUTES` at ``per_iteration`` minutes an iteration (the slowest recorded;
    None, not known yet: ``every``). FCDFN's 256000 saves every 4000 iterations instead of every 32000, which
    took 100 minutes."""
    while per_iteration and every > 1 and every * per_iteration > SAVE_MINUTES:
        every //= 2
    return every


def options_digest(opt):
    """A digest of what decides a run's result: model, network, exposure, training law and recipe."""
    train_data = {k: v for k, v in opt['datasets']['train'].items() if k not in ('dataroot', 'name')}
    key = {k: opt.get(k) for k in ('model_type', 'network_g', 'exposure', 'train')}
    key['train_data'] = train_data
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_name(method, seed, iters, crop, lr):
    return f'{method}_it{iters}_c{crop}_lr{lr:g}_s{seed}'


def curve_gain(curve, iters, since=0.75):
    """Toy PSNR gained over the end of the run: the last point minus the one at ``since`` of it (or before);
    the last quarter by default (the convergence criterion)."""
    points = sorted(zip(curve['iter'], curve['psnr']))
    before = [psnr for it, psnr in points if it <= since * iters]
    if not before:
        return None
    return points[-1][1] - before[-1]


def curve_fall(curve):
    """(best, its iteration, low, its iteration) of the deepest fall of a validation ``curve`` (toy PSNR) below
    the best before it; the fall is ``best - low`` (0 for a curve that never falls)."""
    best = (curve['psnr'][0], curve['iter'][0])
    deepest = (best, best)
    for point in zip(curve['psnr'], curve['iter']):
        best = max(best, point)
        if best[0] - point[0] > deepest[0][0] - deepest[1][0]:
            deepest = (best, point)
    (top, top_iter), (low, low_iter) = deepest
    return top, top_iter, low, low_iter


def diverged_rates(records, method, crop):
    """{rate: why} of the rates at which some table run of ``method`` diverged (:data:`DIVERGED_DB`)."""
    runs = [r for r in records.values()
            if r.get('method') == method and r.get('purpose') == 'table' and r['crop'] == crop]
    diverged = {}
    for record in sorted(runs, key=lambda r: (r['iters'], r['seed'])):  # a rate's first divergence names it
        top, top_iter, low, low_iter = curve_fall(record['curve'])
        if top - low > DIVERGED_DB:
            diverged.setdefault(record['lr'], f'{record["lr"]:g} diverged at {record["iters"]} iterations (seed '
                                              f'{record["seed"]}: {top:.2f} dB at {top_iter}, {low:.2f} at {low_iter})')
    return diverged


def choose_rate(method, records, sweep_iters, crop, seed):
    """(rate, why) for the table runs of ``method`` from its sweep records, or (None, what is missing).

    The official rate unless the best swept rate beats it by more than CONVERGED_DB (then the best), among the
    rates below every rate a table run of the method diverged at (:func:`diverged_rates`): a rate that blows up
    at some budget of the table cannot carry the method's row up its budget ladder, nor can a faster one."""
    official = official_rate(method)
    scores = {}
    for rate in sorted(set(SWEEP_RATES) | {official}):
        record = records.get(run_name(method, seed, sweep_iters, crop, rate))
        if record is None:
            return None, f'sweep run {run_name(method, seed, sweep_iters, crop, rate)} not done'
        scores[rate] = record['toy']['psnr']
    diverged = diverged_rates(records, method, crop)
    dropped = ''.join(f'; {diverged[rate]}' for rate in sorted(diverged))
    ceiling = min(diverged, default=np.inf)
    scores = {rate: psnr for rate, psnr in scores.items() if rate < ceiling}
    if not scores:
        return None, f'every swept rate diverged or is above one that did{dropped}'
    best = max(scores, key=scores.get)
    if official not in scores:
        return best, f'sweep: {best:g} ({scores[best]:.2f} dB), the best rate below every diverged one{dropped}'
    if scores[best] - scores[official] > CONVERGED_DB:
        return best, (f'sweep: {best:g} ({scores[best]:.2f} dB) beats the official {official:g} '
                      f'({scores[official]:.2f} dB){dropped}')
    return official, (f'official rate ({scores[official]:.2f} dB; best swept {best:g}: {scores[best]:.2f} dB)'
                      + dropped)


def sweep_rows(records, methods, sweep_iters, crop, seed):
    """Rows (method, official rate, {rate: toy PSNR}) of the rate sweep, from the records that exist."""
    rows = []
    for method in methods:
        if method not in TABLE1:
            continue
        official = official_rate(method)
        names = {rate: run_name(method, seed, sweep_iters, crop, rate) for rate in set(SWEEP_RATES) | {official}}
        scores = {rate: records[name]['toy']['psnr'] for rate, name in sorted(names.items()) if name in records}
        rows.append((method, official, scores))
    return rows


def record_scores(record, score_set):
    """A record's mean scores on ``score_set`` ('toy' or a real test folder's name), or None if not scored there."""
    return record['toy'] if score_set == 'toy' else record['real'].get(score_set)


def budget_pair(records, method, rate, iters, crop, seed):
    """The records of one seed's runs at ``iters`` and at ``2 * iters`` (same rate), or None if either is missing."""
    short, long = (records.get(run_name(method, seed, n, crop, rate)) for n in (iters, 2 * iters))
    return None if short is None or long is None else (short, long)


def budget_doubling(records, method, rate, iters, crop, seeds, score_set='toy'):
    """[(seed, PSNR at ``iters``, PSNR at ``2 * iters``)] for the seeds recorded at both budgets (same rate).

    The budget check: a method has converged at ``iters`` when doubling its schedule (the same recipe,
    milestones at the same fractions) gains less than :data:`CONVERGED_DB` of toy PSNR."""
    pairs = []
    for seed in seeds:
        runs = budget_pair(records, method, rate, iters, crop, seed)
        if runs is None:
            continue
        short, long = (record_scores(r, score_set) for r in runs)
        if short and long:
            pairs.append((seed, short['psnr'], long['psnr']))
    return pairs


def mean_gain(pairs):
    """The mean PSNR a doubling gained over ``pairs`` (:func:`budget_doubling`'s answer): the budget check's
    measure, converged when below :data:`CONVERGED_DB` on the toy set."""
    return float(np.mean([after - before for _, before, after in pairs]))


def budget_ladder(records, method, rate, iters, crop, seeds):
    """The budgets ``iters``, ``2 * iters``, ``4 * iters``, ... as far as some seed has been run at each
    doubling (same rate); [] when no seed has been run at ``2 * iters``. Each step is one budget check."""
    budgets = [iters]
    while any(budget_pair(records, method, rate, budgets[-1], crop, seed) for seed in seeds):
        budgets.append(2 * budgets[-1])
    return budgets if len(budgets) > 1 else []


def converged_budget(records, method, rate, iters, crop, seeds):
    """(budget, converged, why): the budget of ``method``'s row in the table at converged budgets.

    Climbs the budget ladder from ``iters`` (:func:`budget_ladder`): the first budget whose doubling gains less
    than :data:`CONVERGED_DB` toy PSNR (mean over the seeds run at both) is the row's, converged. If no step of
    the ladder converges, the row takes the ladder's top (its best-trained runs), not converged; without any
    budget check, ``iters``, unchecked (``converged`` None)."""
    ladder = budget_ladder(records, method, rate, iters, crop, seeds)
    if not ladder:
        return iters, None, f'no run at {2 * iters}: unchecked'
    for budget in ladder[:-1]:
        gain = mean_gain(budget_doubling(records, method, rate, budget, crop, seeds))
        if gain < CONVERGED_DB:
            return budget, True, f'{budget} -> {2 * budget}: {gain:+.2f} dB'
    return ladder[-1], False, f'{ladder[-2]} -> {ladder[-1]}: still {gain:+.2f} dB'


def minutes_per_iteration(records, method, crop, pick=min):
    """Training minutes per iteration of ``method`` at ``crop`` (FCDFN's for a Table 2 variant: the same network
    less a part, with runs at larger budgets), over its one-thread runs at the largest budget recorded (the
    per-run costs, validation and start, weigh least there): ``pick`` of them, the fastest for the todo's "at
    least" (a run on a slower or busier machine does not raise it), the slowest where a slow machine must not
    be underestimated (:func:`checkpoint_interval`); None without any run."""
    name = method if method in TABLE1 else 'fcdfn'
    runs = [r for r in records.values() if r.get('method') == name and r['crop'] == crop and r.get('threads', 1) == 1]
    if not runs:
        return None
    top = max(r['iters'] for r in runs)
    return float(pick(r['train_minutes'] / r['iters'] for r in runs if r['iters'] == top))


def next_runs(records, method, rate, iters, crop, seeds):
    """(iterations, seeds, why): the runs ``method``'s row at converged budgets lacks next, or None when it has
    them all. A Table 1 row climbs its budget ladder with one seed (the doubling of its top budget) until a
    doubling gains less than :data:`CONVERGED_DB`, then needs every seed at the converged budget. Table 2's
    variants run at FCDFN's converged budget, so they wait (iterations None) until FCDFN has one."""
    if method not in TABLE1:
        budget, converged, _ = converged_budget(records, 'fcdfn', rate, iters, crop, seeds)
        if not converged:
            return None, [], "waits for FCDFN's converged budget"
    else:
        budget, converged, why = converged_budget(records, method, rate, iters, crop, seeds)
        if not converged:
            ran = [s for s in seeds if run_name(method, s, budget, crop, rate) in records]
            if not ran:
                return budget, seeds[:1], f'no run at {budget} yet'
            return 2 * budget, ran[:1], f'budget check {budget} -> {2 * budget} ({why})'
    missing = [s for s in seeds if run_name(method, s, budget, crop, rate) not in records]
    return (budget, missing, f'the seeds of the row at {budget}') if missing else None


def least_runs(records, method, rate, iters, crop, seeds):
    """[(seed, iterations)]: the runs ``method``'s row at converged budgets still needs in the best case, where
    its next budget check converges (the doubling of its top budget gains less than :data:`CONVERGED_DB`): that
    check and every seed at the top budget. A lower bound on the row's cost (:func:`next_runs` gives the next
    step only). Table 2's variants need every seed at FCDFN's budget in FCDFN's best case."""
    if method not in TABLE1:
        budget, _, _ = converged_budget(records, 'fcdfn', rate, iters, crop, seeds)
        return [(seed, budget) for seed in seeds if run_name(method, seed, budget, crop, rate) not in records]
    budget, converged, _ = converged_budget(records, method, rate, iters, crop, seeds)
    ran = [seed for seed in seeds if run_name(method, seed, budget, crop, rate) in records]
    runs = [(seed, budget) for seed in seeds if seed not in ran]
    if not converged:
        runs.append(((ran or seeds)[0], 2 * budget))
    return runs


def training_minutes(records, crop):
    """Per (purpose, iterations) of the records at ``crop``: (runs, total minutes, {method: (min, max)})."""
    groups = {}
    for record in records.values():
        if record['crop'] == crop:
            groups.setdefault((record['purpose'], record['iters']), []).append(record)
    summary = {}
    for key, runs in sorted(groups.items(), key=lambda kv: (kv[0][0] != 'sweep', kv[0][1])):
        per_method = {}
        for record in runs:
            per_method.setdefault(record['method'], []).append(record['train_minutes'])
        summary[key] = (len(runs), sum(r['train_minutes'] for r in runs),
                        {m: (min(v), max(v)) for m, v in sorted(per_method.items(), key=lambda kv: -max(kv[1]))})
    return summary


def todo_rows(args, records, chosen):
    """The runs the tables at converged budgets still lack, one row per method (:func:`next_runs`): label,
    iterations, seeds, why, estimated minutes of those runs on one thread each, the least minutes to complete
    the row (:func:`least_runs`; the minutes None where unknown) and the command that runs the next runs."""

    def minutes(method, rate, runs):  # on one thread; a parked run resumes, so counts what it has left
        per_iteration = minutes_per_iteration(records, method, args.crop)
        if per_iteration is None:
            return None
        left = 0
        for seed, iters in runs:
            parked = parked_info(args.records, run_name(method, seed, iters, args.crop, rate))
            left += iters - (parked['iter'] if parked else 0)
        return per_iteration * left

    rows = []
    for method in args.methods:
        rate, _ = chosen[method]
        if rate is None:
            command = f'python tools/run_tables.py --phase sweep --methods {method} --threads 1'
            rows.append([LABELS[method], '', '', 'its rate sweep first', None, None, command])
            continue
        need = next_runs(records, method, rate, args.iters, args.crop, args.seeds)
        if need is None:
            continue
        least = minutes(method, rate, least_runs(records, method, rate, args.iters, args.crop, args.seeds))
        iters, seeds, why = need
        if iters is None:
            rows.append([LABELS[method], '', '', why, None, least, ''])
            continue
        for seed in seeds:
            parked = parked_info(args.records, run_name(method, seed, iters, args.crop, rate))
            if parked is not None:
                why += f'; seed {seed} parked at {parked["iter"]}'
        command = (f'python tools/run_tables.py --phase table --methods {method} --iters {iters} --seeds '
                   + ' '.join(map(str, seeds)) + ' --threads 1'
                   + (f' --real-test {args.real_test}' if args.real_test else ''))
        rows.append([LABELS[method], str(iters), ' '.join(map(str, seeds)), why,
                     minutes(method, rate, [(seed, iters) for seed in seeds]), least, command])
    return rows


def todo_text(rows):
    """The report's section on what the tables still need (``rows`` from :func:`todo_rows`)."""
    from fcdfn_plugin.utils.report import markdown_table

    if not rows:
        return '\n### What the tables still need\n\nNothing: every row has converged and has all its seeds.\n'
    least = sum(row[5] for row in rows if row[5] is not None)
    unknown = [row[0] for row in rows if row[5] is None]
    total = (f'In all at least {least:.0f} minutes of one core ({least / 120:.1f} hours on two cores)'
             + (f', besides {", ".join(unknown)}' if unknown else '') + ', if every next budget check converges; '
             'each check that does not adds a run of twice the budget and moves the row\'s seeds there.')
    return ('\n### What the tables still need\n\nThe next runs of each row at converged budgets (a row climbs its '
            'budget ladder with one seed, then needs every seed at its converged budget); minutes estimated from '
            'the method\'s recorded runs, one thread each (FCDFN\'s for a Table 2 variant); "least to '
            'finish": the row\'s runs if its next budget check converges (that check and every seed at its top '
            'budget; Table 2\'s variants every seed at FCDFN\'s). Records accumulate in docs/tables_cpu: run these '
            'on any machine, commit the records, and the tables complete a piece at a time.\n\n'
            + markdown_table(['method', 'iterations', 'seeds', 'why', 'minutes (est.)', 'least to finish (min)',
                              'command'],
                             [row[:4] + ['' if value is None else f'{value:.0f}' for value in row[4:6]]
                              + [f'`{row[6]}`' if row[6] else ''] for row in rows])
            + f'\n{total}\n')


#: Between these lines of a markdown file, ``--results`` writes the report (headings one level down).
RESULTS_BEGIN = '<!-- run_tables report: begin (written by tools/run_tables.py --results; edit outside) -->'
RESULTS_END = '<!-- run_tables report: end -->'
#: The report's figures, as copied next to the results file (figures/<name>).
RESULTS_FIGURES = {'validation_curves_converged.png': 'toy validation PSNR over the run at converged budgets, every '
                                                      'method (mean over seeds; log2 iteration axis)',
                   'validation_curves.png': 'toy validation PSNR over the run at the equal budget, every method '
                                            '(mean over seeds)',
                   'budget_check.png': 'the budget check: toy validation PSNR over each run of the ladder (log2 '
                                       'iteration axis; each run\'s end, the score compared, marked)',
                   'comparison_table1.png': 'every Table 1 system on four toy test scenes (first seed)'}


def splice_results(path, report, figures):
    """Replace the text between :data:`RESULTS_BEGIN` and :data:`RESULTS_END` of ``path`` by ``report`` (its
    headings one level down) and links to ``figures`` (names under ``figures/`` beside ``path``)."""
    with open(path) as handle:
        text = handle.read()
    if text.count(RESULTS_BEGIN) != 1 or text.count(RESULTS_END) != 1 or text.index(RESULTS_BEGIN) > text.index(
            RESULTS_END):
        raise ValueError(f'{path} must hold the lines {RESULTS_BEGIN!r} and {RESULTS_END!r} once each, in this '
                         'order: the report is written between them')
    body = report.replace('\n### ', '\n#### ').strip('\n')
    links = ''.join(f'\n\n![{RESULTS_FIGURES[name]}](figures/{name})' for name in figures)
    before, rest = text.split(RESULTS_BEGIN)
    after = rest.split(RESULTS_END)[1]
    with open(path, 'w') as handle:
        handle.write(f'{before}{RESULTS_BEGIN}\n\n{body}{links}\n\n{RESULTS_END}{after}')


#: Metrics where lower is better.
LOWER_IS_BETTER = ('lpips',)
#: The verdicts that judge an ordering (:func:`ordering_verdict`); 'too few seeds' and 'not converged'
#: (:func:`paper_orderings`) leave it unjudged.
JUDGED = ('holds', 'reversed', 'within spread')


def ordering_verdict(better, worse, metric):
    """Whether ``better`` beats ``worse`` on ``metric`` beyond the seed spread, as the paper says it does.

    ``better`` and ``worse`` are (mean, std, number of seeds). The difference of the means must exceed the
    sum of the two standard deviations: 'holds' (same direction as the paper), 'reversed' (the other way),
    'within spread', or 'too few seeds' (under 2 seeds on either side: no spread to compare with).
    Returns (verdict, difference in the paper's direction)."""
    (mean_b, std_b, n_b), (mean_w, std_w, n_w) = better, worse
    diff = (mean_w - mean_b) if metric in LOWER_IS_BETTER else (mean_b - mean_w)
    if min(n_b, n_w) < 2:
        return 'too few seeds', diff
    spread = std_b + std_w
    if diff > spread:
        return 'holds', diff
    if diff < -spread:
        return 'reversed', diff
    return 'within spread', diff


def paper_orderings(labels, stats, unsettled=()):
    """Every pair of methods the paper orders by PSNR, with our verdict per metric (:func:`ordering_verdict`).

    ``labels`` is TABLE1 or TABLE2 (their last item: the paper's PSNR, SSIM, LPIPS); ``stats`` maps method ->
    {metric: (mean, std)} and the number of seeds under key 'n'. A pair with a method of ``unsettled`` (rows
    whose budget has not converged: their scores are still rising) is not judged: 'not converged', whatever
    the seeds say. Rows: (better, worse, {metric: (verdict, difference)})."""
    present = [m for m in labels if m in stats]
    rows = []
    for i, a in enumerate(present):
        for b in present[i + 1:]:
            better, worse = (a, b) if labels[a][-1][0] > labels[b][-1][0] else (b, a)
            verdicts = {metric: ordering_verdict((*stats[better][metric], stats[better]['n']),
                                                 (*stats[worse][metric], stats[worse]['n']), metric)
                        for metric in METRICS}
            if better in unsettled or worse in unsettled:
                verdicts = {metric: ('not converged', diff) for metric, (_, diff) in verdicts.items()}
            rows.append((better, worse, verdicts))
    return rows


def load_records(folder):
    records = {}
    for path in sorted(glob.glob(osp.join(folder, '*.json'))):
        with open(path) as handle:
            records[osp.splitext(osp.basename(path))[0]] = json.load(handle)
    return records


def write_json(path, data):
    """``data`` as indented JSON, ending in a newline (records, parks, test sets, the tables)."""
    with open(path, 'w') as handle:
        json.dump(data, handle, indent=1)
        handle.write('\n')


def test_set_files(folder):
    """(name, path, image) for each file under a test folder, sorted: the name relative to it with '/', and a
    PNG's decoded pixels (None for other files and for a PNG that does not decode)."""
    import cv2
    for path in sorted(glob.glob(osp.join(folder, '**', '*'), recursive=True)):
        if osp.isfile(path):
            image = cv2.imread(path, cv2.IMREAD_UNCHANGED) if path.lower().endswith('.png') else None
            yield osp.relpath(path, folder).replace(os.sep, '/'), path, image


def test_set_digest(folder):
    """A digest of a test folder's contents (file names, decoded pixels, other files' bytes): a record keys its
    real scores by the folder's base name, and this tells two folders of the same name apart."""
    digest = hashlib.sha256()
    for name, path, image in test_set_files(folder):
        digest.update(name.encode())
        if image is not None:  # pixels, not the PNG's bytes: another encoder writes the same crops differently
            digest.update(image.tobytes())
        else:
            with open(path, 'rb') as handle:
                digest.update(handle.read())
    return digest.hexdigest()[:16]


TEST_SET_TOLERANCE = 1e-5  # largest difference of a projection (0-1 scale) between two preparations of one set
TEST_SET_PROJECTIONS = 8  # numbers per image in its fingerprint


def image_projections(image):
    """An image's mean (0-1 scale) and its means against 7 fixed pseudo-random +-1 patterns over its values (a
    hash of the value's index: the same on every machine). They move by the size of a change spread over the
    image, and carry no picture (no FAID crop is committed): the digest's tolerant counterpart."""
    values = image.astype(np.float64).ravel() / np.iinfo(image.dtype).max
    index = np.arange(values.size, dtype=np.uint64)
    projections = [values.mean()]
    for k in range(1, TEST_SET_PROJECTIONS):
        mixed = (index + np.uint64(k * 0x632BE59BD9B4E019 % 2**64)) * np.uint64(0x9E3779B97F4A7C15)  # wraps
        signs = 1.0 - 2.0 * ((mixed >> np.uint64(40)) & np.uint64(1)).astype(np.float64)
        projections.append((values * signs).mean())
    return [round(float(value), 9) for value in projections]


def test_set_fingerprint(folder):
    """What identifies a test folder across machines, where :func:`test_set_digest` tells bytes apart: per file,
    an image's shape and :func:`image_projections`, ``params.json``'s numbers, other files' sha256. The same
    preparation on another CPU differs in a few warped flash values (OpenCV dispatches ``warpPerspective`` by SIMD
    level: its AVX2 and SSE paths differ by up to 4 of 65535), which changes the digest but moves a projection by
    ~1e-7, inside :data:`TEST_SET_TOLERANCE`; another crop, scene or law does not."""
    files = {}
    for name, path, image in test_set_files(folder):
        if path.lower().endswith('.png'):
            if image is None:
                raise ValueError(f'{path}: not a readable PNG image')
            files[name] = {'shape': list(image.shape), 'projections': image_projections(image)}
        elif osp.basename(path) == 'params.json':
            with open(path) as handle:
                files[name] = {'params': json.load(handle)}
        else:
            with open(path, 'rb') as handle:
                files[name] = {'sha256': hashlib.sha256(handle.read()).hexdigest()}
    return files


def fingerprint_difference(expected, found):
    """None where two :func:`test_set_fingerprint` s are of one set, else the first difference, in words."""
    def numbers_differ(a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() != b.keys() or any(numbers_differ(a[k], b[k]) for k in a)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            return not np.isclose(a, b, rtol=1e-9, atol=1e-12)
        return a != b

    if expected.keys() != found.keys():
        missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
        return f'other files (missing: {", ".join(missing[:3]) or "none"}; extra: {", ".join(extra[:3]) or "none"})'
    for name in expected:
        a, b = expected[name], found[name]
        if 'projections' in a and 'projections' in b:
            if a['shape'] != b['shape']:
                return f'{name}: shape {b["shape"]}, not {a["shape"]}'
            gap = max(abs(x - y) for x, y in zip(a['projections'], b['projections']))
            if gap > TEST_SET_TOLERANCE:
                return f'{name}: its pixels differ (a projection by {gap:.2g}; tolerance {TEST_SET_TOLERANCE:g})'
        elif numbers_differ(a, b):
            return f'{name}: other contents'
    return None


def machine_note():
    """Which machine prepared a folder: its CPU (``fcdfn_plugin.utils.machine.cpu_note``) and the date."""
    from fcdfn_plugin.utils.machine import cpu_note

    return f'{cpu_note()}, {datetime.date.today().isoformat()}'


def test_set_file(records_dir, real_name=None):
    """Where a test set's fingerprint and digests are kept: ``test_sets/real_<name>.json`` for a real folder,
    ``test_sets/toy.json`` for the toy test set."""
    return osp.join(records_dir, 'test_sets', f'real_{real_name}.json' if real_name else 'toy.json')


def known_digests(path, folder, digest, write=True):
    """(digests, difference): the digests that are preparations of ``folder``'s set, and why the folder is not the
    set whose fingerprint is in ``path`` (None if it is). ``path`` (:func:`test_set_file`) is written on first use;
    a folder of a new digest whose fingerprint matches (the same preparation on another CPU) joins its digests, so
    records scored on any of them stay comparable."""
    if not osp.isfile(path):
        if write:
            os.makedirs(osp.dirname(path), exist_ok=True)
            write_json(path, {'fingerprint': test_set_fingerprint(folder), 'digests': {digest: machine_note()}})
            print(f'fingerprint of {folder} written to {path} (commit it with the records)')
        return {digest}, None
    with open(path) as handle:
        entry = json.load(handle)
    if digest in entry['digests']:
        return set(entry['digests']), None
    difference = fingerprint_difference(entry['fingerprint'], test_set_fingerprint(folder))
    if difference:
        return {digest}, f'its fingerprint is not the one in {path}: {difference}'
    if write:
        entry['digests'][digest] = machine_note()
        write_json(path, entry)
        print(f'{folder} is the set in {path} prepared on another machine (same fingerprint, digest {digest}): '
              'digest added (commit it with the records)')
    return set(entry['digests']) | {digest}, None


def real_set_name(folder):
    """The key of a real test folder's scores in a record: its base name (``test`` for ``.../faid_mini_c256/test``)."""
    return osp.basename(osp.normpath(folder))


def scored_elsewhere(records, real_name, digests):
    """The records whose scores on ``real_name`` were computed on another folder of that name (a digest not in
    ``digests``, the preparations of this folder's set); records from before digests were kept (none stored) are
    taken as they are."""
    return sorted(name for name, record in records.items() if real_name in record.get('real', {})
                  and record.get('real_digest', {}).get(real_name) not in {None, *digests})


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
    points = {}
    for log in logs:
        for metric, series in parse_train_log(log)['val'].items():
            points.setdefault(metric, {}).update(series)
    iters = sorted(points.get('psnr', {}))
    curve = {'iter': iters}
    curve.update({metric: [points.get(metric, {}).get(it) for it in iters] for metric in METRICS})
    return curve


class Progress:
    """Called while a run trains: prints its iteration, speed and newest toy validation from its BasicSR logs,
    at each new validation and at least every :data:`PROGRESS_MINUTES` (a table run takes hours, and its
    output goes to a log file)."""

    def __init__(self, out, name, iters, every_minutes=PROGRESS_MINUTES):
        self.out, self.name, self.iters, self.every = out, name, iters, every_minutes * 60
        self.first = None  # (time, iteration) of the first look that found one: the speed is this segment's
        self.validations = len(validation_curve(segment_logs(out, name))['iter'])
        self.printed = (time.time(), self.validations)

    def line(self):
        """The progress line now, or None before the run has logged an iteration."""
        from fcdfn_plugin.utils.report import parse_train_log
        logs = segment_logs(self.out, self.name)
        curve = validation_curve(logs)
        self.validations = len(curve['iter'])
        iteration = max((it for series in parse_train_log(logs[-1])['train'].values() for it, _ in series),
                        default=None) if logs else None
        if iteration is None:
            return None
        now = time.time()
        self.first = self.first or (now, iteration)
        text = f'{self.name}: iteration {iteration:,} of {self.iters:,}'
        seconds, done = now - self.first[0], iteration - self.first[1]
        if done > 0:
            left = (self.iters - iteration) * seconds / done
            text += f' ({seconds / done:.2f} s each, about {left / 3600:.1f} h left)'
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


def complexity_rows(methods, size=224):
    """method -> (parameters, GFLOPs at size x size), from tools/flops.py."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    from flops import complexity
    rows = {}
    for method in methods:
        params, flops = complexity(method_options(method)['network_g'], size, size)
        rows[method] = (params, flops / 1e9)
    return rows


def mean_std(values):
    return float(np.mean(values)), float(np.std(values))


def format_cell(stats, metric, seeds):
    """'mean +- std' of ``metric`` over ``seeds`` runs; the mean alone for one run (no spread to show)."""
    mean, std = stats[metric]
    digits = 2 if metric == 'psnr' else 3
    return f'{mean:.{digits}f}' + (f' +- {std:.{digits}f}' if seeds > 1 else '')


def references(test_dir, out_dir, threads):
    """Scores of the low-light input and the oracle global gain on a test folder (tools/evaluate.py)."""
    metrics_file = osp.join(out_dir, 'metrics.json')
    if not osp.isfile(metrics_file):
        os.makedirs(out_dir, exist_ok=True)
        run_tool(['tools/evaluate.py', '--test-dir', test_dir, '--out', out_dir, '--figure-scenes', '0',
                  '--overwrite'], osp.join(out_dir, 'evaluate.log'), threads)
    with open(metrics_file) as handle:
        return {label: entry['mean'] for label, entry in json.load(handle)['results'].items()}


def plot_curves(records_by_method, labels, out_path, budget='the same budget'):
    """Toy validation PSNR over the run for every method (mean over its seeds), Table 1 and Table 2; ``budget``
    names the runs' budget in the titles. Where every run has one length, a line marks its last quarter; where
    the lengths differ (converged budgets, 2000 to 128000), the iteration axis is logarithmic."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [('Table 1', [m for m in TABLE1 if m in records_by_method]),
              ('Table 2', [m for m in TABLE2 if m in records_by_method])]
    panels = [(title, methods) for title, methods in panels if methods]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for ax, (title, methods) in zip(axes[0], panels):
        lengths, first = set(), float('inf')
        for method in methods:
            runs = records_by_method[method]
            its = runs[0]['curve']['iter']
            psnr = np.mean([r['curve']['psnr'] for r in runs if r['curve']['iter'] == its], axis=0)
            ax.plot(its, psnr, marker='o', markersize=3,
                    label=f'{labels[method]} ({runs[0]["iters"]} it, {len(runs)} seed(s))')
            lengths.add(runs[0]['iters'])
            first = min(first, its[0])
        if len(lengths) == 1:
            ax.axvline(0.75 * lengths.pop(), color='grey', linewidth=0.8, linestyle='--')
        else:
            log2_iteration_axis(ax, first, max(lengths))
        ax.set_xlabel('iteration')
        ax.set_ylabel('toy test PSNR (dB)')
        ax.set_title(f'{title}: validation over the run, {budget}', fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


def budget_ticks(first, last, most=7):
    """Ticks of a log2 iteration axis from ``first`` to ``last``: 125 times the powers of two in that range, and
    where there are more than ``most``, every other one down from the largest (not crowded)."""
    ticks = [125 * 2**k for k in range(24) if first <= 125 * 2**k <= last]
    return ticks[::-2][::-1] if len(ticks) > most else ticks


def log2_iteration_axis(ax, first, last):
    """A log2 iteration axis from ``first`` to ``last`` (each doubling of a budget one step), ticked in thousands
    at :func:`budget_ticks`."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale('log', base=2)
    ax.xaxis.set_major_locator(FixedLocator(budget_ticks(first, last)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f'{x / 1000:g}k'))  # 16000 would crowd the axis


def plot_budget_check(curves, labels, out_path):
    """Toy validation PSNR over the run at each budget of the ladder, per method (the budget check).

    ``curves`` maps method -> [(seed, iters, curve)]; one panel per method, one line per run, its end (the
    score the check compares) marked. The iteration axis is logarithmic: each doubling of the budget is one
    step, and a ladder from 2000 to 128000 stays readable."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    columns = min(3, len(curves))
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), squeeze=False, sharey=True)
    for ax in axes.flat[len(curves):]:
        ax.set_visible(False)
    styles = ('-', '--', ':', '-.')
    for ax, (method, runs) in zip(axes.flat, curves.items()):
        budgets = sorted({iters for _, iters, _ in runs})
        for seed, iters, curve in runs:
            line, = ax.plot(curve['iter'], curve['psnr'], marker='o', markersize=3,
                            linestyle=styles[budgets.index(iters) % len(styles)], label=f'{iters} it, seed {seed}')
            ax.plot(curve['iter'][-1:], curve['psnr'][-1:], marker='D', markersize=6, color=line.get_color())
        ax.set_title(labels[method], fontsize=9)
        iterations = [it for _, _, curve in runs for it in curve['iter']]
        log2_iteration_axis(ax, min(iterations), max(iterations))
        ax.set_xlabel('iteration')
        ax.legend(fontsize=6)
    for ax in axes[:, 0]:
        ax.set_ylabel('toy test PSNR (dB)')
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


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
        opt['logger']['save_checkpoint_freq'] = checkpoint_interval(opt['logger']['save_checkpoint_freq'],
                                                                    per_iteration)
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


def choose_rates(args, records):
    """method -> (rate, why) for every method asked: :func:`choose_rate` on the sweep's records (FCDFN's sweep
    for Table 2's variants)."""
    return {m: choose_rate(m if m in TABLE1 else 'fcdfn', records, args.sweep_iters, args.crop, args.sweep_seed)
            for m in args.methods}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='tables_output', help='folder for runs, tables and figures')
    parser.add_argument('--records', default=RECORDS, help='folder of the per-run records (read and added to)')
    parser.add_argument('--phase', choices=('sweep', 'table', 'all'), default='all')
    parser.add_argument('--seeds', type=int, nargs='+', default=[10, 11, 12])
    parser.add_argument('--sweep-seed', type=int, default=SWEEP_SEED,
                        help='seed of the sweep runs, whatever --seeds is: one sweep chooses the rates of every '
                             'seed (so --seeds 11 12 finds the sweep of seed 10)')
    parser.add_argument('--iters', type=int, default=BUDGET['iters'], help='iterations per table run')
    parser.add_argument('--crop', type=int, default=BUDGET['crop'], help='training crop for every method')
    parser.add_argument('--sweep-iters', type=int, default=int(BUDGET['iters'] * SWEEP_FRACTION),
                        help='iterations of a sweep run (its records choose the rate at every --iters; '
                             'default: a quarter of the standard budget)')
    parser.add_argument('--methods', nargs='+', default=METHODS, choices=METHODS)
    parser.add_argument('--real-test', default=None,
                        help='prepared folder of real pairs (lq/, flash/, gt/) to score every table run on as well')
    parser.add_argument('--jobs', type=int, default=1, help='runs side by side')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads per run (default: all cores for one job, one each for several)')
    parser.add_argument('--report-only', action='store_true', help='run nothing: write the tables from the records')
    parser.add_argument('--park', action='store_true',
                        help='run nothing: copy the newest training state of each unfinished run under --out to '
                             '<records>/unfinished/ (commit it: another machine resumes the run from there)')
    parser.add_argument('--todo', action='store_true',
                        help='run nothing: print the runs the tables at converged budgets still lack, with commands')
    parser.add_argument('--results', default=None,
                        help='markdown file (docs/RESULTS.md) to write the report into, between its '
                             'run_tables report markers; its figures are copied to figures/ beside it')
    args = parser.parse_args()
    if args.real_test and not osp.isdir(osp.join(args.real_test, 'gt')):
        parser.error(f'--real-test {args.real_test!r} is not a prepared test folder (no gt/ inside); '
                     'prepare one with tools/prepare_faid.py --all-test')
    if args.results and not osp.isfile(args.results):
        parser.error(f'--results {args.results!r} does not exist')
    if args.iters < 4 * CURVE_POINTS:
        parser.error(f'--iters must be at least {4 * CURVE_POINTS} (a validation every eighth of the run)')

    import fcdfn_plugin  # noqa: F401
    from fcdfn_plugin.utils.pipeline import ensure_toy_dataset

    records = load_records(args.records)
    real_digest = test_set_digest(args.real_test) if args.real_test else None
    if args.real_test:  # before anything reads or adds real scores: one folder's scores per name
        real_name = real_set_name(args.real_test)
        digests, difference = known_digests(test_set_file(args.records, real_name), args.real_test, real_digest,
                                            write=not (args.todo or args.report_only))
        elsewhere = scored_elsewhere(records, real_name, digests)
        if elsewhere:
            sys.exit(f'error: records in {args.records} have scores on a folder named {real_name!r} other than '
                     f'--real-test {args.real_test} ({difference or "other contents"}): {", ".join(elsewhere)}. '
                     f'Rename one of the folders, or delete the "{real_name}" entry of their "real" scores to '
                     'score them again.')
    if args.todo:
        print(todo_text(todo_rows(args, records, choose_rates(args, records))))
        return
    if args.park:
        print('\n'.join(park(osp.abspath(args.out), args.records, records)
                        or [f'no unfinished runs under {args.out}']))
        return

    sweep_iters = args.sweep_iters
    threads = args.threads or (1 if args.jobs > 1 else (os.cpu_count() or 1))
    out = osp.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.makedirs(args.records, exist_ok=True)
    os.environ['FCDFN_ROOT'] = out  # experiments/ of every run under --out
    prepared = ensure_toy_dataset()
    toy_test = osp.join(prepared, 'test')
    _, difference = known_digests(test_set_file(args.records), toy_test, test_set_digest(toy_test),
                                  write=not args.report_only)
    if difference:  # records carry no toy digest: every toy score was made on the set committed there
        sys.exit(f'error: the toy test set {toy_test} is not the one the records in {args.records} were scored on '
                 f'({difference}). Delete datasets/toy_faid and datasets/toy_faid_prepared to build it again; if '
                 'the toy generator or the test law changed on purpose, the recorded toy scores are of the old set.')
    started = time.time()
    runner = Runner(out, args.records, records, prepared, args.crop, threads, args.real_test,
                    first_seed=args.seeds[0], started=started, real_digest=real_digest)
    real_name = runner.real_name

    def run_all(jobs):
        if not jobs:
            return
        print(f'{len(jobs)} runs, {args.jobs} at a time', flush=True)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(lambda job: runner.run(*job), jobs))

    table1_methods = [m for m in args.methods if m in TABLE1]
    if not args.report_only and args.phase in ('sweep', 'all'):
        rates = {m: sorted(set(SWEEP_RATES) | {official_rate(m)}) for m in table1_methods}
        run_all([(m, args.sweep_seed, sweep_iters, rate, 'sweep') for m in table1_methods for rate in rates[m]])
    chosen = choose_rates(args, records)
    if not args.report_only and args.phase in ('table', 'all'):
        waiting = [f'{m} ({why})' for m, (rate, why) in chosen.items() if rate is None]
        if waiting:  # asked for table runs that cannot run: an error, not a silent skip
            sys.exit(f'error: no learning rate yet for {"; ".join(waiting)}: run --phase sweep first '
                     f'(its runs are at --sweep-seed, {args.sweep_seed}), then the table runs')
        run_all([(m, seed, args.iters, chosen[m][0], 'table') for seed in args.seeds for m in args.methods])

    write_report(args, records, chosen, prepared, out, real_name, started)


def write_report(args, records, chosen, prepared, out, real_name, started):
    """The tables, budget check, sweep, training time and learning rates from the records alone: ``tables.md``,
    ``tables.json``, the figures under ``out``, and with ``--results`` the report spliced into that file."""
    import cv2

    from fcdfn_plugin.utils.report import comparison_grid, markdown_table, read_image_bgr8

    sweep_iters = args.sweep_iters

    def runs_at(method, iters):
        """The recorded runs of ``method`` at ``iters`` iterations and its chosen rate, over the seeds."""
        names = (run_name(method, seed, iters, args.crop, chosen[method][0]) for seed in args.seeds)
        return [records[name] for name in names if name in records]

    table_runs = {m: runs_at(m, args.iters) for m in args.methods if chosen[m][0] is not None}
    table_runs = {m: runs for m, runs in table_runs.items() if runs}

    def row_budget(method):
        """A method's budget in the tables at converged budgets: its own (converged_budget) in Table 1; FCDFN's
        for Table 2's variants, so that the ablation compares one model at one budget."""
        if method in TABLE1:
            return converged_budget(records, method, chosen[method][0], args.iters, args.crop, args.seeds)
        budget, converged, why = converged_budget(records, 'fcdfn', chosen[method][0], args.iters, args.crop,
                                                  args.seeds)
        return budget, converged, f"FCDFN's: {why}"

    # Each method at its converged budget: the tables the comparison is read from.
    at_budget = {m: row_budget(m) for m in args.methods if chosen[m][0] is not None}
    converged_runs = {m: runs_at(m, budget) for m, (budget, _, _) in at_budget.items()}
    converged_runs = {m: runs for m, runs in converged_runs.items() if runs}
    sets = ['toy'] + ([real_name] if args.real_test else [])
    size = complexity_rows(sorted(set(table_runs) | set(converged_runs)))
    threads_ref = os.cpu_count() or 1
    refs = {'toy': references(osp.join(prepared, 'test'), osp.join(out, 'references_toy'), threads_ref)}
    if args.real_test:
        refs[real_name] = references(args.real_test, osp.join(out, f'references_{real_name}'), threads_ref)
    set_names = {'toy': 'toy test set (24 scenes, 128x128)', real_name: f'real pairs ({args.real_test})'}

    def summarize(runs_by_method):
        """method -> score set -> ({metric: (mean, std)}, seeds scored there)."""
        summary = {}
        for method, runs in runs_by_method.items():
            summary[method] = {}
            for s in sets:
                scored = [x for x in (record_scores(r, s) for r in runs) if x]
                if scored:
                    summary[method][s] = ({m: mean_std([x[m] for x in scored]) for m in METRICS}, len(scored))
        return summary

    def tables_text(title, runs_by_method, budgets=None):
        """Table 1 and Table 2 on every score set, then the paper's orderings judged on them: (text, orderings,
        summary). With ``budgets`` (method -> converged_budget's answer) each row says its budget and verdict."""
        summary = summarize(runs_by_method)
        text, orderings = [], {}
        # At converged budgets a row still climbing (or unchecked) has no final score to order.
        unsettled = {m for m, (_, converged, _) in (budgets or {}).items() if not converged}
        for table, labels in (('Table 1', TABLE1), ('Table 2', TABLE2)):
            rows = [m for m in labels if m in args.methods]
            if not rows:
                continue
            for s in sets:
                header = (['method'] + (['iterations', 'budget check'] if budgets is not None else [])
                          + ['PSNR', 'SSIM', 'LPIPS', 'seeds', 'converged', 'last 1/4 \\| 1/8 (dB)', 'rate',
                             'params (M)', 'GFLOPs 224x224', 'paper PSNR / SSIM / LPIPS'])
                lines = []
                for m in rows:
                    paper = ' / '.join(map(str, labels[m][-1]))
                    rate = '' if chosen[m][0] is None else f'{chosen[m][0]:g}'
                    budget = ([] if budgets is None else [str(budgets[m][0]), budgets[m][2]] if m in budgets
                              else ['', 'no rate yet'])
                    if m not in summary or s not in summary[m]:
                        lines.append([labels[m][0]] + budget + ['pending', '', '', f'0/{len(args.seeds)}', '', '',
                                                                rate, '', '', paper])
                        continue
                    stats, count = summary[m][s]
                    runs = runs_by_method[m]
                    converged = sum(bool(r.get('converged')) for r in runs)
                    gains = [np.mean([curve_gain(r['curve'], r['iters'], since) for r in runs])
                             for since in (0.75, 0.875)]
                    lines.append([labels[m][0]] + budget + [format_cell(stats, metric, count) for metric in METRICS]
                                 + [f'{count}/{len(args.seeds)}', f'{converged}/{len(runs)}',
                                    f'{gains[0]:+.2f} \\| {gains[1]:+.2f}', rate,
                                    f'{size[m][0] / 1e6:.3f}', f'{size[m][1]:.2f}', paper])
                for label, scores in refs[s].items():
                    lines.append([label] + [''] * (0 if budgets is None else 2)
                                 + [f'{scores["psnr"]:.2f}', f'{scores["ssim"]:.3f}', f'{scores["lpips"]:.3f}']
                                 + [''] * 7)
                text.append(f'\n### {table}{title}, {set_names[s]}\n\n' + markdown_table(header, lines))
        for table, labels in (('Table 1', TABLE1), ('Table 2', TABLE2)):
            for s in sets:
                stats = {m: {**summary[m][s][0], 'n': summary[m][s][1]} for m in labels
                         if m in args.methods and s in summary.get(m, {})}
                rows = paper_orderings(labels, stats, unsettled)
                if not rows:
                    continue
                orderings[f'{table}, {s}'] = [{'better': b, 'worse': w, **{k: list(v) for k, v in verdicts.items()}}
                                              for b, w, verdicts in rows]
                psnr = [verdicts['psnr'][0] for _, _, verdicts in rows]
                judged = sum(v in JUDGED for v in psnr)
                text.append(f'\n### Paper orderings, {table}{title}, {set_names[s]}: {psnr.count("holds")} of '
                            f'{len(rows)} hold in PSNR ({judged} judged)\n\nEach pair the paper orders (better '
                            'first), our difference in the paper\'s direction (positive: as the paper) and whether '
                            'it exceeds the sum of the two seed spreads; not judged: a side with under 2 seeds'
                            + (' or a row whose budget has not converged (still climbing or unchecked)'
                               if budgets is not None else '') + '.\n\n'
                            + markdown_table(['paper: better > worse'] + [metric.upper() for metric in METRICS],
                                             [[f'{labels[b][0]} > {labels[w][0]}']
                                              + [f'{verdicts[metric][1]:+.3f} {verdicts[metric][0]}'
                                                 for metric in METRICS] for b, w, verdicts in rows]))
        return text, orderings, summary

    minutes = training_minutes(records, args.crop)
    train_minutes = sum(total for _, total, _ in minutes.values())
    text = [f'Each method with its own recipe and the rate of the sweep ({sweep_iters} iterations), crop '
            f'{args.crop}, batch 8, seeds {args.seeds}; mean +- std over seeds. Two sets of tables: first each '
            f'method at its converged budget (the budget check below: the first budget from {args.iters} whose '
            f'doubling gains < {CONVERGED_DB} dB toy PSNR, else the largest budget run, marked "still"), then '
            f'every method at {args.iters} iterations. "converged": runs whose last quarter gained < '
            f'{CONVERGED_DB} dB toy PSNR / runs; "last 1/4 \\| 1/8": the mean toy PSNR gained over the last '
            f'quarter and eighth of the runs. Training time of all recorded runs: {train_minutes:.0f} min.\n']
    converged_text, converged_orderings, converged_summary = tables_text(' at converged budgets', converged_runs,
                                                                         at_budget)
    budget_text, orderings, summary = tables_text(f' at {args.iters} iterations', table_runs)
    text += converged_text + budget_text
    doubling_rows, doubling, doubling_curves = [], {}, {}
    for method in args.methods:
        rate = chosen[method][0]
        ladder = [] if rate is None else budget_ladder(records, method, rate, args.iters, args.crop, args.seeds)
        if not ladder:
            continue
        doubling[method], curves = [], {}
        for iters in ladder[:-1]:
            pairs = {s: budget_doubling(records, method, rate, iters, args.crop, args.seeds, s) for s in sets}
            if not pairs['toy']:
                continue
            gains = {s: mean_gain(p) for s, p in pairs.items() if p}
            verdict = 'converged' if gains['toy'] < CONVERGED_DB else 'not converged'
            doubling[method].append({'iters': iters, 'seeds': [seed for seed, _, _ in pairs['toy']],
                                     'gain_db': gains, 'verdict': verdict})
            for seed, _, _ in pairs['toy']:
                for n, record in zip((iters, 2 * iters), budget_pair(records, method, rate, iters, args.crop, seed)):
                    curves[seed, n] = record['curve']
            before = [records[name]['toy']['psnr'] for name in
                      (run_name(method, seed, iters, args.crop, rate) for seed in args.seeds) if name in records]
            doubling_rows.append([LABELS[method], f'{iters} -> {2 * iters}',
                                  ' '.join(str(seed) for seed, _, _ in pairs['toy']),
                                  ' '.join(f'{a:.2f}' for _, a, _ in pairs['toy']),
                                  ' '.join(f'{b:.2f}' for _, _, b in pairs['toy'])]
                                 + [f'{gains[s]:+.2f}' if s in gains else '' for s in sets]
                                 + [f'{np.std(before):.2f} ({len(before)})' if len(before) > 1 else '', verdict])
        if curves:
            doubling_curves[method] = [(seed, n, curve) for (seed, n), curve in sorted(curves.items())]
    if doubling_rows:
        text.append(f'\n### Budget check: each budget from {args.iters} iterations against twice that\n\n'
                    f'The same recipe, rate and seed at twice the budget (milestones at the same fractions). '
                    f'Converged at a budget: doubling it gains < {CONVERGED_DB} dB toy PSNR. "seed std": the '
                    'spread of toy PSNR over the seeds run at the smaller budget (their count), the scale of '
                    'one seed\'s gain.\n\n'
                    + markdown_table(['method', 'iterations', 'seeds', 'toy PSNR before', 'after']
                                     + [f'gain, {"toy" if s == "toy" else "real"} (dB)' for s in sets]
                                     + ['seed std before (toy)', 'verdict'],
                                     doubling_rows))
    text.append(todo_text(todo_rows(args, records, chosen)))
    sweep = sweep_rows(records, args.methods, sweep_iters, args.crop, args.sweep_seed)
    if sweep:
        rates = sorted({rate for _, _, scores in sweep for rate in scores})
        text.append(f'\n### Rate sweep: toy PSNR after {sweep_iters} iterations (seed {args.sweep_seed}; '
                    'official rate in bold)\n\n' + markdown_table(
                        ['method'] + [f'{rate:g}' for rate in rates],
                        [[TABLE1[m][0]] + [('' if rate not in scores else
                                            f'**{scores[rate]:.2f}**' if rate == official else f'{scores[rate]:.2f}')
                                           for rate in rates] for m, official, scores in sweep]))
    text.append('\n### Training time\n\nMinutes of training of the recorded runs at crop '
                f'{args.crop} (one thread each unless the record says otherwise; two runs side by side), '
                'per method the shortest and longest run (scoring on the real pairs adds 1-2 min a run).\n\n'
                + markdown_table(['runs', 'iterations', 'count', 'minutes', 'per method (min)'],
                                 [[purpose, str(iters), str(count), f'{total:.0f}',
                                   ', '.join(f'{LABELS.get(m, m)} {lo:.0f}'
                                             + ('' if round(hi) == round(lo) else f'-{hi:.0f}')
                                             for m, (lo, hi) in per_method.items())]
                                  for (purpose, iters), (count, total, per_method) in minutes.items()]))
    text.append('\n### Learning rates\n\n' + markdown_table(
        ['method', 'official', 'table', 'why'],
        [[m, f'{official_rate(m if m in TABLE1 else "fcdfn"):g}', '' if chosen[m][0] is None else f'{chosen[m][0]:g}',
          chosen[m][1]] for m in args.methods]))
    with open(osp.join(out, 'tables.md'), 'w') as handle:
        handle.write(''.join(text))
    write_json(osp.join(out, 'tables.json'), {
        'iters': args.iters, 'crop': args.crop, 'seeds': args.seeds, 'sweep_iters': sweep_iters,
        'real_test': args.real_test, 'complexity': size, 'references': refs,
        'rates': {m: {'rate': r, 'why': why} for m, (r, why) in chosen.items()},
        'orderings': orderings, 'budget_doubling': doubling,
        'results': {m: {s: {'mean_std': v[0], 'runs': v[1]} for s, v in summary[m].items()} for m in summary},
        'converged': {'budgets': {m: {'iters': b, 'converged': c, 'why': why} for m, (b, c, why) in at_budget.items()},
                      'orderings': converged_orderings,
                      'results': {m: {s: {'mean_std': v[0], 'runs': v[1]} for s, v in converged_summary[m].items()}
                                  for m in converged_summary}}})
    print(''.join(text), flush=True)
    written = set()  # the figures of this call with every row they should show (--results copies only these)
    for runs_by_method, name, budget in ((converged_runs, 'validation_curves_converged.png', 'converged budgets'),
                                         (table_runs, 'validation_curves.png', f'{args.iters} iterations')):
        if runs_by_method:
            plot_curves(runs_by_method, LABELS, osp.join(out, name), budget)
            written.add(name)
            print(f'Validation curves at {budget}: {osp.join(out, name)}', flush=True)
    if doubling_curves:
        plot_budget_check(doubling_curves, LABELS, osp.join(out, 'budget_check.png'))
        written.add('budget_check.png')
        print(f'Budget check: {osp.join(out, "budget_check.png")}', flush=True)

    seed = args.seeds[0]
    test_dir = osp.join(prepared, 'test')
    keys = [osp.splitext(osp.basename(p))[0] for p in sorted(glob.glob(osp.join(test_dir, 'gt', '*.png')))][:4]
    for table, labels in (('table1', TABLE1), ('table2', TABLE2)):
        shown = []
        for method in labels:
            if method in table_runs:
                folder = osp.join(out, 'experiments', run_name(method, seed, args.iters, args.crop, chosen[method][0]),
                                  'visualization')
                if osp.isdir(folder):
                    shown.append((method, folder))
        if not shown:
            continue
        grid = []
        for key in keys:
            cells = [read_image_bgr8(osp.join(test_dir, role, f'{key}.png')) for role in ('lq', 'flash')]
            for _, folder in shown:  # the last validation's image of this scene
                cells.append(read_image_bgr8(max(glob.glob(osp.join(folder, key, f'{key}_*.png')), key=osp.getmtime)))
            cells.append(read_image_bgr8(osp.join(test_dir, 'gt', f'{key}.png')))
            grid.append(cells)
        figure = osp.join(out, f'comparison_{table}.png')
        cv2.imwrite(figure, comparison_grid(grid, ['low-light', 'flash'] + [labels[m][0] for m, _ in shown]
                                            + ['ground truth']))
        complete = len(shown) == sum(method in table_runs for method in labels)
        if complete:
            written.add(osp.basename(figure))
        missing = '' if complete else ' (not every row: this machine lacks the images of the others)'
        print(f'Comparison figure: {figure}{missing}', flush=True)
    if args.results:
        folder = osp.join(osp.dirname(osp.abspath(args.results)), 'figures')
        os.makedirs(folder, exist_ok=True)
        for name in sorted(written & set(RESULTS_FIGURES)):
            shutil.copyfile(osp.join(out, name), osp.join(folder, name))
        # linked: those just copied and those an earlier call left (a comparison figure made where the images were)
        figures = [name for name in RESULTS_FIGURES if osp.isfile(osp.join(folder, name))]
        splice_results(args.results, ''.join(text), figures)
        print(f'Report written into {args.results}; figures copied to {folder}', flush=True)
    print(f'Tables: {osp.join(out, "tables.md")} and tables.json; {(time.time() - started) / 60:.1f} min')


if __name__ == '__main__':
    main()
