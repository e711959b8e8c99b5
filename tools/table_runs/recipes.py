"""What a run of the tables is: each method's options at CPU scale, one run's options, name and digest, and the
tables' constants (the methods with the paper's scores, the budget, the sweep)."""
import hashlib
import json
from os import path as osp

import yaml

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/table_runs/ -> the repository
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

#: Validations per run (the curve): every eighth of the schedule.
CURVE_POINTS = 8
#: A run saves its training state at least every this many minutes of its method's recorded speed
#: (:func:`bounded_interval`), so that the end of a session (:func:`park`) loses little of a long run.
SAVE_MINUTES = 15
#: ... and logs its training line at least every this many minutes, so that its progress (``Progress``, which
#: reads the logs) shows between validations: FCDFN's 256000 would log every 6400 iterations, 27 minutes here.
LOG_MINUTES = 2


def trained_as(method):
    """The Table 1 method whose preset, rate sweep and recorded speed a row uses: itself, or FCDFN for a Table 2
    variant (FCDFN less a part)."""
    return method if method in TABLE1 else 'fcdfn'


def method_options(method):
    """The options of a method at CPU scale (a dict): its Table 1 file, or FCDFN's with Table 2's changes."""
    with open(osp.join(TABLE1_DIR, f'{trained_as(method)}_small.yml')) as handle:
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
    :meth:`Runner.train` saves more often where the method is slow, :func:`bounded_interval`)."""
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


def bounded_interval(every, per_iteration, minutes=SAVE_MINUTES):
    """Iterations between a run's saved training states (or, with :data:`LOG_MINUTES`, its log lines): ``every``
    (the preset's interval), halved until one interval takes at most ``minutes`` at ``per_iteration`` minutes an
    iteration (the slowest recorded; None, not known yet: ``every``). FCDFN's 256000 saves every 4000 iterations
    instead of every 32000, which took 100 minutes, and logs every 400 instead of every 6400."""
    while per_iteration and every > 1 and every * per_iteration > minutes:
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
