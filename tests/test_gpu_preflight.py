"""``tools/gpu_preflight.py``: the preflight of tools/gpu_check.sh names every missing module at once.

Also the wheel list of ``tools/gpu_wheels.sh`` against requirements.txt and the preflight's own list.
"""
import os
import re

from conftest import REPO_ROOT, load_tool

preflight = load_tool('gpu_preflight')
ABSENT = 'fcdfn_surely_absent_pkg'


def write_requirements(tmp_path, text):
    path = tmp_path / 'requirements.txt'
    path.write_text(text)
    return str(path)


def test_required_packages_use_import_names(tmp_path):
    path = write_requirements(tmp_path, '# a comment\nopencv-python==5.0.0.93\nPyYAML==6.0.4\nscikit-image==0.26\n'
                                        'basicsr==1.4.2  # pinned\n\nfcdfn-surely-absent-pkg>=1\n')
    packages = preflight.required_packages(path)
    assert packages['cv2'] == 'opencv-python' and packages['yaml'] == 'PyYAML' and packages['skimage'] == 'scikit-image'
    assert packages['basicsr'] == 'basicsr' and packages[ABSENT] == 'fcdfn-surely-absent-pkg'
    assert {'torch', 'triton', 'addict', 'yapf', 'platformdirs', 'termcolor'} <= set(packages)


def test_missing_packages_and_import_failures_name_only_the_absent():
    assert preflight.missing_packages({'json': 'json', ABSENT: 'fcdfn-surely-absent-pkg', 'os': 'os'}) == \
        [f'{ABSENT} (package fcdfn-surely-absent-pkg)']
    (failure,) = preflight.import_failures(['json', ABSENT])
    assert failure.startswith(f'{ABSENT}: ModuleNotFoundError')


def test_main_lists_every_missing_module(tmp_path, capsys):
    path = write_requirements(tmp_path, 'numpy\nfcdfn-surely-absent-pkg\nfcdfn-other-absent-pkg==2\n')
    assert preflight.main(['--requirements', path, '--no-gpu']) == 1
    err = capsys.readouterr().err
    assert 'lacks 2 Python module(s)' in err and ABSENT in err and 'fcdfn_other_absent_pkg' in err
    assert 'tools/gpu_wheels.sh' in err and '--no-index --no-deps' in err


def test_main_passes_in_the_project_environment(repo_root, capsys):
    """The test environment has everything the GPU check imports (only the GPU is missing here)."""
    assert preflight.main(['--no-gpu']) == 0
    assert capsys.readouterr().out.startswith('preflight ok: python ')


def test_a_module_missing_only_on_import_is_reported_with_its_importer(tmp_path):
    """A module that a step imports, though no list names it, is counted as missing, not as a failure."""
    (tmp_path / 'needs_absent.py').write_text(f'import json\nimport {ABSENT}.sub\n')
    (tmp_path / 'broken.py').write_text('raise RuntimeError("broken on import")\n')
    path = write_requirements(tmp_path, 'numpy\n')
    missing, failures, gpu_problem = preflight.problems(
        path, need_gpu=False, modules=[str(tmp_path / 'needs_absent.py'), str(tmp_path / 'broken.py'), 'json'])
    assert missing == [f'{ABSENT} (imported by needs_absent.py)'] and gpu_problem is None
    assert len(failures) == 1 and 'broken.py: RuntimeError: broken on import' in failures[0]


def test_a_missing_submodule_of_an_installed_package_is_a_failure_not_absent():
    ((module, error),) = preflight.import_errors(['json.fcdfn_surely_absent_sub'])
    assert isinstance(error, ModuleNotFoundError) and preflight.absent_module(error) is None
    ((module, error),) = preflight.import_errors([ABSENT])
    assert preflight.absent_module(error) == ABSENT


def test_the_steps_cover_basicsr_lpips_mmengine_and_the_tools():
    modules = preflight.step_modules()
    assert {'fcdfn_plugin', 'basicsr', 'lmdb', 'lpips', 'mmengine', 'pytest'} <= set(modules)
    tools = [m for m in modules if m.endswith('.py')]
    assert tools and all(os.path.isfile(m) for m in tools)
    with open(os.path.join(REPO_ROOT, 'tools', 'gpu_check.sh')) as handle:
        script = handle.read()
    called = set(re.findall(r'tools/(\w+)\.py', script)) - {'gpu_preflight'}
    assert called == set(preflight.STEP_TOOLS)


def gpu_wheels_lists():
    """(FROM_REQUIREMENTS names, EXTRA 'name==version' specs) of tools/gpu_wheels.sh."""
    with open(os.path.join(REPO_ROOT, 'tools', 'gpu_wheels.sh')) as handle:
        script = handle.read()
    lists = {name: value.split() for name, value in re.findall(r'^(FROM_REQUIREMENTS|EXTRA)=\(([^)]*)\)', script, re.M)}
    return lists['FROM_REQUIREMENTS'], lists['EXTRA']


def test_gpu_wheels_pins_match_requirements_the_venv_and_the_preflight():
    from_requirements, extra = gpu_wheels_lists()
    with open(os.path.join(REPO_ROOT, 'requirements.txt')) as handle:
        pinned = dict(re.findall(r'^([A-Za-z0-9_.-]+)==(\S+)', handle.read(), re.M))
    assert {'basicsr', 'lmdb', 'lpips', 'mmengine'} <= set(from_requirements) <= set(pinned)
    names = {spec.split('==')[0] for spec in extra}
    # every extra wheel is a package the preflight checks for (and the other way round, torch aside)
    assert names == set(preflight.EXTRA_PACKAGES) - {'torch', 'torchvision', 'triton'}
    for spec in extra:  # pinned (transitive packages: a fresh environment may resolve other versions)
        assert '==' in spec, spec


def test_gpu_check_installs_the_wheels_and_puts_the_repository_on_the_path():
    with open(os.path.join(REPO_ROOT, 'tools', 'gpu_check.sh')) as handle:
        script = handle.read()
    install = script.index('--no-index --no-deps')
    assert '.whl/*.whl' in script[install:install + 200] and '--target "$SITE"' in script[install:install + 200]
    assert install < script.index('"$PY" tools/gpu_preflight.py')  # before anything imports
    assert 'export PYTHONPATH="$PWD' in script and 'export PYTHONPATH="$SITE' in script
