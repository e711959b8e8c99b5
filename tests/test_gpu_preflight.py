"""``tools/gpu_preflight.py``: the preflight of tools/gpu_check.sh names every missing module at once."""
from conftest import load_tool

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
    assert {'torch', 'triton', 'addict', 'yapf'} <= set(packages)


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
    assert '--no-index --find-links' in err


def test_main_passes_in_the_project_environment(repo_root, capsys):
    """The test environment has everything the GPU check imports (only the GPU is missing here)."""
    assert preflight.main(['--no-gpu']) == 0
    assert capsys.readouterr().out.startswith('preflight ok: python ')
