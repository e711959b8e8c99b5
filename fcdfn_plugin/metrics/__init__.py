"""Registered metrics of the FCDFN plugin: ``calculate_fcdfn_lpips`` (LPIPS, VGG backbone, offline weights)."""
from .lpips_metric import calculate_fcdfn_lpips, find_vgg16_weights, get_lpips_vgg

__all__ = ['calculate_fcdfn_lpips', 'find_vgg16_weights', 'get_lpips_vgg']
