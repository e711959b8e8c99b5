"""Test with BasicSR's own runner: ``python tools/test.py -opt options/test_fcdfn.yml``.

Results go to ``<root>/results/<name>``, where root is ``$FCDFN_ROOT`` or this repository.
"""
import fcdfn_plugin  # noqa: F401  (patches BasicSR and registers the plugin)
from basicsr.test import test_pipeline

from fcdfn_plugin.utils.paths import experiments_root

if __name__ == '__main__':
    import sys

    from fcdfn_plugin.utils.cli import CliError, check_runner_options
    try:
        check_runner_options(sys.argv[1:])
    except CliError as err:
        sys.exit(f'error: {err}')
    test_pipeline(experiments_root())
