"""Registered archs of the FCDFN plugin: FCDFN, and the comparison systems of the paper's Table 1."""
from .cunet_arch import CUNetArch
from .deepfnf_arch import DeepFnFArch
from .djf_arch import DJFArch
from .dsn_arch import DSNArch
from .fcdfn_arch import FCDFNArch
from .frl_arch import FRLArch
from .lsd2_arch import LSD2Arch

__all__ = ['CUNetArch', 'DeepFnFArch', 'DJFArch', 'DSNArch', 'FCDFNArch', 'FRLArch', 'LSD2Arch']
