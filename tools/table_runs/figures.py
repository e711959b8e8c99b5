"""The report's figures: the validation curves of every method and the budget check, on log2 iteration axes
where budgets differ."""
import numpy as np

from .recipes import TABLE1, TABLE2


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
