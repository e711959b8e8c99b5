"""Padding to a size multiple and tiled inference with smooth overlap blending (pure torch, no BasicSR).

``tiled_forward`` runs an image-to-image function on overlapping tiles of one or more aligned inputs
and blends the tile outputs, so that a 12-megapixel pair runs in the memory of one tile:

* Tiles start on a grid whose step is a multiple of ``multiple`` (the network's padding multiple,
  2**depth for a U-Net), so every tile sees the same pooling grid as the whole image would; the
  overlap actually used is ``tile - step >= overlap``. Tiles touching the bottom/right border are
  shorter and reflect-padded to a multiple there, exactly as the network pads a whole image.
* Each tile's output is weighted by a separable window that is 1 in the tile's interior and along
  image borders, and, on a side shared with a neighbour, 0 over the outermost ``edge_margin``
  pixels (where the tile's own border corrupts a convolutional output) followed by a raised-cosine
  ramp. The accumulated output is divided by the accumulated weights, so wherever the tiles agree
  the result is exact; with a regular step the raw ramps of two neighbours already sum to 1.
* Memory: the two accumulators (output and weights) plus one tile's inputs and output.
"""
import math

import torch
from torch.nn import functional as F


def pad_to_multiple(x, multiple, mode='reflect'):
    """Pad the bottom and right of ``x`` (..., H, W) so that H and W become multiples of ``multiple``.

    Args:
        x (Tensor): (B, C, H, W) (any leading dims that ``F.pad`` accepts for ``mode``).
        multiple (int): >= 1.
        mode (str): 'reflect' (default), 'replicate', 'circular' or 'constant' (zeros). Reflection
            wider than the image is applied repeatedly; a 1-pixel side is replicated.

    Returns:
        (Tensor, (int, int)): the padded tensor and the original (H, W); undo with
        :func:`crop_to_size` (``padded[..., :h, :w]``).
    """
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f'multiple must be a positive integer, got {multiple!r}')
    if mode not in ('reflect', 'replicate', 'circular', 'constant'):
        raise ValueError(f"unknown padding mode {mode!r}; use 'reflect', 'replicate', 'circular' or 'constant'")
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if mode != 'reflect':
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode=mode) if (pad_h or pad_w) else x
        return padded, (height, width)
    padded = x
    # torch's reflection must be narrower than the tensor: grow in steps, replicate a 1-pixel side.
    while pad_h or pad_w:
        cur_h, cur_w = padded.shape[-2:]
        step_h, step_w = min(pad_h, cur_h - 1), min(pad_w, cur_w - 1)
        if (pad_h and step_h == 0) or (pad_w and step_w == 0):
            padded = F.pad(padded, (0, pad_w if step_w == 0 else 0, 0, pad_h if step_h == 0 else 0), mode='replicate')
            pad_h, pad_w = (0 if step_h == 0 else pad_h), (0 if step_w == 0 else pad_w)
            continue
        padded = F.pad(padded, (0, step_w, 0, step_h), mode='reflect')
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return padded, (height, width)


def crop_to_size(x, size):
    """Undo :func:`pad_to_multiple`: keep the top-left ``size = (h, w)`` of ``x`` (..., H, W)."""
    height, width = size
    return x[..., :height, :width]


def tile_starts(size, tile, overlap, multiple=1):
    """Start offsets of the tiles along one axis of length ``size``.

    The step is ``tile - overlap`` rounded down to a multiple of ``multiple``; tiles are added until
    one reaches the end. A tile starting at ``s`` covers ``[s, min(s + tile, size))``.
    """
    _check_tiling(tile, overlap, multiple)
    if size <= tile:
        return [0]
    step = (tile - overlap) // multiple * multiple
    starts = [0]
    while starts[-1] + tile < size:
        starts.append(starts[-1] + step)
    return starts


def default_edge_margin(overlap):
    """Pixels at a shared tile side that get zero weight: a quarter of the overlap (ramp over the middle half)."""
    return overlap // 4


def blend_window(length, ramp_before, ramp_after, overlap, edge_margin=None, dtype=torch.float32, device=None):
    """1-D blending weights of one tile, shape (length,).

    Args:
        length (int): tile length along the axis.
        ramp_before, ramp_after (bool): whether the start / end side is shared with a neighbouring
            tile (an image border keeps weight 1 up to the edge).
        overlap (int): requested overlap; the ramp lives in the first/last ``overlap`` pixels.
        edge_margin (int | None): zero-weight pixels at a shared side (default ``overlap // 4``);
            the raised-cosine ramp spans the remaining ``overlap - 2 * edge_margin`` pixels, so a
            neighbour's ramp (mirrored) is its complement and the two sum to 1.
    """
    margin = default_edge_margin(overlap) if edge_margin is None else edge_margin
    ramp_length = overlap - 2 * margin
    window = torch.ones(length, dtype=torch.float64, device=device)
    if overlap > 0 and ramp_length < 1:
        raise ValueError(f'overlap {overlap} leaves no ramp after an edge margin of {margin} on each side; '
                         'use overlap > 2 * edge_margin')
    if overlap > 0:  # overlap 0: hard tile borders, every weight 1
        # Sampled at pixel centres: w(i) + w(ramp_length - 1 - i) == 1 exactly.
        positions = (torch.arange(ramp_length, dtype=torch.float64, device=device) + 0.5) / ramp_length
        ramp = 0.5 - 0.5 * torch.cos(math.pi * positions)
        ramp_up = torch.cat([torch.zeros(margin, dtype=torch.float64, device=device), ramp])
        if ramp_before:
            n = min(length, ramp_up.numel())
            window[:n] = window[:n] * ramp_up[:n]
        if ramp_after:
            n = min(length, ramp_up.numel())
            window[length - n:] = window[length - n:] * ramp_up[:n].flip(0)
    return window.to(dtype)


def _check_tiling(tile, overlap, multiple):
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f'multiple must be a positive integer, got {multiple!r}')
    if not isinstance(tile, int) or tile < 1:
        raise ValueError(f'tile must be a positive integer, got {tile!r}')
    if not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f'overlap must be a non-negative integer, got {overlap!r}')
    if tile - overlap < multiple:
        raise ValueError(f'tile ({tile}) minus overlap ({overlap}) must be at least multiple ({multiple}) '
                         'so that consecutive tiles advance')


def _check_inputs(inputs, edge_margin, tile, overlap, multiple):
    """Validate the tiling arguments; returns (inputs as a list, edge margin)."""
    if callable(inputs) or isinstance(inputs, torch.Tensor):
        raise TypeError('inputs must be a sequence of (B, C, H, W) tensors, e.g. [lq, flash]')
    inputs = list(inputs)
    if not inputs:
        raise ValueError('tiling needs at least one input tensor')
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
            raise ValueError(f'input {index} must be a (B, C, H, W) tensor, got '
                             f'{tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__}')
    for index, tensor in enumerate(inputs[1:], start=1):
        if tensor.shape[0] != inputs[0].shape[0] or tensor.shape[-2:] != inputs[0].shape[-2:]:
            raise ValueError(f'input {index} has shape {tuple(tensor.shape)}, but input 0 has '
                             f'{tuple(inputs[0].shape)}: batch and spatial sizes must agree')
    _check_tiling(tile, overlap, multiple)
    margin = default_edge_margin(overlap) if edge_margin is None else edge_margin
    if margin < 0:
        raise ValueError(f'edge_margin must be >= 0, got {margin}')
    if overlap > 0 and overlap - 2 * margin < 1:
        raise ValueError(f'overlap {overlap} leaves no blending ramp after an edge margin of {margin} on each '
                         'side; use overlap > 2 * edge_margin')
    return inputs, margin


def iter_tiles(inputs, tile, overlap, multiple=1, edge_margin=None, pad_mode='reflect'):
    """Yield ``(box, tiles, window)`` for every tile of the aligned ``inputs``, row by row.

    ``box = (top, bottom, left, right)`` is the tile's region of the image; ``tiles`` are the inputs
    cut to it and padded to ``multiple`` (see :func:`pad_to_multiple`); ``window`` is its
    (bottom - top, right - left) float64 blending weight (:func:`blend_window` on both axes).
    Over all tiles the windows sum to 1 at every pixel. Arguments as :func:`tiled_forward`; they are
    checked when this is called, not when the first tile is drawn.
    """
    inputs, margin = _check_inputs(inputs, edge_margin, tile, overlap, multiple)
    return _tiles(inputs, tile, overlap, multiple, margin, pad_mode)


def _tiles(inputs, tile, overlap, multiple, margin, pad_mode):
    """The generator of :func:`iter_tiles`, on checked arguments."""
    height, width = inputs[0].shape[-2:]
    rows, cols = tile_starts(height, tile, overlap, multiple), tile_starts(width, tile, overlap, multiple)
    device = inputs[0].device
    for row_index, top in enumerate(rows):
        bottom = min(top + tile, height)
        window_y = blend_window(bottom - top, row_index > 0, row_index < len(rows) - 1, overlap, margin,
                                dtype=torch.float64, device=device)
        for col_index, left in enumerate(cols):
            right = min(left + tile, width)
            window_x = blend_window(right - left, col_index > 0, col_index < len(cols) - 1, overlap, margin,
                                    dtype=torch.float64, device=device)
            tiles = [pad_to_multiple(tensor[..., top:bottom, left:right], multiple, pad_mode)[0] for tensor in inputs]
            yield (top, bottom, left, right), tiles, window_y[:, None] * window_x[None, :]


def count_tiles(height, width, tile, overlap, multiple=1):
    """How many tiles :func:`iter_tiles` yields for an image of ``height`` x ``width``."""
    return len(tile_starts(height, tile, overlap, multiple)) * len(tile_starts(width, tile, overlap, multiple))


def tiled_forward(fn, inputs, tile, overlap, multiple=1, edge_margin=None, pad_mode='reflect', progress=None):
    """Run ``fn(*input_tiles)`` on overlapping tiles of all ``inputs`` and blend the outputs.

    Args:
        fn (callable): maps tiles (B, C_i, h, w), one per input, to (B, C_out, h, w) (same h, w). It
            runs under the caller's grad mode: wrap the call in ``torch.no_grad()`` for inference.
        inputs (sequence of Tensor): aligned (B, C_i, H, W) tensors on one device; any H, W >= 1.
        tile (int): tile side in pixels (best a multiple of ``multiple``). Images no larger than
            ``tile`` run as a single tile, i.e. exactly ``fn`` on the padded image.
        overlap (int): minimum overlap of neighbouring tiles; make the blending ramp
            (``overlap - 2 * edge_margin``) and the margin wide compared with ``fn``'s reach.
        multiple (int): tile starts are aligned to it and every tile is padded to a multiple of it.
        edge_margin (int | None): zero-weight pixels at shared tile sides (default ``overlap // 4``).
        pad_mode (str): how tiles are padded to ``multiple`` (see :func:`pad_to_multiple`).
        progress (callable | None): called as ``progress(done, total)`` after every tile (e.g. to
            drive a tqdm bar).

    Returns:
        Tensor: (B, C_out, H, W), on the device and with the dtype of ``fn``'s output (accumulated
        in at least float32).
    """
    inputs, margin = _check_inputs(inputs, edge_margin, tile, overlap, multiple)
    tiling = _tiles(inputs, tile, overlap, multiple, margin, pad_mode)
    batch, height, width = inputs[0].shape[0], *inputs[0].shape[-2:]
    total = count_tiles(height, width, tile, overlap, multiple)
    output = weights = None
    for done, ((top, bottom, left, right), tiles, window) in enumerate(tiling, start=1):
        result = fn(*tiles)
        if not isinstance(result, torch.Tensor) or result.dim() != 4 or result.shape[0] != batch or \
                result.shape[-2:] != tiles[0].shape[-2:]:
            got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
            raise ValueError(f'fn must return a (B, C_out, h, w) tensor with the tile\'s batch and size '
                             f'({batch}, *, {tiles[0].shape[-2]}, {tiles[0].shape[-1]}); got {got}')
        result = crop_to_size(result, (bottom - top, right - left))
        if output is None:
            result_dtype = result.dtype
            accumulate_dtype = torch.promote_types(result_dtype, torch.float32)
            output = result.new_zeros((batch, result.shape[1], height, width), dtype=accumulate_dtype)
            weights = result.new_zeros((1, 1, height, width), dtype=accumulate_dtype)
        window = window.to(accumulate_dtype)
        output[..., top:bottom, left:right] += result.to(accumulate_dtype) * window
        weights[..., top:bottom, left:right] += window
        del result, tiles
        if progress is not None:
            progress(done, total)
    if not bool((weights > 0).all()):  # cannot happen with validated options; guards the division
        raise RuntimeError(f'tiling left pixels without weight (tile={tile}, overlap={overlap}, '
                           f'multiple={multiple}); use a larger tile or smaller margin')
    output /= weights
    return output.to(result_dtype)


def tiled_weighted_sum(fn, inputs, tile, overlap, multiple=1, edge_margin=None, pad_mode='reflect', progress=None):
    """Sum ``fn(*input_tiles, weight)`` over the tiles of :func:`iter_tiles`.

    For image-level statistics (e.g. the global average of features) computed tile by tile:
    ``weight`` is the tile's blending window, zero-padded like the tiles to (h_padded, w_padded)
    and shaped (1, 1, h, w). Since the windows sum to 1 at every pixel, a ``fn`` that returns
    weighted sums ``sum(weight * f)`` adds up to the whole image's ``sum(f)``. ``fn`` returns a
    list of tensors; the result is their element-wise sum over tiles. Other arguments as
    :func:`tiled_forward`.
    """
    inputs, margin = _check_inputs(inputs, edge_margin, tile, overlap, multiple)
    tiling = _tiles(inputs, tile, overlap, multiple, margin, pad_mode)
    total_tiles = count_tiles(*inputs[0].shape[-2:], tile, overlap, multiple)
    total = None
    for done, (_, tiles, window) in enumerate(tiling, start=1):
        padded_height, padded_width = tiles[0].shape[-2:]
        weight = F.pad(window, (0, padded_width - window.shape[1], 0, padded_height - window.shape[0]))
        parts = fn(*tiles, weight[None, None].to(tiles[0].dtype))
        total = list(parts) if total is None else [a + b for a, b in zip(total, parts)]
        if progress is not None:
            progress(done, total_tiles)
    return total
