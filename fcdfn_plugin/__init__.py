"""FCDFN (Flash Compensated Dynamic Filtering Network) as a BasicSR plugin.

``import fcdfn_plugin`` first makes BasicSR 1.4.2 importable and CPU-capable (``compat``), then
imports every registering module explicitly, so the arch, model, loss, datasets and metric are in
BasicSR's registries under their ``FCDFN``-prefixed names.
"""
from . import compat  # noqa: F401  (must be first: patches BasicSR before anything imports it)
from . import archs, data, losses, metrics, models  # noqa: F401,E402

__version__ = '0.1.0'
