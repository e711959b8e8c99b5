"""Pure tensor maths of FCDFN (no BasicSR imports)."""
from .basis_filter import IMPLS as FILTER_IMPLS
from .basis_filter import BasisFilter, basis_filter, basis_filter_conv, pad_image
from .saecnn import SAECNN_MODES, SAECNNFilter, coarse_filter, saecnn_filter, tent_lowpass

__all__ = ['FILTER_IMPLS', 'BasisFilter', 'basis_filter', 'basis_filter_conv', 'pad_image', 'SAECNN_MODES',
           'SAECNNFilter', 'coarse_filter', 'saecnn_filter', 'tent_lowpass']
