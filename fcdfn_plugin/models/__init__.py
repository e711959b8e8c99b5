"""Registered models of the FCDFN plugin."""
from .dsn_model import DSNModel
from .fcdfn_model import FCDFNModel

__all__ = ['DSNModel', 'FCDFNModel']
