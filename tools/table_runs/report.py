"""The report, written from the records alone: Table 1 and Table 2 (at converged budgets and at the standard
one) on every score set, the paper's orderings judged against the seed spread, the budget check, the todo, the
rate sweep, training time and learning rates; ``tables.md``, ``tables.json``, the figures, and the report spliced
into ``docs/RESULTS.md``."""
import glob
import json
import os
import shutil
import time
from os import path as osp

import numpy as np

from .figures import plot_budget_check, plot_curves
from .ladder import (CONVERGED_DB, budget_doubling, budget_ladder, budget_pair, curve_gain, mean_gain,
                     record_scores, row_budget, sweep_rows)
from .recipes import LABELS, METRICS, TABLE1, TABLE2, method_options, official_rate, run_name, trained_as
from .runner import run_tool
from .store import write_json
from .todo import todo_rows, todo_text

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


def complexity_rows(methods, size=224):
    """method -> (parameters, GFLOPs at size x size), from tools/flops.py (beside this package)."""
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


class Report:
    """The report of the records at hand (one per call of ``run_tables``): which runs make each row, at the
    standard budget (``args.iters``) and at converged budgets, their scores on every score set, and the text
    and figures made from them (:func:`write_report`)."""

    def __init__(self, args, records, chosen, prepared, out, real_name):
        self.args, self.records, self.chosen, self.prepared, self.out = args, records, chosen, prepared, out
        rated = [m for m in args.methods if chosen[m][0] is not None]
        self.table_runs = self.present({m: self.runs_at(m, args.iters) for m in rated})
        # Each method at its converged budget: the tables the comparison is read from.
        self.at_budget = {m: row_budget(records, m, chosen[m][0], args.iters, args.crop, args.seeds) for m in rated}
        self.converged_runs = self.present({m: self.runs_at(m, budget) for m, (budget, _, _) in self.at_budget.items()})
        self.sets = ['toy'] + ([real_name] if args.real_test else [])
        self.set_names = {'toy': 'toy test set (24 scenes, 128x128)', real_name: f'real pairs ({args.real_test})'}
        self.size = complexity_rows(sorted(set(self.table_runs) | set(self.converged_runs)))
        threads = os.cpu_count() or 1
        self.refs = {'toy': references(osp.join(prepared, 'test'), osp.join(out, 'references_toy'), threads)}
        if args.real_test:
            self.refs[real_name] = references(args.real_test, osp.join(out, f'references_{real_name}'), threads)

    @staticmethod
    def present(runs_by_method):
        return {m: runs for m, runs in runs_by_method.items() if runs}

    def runs_at(self, method, iters):
        """The recorded runs of ``method`` at ``iters`` iterations and its chosen rate, over the seeds."""
        names = (run_name(method, seed, iters, self.args.crop, self.chosen[method][0]) for seed in self.args.seeds)
        return [self.records[name] for name in names if name in self.records]

    def summarize(self, runs_by_method):
        """method -> score set -> ({metric: (mean, std)}, seeds scored there)."""
        summary = {}
        for method, runs in runs_by_method.items():
            summary[method] = {}
            for s in self.sets:
                scored = [x for x in (record_scores(r, s) for r in runs) if x]
                if scored:
                    summary[method][s] = ({m: mean_std([x[m] for x in scored]) for m in METRICS}, len(scored))
        return summary

    def table_rows(self, labels, score_set, runs_by_method, summary, budgets):
        """The rows of one table on one score set: each method (pending where it has no run scored there), then
        the references (the input, the oracle gain)."""
        seeds, lines = len(self.args.seeds), []
        for m in [m for m in labels if m in self.args.methods]:
            paper = ' / '.join(map(str, labels[m][-1]))
            rate = '' if self.chosen[m][0] is None else f'{self.chosen[m][0]:g}'
            budget = ([] if budgets is None else [str(budgets[m][0]), budgets[m][2]] if m in budgets
                      else ['', 'no rate yet'])
            if score_set not in summary.get(m, {}):
                lines.append([labels[m][0]] + budget + ['pending', '', '', f'0/{seeds}', '', '', rate, '', '', paper])
                continue
            stats, count = summary[m][score_set]
            runs = runs_by_method[m]
            converged = sum(bool(r.get('converged')) for r in runs)
            gains = [np.mean([curve_gain(r['curve'], r['iters'], since) for r in runs]) for since in (0.75, 0.875)]
            lines.append([labels[m][0]] + budget + [format_cell(stats, metric, count) for metric in METRICS]
                         + [f'{count}/{seeds}', f'{converged}/{len(runs)}', f'{gains[0]:+.2f} \\| {gains[1]:+.2f}',
                            rate, f'{self.size[m][0] / 1e6:.3f}', f'{self.size[m][1]:.2f}', paper])
        for label, scores in self.refs[score_set].items():
            lines.append([label] + [''] * (0 if budgets is None else 2)
                         + [f'{scores["psnr"]:.2f}', f'{scores["ssim"]:.3f}', f'{scores["lpips"]:.3f}'] + [''] * 7)
        return lines

    def tables_text(self, title, runs_by_method, budgets=None):
        """Table 1 and Table 2 on every score set, then the paper's orderings judged on them: (text, orderings,
        summary). With ``budgets`` (method -> converged_budget's answer) each row says its budget and verdict."""
        from fcdfn_plugin.utils.report import markdown_table

        summary = self.summarize(runs_by_method)
        text, orderings = [], {}
        header = (['method'] + (['iterations', 'budget check'] if budgets is not None else [])
                  + ['PSNR', 'SSIM', 'LPIPS', 'seeds', 'converged', 'last 1/4 \\| 1/8 (dB)', 'rate', 'params (M)',
                     'GFLOPs 224x224', 'paper PSNR / SSIM / LPIPS'])
        tables = [(table, labels) for table, labels in (('Table 1', TABLE1), ('Table 2', TABLE2))
                  if any(m in self.args.methods for m in labels)]
        for table, labels in tables:
            for s in self.sets:
                text.append(f'\n### {table}{title}, {self.set_names[s]}\n\n'
                            + markdown_table(header, self.table_rows(labels, s, runs_by_method, summary, budgets)))
        # At converged budgets a row still climbing (or unchecked) has no final score to order.
        unsettled = {m for m, (_, converged, _) in (budgets or {}).items() if not converged}
        for table, labels in tables:
            for s in self.sets:
                stats = {m: {**summary[m][s][0], 'n': summary[m][s][1]} for m in labels
                         if m in self.args.methods and s in summary.get(m, {})}
                rows = paper_orderings(labels, stats, unsettled)
                if not rows:
                    continue
                orderings[f'{table}, {s}'] = [{'better': b, 'worse': w, **{k: list(v) for k, v in verdicts.items()}}
                                              for b, w, verdicts in rows]
                psnr = [verdicts['psnr'][0] for _, _, verdicts in rows]
                judged = sum(v in JUDGED for v in psnr)
                text.append(f'\n### Paper orderings, {table}{title}, {self.set_names[s]}: {psnr.count("holds")} of '
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

    def budget_check(self):
        """(text, {method: [doubling]}, {method: [(seed, iters, curve)]}): each step of each method's budget
        ladder, its gain per score set and verdict, and the curves of the runs it compares."""
        from fcdfn_plugin.utils.report import markdown_table

        args, records = self.args, self.records
        rows, doubling, curves_by_method = [], {}, {}
        for method in args.methods:
            rate = self.chosen[method][0]
            ladder = [] if rate is None else budget_ladder(records, method, rate, args.iters, args.crop, args.seeds)
            if not ladder:
                continue
            doubling[method], curves = [], {}
            for iters in ladder[:-1]:
                pairs = {s: budget_doubling(records, method, rate, iters, args.crop, args.seeds, s) for s in self.sets}
                if not pairs['toy']:
                    continue
                gains = {s: mean_gain(p) for s, p in pairs.items() if p}
                seed_gains = [after - before for _, before, after in pairs['toy']]
                verdict = 'converged' if gains['toy'] < CONVERGED_DB else 'not converged'
                doubling[method].append({'iters': iters, 'seeds': [seed for seed, _, _ in pairs['toy']],
                                         'gain_db': gains, 'verdict': verdict})
                if len(seed_gains) > 1:
                    doubling[method][-1]['gain_std_db'] = float(np.std(seed_gains))
                for seed, _, _ in pairs['toy']:
                    runs = budget_pair(records, method, rate, iters, args.crop, seed)
                    curves.update({(seed, n): record['curve'] for n, record in zip((iters, 2 * iters), runs)})
                before = [records[name]['toy']['psnr'] for name in
                          (run_name(method, seed, iters, args.crop, rate) for seed in args.seeds) if name in records]
                rows.append([LABELS[method], f'{iters} -> {2 * iters}',
                             ' '.join(str(seed) for seed, _, _ in pairs['toy']),
                             ' '.join(f'{a:.2f}' for _, a, _ in pairs['toy']),
                             ' '.join(f'{b:.2f}' for _, _, b in pairs['toy'])]
                            + [f'{gains[s]:+.2f}' if s in gains else '' for s in self.sets]
                            + [f'{np.std(seed_gains):.2f}' if len(seed_gains) > 1 else '',
                               f'{np.std(before):.2f} ({len(before)})' if len(before) > 1 else '', verdict])
            if curves:
                curves_by_method[method] = [(seed, n, curve) for (seed, n), curve in sorted(curves.items())]
        if not rows:
            return '', doubling, curves_by_method
        text = (f'\n### Budget check: each budget from {args.iters} iterations against twice that\n\n'
                f'The same recipe, rate and seed at twice the budget (milestones at the same fractions). '
                f'Converged at a budget: doubling it gains < {CONVERGED_DB} dB toy PSNR (mean over the seeds '
                'run at both). "gain std": the spread of that gain over those seeds, where there are several: '
                'how far one seed\'s gain can be trusted. "seed std": the spread of toy PSNR over the seeds '
                'run at the smaller budget (their count).\n\n'
                + markdown_table(['method', 'iterations', 'seeds', 'toy PSNR before', 'after']
                                 + [f'gain, {"toy" if s == "toy" else "real"} (dB)' for s in self.sets]
                                 + ['gain std (toy)', 'seed std before (toy)', 'verdict'], rows))
        return text, doubling, curves_by_method

    def sweep_text(self):
        """The rate sweep's table ('' before any sweep run)."""
        from fcdfn_plugin.utils.report import markdown_table

        args = self.args
        sweep = sweep_rows(self.records, args.methods, args.sweep_iters, args.crop, args.sweep_seed)
        if not sweep:
            return ''
        rates = sorted({rate for _, _, scores in sweep for rate in scores})
        return (f'\n### Rate sweep: toy PSNR after {args.sweep_iters} iterations (seed {args.sweep_seed}; '
                'official rate in bold)\n\n' + markdown_table(
                    ['method'] + [f'{rate:g}' for rate in rates],
                    [[TABLE1[m][0]] + [('' if rate not in scores else
                                        f'**{scores[rate]:.2f}**' if rate == official else f'{scores[rate]:.2f}')
                                       for rate in rates] for m, official, scores in sweep]))

    def cost_text(self, minutes):
        """The training time of the recorded runs (``minutes``: :func:`training_minutes`) and the rates."""
        from fcdfn_plugin.utils.report import markdown_table

        args, chosen = self.args, self.chosen
        return ('\n### Training time\n\nMinutes of training of the recorded runs at crop '
                f'{args.crop} (one thread each unless the record says otherwise; two runs side by side), '
                'per method the shortest and longest run (scoring on the real pairs adds 1-2 min a run).\n\n'
                + markdown_table(['runs', 'iterations', 'count', 'minutes', 'per method (min)'],
                                 [[purpose, str(iters), str(count), f'{total:.0f}',
                                   ', '.join(f'{LABELS.get(m, m)} {lo:.0f}'
                                             + ('' if round(hi) == round(lo) else f'-{hi:.0f}')
                                             for m, (lo, hi) in per_method.items())]
                                  for (purpose, iters), (count, total, per_method) in minutes.items()])
                + '\n### Learning rates\n\n' + markdown_table(
                    ['method', 'official', 'table', 'why'],
                    [[m, f'{official_rate(trained_as(m)):g}',
                      '' if chosen[m][0] is None else f'{chosen[m][0]:g}', chosen[m][1]] for m in args.methods]))

    def comparison_figures(self):
        """``comparison_table1.png`` / ``comparison_table2.png``: four toy test scenes through every row's first seed
        at the standard budget, where this machine has its validation images; returns the figures with every row."""
        import cv2

        from fcdfn_plugin.utils.report import comparison_grid, read_image_bgr8

        args, written = self.args, set()
        test_dir = osp.join(self.prepared, 'test')
        keys = [osp.splitext(osp.basename(p))[0] for p in sorted(glob.glob(osp.join(test_dir, 'gt', '*.png')))][:4]
        for table, labels in (('table1', TABLE1), ('table2', TABLE2)):
            shown = []
            for method in labels:
                if method in self.table_runs:
                    folder = osp.join(self.out, 'experiments', run_name(method, args.seeds[0], args.iters, args.crop,
                                                                        self.chosen[method][0]), 'visualization')
                    if osp.isdir(folder):
                        shown.append((method, folder))
            if not shown:
                continue
            grid = []
            for key in keys:
                cells = [read_image_bgr8(osp.join(test_dir, role, f'{key}.png')) for role in ('lq', 'flash')]
                for _, folder in shown:  # the last validation's image of this scene
                    cells.append(read_image_bgr8(max(glob.glob(osp.join(folder, key, f'{key}_*.png')),
                                                     key=osp.getmtime)))
                cells.append(read_image_bgr8(osp.join(test_dir, 'gt', f'{key}.png')))
                grid.append(cells)
            figure = osp.join(self.out, f'comparison_{table}.png')
            cv2.imwrite(figure, comparison_grid(grid, ['low-light', 'flash'] + [labels[m][0] for m, _ in shown]
                                                + ['ground truth']))
            complete = len(shown) == sum(method in self.table_runs for method in labels)
            if complete:
                written.add(osp.basename(figure))
            missing = '' if complete else ' (not every row: this machine lacks the images of the others)'
            print(f'Comparison figure: {figure}{missing}', flush=True)
        return written


def write_report(args, records, chosen, prepared, out, real_name, started):
    """The tables, budget check, sweep, training time and learning rates from the records alone: ``tables.md``,
    ``tables.json``, the figures under ``out``, and with ``--results`` the report spliced into that file."""
    report = Report(args, records, chosen, prepared, out, real_name)
    minutes = training_minutes(records, args.crop)
    train_minutes = sum(total for _, total, _ in minutes.values())
    text = [f'Each method with its own recipe and the rate of the sweep ({args.sweep_iters} iterations), crop '
            f'{args.crop}, batch 8, seeds {args.seeds}; mean +- std over seeds. Two sets of tables: first each '
            f'method at its converged budget (the budget check below: the first budget from {args.iters} whose '
            f'doubling gains < {CONVERGED_DB} dB toy PSNR, else the largest budget run, marked "still"), then '
            f'every method at {args.iters} iterations. "converged": runs whose last quarter gained < '
            f'{CONVERGED_DB} dB toy PSNR / runs; "last 1/4 \\| 1/8": the mean toy PSNR gained over the last '
            f'quarter and eighth of the runs. Training time of all recorded runs: {train_minutes:.0f} min.\n']
    converged_text, converged_orderings, converged_summary = report.tables_text(
        ' at converged budgets', report.converged_runs, report.at_budget)
    budget_text, orderings, summary = report.tables_text(f' at {args.iters} iterations', report.table_runs)
    check_text, doubling, doubling_curves = report.budget_check()
    text += converged_text + budget_text + [check_text, todo_text(todo_rows(args, records, chosen)),
                                            report.sweep_text(), report.cost_text(minutes)]
    with open(osp.join(out, 'tables.md'), 'w') as handle:
        handle.write(''.join(text))

    def results(summary):
        return {m: {s: {'mean_std': v[0], 'runs': v[1]} for s, v in summary[m].items()} for m in summary}

    write_json(osp.join(out, 'tables.json'), {
        'iters': args.iters, 'crop': args.crop, 'seeds': args.seeds, 'sweep_iters': args.sweep_iters,
        'real_test': args.real_test, 'complexity': report.size, 'references': report.refs,
        'rates': {m: {'rate': r, 'why': why} for m, (r, why) in chosen.items()},
        'orderings': orderings, 'budget_doubling': doubling, 'results': results(summary),
        'converged': {'budgets': {m: {'iters': b, 'converged': c, 'why': why}
                                  for m, (b, c, why) in report.at_budget.items()},
                      'orderings': converged_orderings, 'results': results(converged_summary)}})
    print(''.join(text), flush=True)
    written = set()  # the figures of this call with every row they should show (--results copies only these)
    for runs_by_method, name, budget in ((report.converged_runs, 'validation_curves_converged.png',
                                          'converged budgets'),
                                         (report.table_runs, 'validation_curves.png', f'{args.iters} iterations')):
        if runs_by_method:
            plot_curves(runs_by_method, LABELS, osp.join(out, name), budget)
            written.add(name)
            print(f'Validation curves at {budget}: {osp.join(out, name)}', flush=True)
    if doubling_curves:
        plot_budget_check(doubling_curves, LABELS, osp.join(out, 'budget_check.png'))
        written.add('budget_check.png')
        print(f'Budget check: {osp.join(out, "budget_check.png")}', flush=True)
    written |= report.comparison_figures()
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
