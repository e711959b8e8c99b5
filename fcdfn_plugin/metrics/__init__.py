"""Registered metrics of the FCDFN plugin: ``calculate_fcdfn_lpips`` (LPIPS, VGG backbone, offline weights).

``load_vgg16_features`` gives the verified ImageNet VGG-16 convolutions to any module that needs them;
``vgg16_weights`` fetches, converts and verifies them (``make setup`` runs it once).
"""
from .lpips_metric import calculate_fcdfn_lpips, find_vgg16_weights, get_lpips_vgg, load_vgg16_features

__all__ = ['calculate_fcdfn_lpips', 'find_vgg16_weights', 'get_lpips_vgg', 'load_vgg16_features']
