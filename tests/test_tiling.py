"""Padding helpers and tiled inference: exactness where tiles agree, local ops, weights, odd sizes, seams."""
import pytest
import torch
from torch.nn import functional as F

from fcdfn_plugin.utils.tiling import (blend_window, crop_to_size, pad_to_multiple, tile_starts, tiled_forward,
                                       tiled_weighted_sum)


def _images(*channels, height=223, width=301, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(2, c, height, width, generator=generator) for c in channels]


def _ramp_image(height, width):
    """A linear ramp: a normalised conv maps it to a linear ramp, so every neighbour step is the same
    away from the image border, and any seam shows as a different step."""
    ys = torch.linspace(0, 1, height)[:, None]
    xs = torch.linspace(0, 1, width)[None, :]
    return (0.2 + 0.5 * xs + 0.3 * ys).expand(1, 3, height, width).contiguous()


def _local_conv(kernel_size, in_channels, seed=1):
    """A fixed random conv with zero padding: its output near a tile's own border is wrong (seam source)."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.rand(3, in_channels, kernel_size, kernel_size, generator=generator)
    weight /= weight.sum(dim=(1, 2, 3), keepdim=True)

    def fn(*tiles):
        return F.conv2d(torch.cat(tiles, dim=1), weight, padding=kernel_size // 2)

    return fn


def _interior_borders(size, tile, overlap, multiple=1):
    """Positions c where a tile starts or ends inside the image (the seam lies between c - 1 and c)."""
    starts = tile_starts(size, tile, overlap, multiple)
    ends = [min(start + tile, size) for start in starts]
    return sorted({s for s in starts[1:]} | {e for e in ends[:-1]})


def test_pad_to_multiple_and_crop_back():
    x = torch.rand(2, 3, 13, 30)
    padded, size = pad_to_multiple(x, 8)
    assert padded.shape == (2, 3, 16, 32) and size == (13, 30)
    assert torch.equal(padded, F.pad(x, (0, 2, 0, 3), mode='reflect'))
    assert torch.equal(crop_to_size(padded, size), x)
    same, _ = pad_to_multiple(x, 1)
    assert same is x
    assert torch.equal(pad_to_multiple(x, 8, mode='constant')[0][..., 13:, :], torch.zeros(2, 3, 3, 32))


def test_pad_wider_than_image_reflects_repeatedly():
    row = torch.arange(3.).view(1, 1, 1, 3)
    padded, size = pad_to_multiple(row, 8)
    assert padded.shape == (1, 1, 8, 8) and size == (1, 3)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    assert torch.equal(padded, padded[..., :1, :].expand_as(padded))  # 1-pixel side replicated
    with pytest.raises(ValueError, match='multiple'):
        pad_to_multiple(row, 0)
    with pytest.raises(ValueError, match='padding mode'):
        pad_to_multiple(row, 4, mode='mirror')


@pytest.mark.parametrize('tile, overlap, multiple', [(64, 16, 1), (64, 16, 8), (96, 32, 16), (50, 12, 4), (40, 0, 8)])
def test_pointwise_fn_is_exact(tile, overlap, multiple):
    lq, flash = _images(3, 3)
    out = tiled_forward(lambda a, b: a * b + 0.5 * a, [lq, flash], tile, overlap, multiple)
    assert out.shape == lq.shape
    assert (out - (lq * flash + 0.5 * lq)).abs().max() < 1e-6


@pytest.mark.parametrize('tile, overlap, multiple', [(64, 16, 1), (64, 16, 8), (48, 8, 8), (96, 24, 32)])
def test_local_op_matches_untiled(tile, overlap, multiple):
    """Reach 2 (5x5 conv) <= edge margin (overlap // 4): every pixel is exact, borders included."""
    lq, flash = _images(3, 1)
    fn = _local_conv(5, 4)
    padded = [pad_to_multiple(x, multiple)[0] for x in (lq, flash)]
    reference = crop_to_size(fn(*padded), lq.shape[-2:])  # untiled, padded like the tiles
    out = tiled_forward(fn, [lq, flash], tile, overlap, multiple)
    assert out.shape == (2, 3, 223, 301)
    assert (out - reference).abs().max() < 1e-4
    # Without alignment padding (multiple 1) the reference is the plain untiled call.
    if multiple == 1:
        assert (out - fn(lq, flash)).abs().max() < 1e-4


def test_tile_larger_than_image_is_one_call():
    lq, = _images(3, height=37, width=21)
    calls = []

    def fn(x):
        calls.append(tuple(x.shape))
        return x.flip(-1)  # not local: only exact if the whole image is one tile

    out = tiled_forward(fn, [lq], tile=64, overlap=16, multiple=1)
    assert calls == [(2, 3, 37, 21)]
    assert torch.equal(out, lq.flip(-1))
    out = tiled_forward(lambda x: x * 3, [lq], tile=64, overlap=16, multiple=16)
    assert torch.allclose(out, lq * 3)


def test_tiles_are_bounded_and_progress_is_reported():
    lq, flash = _images(3, 3, height=130, width=170)
    shapes, progress = [], []

    def fn(a, b):
        shapes.append(a.shape[-2:])
        return a - b

    out = tiled_forward(fn, [lq, flash], tile=48, overlap=16, multiple=16,
                        progress=lambda d, t: progress.append((d, t)))
    assert torch.allclose(out, lq - flash)
    assert max(h for h, _ in shapes) <= 48 and max(w for _, w in shapes) <= 48
    assert all(h % 16 == 0 and w % 16 == 0 for h, w in shapes)
    total = len(tile_starts(130, 48, 16, 16)) * len(tile_starts(170, 48, 16, 16))
    assert progress == [(i + 1, total) for i in range(total)] and total == len(shapes) > 1


def test_tile_starts_are_aligned_and_cover():
    for size in (1, 47, 48, 49, 223, 301, 1000):
        for tile, overlap, multiple in ((48, 16, 16), (64, 16, 8), (50, 12, 1)):
            starts = tile_starts(size, tile, overlap, multiple)
            assert starts[0] == 0 and min(starts[-1] + tile, size) == size
            assert all(s % multiple == 0 for s in starts)
            assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_blend_weights_sum_to_one():
    # Regular tiling (the last tile ends exactly at the image border): raw ramps form a partition of unity.
    size, tile, overlap = 112, 48, 16
    starts = tile_starts(size, tile, overlap)
    assert starts == [0, 32, 64]
    total = torch.zeros(size, dtype=torch.float64)
    for index, start in enumerate(starts):
        total[start:start + tile] += blend_window(tile, index > 0, index < len(starts) - 1, overlap,
                                                  dtype=torch.float64)
    assert torch.allclose(total, torch.ones(size, dtype=torch.float64), atol=1e-12)
    window = blend_window(tile, True, True, overlap)
    assert window[:overlap // 4].abs().max() == 0 and window[-(overlap // 4):].abs().max() == 0
    assert torch.equal(blend_window(tile, False, False, overlap), torch.ones(tile))
    # Irregular tiling: the normalised weights still sum to one (a constant passes through unchanged).
    ones = torch.ones(1, 1, 223, 301)
    out = tiled_forward(lambda x: x, [ones], tile=64, overlap=20, multiple=8)
    assert (out - 1).abs().max() < 1e-6


def test_seams_are_not_visible():
    """Neighbouring-pixel steps across tile borders are no larger than anywhere else in the image.

    fn is a 9x9 conv with zero padding (reach 4): a tile's own output is wrong within 4 px of its
    border. With the default edge margin (overlap // 4 = 4 for overlap 16) those pixels get zero
    weight and no seam remains; with a smaller margin the ramp alone still shrinks the seam several
    times; hard tiles (overlap 0) are the control that shows the criterion detects seams.
    """
    image = _ramp_image(150, 190)
    fn = _local_conv(9, 3)
    tile, multiple = 64, 8

    def seam_and_rest(out, overlap):
        """Largest neighbour step within 6 px of a tile border vs everywhere else, both directions."""
        at_seams, elsewhere = [], []
        for axis in (-1, -2):
            size = out.shape[axis]
            steps = out.diff(dim=axis).abs().amax(dim=(0, 1))  # step from position c - 1 to c
            if axis == -2:
                steps = steps.transpose(0, 1)
            steps = steps[8:-8]  # drop the lines along the image border: the conv's own zero padding is there
            near = torch.zeros(size - 1, dtype=torch.bool)
            for c in _interior_borders(size, tile, overlap, multiple):
                near[max(c - 7, 0):c + 6] = True
            inner = torch.zeros_like(near)
            inner[8:-8] = True
            at_seams.append(steps[:, near & inner].max())
            elsewhere.append(steps[:, ~near & inner].max())
        return max(at_seams).item(), max(elsewhere).item()

    for overlap, margin in ((16, None), (24, None), (16, 4), (20, 6)):
        out = tiled_forward(fn, [image], tile, overlap, multiple, edge_margin=margin)
        at_seams, elsewhere = seam_and_rest(out, overlap)
        assert at_seams <= elsewhere * (1 + 1e-3), (overlap, margin, at_seams, elsewhere)

    hard_seams, smooth_steps = seam_and_rest(tiled_forward(fn, [image], tile, 0, multiple), 0)
    assert hard_seams > 10 * smooth_steps  # the criterion does detect seams
    ramp_only, _ = seam_and_rest(tiled_forward(fn, [image], tile, 32, multiple, edge_margin=0), 32)
    assert ramp_only - smooth_steps < (hard_seams - smooth_steps) / 5


def test_bad_arguments_are_explained():
    lq, flash = _images(3, 3, height=40, width=40)
    with pytest.raises(ValueError, match='spatial sizes must agree'):
        tiled_forward(lambda a, b: a, [lq, flash[..., :39]], tile=32, overlap=8)
    with pytest.raises(ValueError, match='at least multiple'):
        tiled_forward(lambda a: a, [lq], tile=32, overlap=24, multiple=16)
    with pytest.raises(ValueError, match='no blending ramp'):
        tiled_forward(lambda a: a, [lq], tile=32, overlap=8, edge_margin=4)
    with pytest.raises(ValueError, match="tile's batch and size"):
        tiled_forward(lambda a: a[..., :-1, :], [lq], tile=32, overlap=8)
    with pytest.raises(TypeError, match='sequence'):
        tiled_forward(lambda a: a, lq, tile=32, overlap=8)
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        tiled_forward(lambda a: a, [lq[0]], tile=32, overlap=8)


def test_bad_inputs_fail_before_any_tile_runs():
    """Argument errors come from the checks (clear messages), not from a later index or attribute error."""
    calls = []
    with pytest.raises(ValueError, match='at least one input'):
        tiled_forward(lambda *t: calls.append(t), [], tile=64, overlap=16)
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        tiled_weighted_sum(lambda *t: calls.append(t), [None], tile=64, overlap=16)
    assert not calls
