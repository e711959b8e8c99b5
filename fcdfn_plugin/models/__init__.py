"""Registered models of the FCDFN plugin."""
from .fcdfn_model import FCDFNModel

__all__ = ['FCDFNModel']
