"""Bad input to every command-line tool, as a new user gives it: the exact outcome (issue 21).

No data lost, no silently wrong output, no raw traceback: each case asserts the exit (argparse's
code 2 or one ``error:`` line) or the right output, on tiny images, in-process.
"""
import os
import re
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO_ROOT, load_tool

enhance = load_tool('enhance')
evaluate = load_tool('evaluate')
prepare = load_tool('prepare_faid')
make_toy = load_tool('make_toy_faid')
flops = load_tool('flops')
export = load_tool('export_weights')


def png(path, height=24, width=32, bits=8, value=None, seed=0):
    rng = np.random.default_rng(seed)
    top = 65535 if bits == 16 else 255
    pixels = rng.integers(0, top // 5, (height, width, 3)) if value is None else np.full((height, width, 3), value)
    os.makedirs(osp.dirname(str(path)), exist_ok=True)
    assert cv2.imwrite(str(path), pixels.astype(np.uint16 if bits == 16 else np.uint8))
    return str(path)


def jpeg(path, orientation, height=24, width=32, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 60, (height, width, 3)).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(str(path), exif=exif.tobytes(), quality=95)
    return str(path)


def options_file(path, network, **extra):
    with open(path, 'w') as handle:
        yaml.safe_dump(dict({'name': 'cli', 'network_g': network}, **extra), handle)
    return str(path)


def training_state(path):
    torch.save({'epoch': 1, 'iter': 10, 'optimizers': [{'state': {}, 'param_groups': [{'lr': 1e-3}]}],
                'schedulers': [{'milestones': {}}]}, str(path))
    return str(path)


def fails(main, argv, match, code=None):
    """``main(argv)`` exits with one ``error:`` line matching ``match`` (or argparse's exit ``code`` 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    if code is not None:
        assert exit_info.value.code == code
    else:
        message = str(exit_info.value.code)
        assert message.startswith('error: ') and '\n' not in message, message
        assert re.search(match, message), message
    return exit_info


def parse_error(main, argv, capsys, text):
    fails(main, argv, None, code=2)
    assert text in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ enhance.py
@pytest.fixture
def photos(tmp_path):
    return png(tmp_path / 'low.png'), png(tmp_path / 'flash.png', seed=1)


def run_enhance(low, flash, out, *extra):
    return ['--lowlight', low, '--flash', flash, '--out', str(out)] + [str(a) for a in extra]


def test_enhance_never_writes_over_an_input_or_twice_to_one_file(photos, tmp_path):
    low, flash = photos
    before = {path: open(path, 'rb').read() for path in photos}
    fails(enhance.main, run_enhance(low, flash, tmp_path / 'x.png', '--compare', tmp_path / 'x.png'),
          r'--out and --compare are the same file .*x.png')
    fails(enhance.main, run_enhance(low, flash, low, '--overwrite'), r"--out '.*low.png' is the --lowlight file")
    fails(enhance.main, run_enhance(low, flash, tmp_path / 'o.png', '--compare', flash, '--overwrite'),
          r"--compare '.*flash.png' is the --flash file")
    assert before == {path: open(path, 'rb').read() for path in photos}
    assert sorted(os.listdir(tmp_path)) == ['flash.png', 'low.png']


@pytest.mark.parametrize('out, match', [
    ('folder', r"--out '.*folder' is a folder; give a file name"),
    ('result', r'has no extension, so no image format'),
    ('result.xyz', r'OpenCV cannot write .xyz files'),
    ('afile/b.png', r"cannot create the folder '.*afile': '.*afile' is a file"),
    ('exists.png', r"--out '.*exists.png' exists; pass --overwrite"),
])
def test_enhance_checks_the_output_before_any_work(photos, tmp_path, out, match):
    (tmp_path / 'folder').mkdir()
    (tmp_path / 'afile').write_text('x')
    (tmp_path / 'exists.png').write_text('x')
    extra = ['--overwrite'] if out == 'folder' else []
    fails(enhance.main, run_enhance(*photos, tmp_path / out, *extra), match)
    fails(enhance.main, run_enhance(*photos, tmp_path / 'ok.png', '--compare', tmp_path / out, *extra),
          match.replace('--out', '--compare'))


@pytest.mark.parametrize('argv, text', [
    (['--tile', '0'], 'argument --tile: must be at least 1, got 0'),
    (['--overlap', '-1'], 'argument --overlap: must be at least 0, got -1'),
    (['--min-pixels', '-5'], 'argument --min-pixels: must be at least 0, got -5'),
    (['--sigma-read', '-1'], 'argument --sigma-read: must be a finite number >= 0, got -1'),
])
def test_enhance_argument_ranges(photos, tmp_path, capsys, argv, text):
    parse_error(enhance.main, run_enhance(*photos, tmp_path / 'o.png', *argv), capsys, text)


def test_enhance_network_errors(photos, tmp_path):
    out = tmp_path / 'o.png'
    fails(enhance.main, run_enhance(*photos, out, '--overlap', 600), r'--overlap \(600\) must be smaller than --tile')
    for network, match in (({'type': 'NoSuchArch'}, r"type 'NoSuchArch' is not a registered arch; known: .*FCDFNArch"),
                           ({'type': 'FCDFNArch', 'bogus_key': 3}, r'FCDFNArch takes no bogus_key; its options are'),
                           ({'base_channels': 3}, r'network_g from .*o.yml has no type')):
        fails(enhance.main, run_enhance(*photos, out, '-opt', options_file(tmp_path / 'o.yml', network)), match)
    (tmp_path / 'bad.yml').write_text('network_g: [unclosed\n')
    fails(enhance.main, run_enhance(*photos, out, '-opt', tmp_path / 'bad.yml'),
          r"cannot read options file '.*bad.yml': while parsing")
    state = training_state(tmp_path / '10.state')
    fails(enhance.main, run_enhance(*photos, out, '--weights', state),
          r"10.state' is a BasicSR training state .* not network weights; pass .*net_g_10.pth")
    assert not out.exists()


def test_enhance_16_bit_to_jpeg_and_compare_folder_created(tmp_path, capsys):
    low = png(tmp_path / 'low16.png', bits=16, seed=2)
    flash = png(tmp_path / 'flash.png', seed=1)
    out, compare = tmp_path / 'e.jpg', tmp_path / 'nodir' / 'c.png'
    enhance.main(run_enhance(low, flash, out, '--compare', compare))
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint8 and written.mean() < 200  # not the all-white of a uint16 array in a JPEG
    assert cv2.imread(str(compare)).shape == (24, 96, 3)
    printed = capsys.readouterr().out
    assert f'Wrote {out}' in printed and '8-bit (.jpg has no 16 bits)' in printed and f'Wrote {compare}' in printed
    enhance.main(run_enhance(low, flash, tmp_path / 'e.png'))
    assert cv2.imread(str(tmp_path / 'e.png'), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_enhance_turns_phone_photos_upright_and_warns(tmp_path, capsys):
    low, flash = jpeg(tmp_path / 'low.jpg', 6), jpeg(tmp_path / 'flash.jpg', 6, seed=1)
    enhance.main(run_enhance(low, flash, tmp_path / 'o.png'))
    assert cv2.imread(str(tmp_path / 'o.png')).shape == (32, 24, 3)
    captured = capsys.readouterr()
    assert 'EXIF orientation 6 applied (rotated 90 degrees clockwise)' in captured.out and 'warning' not in captured.err
    # differently tagged: both turned upright, with a warning
    flash_upright = jpeg(tmp_path / 'flash1.jpg', 1, height=32, width=24, seed=1)
    enhance.main(run_enhance(low, flash_upright, tmp_path / 'o2.png'))
    assert ('warning: the low-light photo has EXIF orientation 6 (rotated 90 degrees clockwise) but the flash photo 1 '
            '(upright)') in capsys.readouterr().err
    # saturated low-light photo
    white = png(tmp_path / 'white.png', value=255)
    enhance.main(run_enhance(white, png(tmp_path / 'f.png'), tmp_path / 'o3.png'))
    warning = f'warning: the low-light photo {white} is saturated: 100% of its pixels are clipped'
    assert warning in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ evaluate.py
@pytest.fixture
def test_set(tmp_path):
    for key, seed in (('Leaves_000', 0), ('Leaves_001', 1)):
        for role in ('lq', 'flash', 'gt'):
            png(tmp_path / 'test' / role / f'{key}.png', height=20, width=20, bits=16, seed=seed)
    return tmp_path / 'test'


def run_evaluate(test_set, out, *extra):
    return (['--test-dir', str(test_set), '--out', str(out), '--no-lpips', '--figure-scenes', '1']
            + [str(a) for a in extra])


@pytest.mark.parametrize('argv, text', [
    (['--max-scenes', '0'], 'argument --max-scenes: must be at least 1, got 0'),
    (['--max-scenes', '-1'], 'argument --max-scenes: must be at least 1, got -1'),
    (['--crop', '0'], 'argument --crop: must be at least 1, got 0'),
    (['--figure-scenes', '-1'], 'argument --figure-scenes: must be at least 0, got -1'),
    (['--tile', '0'], 'argument --tile: must be at least 1, got 0'),
    (['--tile', '64', '--overlap', '64'], '--overlap (64) must be smaller than --tile (64)'),
    (['--weights', 'w.pth', '--labels', 'oracle global gain'], "--labels: 'oracle global gain' is not usable"),
    (['--weights', 'w.pth', '--labels', 'a/b'], "--labels: 'a/b' is not usable"),
])
def test_evaluate_argument_ranges_and_labels(test_set, tmp_path, capsys, argv, text):
    parse_error(evaluate.main, run_evaluate(test_set, tmp_path / 'eval', *argv), capsys, text)


def test_evaluate_outputs_and_test_set_checked_first(test_set, tmp_path):
    (tmp_path / 'file.png').write_text('x')
    for extra in ([], ['--overwrite']):
        fails(evaluate.main, run_evaluate(test_set, tmp_path / 'file.png', *extra), r"--out '.*file.png' is a file")
    fails(evaluate.main, run_evaluate(test_set, test_set, '--overwrite'), r'lies inside --test-dir')
    (test_set / 'flash' / 'Leaves_001.png').unlink()
    png(test_set / 'flash' / 'Leaves_001.png', height=10, width=10, bits=16)
    fails(evaluate.main, run_evaluate(test_set, tmp_path / 'e'),
          r'scene Leaves_001 of .* different sizes \(lq 20x20, flash 10x10, gt 20x20\)')
    (test_set / 'lq' / 'Leaves_001.png').write_bytes(b'not a png')
    fails(evaluate.main, run_evaluate(test_set, tmp_path / 'e'), r'lq/Leaves_001.png: not a readable image')
    state = training_state(tmp_path / '10.state')
    fails(evaluate.main, run_evaluate(test_set, tmp_path / 'e', '--weights', state, '--max-scenes', 1),
          r'is a BasicSR training state')
    fails(evaluate.main, run_evaluate(test_set, tmp_path / 'e', '--weights', state, '-opt',
                                      options_file(tmp_path / 'o.yml', {'type': 'NoSuchArch'}), '--max-scenes', 1),
          r'is a BasicSR training state')
    assert not (tmp_path / 'e').exists()


def test_evaluate_names_what_it_skips(test_set, tmp_path, capsys):
    png(test_set / 'lq' / 'Extra_001.png', height=20, width=20, bits=16)
    evaluate.main(run_evaluate(test_set, tmp_path / 'e', '--max-scenes', 1))
    printed = capsys.readouterr().out
    assert 'Skipped (no gt/ partner, not scored): lq/Extra_001.png' in printed
    assert '--max-scenes 1: scoring the first 1 of 2 scenes; left out: Leaves_001' in printed
    assert (tmp_path / 'e' / 'metrics.md').is_file() and (tmp_path / 'e' / 'comparison.png').is_file()


# ------------------------------------------------------------------------------------------------ prepare_faid.py
@pytest.fixture
def faid_root(tmp_path):
    root = tmp_path / 'parent' / 'faid'
    for number in range(2):
        for role in ('ambient', 'flash'):
            png(root / f'Leaves_{number:03d}_{role}.png', height=24, width=24, seed=number)
    (root / 'notes.txt').write_text('mine')
    return root


def snapshot(folder):
    return {osp.relpath(osp.join(d, f), folder): open(osp.join(d, f), 'rb').read()
            for d, _, names in os.walk(folder) for f in names}


def test_prepare_never_deletes_its_input(faid_root, tmp_path):
    before = snapshot(faid_root)
    base = ['--faid-root', str(faid_root), '--all-test', '--overwrite', '--out']
    for out, relation in ((faid_root, 'is'), (faid_root.parent, 'contains'), (faid_root / 'prepared', 'lies inside')):
        fails(prepare.main, base + [str(out)], rf'--out .* {relation} --faid-root .*: choose another --out')
    (tmp_path / 'keep.png').write_text('x')
    fails(prepare.main, base + [str(tmp_path / 'keep.png')], r'--out .*keep.png exists and is not a folder')
    listing = tmp_path / 'out' / 'test.txt'
    listing.parent.mkdir()
    listing.write_text('Leaves_000\n')
    fails(prepare.main, ['--faid-root', str(faid_root), '--test-list', str(listing), '--overwrite', '--out',
                         str(tmp_path / 'out')], r'--test-list .*test.txt lies inside --out')
    assert snapshot(faid_root) == before and (tmp_path / 'keep.png').read_text() == 'x' and listing.is_file()
    (tmp_path / 'bad.yml').write_text('a: [b\n')
    fails(prepare.main, ['--faid-root', str(faid_root), '--all-test', '--out', str(tmp_path / 'p'), '--opt',
                         str(tmp_path / 'bad.yml')], r'--opt .*bad.yml: not valid YAML \(while parsing')


@pytest.mark.parametrize('argv, text', [
    (['--seed', '-1'], 'argument --seed: must be at least 0, got -1'),
    (['--test-crop', '0'], 'argument --test-crop: must be at least 1, got 0'),
])
def test_prepare_argument_ranges(faid_root, tmp_path, capsys, argv, text):
    parse_error(prepare.main, ['--faid-root', str(faid_root), '--out', str(tmp_path / 'p'), '--all-test'] + argv,
                capsys, text)


# ------------------------------------------------------------------------------------------------ make_toy_faid.py
def toy(out, *extra):
    make_toy.main(['--out', str(out), '--count', '1', '--size', '16', '--photo-fraction', '0', '--workers', '1']
                  + list(extra))


def test_toy_overwrite_removes_only_its_own_files(tmp_path, capsys):
    out = tmp_path / 'F'
    toy(out, '--count', '2')
    assert len(os.listdir(out)) == 4
    toy(out, '--overwrite')  # a smaller run replaces the scenes of the earlier one: none left behind
    assert sorted(os.listdir(out)) == ['Leaves_000_ambient.png', 'Leaves_000_flash.png']
    (out / 'holiday.png').write_text('mine')
    fails(lambda argv: toy(out, *argv), ['--overwrite'], r'holds files that are not toy scenes \(holiday.png\)')
    assert (out / 'holiday.png').read_text() == 'mine' and len(os.listdir(out)) == 3
    (tmp_path / 'f.png').write_text('x')
    fails(lambda argv: toy(tmp_path / 'f.png', *argv), ['--overwrite'], r'--out .*f.png is a file, not a folder')
    parse_error(lambda argv: toy(tmp_path / 'n', *argv), ['--seed', '-1'], capsys,
                'argument --seed: must be at least 0, got -1')
    parse_error(lambda argv: toy(tmp_path / 'n', *argv), ['--workers', '0'], capsys,
                'argument --workers: must be at least 1, got 0')


# ------------------------------------------------------------------------------------------------ other tools
def test_flops_errors(tmp_path, capsys):
    parse_error(flops.main, ['-opt', 'options/fcdfn_demo.yml', '--size', '0', '0'], capsys,
                'argument --size: must be at least 16, got 0')
    fails(flops.main, ['-opt', options_file(tmp_path / 'o.yml', {'type': 'NoSuchArch'})], r"'NoSuchArch' is not a")
    fails(flops.main, ['-opt', options_file(tmp_path / 'o.yml', {'type': 'FCDFNArch', 'bogus': 1})],
          r'FCDFNArch takes no bogus')
    (tmp_path / 'bad.yml').write_text('a: [b\n')
    fails(flops.main, ['-opt', str(tmp_path / 'bad.yml')], r'cannot read options file .*bad.yml')


def test_export_refuses_a_training_state(tmp_path):
    (tmp_path / 'training_states').mkdir()
    state = training_state(tmp_path / 'training_states' / '10.state')
    fails(export.main, ['--weights', state, '-opt', osp.join(REPO_ROOT, 'options', 'fcdfn_small.yml'),
                        '--out', str(tmp_path / 'w.pth')],
          r"training state .*; pass the weights of the same iteration, .*models/net_g_10.pth")
    assert not (tmp_path / 'w.pth').exists()


def test_runner_options_checked_before_basicsr(tmp_path):
    from fcdfn_plugin.utils.cli import CliError, check_runner_options
    check_runner_options(['-opt', osp.join(REPO_ROOT, 'options', 'fcdfn_demo.yml'), '--auto_resume'])
    with pytest.raises(CliError, match=r"-opt '.*none.yml' does not exist"):
        check_runner_options(['-opt', str(tmp_path / 'none.yml')])
    (tmp_path / 'bad.yml').write_text('a: [b\n')
    with pytest.raises(CliError, match=r'bad.yml.* is not a readable YAML file'):
        check_runner_options(['-opt', str(tmp_path / 'bad.yml')])
    with pytest.raises(CliError, match=r"type 'NoSuchArch' is not a registered arch"):
        check_runner_options(['-opt', options_file(tmp_path / 'o.yml', {'type': 'NoSuchArch'})])
    fcdfn = {'type': 'FCDFNArch'}
    with pytest.raises(CliError, match=r"model_type 'NoModel' is not a registered model"):
        check_runner_options(['-opt', options_file(tmp_path / 'o.yml', fcdfn, model_type='NoModel')])
    with pytest.raises(CliError, match=r"datasets.train.type 'NoData' is not a registered dataset"):
        check_runner_options(['-opt', options_file(tmp_path / 'o.yml', fcdfn, model_type='FCDFNModel',
                                                   datasets={'train': {'type': 'NoData'}})])
