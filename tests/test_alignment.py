"""Global pre-alignment of the flash photo (fcdfn_plugin.utils.alignment)."""
import cv2
import numpy as np
import pytest
import torch
from skimage import data

from fcdfn_plugin.data.degradation import add_read_shot_noise, linear_to_srgb, srgb_to_linear
from fcdfn_plugin.utils.alignment import align_flash


def pair(shift, dim=30.0, size=256, seed=0):
    """A dark, noisy no-flash photo and a flash photo moved by corner offsets up to ``shift`` px."""
    rng = np.random.default_rng(seed)
    scene = srgb_to_linear(cv2.resize(data.astronaut(), (size + 64, size + 64)).astype(np.float32) / 255)
    offsets = rng.uniform(-shift, shift, size=(4, 2)).astype(np.float32)
    corners = np.float32([[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]])
    to_scene = cv2.getPerspectiveTransform(corners, corners + 32 + offsets)
    flash_lit = cv2.warpPerspective(scene * 0.8, to_scene, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    low = np.clip(add_read_shot_noise(scene[32:-32, 32:-32] / dim, 5e-3, 3e-2, rng), 0, 1)

    def to_tensor(x):
        return torch.from_numpy(linear_to_srgb(x).transpose(2, 0, 1).copy())[None]

    truth = to_tensor(scene[32:-32, 32:-32] * 0.8)
    return to_tensor(low), to_tensor(np.clip(flash_lit, 0, 1)), truth


def test_a_large_misalignment_is_undone():
    low, flash, truth = pair(shift=40, size=384)
    aligned, info = align_flash(low, flash)
    assert info['aligned'], info
    inner = (slice(None), slice(None), slice(64, -64), slice(64, -64))  # away from the replicated border
    before = (flash - truth)[inner].abs().mean()
    after = (aligned - truth)[inner].abs().mean()
    assert after < 0.3 * before, (float(before), float(after))


def test_a_failed_alignment_returns_the_flash_photo_unchanged_with_the_reason():
    low = torch.zeros(1, 3, 64, 64)  # a black photo has no features
    flash = torch.rand(1, 3, 64, 64)
    aligned, info = align_flash(low, flash)
    assert aligned is flash and not info['aligned'] and 'features' in info['reason']


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match='one size'):
        align_flash(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
