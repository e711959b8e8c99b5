"""Train with BasicSR's own runner: ``python tools/train.py -opt options/fcdfn.yml``.

Distributed: ``torchrun --nproc_per_node=N tools/train.py -opt ... --launcher pytorch``.
Experiments go to ``<root>/experiments/<name>``, where root is ``$FCDFN_ROOT`` or this repository.
"""
import fcdfn_plugin  # noqa: F401  (patches BasicSR and registers the plugin)
from basicsr.train import train_pipeline

from fcdfn_plugin.utils.paths import experiments_root

if __name__ == '__main__':
    import sys

    from fcdfn_plugin.utils.cli import CliError, check_runner_options
    try:
        check_runner_options(sys.argv[1:])
    except CliError as err:
        sys.exit(f'error: {err}')
    train_pipeline(experiments_root())
