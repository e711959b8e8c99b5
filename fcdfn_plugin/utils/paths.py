"""Where runs write their experiments/ and results/ folders."""
import os
from os import path as osp

#: Environment variable naming the folder that receives ``experiments/``, ``results/`` and ``tb_logger/``.
ROOT_ENV = 'FCDFN_ROOT'

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def experiments_root():
    """``$FCDFN_ROOT`` if set (made absolute), else the repository root, as BasicSR's own tools do."""
    root = os.environ.get(ROOT_ENV)
    return osp.abspath(root) if root else REPO_ROOT
