"""What the tables at converged budgets still need: per row its next runs, their minutes and the command."""
from os import path as osp

from .experiments import parked_info, resume_point, segment_logs
from .ladder import least_runs, minutes_per_iteration, next_runs
from .recipes import LABELS, run_name, run_options, trained_as


def reached(args, method, seed, iters, rate, out=None):
    """(iteration, where) an unfinished run resumes from: its park in ``args.records`` or, with ``out``, its own
    state there (a run in flight on this machine), whichever is further; (0, None) for a run not started."""
    name = run_name(method, seed, iters, args.crop, rate)
    found = [(0, None)]
    parked = parked_info(args.records, name)
    if parked is not None:
        found.append((parked['iter'], f'parked at {parked["iter"]}'))
    run_path = osp.join(out, 'experiments', name) if out else None
    if run_path and osp.isdir(run_path):
        val_freq = run_options(method, seed, iters, args.crop, rate)['val']['val_freq']
        iteration, _ = resume_point(run_path, segment_logs(out, name), val_freq)
        found.append((iteration, f'at {iteration} under {out} (not parked)'))
    return max(found, key=lambda point: point[0])


def todo_rows(args, records, chosen, out=None):
    """The runs the tables at converged budgets still lack, one row per method (:func:`next_runs`): label,
    iterations, seeds, why, estimated minutes of those runs on one thread each, the least minutes to complete
    the row (:func:`least_runs`; the minutes None where unknown) and the command that runs the next runs. A run
    begun (:func:`reached`: parked, or with ``out``, this machine's runs folder, for ``--todo``; not in the
    committed report) counts what it has left."""

    def minutes(method, rate, runs):  # on one thread
        per_iteration = minutes_per_iteration(records, method, args.crop)
        if per_iteration is None:
            return None
        return per_iteration * sum(iters - reached(args, method, seed, iters, rate, out)[0] for seed, iters in runs)

    rows = []
    for method in args.methods:
        rate, _ = chosen[method]
        if rate is None:  # a Table 2 variant takes FCDFN's rate: the sweep to run is FCDFN's
            swept = trained_as(method)
            command = f'python tools/run_tables.py --phase sweep --methods {swept} --threads 1'
            why = 'its rate sweep first' if swept == method else "FCDFN's rate sweep first"
            rows.append([LABELS[method], '', '', why, None, None, command])
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
            iteration, where = reached(args, method, seed, iters, rate, out)
            if iteration:
                why += f'; seed {seed} {where}'
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
             'each check that does not adds a run of twice the budget and moves the row\'s seeds there. '
             'A check gates its row\'s seeds (FCDFN\'s also gates Table 2\'s runs): side by side, run the checks '
             'first, the longest first, so that no core waits at the end.')
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
