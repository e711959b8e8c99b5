"""Registered archs of the FCDFN plugin."""
from .deepfnf_arch import DeepFnFArch
from .fcdfn_arch import FCDFNArch

__all__ = ['DeepFnFArch', 'FCDFNArch']
