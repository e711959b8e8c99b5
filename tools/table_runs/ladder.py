"""The decisions read from the records alone: when a run has converged, which rate a method's row uses (the
sweep), and how far its budget ladder has climbed (each doubling of the budget one check)."""
import numpy as np

from .recipes import SWEEP_RATES, TABLE1, official_rate, run_name, trained_as

#: A run is converged when the last quarter of its schedule gains less than this (toy PSNR, dB); a swept
#: rate replaces the official one when it beats it by more than this.
CONVERGED_DB = 0.1
#: A table run diverged when a validation falls more than this below the best before it (toy PSNR, dB), and
#: its rate is then no rate for the tables (:func:`choose_rate`). Every run that trained on falls at most
#: 3.0 dB (deepFnF's noisy first validations); CU-Net's 16000-iteration run at 3e-4 fell 11 dB.
DIVERGED_DB = 5.0


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


def row_budget(records, method, rate, iters, crop, seeds):
    """(budget, converged, why) of ``method``'s row in the tables at converged budgets: its own
    (:func:`converged_budget`) for a Table 1 method; FCDFN's for a Table 2 variant, so that the ablation compares
    one model at one budget (``why`` then says so)."""
    if method in TABLE1:
        return converged_budget(records, method, rate, iters, crop, seeds)
    budget, converged, why = converged_budget(records, 'fcdfn', rate, iters, crop, seeds)
    return budget, converged, f"FCDFN's: {why}"


def minutes_per_iteration(records, method, crop, pick=min):
    """Training minutes per iteration of ``method`` at ``crop`` (FCDFN's for a Table 2 variant: the same network
    less a part, with runs at larger budgets), over its one-thread runs at the largest budget recorded (the
    per-run costs, validation and start, weigh least there): ``pick`` of them, the fastest for the todo's "at
    least" (a run on a slower or busier machine does not raise it), the slowest where a slow machine must not
    be underestimated (:func:`bounded_interval`); None without any run."""
    name = trained_as(method)
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
    budget, converged, why = row_budget(records, method, rate, iters, crop, seeds)
    if not converged:
        if method not in TABLE1:
            return None, [], "waits for FCDFN's converged budget"
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
    budget, converged, _ = row_budget(records, method, rate, iters, crop, seeds)
    ran = [seed for seed in seeds if run_name(method, seed, budget, crop, rate) in records]
    runs = [(seed, budget) for seed in seeds if seed not in ran]
    if not converged and method in TABLE1:  # a variant's budget is FCDFN's: no check of its own
        runs.append(((ran or seeds)[0], 2 * budget))
    return runs
