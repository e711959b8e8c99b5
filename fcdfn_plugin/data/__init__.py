"""Data of the FCDFN plugin: the degradation model, toy scenes, FAID I/O and the registered dataset.

``degradation``, ``textures``, ``toy_scenes`` and ``faid_io`` do not import BasicSR; ``flash_dataset``
registers ``FlashLowLightDataset`` in BasicSR's DATASET_REGISTRY.
"""
from . import degradation, faid_io, textures, toy_scenes  # noqa: F401
from .flash_dataset import FlashLowLightDataset  # noqa: F401

__all__ = ['FlashLowLightDataset']
