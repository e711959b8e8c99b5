"""Physically rendered ambient / flash-only pairs for the offline stand-in of FAID.

Two sources, both rendered with the same light model (no BasicSR, numpy + OpenCV only):

* :func:`render_dead_leaves` — a procedural "dead leaves" scene: overlapping planar shapes, each
  with its own depth, surface normal and albedo texture, in front of a textured back wall. Exact
  geometry, so the flash-only image has exact fall-off, foreshortening and cast shadows.
* :func:`render_photo` — a cut of a real photograph, taken as the albedo, with a depth map (real
  depth from a stereo disparity map when one is given, else a random smooth surface).

Light model, in linear RGB (camera at the origin looking along +z, focal length = image size):

    ambient    = albedo * E(r) * (0.6 + 0.4 * max(0, n . a))   E: smooth coloured field, a: direction
    flash-only = albedo * max(0, n . l) / |L - P|^2 * visible(P, L)

with ``P`` the surface point, ``n`` its normal, ``L`` the flash (a point light a few centimetres
beside the lens, so occluders cast thin shadows) and ``l`` the unit vector from ``P`` to ``L``.
Each image is then exposed (scaled) so that its 97th percentile lands at a random level.

All functions take an explicit ``numpy.random.Generator``; images are (H, W, 3) float32 in [0, 1].
"""
import math

import cv2
import numpy as np

from .degradation import srgb_to_linear

# The warm and cool ends of the ambient illuminant colour (linear RGB, green = 1).
_WARM_ILLUMINANT = np.float32([1.0, 0.78, 0.5])
_COOL_ILLUMINANT = np.float32([0.72, 0.85, 1.0])


def camera_rays(height, width):
    """(H, W, 3) float32 ray directions with unit z: ``((u - cx) / f, (v - cy) / f, 1)``, f = max(H, W)."""
    focal = float(max(height, width))
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([(u - (width - 1) / 2) / focal, (v - (height - 1) / 2) / focal, np.ones_like(u)], axis=-1)


def smooth_random_field(rng, height, width, grid=4, low=0.0, high=1.0):
    """(H, W) float32 smooth random field in [low, high]: a random ``grid`` x ``grid`` lattice, bicubic-upsampled."""
    lattice = rng.uniform(low, high, size=(grid, grid)).astype(np.float32)
    field = cv2.resize(lattice, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(field, low, high)


def _expose(linear, rng, level_range=(0.45, 0.85)):
    """Scale so the 97th percentile lands at U(level_range), then clip to [0, 1] (float32)."""
    reference = float(np.percentile(linear, 97))
    level = rng.uniform(*level_range)
    return np.clip(linear * (level / max(reference, 1e-6)), 0.0, 1.0).astype(np.float32)


def _random_illuminant(rng):
    mix = rng.uniform()
    return (mix * _WARM_ILLUMINANT + (1 - mix) * _COOL_ILLUMINANT).astype(np.float32)


def render_lighting(albedo, points, normals, rng, shadow=None, flash_position=(0.0, 0.0, 0.0)):
    """Ambient and flash-only images of a scene with known geometry.

    Args:
        albedo (ndarray): (H, W, 3) linear reflectance in [0, 1].
        points (ndarray): (H, W, 3) camera-space surface points (z > 0).
        normals (ndarray): (H, W, 3) unit normals facing the camera (n . P < 0).
        rng (numpy.random.Generator): ambient field, illuminant and exposures.
        shadow (ndarray | None): (H, W) bool, True where the flash is occluded.
        flash_position ((float, float, float)): the flash in camera space.
    Returns:
        (ambient, flash_only): two (H, W, 3) float32 linear images in [0, 1].
    """
    height, width = albedo.shape[:2]
    to_light = np.float32(flash_position) - points  # (H, W, 3)
    squared_distance = np.sum(to_light**2, axis=-1)
    cosine = np.maximum(np.sum(normals * to_light, axis=-1) / np.sqrt(squared_distance), 0.0)
    flash_irradiance = cosine / squared_distance  # (H, W)
    if shadow is not None:
        flash_irradiance = np.where(shadow, 0.0, flash_irradiance)
    flash_only = albedo * flash_irradiance[..., None]

    # Ambient: a smooth, coloured field with a weak directional term, so shading differs from the flash.
    ambient_direction = rng.normal(size=3)
    ambient_direction[2] = -abs(ambient_direction[2]) - 0.5  # light comes from the camera's side
    ambient_direction /= np.linalg.norm(ambient_direction)
    directional = 0.6 + 0.4 * np.maximum(np.sum(normals * -ambient_direction.astype(np.float32), axis=-1), 0.0)
    field = smooth_random_field(rng, height, width, grid=int(rng.integers(2, 5)), low=0.25, high=1.0)
    illuminant = _random_illuminant(rng)
    ambient = albedo * (field * directional)[..., None] * illuminant
    return _expose(ambient, rng), _expose(flash_only, rng)


def _albedo_texture(rng, height, width, base_colour):
    """(H, W, 3) float32 albedo: ``base_colour`` modulated by one random pattern."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(0, 5)
    if kind == 0:  # flat
        pattern = np.ones((height, width), np.float32)
    elif kind == 1:  # stripes at a random angle and period
        angle, period = rng.uniform(0, math.pi), rng.uniform(4, 40)
        pattern = 0.5 + 0.5 * np.sin(2 * math.pi * (u * math.cos(angle) + v * math.sin(angle)) / period)
    elif kind == 2:  # checkerboard
        cell = rng.uniform(6, 40)
        pattern = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    elif kind == 3:  # smooth blotches
        pattern = smooth_random_field(rng, height, width, grid=int(rng.integers(4, 16)))
    else:  # fine grain
        pattern = cv2.GaussianBlur(rng.uniform(size=(height, width)).astype(np.float32), (0, 0), rng.uniform(0.7, 2))
        pattern = (pattern - pattern.min()) / max(float(np.ptp(pattern)), 1e-6)
    amplitude = rng.uniform(0.2, 0.8)
    second_colour = rng.uniform(0.02, 0.9, size=3).astype(np.float32)
    weight = (amplitude * pattern)[..., None]
    return ((1 - weight) * base_colour + weight * second_colour).astype(np.float32)


def _random_normal(rng, max_tilt_degrees):
    """Unit normal facing the camera (negative z), tilted by up to ``max_tilt_degrees``."""
    tilt = math.radians(rng.uniform(0, max_tilt_degrees))
    azimuth = rng.uniform(0, 2 * math.pi)
    return np.float32([math.sin(tilt) * math.cos(azimuth), math.sin(tilt) * math.sin(azimuth), -math.cos(tilt)])


def _plane_depth(rays, normal, anchor):
    """(H, W) depth z where each ray meets the plane through ``anchor`` with ``normal``."""
    return float(np.dot(normal, anchor)) / np.minimum(rays @ normal, -1e-3)


def _random_shape_mask(rng, height, width, radius):
    """(H, W) uint8 mask of one filled ellipse, rotated rectangle or polygon of about ``radius`` pixels."""
    mask = np.zeros((height, width), np.uint8)
    centre = (float(rng.uniform(-radius, width + radius)), float(rng.uniform(-radius, height + radius)))
    kind = rng.integers(0, 3)
    if kind == 0:
        axes = (int(radius), int(radius * rng.uniform(0.4, 1.0)))
        cv2.ellipse(mask, (int(centre[0]), int(centre[1])), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind == 1:
        box = cv2.boxPoints((centre, (radius * 2, radius * 2 * rng.uniform(0.3, 1.0)), float(rng.uniform(0, 180))))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    else:
        corners = int(rng.integers(3, 7))
        angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
        radii = radius * rng.uniform(0.5, 1.0, corners)
        polygon = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=-1)
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask, centre


def render_dead_leaves(rng, size=256, shape_count_range=(20, 60)):
    """A procedural dead-leaves scene, rendered under ambient light and under the flash.

    Args:
        rng (numpy.random.Generator): every random choice of the scene.
        size (int): output height and width in pixels.
        shape_count_range ((int, int)): number of shapes in front of the back wall.
    Returns:
        (ambient, flash_only): two (size, size, 3) float32 linear images in [0, 1].
    """
    height = width = size
    rays = camera_rays(height, width)  # (H, W, 3)
    focal = float(size)

    wall_depth = rng.uniform(4.0, 7.0)
    wall_normal = _random_normal(rng, 35)
    depth = np.clip(_plane_depth(rays, wall_normal, np.float32([0, 0, wall_depth])), 0.5, 20.0)
    normals = np.broadcast_to(wall_normal, (height, width, 3)).copy()
    albedo = _albedo_texture(rng, height, width, rng.uniform(0.1, 0.8, size=3).astype(np.float32))

    shape_count = int(rng.integers(shape_count_range[0], shape_count_range[1] + 1))
    # Painter's algorithm: far shapes first, nearer ones drawn over them.
    shape_depths = np.sort(rng.uniform(1.0, wall_depth - 0.5, shape_count))[::-1]
    occluders = []  # (full silhouette, mean depth) of every shape, for the flash shadows
    for shape_depth in shape_depths:
        radius = size / 40 * (10**rng.uniform(0, 1))  # log-uniform sizes: many small, few large
        mask, centre = _random_shape_mask(rng, height, width, radius)
        if not mask.any():
            continue
        normal = _random_normal(rng, 60)
        anchor = shape_depth * np.float32([(centre[0] - (width - 1) / 2) / focal, (centre[1] - (height - 1) / 2) / focal, 1])
        # Work inside the shape's bounding box only (most shapes are small).
        x, y, box_width, box_height = cv2.boundingRect(mask)
        box = (slice(y, y + box_height), slice(x, x + box_width))
        shape_depth_map = np.clip(_plane_depth(rays[box], normal, anchor), 0.3, wall_depth)
        inside = mask[box].astype(bool) & (shape_depth_map < depth[box])
        depth[box][inside] = shape_depth_map[inside]
        normals[box][inside] = normal
        texture = _albedo_texture(rng, box_height, box_width, rng.uniform(0.02, 0.9, size=3).astype(np.float32))
        albedo[box][inside] = texture[inside]
        occluders.append((mask, float(shape_depth_map[mask[box].astype(bool)].mean())))

    # The flash sits a little beside the lens. A point P at depth z is shadowed by an occluder at
    # depth z_o if the occluder's silhouette covers the pixel u + f * L_xy * (1/z_o - 1/z): that is
    # where the segment P -> L crosses the occluder's (fronto-parallel approximated) plane.
    baseline = rng.uniform(0.02, 0.08)
    baseline_angle = rng.uniform(0, 2 * math.pi)
    flash_position = np.float32([baseline * math.cos(baseline_angle), baseline * math.sin(baseline_angle), 0])
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    shadow = np.zeros((height, width), bool)
    for mask, occluder_depth in occluders:
        behind = depth > occluder_depth + 0.05
        shift = focal * (1.0 / occluder_depth - 1.0 / depth)  # (H, W)
        map_x = (u + flash_position[0] * shift).astype(np.float32)
        map_y = (v + flash_position[1] * shift).astype(np.float32)
        covered = cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        shadow |= behind & covered.astype(bool)

    points = rays * depth[..., None]
    return render_lighting(albedo, points, normals, rng, shadow=shadow, flash_position=flash_position)


def normals_from_points(points):
    """(H, W, 3) unit normals of a surface sampled as camera-space ``points`` (H, W, 3), facing the camera."""
    d_dv, d_du = np.gradient(points, axis=(0, 1))
    normals = np.cross(d_du, d_dv)
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    facing_away = np.sum(normals * points, axis=-1) > 0
    normals[facing_away] *= -1
    return normals.astype(np.float32)


def render_photo(photo_srgb, rng, size=256, disparity=None):
    """Cut a random square from a photograph and render it under ambient light and the flash.

    The photograph (sRGB) is linearised and used as the albedo (it was taken under roughly
    uniform light, so its shading is mostly baked into the albedo: an approximation).

    Args:
        photo_srgb (ndarray): (H, W, 3) float32 sRGB photograph in [0, 1].
        rng (numpy.random.Generator): cut position/scale/flip, depth, light, exposures.
        size (int): output height and width.
        disparity (ndarray | None): (H, W) stereo disparity of the photo (real depth = c / d);
            non-finite or non-positive values are treated as the farthest finite depth.
            None: a random smooth surface (tilted plane plus gentle bumps).
    Returns:
        (ambient, flash_only): two (size, size, 3) float32 linear images in [0, 1].
    """
    photo_height, photo_width = photo_srgb.shape[:2]
    side = int(rng.integers(min(size, photo_height, photo_width), min(photo_height, photo_width) + 1))
    top = int(rng.integers(0, photo_height - side + 1))
    left = int(rng.integers(0, photo_width - side + 1))
    window = (slice(top, top + side), slice(left, left + side))
    albedo = cv2.resize(srgb_to_linear(photo_srgb[window]), (size, size), interpolation=cv2.INTER_AREA)
    flip = bool(rng.integers(0, 2))

    rays = camera_rays(size, size)
    median_depth = rng.uniform(1.2, 3.0)
    if disparity is not None:
        cut = disparity[window].astype(np.float32)
        valid = np.isfinite(cut) & (cut > 0)
        if not valid.any():
            raise ValueError('disparity map has no valid value inside the cut')
        cut = np.where(valid, cut, cut[valid].min())
        depth = 1.0 / cv2.resize(cut, (size, size), interpolation=cv2.INTER_AREA)
        depth = cv2.GaussianBlur(depth, (0, 0), 1.0)  # disparity is quantised: smooth before normals
        depth *= median_depth / float(np.median(depth))
    else:
        normal = _random_normal(rng, 45)
        depth = np.clip(_plane_depth(rays, normal, np.float32([0, 0, median_depth])), 0.5, 10.0)
        depth = depth * (1 + smooth_random_field(rng, size, size, grid=int(rng.integers(3, 7)), low=-0.1, high=0.1))
    if flip:
        albedo, depth = albedo[:, ::-1].copy(), depth[:, ::-1].copy()
    points = rays * depth[..., None].astype(np.float32)
    return render_lighting(albedo.astype(np.float32), points, normals_from_points(points), rng)
