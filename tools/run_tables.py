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
run or more often (:func:`bounded_interval`), when it is asked for again with the same ``--out``;
``--park`` copies that state into the records folder (``unfinished/<run>/``, committed), so that the run
resumes on another machine. The tables and figures are written from the records alone: rows with missing
seeds say so. While a run trains, its iteration, speed and newest toy validation are printed at each
validation and every :data:`PROGRESS_MINUTES` (:class:`Progress`; BasicSR logs a training line at least
every :data:`LOG_MINUTES` at the method's recorded speed). ``--todo`` prints what the tables at
converged budgets still lack (:func:`next_runs`): per row the next runs, their estimated minutes (less where
a run is parked, or has gone further under ``--out`` on this machine) and the command that runs them.

    python tools/prepare_faid.py --faid-root ../shared/faid_mini --out datasets/faid_mini_c256 --all-test \\
        --test-crop 256 --opt options/fcdfn_demo.yml
    python tools/run_tables.py --real-test datasets/faid_mini_c256/test [--phase sweep|table|all] \\
        [--methods fcdfn deepfnf ...] [--seeds 10 11 12] [--jobs 2] [--out tables_output]
    python tools/run_tables.py --todo --real-test datasets/faid_mini_c256/test
    python tools/run_tables.py --park --out tables_output   # before the machine goes: then commit docs/tables_cpu

Writes ``<out>/tables.md``, ``tables.json``, ``validation_curves_converged.png`` and ``validation_curves.png``
(toy PSNR over the run, every method, at converged budgets and at ``--iters``), ``budget_check.png`` and
``comparison_table1.png`` / ``comparison_table2.png`` (toy test scenes, first seed, where this machine ran it).

This file is the command line; the functions and constants named here live in ``tools/table_runs/`` (recipes,
ladder, store, experiments, runner, todo, report, figures: its ``__init__`` says which is where).

Table 2's rows (the paper removes the components in turn):

    fcdfn       the full model (also Table 1's "Ours")
    no_fusion   Ihat_n + Ihat_f instead of the adaptive fusion
    no_saecnn   ... and the kernels in parallel, one layer (no SAECNN)
    no_flash    ... and the flash input replaced by the low-light input
"""
import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from os import path as osp

from table_runs.experiments import park
from table_runs.ladder import choose_rate
from table_runs.recipes import (BUDGET, CURVE_POINTS, METHODS, RECORDS, SWEEP_FRACTION, SWEEP_RATES, SWEEP_SEED,
                                TABLE1, official_rate, trained_as)
from table_runs.report import write_report
from table_runs.runner import Runner
from table_runs.store import (known_digests, load_records, real_set_name, scored_elsewhere, test_set_digest,
                              test_set_file)
from table_runs.todo import todo_rows, todo_text


def choose_rates(args, records):
    """method -> (rate, why) for every method asked: :func:`choose_rate` on the sweep's records (FCDFN's sweep
    for Table 2's variants)."""
    return {m: choose_rate(trained_as(m), records, args.sweep_iters, args.crop, args.sweep_seed)
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
        print(todo_text(todo_rows(args, records, choose_rates(args, records), out=args.out)))
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


if __name__ == '__main__':
    main()
