"""tools/run_tables.py: the run options, the records' digest, the convergence criterion and the rate choice.

(The runs themselves are BasicSR trainings of the Table 1 presets, tested end to end in
test_table1_archs.py; the committed records are checked for consistency here.)"""
import glob
import json
import os
from os import path as osp

import pytest
import yaml

import conftest
from conftest import REPO_ROOT
from table_runs import experiments, figures, ladder, recipes, report, runner, store, todo


def test_the_command_line_checks_its_options_and_prints_the_todo(tmp_path):
    """tools/run_tables.py itself (the package's entry point): wrong options are refused by name, and --todo on an
    empty records folder asks every row for a rate sweep first, Table 2's variants for FCDFN's (the sweep runs
    Table 1's methods only: ``--phase sweep --methods no_fusion`` would run nothing)."""
    for args, message in ((['--iters', '8'], '--iters must be at least 32'),
                          (['--real-test', str(tmp_path)], 'is not a prepared test folder')):
        result = conftest.run_tool(['tools/run_tables.py', '--todo'] + args, check=False)
        assert result.returncode == 2 and message in result.stderr
    result = conftest.run_tool(['tools/run_tables.py', '--todo', '--records', str(tmp_path)])
    commands = [line.split('`')[1] for line in result.stdout.splitlines() if 'rate sweep first' in line]
    assert len(commands) == len(recipes.METHODS)
    assert {command.split('--methods ')[1].split()[0] for command in commands} == set(recipes.TABLE1)
    assert 'What the tables still need' in result.stdout and not os.listdir(tmp_path)  # --todo writes nothing


def test_run_options_scale_the_recipe_to_the_run():
    opt = recipes.run_options('deepfnf', seed=11, iters=400, crop=48, lr=3e-4)
    assert opt['train']['total_iter'] == 400 and opt['train']['optim_g']['lr'] == 3e-4
    assert opt['train']['scheduler']['milestones'] == [293, 333]  # 73 % and 83 %, as in the preset
    assert opt['manual_seed'] == 11 and opt['datasets']['train']['seed'] == 11
    assert opt['datasets']['train']['crop_size'] == 48 and opt['val']['val_freq'] == 50
    ablation = recipes.run_options('no_saecnn', seed=10, iters=400, crop=48, lr=1e-4)
    assert ablation['network_g']['fusion'] == 'add' and ablation['network_g']['kernel_mode'] == 'parallel'


def test_digest_follows_what_decides_the_result():
    base = recipes.run_options('fcdfn', 10, 400, 48, 1e-4)
    digest = recipes.options_digest(base)
    moved = recipes.run_options('fcdfn', 10, 400, 48, 1e-4)
    moved['datasets']['train']['dataroot'] = '/elsewhere/train.lmdb'
    moved['name'] = 'another'
    assert recipes.options_digest(moved) == digest  # where the data lies does not change a result
    for change in (lambda o: o['train']['optim_g'].update(lr=3e-4),
                   lambda o: o['network_g'].update(base_channels=8),
                   lambda o: o['exposure'].update(mode='none'),
                   lambda o: o['datasets']['train'].update(wide_dim_probability=0.0)):
        other = recipes.run_options('fcdfn', 10, 400, 48, 1e-4)
        change(other)
        assert recipes.options_digest(other) != digest


def test_last_quarter_gain():
    curve = {'iter': [50, 100, 150, 200], 'psnr': [18.0, 19.0, 19.5, 19.62]}
    assert ladder.curve_gain(curve, 200) == pytest.approx(0.12)  # 19.62 - 19.5 (the point at 150 = 3/4)
    curve = {'iter': [100, 200, 300, 400], 'psnr': [18.0, 19.0, 19.5, 19.4]}
    assert ladder.curve_gain(curve, 400) == pytest.approx(-0.1)  # 3/4 = 300
    assert ladder.curve_gain({'iter': [400], 'psnr': [20.0]}, 400) is None


def fake_records(method, scores, iters=100, crop=48, seed=10):
    return {recipes.run_name(method, seed, iters, crop, rate): {'toy': {'psnr': psnr}} for rate, psnr in scores.items()}


def test_rate_choice_keeps_the_official_rate_unless_a_swept_one_is_clearly_better():
    official = recipes.official_rate('cunet')
    assert official == 1e-5
    grid = {rate: 20.0 for rate in recipes.SWEEP_RATES}
    records = fake_records('cunet', {**grid, official: 19.95})
    assert ladder.choose_rate('cunet', records, 100, 48, 10)[0] == official  # within 0.1 dB: official
    records = fake_records('cunet', {**grid, 3e-4: 21.0, official: 12.0})
    rate, why = ladder.choose_rate('cunet', records, 100, 48, 10)
    assert rate == 3e-4 and 'beats the official' in why
    del records[recipes.run_name('cunet', 10, 100, 48, 1e-3)]
    rate, why = ladder.choose_rate('cunet', records, 100, 48, 10)
    assert rate is None and 'lr0.001' in why


def test_committed_records_are_consistent():
    """Every committed record names its own run, matches the presets' digest and scores in range."""
    paths = sorted(glob.glob(os.path.join(REPO_ROOT, 'docs', 'tables_cpu', '*.json')))
    for path in paths:
        with open(path) as handle:
            record = json.load(handle)
        name = os.path.splitext(os.path.basename(path))[0]
        assert name == recipes.run_name(record['method'], record['seed'], record['iters'], record['crop'], record['lr'])
        opt = recipes.run_options(record['method'], record['seed'], record['iters'], record['crop'], record['lr'])
        assert record['digest'] == recipes.options_digest(opt), f'{path}: made with other options than the presets'
        assert 0 < record['toy']['psnr'] < 60 and 0 <= record['toy']['lpips'] <= 1
        assert record['curve']['psnr'][-1] == record['toy']['psnr']
        for real_name, digest in record.get('real_digest', {}).items():  # one set per name, on any machine
            with open(store.test_set_file(recipes.RECORDS, real_name)) as handle:
                assert digest in json.load(handle)['digests'], f'{path}: scored on a {real_name!r} set not listed'


def test_committed_parks_can_be_resumed():
    """Every parked run (``--park``) has no record yet, matches the presets' digest and holds the state and
    weights of the iteration it names: what Runner.restore needs on the next machine."""
    import re
    for folder in sorted(glob.glob(os.path.join(REPO_ROOT, 'docs', 'tables_cpu', 'unfinished', '*'))):
        name = os.path.basename(folder)
        method, iters, crop, lr, seed = re.fullmatch(r'(\w+?)_it(\d+)_c(\d+)_lr([\d.e-]+)_s(\d+)', name).groups()
        assert recipes.run_name(method, int(seed), int(iters), int(crop), float(lr)) == name
        assert not os.path.exists(os.path.join(REPO_ROOT, 'docs', 'tables_cpu', f'{name}.json')), \
            f'{folder}: the run is recorded, its park should have been removed'
        with open(os.path.join(folder, 'park.json')) as handle:
            info = json.load(handle)
        opt = recipes.run_options(method, int(seed), int(iters), int(crop), float(lr))
        assert info['digest'] == recipes.options_digest(opt), f'{folder}: parked with other options than the presets'
        assert 0 < info['iter'] < int(iters)
        for file in (f'{info["iter"]}.state', f'net_g_{info["iter"]}.pth'):
            assert os.path.isfile(os.path.join(folder, file)), f'{folder}: {file} is missing'
        assert glob.glob(os.path.join(folder, f'train_{name}_*.log'))


def test_curve_gain_over_the_last_eighth():
    curve = {'iter': [100, 200, 300, 400, 500, 600, 700, 800], 'psnr': [15, 16, 17, 17, 17, 17, 19.0, 19.05]}
    assert ladder.curve_gain(curve, 800) == pytest.approx(2.05)  # 600 -> 800: the decay's step included
    assert ladder.curve_gain(curve, 800, since=0.875) == pytest.approx(0.05)  # 700 -> 800: flat after it


def test_ordering_verdict_compares_the_difference_with_the_seed_spreads():
    verdict = report.ordering_verdict
    assert verdict((21.0, 0.2, 3), (20.0, 0.3, 3), 'psnr') == ('holds', pytest.approx(1.0))
    assert verdict((20.0, 0.2, 3), (21.0, 0.3, 3), 'psnr') == ('reversed', pytest.approx(-1.0))
    assert verdict((20.4, 0.2, 3), (20.0, 0.3, 3), 'psnr')[0] == 'within spread'  # 0.4 < 0.2 + 0.3
    assert verdict((21.0, 0.0, 1), (20.0, 0.0, 3), 'psnr')[0] == 'too few seeds'
    # LPIPS: lower is better, the difference is counted in the paper's direction
    assert verdict((0.30, 0.01, 3), (0.40, 0.01, 3), 'lpips') == ('holds', pytest.approx(0.10))


def test_paper_orderings_put_the_paper_s_better_method_first():
    stats = {m: {'psnr': (psnr, 0.1), 'ssim': (0.5, 0.01), 'lpips': (0.5, 0.01), 'n': 3}
             for m, psnr in (('frl', 20.0), ('deepfnf', 18.0), ('fcdfn', 21.0))}
    rows = {(better, worse): verdicts for better, worse, verdicts in report.paper_orderings(recipes.TABLE1, stats)}
    assert set(rows) == {('deepfnf', 'frl'), ('fcdfn', 'frl'), ('fcdfn', 'deepfnf')}  # paper: 18.07 < 24.09 < 25.10
    assert rows[('deepfnf', 'frl')]['psnr'][0] == 'reversed' and rows[('fcdfn', 'frl')]['psnr'][0] == 'holds'
    assert rows[('fcdfn', 'frl')]['ssim'][0] == 'within spread'
    table2 = report.paper_orderings(recipes.TABLE2, {m: stats['fcdfn'] for m in ('no_flash', 'fcdfn')})
    assert [(b, w) for b, w, _ in table2] == [('fcdfn', 'no_flash')]
    # a row whose budget has not converged is not judged, however many seeds it has; its pairs keep the difference
    rows = {(better, worse): verdicts
            for better, worse, verdicts in report.paper_orderings(recipes.TABLE1, stats, unsettled={'fcdfn'})}
    assert rows[('fcdfn', 'frl')]['psnr'] == ('not converged', pytest.approx(1.0))
    assert rows[('fcdfn', 'deepfnf')]['lpips'][0] == 'not converged'
    assert rows[('deepfnf', 'frl')]['psnr'][0] == 'reversed'


def test_sweep_rows_read_the_records_of_the_first_seed():
    records = fake_records('djf', {1e-4: 14.5, 1e-3: 19.5}, iters=500)
    records.update(fake_records('djf', {1e-3: 30.0}, iters=500, seed=11))
    rows = ladder.sweep_rows(records, ['djf', 'no_flash'], 500, 48, 10)
    assert rows == [('djf', 1e-4, {1e-4: 14.5, 1e-3: 19.5})]  # Table 2's variants are not swept


def test_budget_doubling_pairs_the_same_seed_and_rate_at_both_budgets():
    def record(psnr, real=None):
        return {'toy': {'psnr': psnr}, 'real': {} if real is None else {'faid': {'psnr': real}}}

    name = recipes.run_name
    records = {name('frl', 10, 2000, 48, 3e-4): record(20.4, 20.3), name('frl', 10, 4000, 48, 3e-4): record(20.9),
               name('frl', 11, 2000, 48, 3e-4): record(20.3, 20.2),
               name('frl', 11, 4000, 48, 3e-4): record(20.35, 20.5),
               name('frl', 12, 2000, 48, 3e-4): record(20.6),  # no run at 4000
               name('frl', 10, 4000, 48, 1e-3): record(30.0)}  # another rate: not its pair
    pairs = ladder.budget_doubling(records, 'frl', 3e-4, 2000, 48, [10, 11, 12])
    assert pairs == [(10, 20.4, 20.9), (11, 20.3, 20.35)]
    # on the real set only the seeds scored there at both budgets
    assert ladder.budget_doubling(records, 'frl', 3e-4, 2000, 48, [10, 11, 12], 'faid') == [(11, 20.2, 20.5)]


def test_budget_ladder_climbs_while_some_seed_has_the_doubled_run():
    name = recipes.run_name
    records = {name('lsd2', seed, iters, 48, 1e-4): {} for seed, iters in
               ((10, 2000), (10, 4000), (10, 8000), (11, 2000), (11, 4000), (10, 32000))}
    records[name('lsd2', 10, 16000, 48, 3e-4)] = {}  # another rate does not extend the ladder
    assert ladder.budget_ladder(records, 'lsd2', 1e-4, 2000, 48, [10, 11]) == [2000, 4000, 8000]
    assert ladder.budget_ladder(records, 'lsd2', 1e-4, 4000, 48, [11]) == []  # seed 11 stops at 4000
    assert ladder.budget_ladder(records, 'lsd2', 1e-4, 1000, 48, [10, 11]) == []


def test_training_minutes_groups_by_purpose_and_budget():
    def record(method, purpose, iters, minutes, crop=48):
        return {'method': method, 'purpose': purpose, 'iters': iters, 'train_minutes': minutes, 'crop': crop}

    records = dict(enumerate([record('frl', 'table', 2000, 20.0), record('frl', 'table', 2000, 19.0),
                              record('djf', 'table', 2000, 6.0), record('djf', 'sweep', 500, 2.0),
                              record('djf', 'table', 4000, 11.0), record('djf', 'table', 2000, 99.0, crop=96)]))
    summary = report.training_minutes(records, 48)
    assert list(summary) == [('sweep', 500), ('table', 2000), ('table', 4000)]
    count, total, per_method = summary['table', 2000]
    assert (count, total) == (3, 45.0)
    assert per_method == {'frl': (19.0, 20.0), 'djf': (6.0, 6.0)}
    assert list(per_method) == ['frl', 'djf']  # longest first


def test_splice_results_rewrites_only_between_the_markers(tmp_path):
    path = tmp_path / 'RESULTS.md'
    path.write_text(f'# Results\n\nhand text\n{report.RESULTS_BEGIN}\nold report\n{report.RESULTS_END}\nafter\n')
    report.splice_results(str(path), 'Budget: ...\n\n### Table 1\n\n| a |\n', ['budget_check.png'])
    text = path.read_text()
    assert text.startswith('# Results\n\nhand text\n') and text.endswith(f'{report.RESULTS_END}\nafter\n')
    assert 'old report' not in text and '\n#### Table 1\n' in text and '\n### Table 1' not in text
    assert '](figures/budget_check.png)' in text
    report.splice_results(str(path), 'Budget: ...\n', [])  # again: replaced, not appended
    assert path.read_text().count('Budget: ...') == 1 and 'budget_check.png' not in path.read_text()
    path.write_text('no markers\n')
    with pytest.raises(ValueError, match='run_tables report'):
        report.splice_results(str(path), 'x', [])
    assert path.read_text() == 'no markers\n'


def test_converged_budget_is_the_first_budget_whose_doubling_gains_little():
    name = recipes.run_name

    def scored(method, scores):
        return {name(method, seed, iters, 48, 3e-4): {'toy': {'psnr': psnr}, 'real': {}}
                for (seed, iters), psnr in scores.items()}

    records = scored('djf', {(10, 2000): 20.4, (11, 2000): 20.2, (10, 4000): 20.5, (11, 4000): 20.4,
                             (10, 8000): 20.55})
    # 2000 -> 4000 gains +0.15 (mean of +0.1 and +0.2): not yet; 4000 -> 8000 gains +0.05: converged at 4000
    assert ladder.converged_budget(records, 'djf', 3e-4, 2000, 48, [10, 11, 12])[:2] == (4000, True)
    records.update(scored('lsd2', {(10, 2000): 18.5, (10, 4000): 19.7, (10, 8000): 20.1}))
    budget, converged, why = ladder.converged_budget(records, 'lsd2', 3e-4, 2000, 48, [10])
    assert (budget, converged) == (8000, False) and '+0.40' in why  # the top of the ladder, still climbing
    records.update(scored('frl', {(10, 2000): 20.4}))
    assert ladder.converged_budget(records, 'frl', 3e-4, 2000, 48, [10])[:2] == (2000, None)  # unchecked


def test_log_minutes_spans_the_time_stamped_lines(tmp_path):
    log = tmp_path / 'train.log'
    log.write_text('2026-12-04 19:00:10,500 INFO: start\n  a line without a time\n'
                   '2026-12-04 19:01:40,020 INFO: [iter: 10] ...\n\tpsnr: 20.0\n')
    assert experiments.log_minutes(str(log)) == 1.5
    log.write_text('no time stamps\n')
    assert experiments.log_minutes(str(log)) == 0.0


def test_a_stopped_run_resumes_from_its_parked_state_elsewhere(toy_prepared, tmp_path, monkeypatch, capsys):
    """A run stopped after a training state (the end of a session) and parked (``--park``) continues from
    that state in another --out (another machine) that has only the records folder: the record's validation
    curve is the uninterrupted run's (exact resume), read from both segments' logs, and its minutes include the
    stopped segment's (the park's removal once recorded: the next test)."""
    import re
    import shutil
    import time

    from fcdfn_plugin.utils.machine import cpu_note
    name = recipes.run_name('djf', 10, 16, 16, 1e-3)

    def train(label):
        out = tmp_path / label
        monkeypatch.setenv('FCDFN_ROOT', str(out))
        opt = recipes.run_options('djf', 10, 16, 16, 1e-3)
        del opt['val']['metrics']['lpips']  # no VGG weights needed
        assert opt['logger']['save_checkpoint_freq'] == opt['val']['val_freq'] == 2
        table_runner = runner.Runner(str(out), str(records), {}, str(toy_prepared), 16, 1, None, 10, time.time())
        return table_runner.train(name, opt, recipes.options_digest(opt), 'djf', 10, 16, 1e-3, 'table')

    records = tmp_path / 'records'

    whole = train('whole')
    assert whole['curve']['iter'] == list(range(2, 17, 2)) and whole['cpu'] == cpu_note()  # from its log
    # the same run stopped after its state at iteration 8: later states, weights and log lines gone
    stopped = tmp_path / 'stopped' / 'experiments' / name
    shutil.copytree(tmp_path / 'whole' / 'experiments' / name, stopped)
    for path in list(stopped.glob('training_states/*.state')) + list(stopped.glob('models/*.pth')):
        if not path.stem.split('_')[-1].isdigit() or int(path.stem.split('_')[-1]) > 8:
            path.unlink()
    (log,) = stopped.glob(f'train_{name}_*.log')
    lines = log.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if re.search(r'iter:\s+9,', line))
    log.write_text(''.join(lines[:cut]))
    assert experiments.finished_log(str(tmp_path / 'stopped'), name) is None
    (line,) = experiments.park(str(tmp_path / 'stopped'), str(records), {})
    parked = records / 'unfinished' / name
    assert 'at iteration 8' in line
    assert sorted(p.suffix for p in parked.iterdir()) == ['.json', '.log', '.pth', '.state']
    assert str(tmp_path) not in next(parked.glob('*.log')).read_text()  # committed: no machine paths
    capsys.readouterr()
    resumed = train('elsewhere')  # a fresh --out: only the records folder came along
    said = capsys.readouterr().out
    assert f'{name}: restored the state parked at iteration 8' in said
    assert f'{name}: resuming from its last training state' in said
    assert len(experiments.segment_logs(str(tmp_path / 'elsewhere'), name)) == 2
    assert resumed['curve'] == whole['curve'] and resumed['toy'] == whole['toy']
    assert resumed['train_minutes'] >= experiments.log_minutes(str(log))


def test_next_runs_climb_the_ladder_with_one_seed_then_fill_the_seeds():
    name = recipes.run_name

    def runs(method, scores, rate=3e-4):
        return {name(method, seed, iters, 48, rate): {'toy': {'psnr': psnr}, 'real': {}}
                for (seed, iters), psnr in scores.items()}

    seeds = [10, 11, 12]
    records = runs('frl', {(10, 2000): 20.4, (11, 2000): 20.3, (12, 2000): 20.6})
    assert ladder.next_runs(records, 'frl', 3e-4, 2000, 48, seeds)[:2] == (4000, [10])  # unchecked: the check
    records.update(runs('frl', {(10, 4000): 20.9}))  # still climbing: the next doubling, same seed
    assert ladder.next_runs(records, 'frl', 3e-4, 2000, 48, seeds)[:2] == (8000, [10])
    assert ladder.next_runs(records, 'frl', 3e-4, 2000, 48, [11, 10])[:2] == (8000, [10])  # the seed run there
    records.update(runs('frl', {(10, 8000): 20.95}))  # converged at 4000: the row's missing seeds there
    assert ladder.next_runs(records, 'frl', 3e-4, 2000, 48, seeds)[:2] == (4000, [11, 12])
    records.update(runs('frl', {(11, 4000): 20.8, (12, 4000): 20.7}))
    assert ladder.next_runs(records, 'frl', 3e-4, 2000, 48, seeds) is None  # complete
    assert ladder.next_runs(records, 'djf', 1e-3, 2000, 48, seeds)[:2] == (2000, [10])  # nothing run yet
    # Table 2's variants wait for FCDFN's converged budget, then need every seed there
    assert ladder.next_runs(records, 'no_fusion', 3e-4, 2000, 48, seeds)[0] is None
    records.update(runs('fcdfn', {(10, 2000): 20.9, (10, 4000): 20.95}))
    records.update(runs('no_fusion', {(11, 2000): 20.5}))
    assert ladder.next_runs(records, 'no_fusion', 3e-4, 2000, 48, seeds)[:2] == (2000, [10, 12])


def test_minutes_per_iteration_reads_the_largest_one_thread_runs():
    def record(method, iters, minutes, threads=1, crop=48):
        return {'method': method, 'iters': iters, 'train_minutes': minutes, 'threads': threads, 'crop': crop}

    records = dict(enumerate([record('frl', 500, 10.0), record('frl', 4000, 40.0), record('frl', 4000, 48.0),
                              record('frl', 8000, 1.0, threads=2), record('frl', 8000, 1.0, crop=96),
                              record('fcdfn', 2000, 10.0)]))
    assert ladder.minutes_per_iteration(records, 'frl', 48) == pytest.approx(0.010)  # the fastest of the two
    assert ladder.minutes_per_iteration(records, 'frl', 48, pick=max) == pytest.approx(0.012)
    assert ladder.minutes_per_iteration(records, 'no_flash', 48) == pytest.approx(0.005)  # FCDFN's
    records['own'] = record('no_flash', 500, 50.0)
    assert ladder.minutes_per_iteration(records, 'no_flash', 48) == pytest.approx(0.005)  # still FCDFN's
    assert ladder.minutes_per_iteration(records, 'djf', 96) is None


def test_a_slow_method_saves_its_state_more_often_than_it_validates(tmp_path, monkeypatch):
    """A run saves a training state at least every SAVE_MINUTES of its method's recorded speed (halving its
    validation interval), so a session's end loses little; the options file tools/train.py reads says so."""
    assert recipes.SAVE_MINUTES == 15
    assert recipes.bounded_interval(32000, 398 / 128000) == 4000  # FCDFN's 256000 check on its 128000's speed
    assert recipes.bounded_interval(500, 83 / 2000) == 250  # DSN's 4000 check
    assert recipes.bounded_interval(250, 0.01) == 250  # 2.5 minutes: as it was
    assert recipes.bounded_interval(4000, None) == 4000  # no record yet
    assert recipes.bounded_interval(3, 100.0) == 1
    assert recipes.bounded_interval(6400, 398 / 128000, recipes.LOG_MINUTES) == 400  # FCDFN 256000's log lines

    class Started(Exception):
        pass

    def run_tool(args, log_path, threads, poll=None):
        with open(args[2]) as handle:  # tools/train.py -opt <options> --auto_resume
            raise Started(yaml.safe_load(handle))

    monkeypatch.setattr(runner, 'run_tool', run_tool)
    records = {'djf_it8000': {'method': 'djf', 'iters': 8000, 'crop': 48, 'threads': 1, 'train_minutes': 160.0},
               'djf_it8000_fast': {'method': 'djf', 'iters': 8000, 'crop': 48, 'threads': 1, 'train_minutes': 80.0}}
    table_runner = runner.Runner(str(tmp_path / 'out'), str(tmp_path / 'records'), records,
                                 str(tmp_path / 'prepared'), 48, 1, None, 10, 0.0)
    opt = recipes.run_options('djf', 10, 16000, 48, 1e-3)
    with pytest.raises(Started) as started:
        table_runner.train(recipes.run_name('djf', 10, 16000, 48, 1e-3), opt, recipes.options_digest(opt), 'djf',
                           10, 16000, 1e-3, 'table')
    written = started.value.args[0]
    # at the slowest recorded speed, 0.02 min/it (the faster run's 0.01 would give 1000)
    assert written['val']['val_freq'] == 2000 and written['logger']['save_checkpoint_freq'] == 500
    assert written['logger']['print_freq'] == 100  # 400 (a fortieth), halved to 2 minutes at 0.02 min/it
    assert recipes.options_digest(written) == recipes.options_digest(opt)  # records made before stay valid


def test_todo_rows_give_the_command_and_its_estimated_minutes(tmp_path):
    from argparse import Namespace

    def record(method, seed, iters, minutes):
        return {'method': method, 'seed': seed, 'iters': iters, 'crop': 48, 'threads': 1, 'train_minutes': minutes,
                'toy': {'psnr': 20.0}, 'real': {}}

    records = {recipes.run_name('lsd2', 10, n, 48, 3e-4): record('lsd2', 10, n, n / 1000) for n in (2000, 4000)}
    records[recipes.run_name('lsd2', 10, 4000, 48, 3e-4)]['toy']['psnr'] = 21.0
    args = Namespace(methods=['lsd2', 'dsn', 'no_flash'], iters=2000, crop=48, seeds=[10, 11], real_test='real',
                     records=str(tmp_path))
    rows = todo.todo_rows(args, records, {'lsd2': (3e-4, ''), 'dsn': (None, 'no sweep'), 'no_flash': (3e-4, '')})
    assert rows[0][:3] == ['LSD2', '8000', '10'] and rows[0][4] == pytest.approx(8)  # 8000 iterations, 1 ms each
    assert rows[0][5] == pytest.approx(12)  # at least: the check at 8000 and seed 11 at 4000
    assert rows[0][6] == ('python tools/run_tables.py --phase table --methods lsd2 --iters 8000 --seeds 10 '
                          '--threads 1 --real-test real')
    assert '--phase sweep --methods dsn' in rows[1][6]
    parked = tmp_path / 'unfinished' / recipes.run_name('lsd2', 10, 8000, 48, 3e-4)
    parked.mkdir(parents=True)
    (parked / 'park.json').write_text(json.dumps({'iter': 6000, 'digest': 'x'}))
    args.methods = ['lsd2']
    (row,) = todo.todo_rows(args, records, {'lsd2': (3e-4, '')})
    assert row[3].endswith('seed 10 parked at 6000')
    assert row[4] == pytest.approx(2) and row[5] == pytest.approx(6)  # 2000 iterations left
    # the same run in flight on this machine, further than its park: --todo counts its state under --out (the
    # committed report does not: it would name this machine's folder)
    out = tmp_path / 'out'
    run = out / 'experiments' / recipes.run_name('lsd2', 10, 8000, 48, 3e-4)
    (run / 'training_states').mkdir(parents=True)
    write_state(run / 'training_states' / '6500.state', 6500)
    (row,) = todo.todo_rows(args, records, {'lsd2': (3e-4, '')}, out=str(out))
    assert row[3].endswith(f'seed 10 at 6500 under {out} (not parked)') and row[4] == pytest.approx(1.5)
    assert todo.todo_rows(args, records, {'lsd2': (3e-4, '')})[0][3].endswith('seed 10 parked at 6000')
    assert rows[2][3].startswith('waits') and rows[2][6] == '' and rows[2][5] is None  # no FCDFN run to time
    text = todo.todo_text(rows)
    assert 'Nothing' in todo.todo_text([]) and '`python tools' in text and '| 8 | 12 |' in text
    assert 'at least 12 minutes' in text and 'besides DSN, w/o fusion, SAECNN, flash' in text
    rows[0][5] = rows[1][5] = 0.4  # the total sums the minutes, not the rounded cells
    assert 'at least 1 minutes' in todo.todo_text(rows)


def test_least_runs_are_the_next_check_and_the_seeds_at_the_top_budget():
    name = recipes.run_name
    seeds = [10, 11, 12]

    def runs(method, scores, rate=3e-4):
        return {name(method, seed, iters, 48, rate): {'toy': {'psnr': psnr}, 'real': {}}
                for (seed, iters), psnr in scores.items()}

    records = {}
    assert ladder.least_runs(records, 'frl', 3e-4, 2000, 48, seeds) == [(10, 2000), (11, 2000), (12, 2000),
                                                                        (10, 4000)]
    records.update(runs('frl', {(11, 2000): 20.0, (11, 4000): 20.5, (11, 8000): 20.9}))  # climbing: top 8000
    assert ladder.least_runs(records, 'frl', 3e-4, 2000, 48, seeds) == [(10, 8000), (12, 8000), (11, 16000)]
    records.update(runs('frl', {(11, 16000): 20.95}))  # converged at 8000: its seeds only
    assert ladder.least_runs(records, 'frl', 3e-4, 2000, 48, seeds) == [(10, 8000), (12, 8000)]
    # Table 2: every seed at FCDFN's best-case budget (its top, 4000, if the check at 8000 converges)
    records.update(runs('fcdfn', {(10, 2000): 20.0, (10, 4000): 20.5}))
    records.update(runs('no_flash', {(12, 4000): 19.0}))
    assert ladder.least_runs(records, 'no_flash', 3e-4, 2000, 48, seeds) == [(10, 4000), (11, 4000)]


def write_state(path, iteration):
    """A training state as BasicSR writes it, without the optimiser's tensors."""
    import torch
    torch.save({'epoch': 0, 'iter': iteration, 'optimizers': [], 'schedulers': []}, path)


def state_iter(path):
    import torch
    return torch.load(path, weights_only=False)['iter']


def training_log(iterations, validated=()):
    """A BasicSR training log: a training line at each of ``iterations``, a validation after those ``validated``."""
    lines = ['2026-12-04 21:00:00,000 INFO: start\n']
    for iteration in iterations:
        lines.append(f'2026-12-04 21:00:01,000 INFO: [frl..][epoch:  1, iter: {iteration:7,d}, lr:(3.000e-04,)] '
                     '[eta: 0:01:00, time (data): 0.100 (0.001)] l_total: 1.0e-02\n')
        if iteration in validated:
            lines.append('2026-12-04 21:00:02,000 INFO: Validation ToyFAID_test\n\t # psnr: 20.0000\tBest: 20.0000\n')
    return ''.join(lines)


def test_a_record_names_the_cpu_of_each_segment_from_its_logs(tmp_path):
    banner = ('2026-12-06 10:00:00,000 INFO: \nVersion Information: \n\tBasicSR: 1.4.2\n'
              '\tCPU: {} (2 logical cores, 1 torch threads)\n')
    logs = []
    for label, cpu in (('a', None), ('b', 'Intel(R) Xeon(R) CPU @ 2.90GHz, avx512f'), ('c', 'AMD EPYC, avx2'),
                       ('d', 'AMD EPYC, avx2')):
        logs.append(tmp_path / f'train_x_{label}.log')
        logs[-1].write_text((banner.format(cpu) if cpu else '') + training_log([100]))
    assert experiments.segment_cpus(logs) == 'unknown + Intel(R) Xeon(R) CPU @ 2.90GHz, avx512f + AMD EPYC, avx2'
    assert experiments.segment_cpus(logs[2:]) == 'AMD EPYC, avx2' and experiments.segment_cpus([]) == ''


def test_park_and_restore_keep_the_newest_state_and_refuse_other_options(tmp_path, capsys):
    import time
    name = recipes.run_name('frl', 10, 16000, 48, 3e-4)
    opt = recipes.run_options('frl', 10, 16000, 48, 3e-4)

    def machine(label, states):
        out = tmp_path / label
        run = out / 'experiments' / name
        for sub in ('training_states', 'models'):
            (run / sub).mkdir(parents=True)
        (run / f'{name}.yml').write_text(yaml.safe_dump(opt))
        (run / f'train_{name}_20261204_{label}.log').write_text(training_log(states, states))  # validation 2000
        for iteration in states:
            write_state(run / 'training_states' / f'{iteration}.state', iteration)
            (run / 'models' / f'net_g_{iteration}.pth').write_text(f'weights {iteration}')
        return out

    records = tmp_path / 'records'
    a = machine('a', [2000, 4000])
    (a / 'experiments' / 'no_state_yet').mkdir()
    lines = experiments.park(str(a), str(records), {})
    assert lines[0].startswith('frl_it16000') and 'at iteration 4000' in lines[0] and 'nothing to park' in lines[1]
    parked = records / 'unfinished' / name
    assert state_iter(parked / '4000.state') == 4000 and not (parked / '2000.state').exists()
    assert experiments.park(str(a), str(records), {name: {}}) == [
        'no_state_yet: no training state yet, nothing to park']
    # a machine behind the park does not replace it, and one ahead does
    assert 'kept the parked state at 4000' in experiments.park(str(machine('b', [2000])), str(records), {})[0]
    experiments.park(str(machine('c', [6000])), str(records), {})
    assert json.loads((parked / 'park.json').read_text())['iter'] == 6000 and not (parked / '4000.state').exists()

    table_runner = runner.Runner(str(tmp_path / 'd'), str(records), {}, 'prepared', 48, 1, None, 10, time.time())
    digest = recipes.options_digest(opt)
    table_runner.restore(name, digest)
    run = tmp_path / 'd' / 'experiments' / name
    assert state_iter(run / 'training_states' / '6000.state') == 6000
    assert (run / 'models' / 'net_g_6000.pth').exists() and len(list(run.glob('train_*.log'))) == 1
    with pytest.raises(RuntimeError, match='parked with other options'):
        table_runner.restore(name, 'another digest')
    # a recorded run's park is removed
    table_runner.train = lambda *args: {'toy': {'psnr': 21.0}, 'real': {}}
    table_runner.run('frl', 10, 16000, 3e-4, 'sweep')
    assert not parked.exists() and (records / f'{name}.json').exists()
    assert 'its parked state removed' in capsys.readouterr().out
    (run / 'models' / 'net_g_6000.pth').unlink()
    (run / f'{name}.yml').write_text(yaml.safe_dump(opt))  # Runner.train writes it before it restores
    with pytest.raises(FileNotFoundError, match='net_g_6000.pth'):
        experiments.park(str(tmp_path / 'd'), str(records), {})


def test_a_run_stopped_between_its_save_and_its_validation_resumes_before_that_save(tmp_path):
    """BasicSR saves, then validates: a run stopped between the two has a state whose validation is in no log.
    Resuming there would leave that point out of the curve (and the convergence criterion reads it), so the
    run resumes from the state before it, and a park takes that one too; a state off the validation grid
    needs no validation."""
    name = recipes.run_name('frl', 10, 16000, 48, 3e-4)
    opt = recipes.run_options('frl', 10, 16000, 48, 3e-4)  # validation every 2000
    run = tmp_path / 'out' / 'experiments' / name
    for sub in ('training_states', 'models'):
        (run / sub).mkdir(parents=True)
    (run / f'{name}.yml').write_text(yaml.safe_dump(opt))
    log = run / f'train_{name}_20261204_210000.log'
    log.write_text(training_log([2000, 3000, 4000], validated=[2000]))  # stopped after saving 4000
    for iteration in (2000, 3000, 4000):
        write_state(run / 'training_states' / f'{iteration}.state', iteration)
        (run / 'models' / f'net_g_{iteration}.pth').write_text(f'weights {iteration}')
    logs = [str(log)]
    assert experiments.resume_point(str(run), logs, 2000) == (3000, str(run / 'training_states' / '3000.state'))
    assert experiments.resume_point(str(run), logs, 1000)[0] == 2000  # 3000 is a validation iteration then, unlogged
    assert experiments.resume_point(str(run), [], 2000)[0] == 3000
    assert experiments.resume_point(str(run), [], 1000)[0] == 0
    lines = experiments.park(str(tmp_path / 'out'), str(tmp_path / 'records'), {})
    assert 'at iteration 3000' in lines[0]
    assert experiments.set_aside_unvalidated(str(run), logs, 2000) == [4000]
    assert experiments.latest_state(str(run))[0] == 3000 and not (run / 'models' / 'net_g_4000.pth').exists()
    assert state_iter(run / 'training_states' / 'unvalidated' / '4000.state') == 4000
    assert (run / 'training_states' / 'unvalidated' / 'net_g_4000.pth').exists()
    assert experiments.set_aside_unvalidated(str(run), logs, 2000) == []  # nothing more


def test_a_state_cut_short_by_a_kill_is_neither_resumed_from_nor_parked(tmp_path):
    """``--auto_resume`` passes over a state it cannot read (a run killed while saving it): a park of that state
    would send the next machine back to iteration 0, so the run resumes, and parks, from the one before."""
    from fcdfn_plugin.compat import state_problem
    name = recipes.run_name('frl', 10, 16000, 48, 3e-4)
    run = tmp_path / 'out' / 'experiments' / name
    for sub in ('training_states', 'models'):
        (run / sub).mkdir(parents=True)
    (run / f'{name}.yml').write_text(yaml.safe_dump(recipes.run_options('frl', 10, 16000, 48, 3e-4)))
    log = run / f'train_{name}_20261204_210000.log'
    log.write_text(training_log([2000, 2500], validated=[2000]))
    for iteration in (2000, 2500):
        write_state(run / 'training_states' / f'{iteration}.state', iteration)
        (run / 'models' / f'net_g_{iteration}.pth').write_text(f'weights {iteration}')
    newest = run / 'training_states' / '2500.state'
    assert state_problem(str(newest)) is None and experiments.resume_point(str(run), [str(log)], 2000)[0] == 2500
    newest.write_bytes(newest.read_bytes()[:100])  # killed while saving
    assert state_problem(str(newest)) is not None
    assert experiments.resume_point(str(run), [str(log)], 2000) == (2000, str(run / 'training_states' / '2000.state'))
    assert 'at iteration 2000' in experiments.park(str(tmp_path / 'out'), str(tmp_path / 'records'), {})[0]
    assert experiments.set_aside_unvalidated(str(run), [str(log)], 2000) == [2500]


def test_a_training_run_prints_its_progress_from_its_logs(tmp_path, capsys):
    """run_tool polls while the tool runs; Progress prints a run's iteration, speed and newest validation at
    each new validation and every PROGRESS_MINUTES, from the run's BasicSR logs."""
    polls = []
    runner.run_tool(['-c', 'import time; time.sleep(1.0)'], str(tmp_path / 'out.log'), 1,
                    poll=lambda: polls.append(1), poll_seconds=0.2)
    assert len(polls) >= 2
    with pytest.raises(RuntimeError, match='exit 3'):  # a failing poll warns, the tool's own failure raises
        runner.run_tool(['-c', 'import time, sys; time.sleep(0.5); sys.exit(3)'], str(tmp_path / 'out.log'), 1,
                        poll=lambda: 1 / 0, poll_seconds=0.2)
    assert 'ZeroDivisionError' in capsys.readouterr().err

    name = 'frl_it1000_c48_lr0.0003_s10'
    run = tmp_path / 'experiments' / name
    run.mkdir(parents=True)
    progress = runner.Progress(str(tmp_path), name, 1000)
    progress()  # no log yet
    log = run / f'train_{name}_20261206_100000.log'
    log.write_text(training_log([100]))
    progress()  # no validation and not PROGRESS_MINUTES yet: nothing printed
    assert capsys.readouterr().out == ''
    log.write_text(training_log([100, 200, 300], validated=[200]))
    progress()
    line = capsys.readouterr().out.strip()
    # BasicSR's own time per iteration (0.1 s, logged with each training line): 700 left take 70 s
    assert line == f'{name}: iteration 300 of 1,000 (0.10 s each, about 1 min left), toy PSNR 20.00 at 200'
    progress()
    assert capsys.readouterr().out == ''
    progress.every = 0  # PROGRESS_MINUTES have passed
    progress()
    assert 'iteration 300 of 1,000' in capsys.readouterr().out


def test_budget_check_figure_puts_each_doubling_one_step_apart(tmp_path):
    """The budget-check figure (one panel per method, each run's end marked) on a log2 iteration axis, ticked at
    the budgets' powers of two, every other one on a long ladder."""
    import cv2

    def curve(iters, top):
        return {'iter': [iters * (k + 1) // 8 for k in range(8)], 'psnr': [top - 2 + 2 * k / 7 for k in range(8)]}

    runs = {'fcdfn': [(10, iters, curve(iters, 20 + i / 5)) for i, iters in enumerate([2000 * 2**k for k in range(7)])],
            'djf': [(10, 2000, curve(2000, 20.0)), (10, 4000, curve(4000, 20.1))]}
    path = tmp_path / 'budget_check.png'
    figures.plot_budget_check(runs, recipes.LABELS, str(path))
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > image.shape[0] > 200
    records = {method: [{'iters': runs[method][-1][1], 'curve': runs[method][-1][2]}] for method in runs}
    figures.plot_curves(records, recipes.LABELS, str(tmp_path / 'curves.png'), 'converged budgets')  # log2: mixed
    assert cv2.imread(str(tmp_path / 'curves.png')) is not None
    assert figures.budget_ticks(250, 16000) == [250, 500, 1000, 2000, 4000, 8000, 16000]
    assert figures.budget_ticks(250, 128000) == [500, 2000, 8000, 32000, 128000]  # ten: every other one


def test_test_set_digest_follows_the_pixels_and_tells_same_named_folders_apart(tmp_path):
    import cv2
    import numpy as np
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    folders = {}
    for name, level, value in (('a', 1, 0), ('b', 9, 0), ('c', 1, 1)):  # b: another PNG encoding; c: a pixel
        folder = tmp_path / name / 'test'
        (folder / 'gt').mkdir(parents=True)
        changed = image.copy()
        changed[0, 0, 0] ^= value
        cv2.imwrite(str(folder / 'gt' / 'x.png'), changed, [cv2.IMWRITE_PNG_COMPRESSION, level])
        (folder / 'params.json').write_text('{}')
        folders[name] = store.test_set_digest(str(folder))
    assert folders['a'] == folders['b'] != folders['c']
    records = {'same': {'real': {'test': {}}, 'real_digest': {'test': folders['a']}},
               'other': {'real': {'test': {}}, 'real_digest': {'test': folders['c']}},
               'legacy': {'real': {'test': {}}},
               'unscored': {'real': {}, 'real_digest': {'test': folders['c']}}}
    assert store.scored_elsewhere(records, 'test', {folders['a']}) == ['other']
    assert store.scored_elsewhere(records, 'test', {folders['a'], folders['c']}) == []


def test_a_test_set_prepared_on_another_cpu_keeps_its_records_and_another_set_does_not(tmp_path, capsys):
    # OpenCV's warps differ by a few 16-bit steps from one SIMD level to another: a new digest, the same set
    import cv2
    import numpy as np
    image = np.random.default_rng(0).integers(0, 60000, (32, 32, 3), dtype=np.uint16)
    nudged = image.copy()
    nudged[::7, ::5] += 4
    shifted = np.roll(image, 3, axis=1)

    def folder(name, pixels, params='{"x": {"dim_factor": 30.0}}'):
        path = tmp_path / name / 'test'
        (path / 'flash').mkdir(parents=True)
        cv2.imwrite(str(path / 'flash' / 'x.png'), pixels)
        (path / 'params.json').write_text(params)
        return str(path), store.test_set_digest(str(path))

    set_file = str(tmp_path / 'records' / 'test_sets' / 'real_test.json')
    first, first_digest = folder('first', image)
    assert store.known_digests(set_file, first, first_digest, write=False) == ({first_digest}, None)
    assert not osp.exists(set_file)  # --todo and --report-only write nothing
    assert store.known_digests(set_file, first, first_digest) == ({first_digest}, None)
    assert 'fingerprint of' in capsys.readouterr().out
    other_cpu, other_digest = folder('other_cpu', nudged)
    assert other_digest != first_digest
    assert store.known_digests(set_file, other_cpu, other_digest) == ({first_digest, other_digest}, None)
    with open(set_file) as handle:
        assert set(json.load(handle)['digests']) == {first_digest, other_digest}  # kept: commit it
    for name, pixels, params, why in (('crop', shifted, None, 'pixels differ'),
                                      ('size', image[:16], None, 'shape'),
                                      ('law', image, '{"x": {"dim_factor": 31.0}}', 'params.json')):
        path, digest = folder(name, pixels, *([params] if params else []))
        digests, difference = store.known_digests(set_file, path, digest)
        assert digests == {digest} and why in difference
    with open(set_file) as handle:
        assert len(json.load(handle)['digests']) == 2
    # the committed fingerprints hold these numbers: the patterns must not change with NumPy or the machine
    assert store.image_projections(np.arange(18, dtype=np.uint8).reshape(2, 3, 3) * 10) == pytest.approx(
        [0.333333333, -0.098039216, -0.054466231, -0.019607843, 0.067538126, 0.098039216, 0.063180828,
         -0.032679739], abs=1e-9)


def test_a_rate_that_diverged_in_a_table_run_is_not_chosen_again():
    # a noisy curve that falls 3 dB and trains on; CU-Net's 16000 run at 3e-4 fell 11 dB and stayed down
    assert ladder.curve_fall({'iter': [1, 2, 3], 'psnr': [15.0, 12.0, 16.0]}) == (15.0, 1, 12.0, 2)
    top, _, low, _ = ladder.curve_fall({'iter': [1, 2], 'psnr': [15.0, 16.0]})
    assert top - low == 0  # never falls
    official = recipes.official_rate('cunet')
    records = fake_records('cunet', {1e-4: 11.8, 3e-4: 13.2, 1e-3: 11.3, official: 7.9})

    def table_run(rate, iters, curve, seed=10, method='cunet'):
        return {recipes.run_name(method, seed, iters, 48, rate): {
            'method': method, 'purpose': 'table', 'crop': 48, 'lr': rate, 'iters': iters, 'seed': seed,
            'toy': {'psnr': curve[-1]}, 'curve': {'iter': [iters // len(curve) * (i + 1) for i in range(len(curve))],
                                                  'psnr': curve}}}

    records.update(table_run(3e-4, 8000, [16.2, 17.9, 18.5, 18.8, 19.1, 19.4, 19.7, 19.6]))
    assert ladder.diverged_rates(records, 'cunet', 48) == {}
    assert ladder.choose_rate('cunet', records, 100, 48, 10)[0] == 3e-4
    records.update(table_run(3e-4, 16000, [17.9, 6.8, 9.0, 12.0, 15.0, 18.0, 19.5, 19.9]))
    rate, why = ladder.choose_rate('cunet', records, 100, 48, 10)
    assert rate == 1e-4 and 'beats the official' in why and '0.0003 diverged at 16000 iterations' in why
    assert '17.90 dB at 2000, 6.80 at 4000' in why
    # 1e-4 diverging too leaves the official rate, not 1e-3 (11.3 dB, but faster than a rate that diverged)
    records.update(table_run(1e-4, 2000, [12.0, 5.0]))
    rate, why = ladder.choose_rate('cunet', records, 100, 48, 10)
    assert rate == official and why.startswith('official rate') and '0.0001 diverged at 2000' in why
    records.update(table_run(official, 2000, [7.0, 1.0]))
    rate, why = ladder.choose_rate('cunet', records, 100, 48, 10)
    assert rate is None and why.startswith('every swept rate diverged')
    # an official rate that diverged gives way to the best swept rate below it (DSN's 2e-4 -> 1e-4)
    records = fake_records('dsn', {1e-4: 6.3, 2e-4: 7.1, 3e-4: 7.7, 1e-3: 14.0})
    records.update(table_run(2e-4, 2000, [7.0, 1.0], method='dsn'))
    rate, why = ladder.choose_rate('dsn', records, 100, 48, 10)
    assert rate == 1e-4 and 'below every diverged one' in why


def test_the_report_writes_each_row_at_its_converged_budget_and_judges_the_orderings(tmp_path, capsys):
    """write_report from records alone: DJF and FRL with three seeds at 2000 and a budget check at 4000 (DJF, two
    seeds, +0.09 and +0.01 dB: converged at 2000; FRL +0.50: still climbing, its row at 4000 and unjudged); the
    budget check's gain and its spread over seeds, the mean +- std cells, the paper's DJF > FRL judged against the
    seed spread at the standard budget, the references, tables.json, the figures. (The references' scores are read
    from their cached metrics.json: no evaluation runs.)"""
    import argparse

    def run(method, seed, iters, lr, psnr):
        curve = {'iter': [iters * k // 8 for k in range(1, 9)], 'psnr': [psnr - 0.1 * (8 - k) for k in range(1, 9)],
                 'ssim': [0.5] * 8, 'lpips': [0.4] * 8}
        return recipes.run_name(method, seed, iters, 48, lr), {
            'method': method, 'seed': seed, 'iters': iters, 'crop': 48, 'lr': lr, 'purpose': 'table', 'threads': 1,
            'toy': {'psnr': psnr, 'ssim': 0.5, 'lpips': 0.4}, 'curve': curve, 'real': {}, 'train_minutes': 10.0,
            'converged': False}

    scores = {('djf', 1e-3): {(10, 2000): 21.0, (11, 2000): 21.1, (12, 2000): 20.9, (10, 4000): 21.09,
                              (11, 4000): 21.11},
              ('frl', 3e-4): {(10, 2000): 20.0, (11, 2000): 20.05, (12, 2000): 19.95, (10, 4000): 20.5}}
    records = dict(run(method, seed, iters, lr, psnr) for (method, lr), runs in scores.items()
                   for (seed, iters), psnr in runs.items())
    out = tmp_path / 'out'
    (out / 'references_toy').mkdir(parents=True)
    (out / 'references_toy' / 'metrics.json').write_text(json.dumps(
        {'results': {'low-light input': {'mean': {'psnr': 9.7, 'ssim': 0.16, 'lpips': 0.68}}}}))
    args = argparse.Namespace(methods=['frl', 'djf'], seeds=[10, 11, 12], iters=2000, crop=48, sweep_iters=500,
                              sweep_seed=10, real_test=None, results=None, records=str(tmp_path / 'records'))
    chosen = {'frl': (3e-4, 'official'), 'djf': (1e-3, 'official')}
    report.write_report(args, records, chosen, str(tmp_path / 'prepared'), str(out), None, 0.0)
    capsys.readouterr()

    text = (out / 'tables.md').read_text()
    converged = text.split('### Table 1 at converged budgets, toy test set')[1].split('###')[0]
    assert '| DJF | 2000 | 2000 -> 4000: +0.05 dB | 21.00 +- 0.08 |' in converged
    check = text.split('### Budget check')[1].split('###')[0]
    assert '| DJF | 2000 -> 4000 | 10 11 | 21.00 21.10 | 21.09 21.11 | +0.05 | 0.04 | 0.08 (3) | converged |' in check
    assert '| FRL | 2000 -> 4000 | 10 | 20.00 | 20.50 | +0.50 |  | 0.04 (3) | not converged |' in check
    assert '| FRL | 4000 | 2000 -> 4000: still +0.50 dB | 20.50 |' in converged  # one seed: no spread shown
    assert '| low-light input | | | 9.70 | 0.160 | 0.680 |' in converged.replace('  ', ' ')
    at_budget = text.split('### Paper orderings, Table 1 at 2000 iterations, toy test set')[1].split('###')[0]
    assert '| DJF > FRL | +1.000 holds |' in at_budget  # 1.00 dB apart, spreads 0.08 + 0.04
    tables = json.loads((out / 'tables.json').read_text())
    assert tables['converged']['budgets'] == {
        'frl': {'iters': 4000, 'converged': False, 'why': '2000 -> 4000: still +0.50 dB'},
        'djf': {'iters': 2000, 'converged': True, 'why': '2000 -> 4000: +0.05 dB'}}
    ordering, = tables['converged']['orderings']['Table 1, toy']
    assert ordering['psnr'][0] == 'not converged'  # FRL is still climbing: nothing judged at converged budgets
    (step,) = tables['budget_doubling']['djf']
    assert step['verdict'] == 'converged' and step['gain_std_db'] == pytest.approx(0.04)
    for figure in ('validation_curves.png', 'validation_curves_converged.png', 'budget_check.png'):
        assert (out / figure).stat().st_size > 10000
