"""Physically rendered ambient / flash-only pairs for the offline stand-in of FAID.

Two sources, both rendered with the same light model (no BasicSR, numpy + OpenCV only):

* :func:`render_dead_leaves` — a procedural "dead leaves" scene: overlapping planar shapes and
  spheres, each with its own depth, normal, albedo texture (:mod:`.textures`) and gloss, in front
  of a light back wall, sometimes with a floor or table top and a doorway into a dark room. Exact
  geometry, so the flash-only image has exact fall-off, foreshortening, highlights and cast shadows.
* :func:`render_photo` — a cut of a real photograph, taken as the albedo, with a depth map (real
  depth from a stereo disparity map when one is given, else a random smooth surface).

Light model, in linear RGB (camera at the origin looking along +z, focal length = image size,
lengths in metres; the camera is white-balanced for D65, the white of linear sRGB, for both images):

    R(L, s)    = [albedo + k_s * BP(n, h_L, s)] * max(0, n . l_L) / |L - P|^2      (:func:`surface_radiance`)
    flash-only = vignette * c_F * R(L_F, s) * visible_F(P)
    lamp       = c_L * R(L_L, s / 4) * soft_visible_L(P)
    ambient    = vignette * [w * lamp / lamp_90 + (1 - w) * c_A * albedo * field * occlusion]

``P`` is the surface point, ``n`` its normal, ``L_F`` the flash (a point light 1-5 cm beside the
lens: hard, thin cast shadows), ``L_L`` an indoor lamp (a point light above and beside the scene,
its shadows blurred as an area light's), ``l_L = (L - P) / |L - P|``, ``h_L`` the half vector of
``l_L`` and the view direction, ``BP(n, h, s) = (s + 8) / 8 * max(0, n . h) ** s`` the
energy-normalised Blinn-Phong lobe (``k_s`` and ``s`` drawn per glossy surface, ``k_s = 0`` on
matte ones; the lamp's lobe is broader and weaker), ``lamp_90`` the lamp term's 90th percentile,
``field`` a smooth random field (indirect light), ``occlusion`` a depth-based ambient occlusion,
``w`` the lamp's share. ``c_F``, ``c_L``, ``c_A`` are colours of black bodies
(:func:`planckian_rgb`) at temperatures drawn in :data:`FLASH_CCT_RANGE` (the flash, about
neutral), :data:`LAMP_CCT_RANGE` (indoor lamps, mostly warm) and :data:`FILL_CCT_RANGE` (bounce
and window light; 30 % of scenes: the lamp's). Both images share albedo and geometry. Each is
then exposed by :func:`expose` (97th percentile at a random level, a capped clipped fraction).

All functions take an explicit ``numpy.random.Generator``; images are (H, W, 3) float32 in [0, 1].
"""
import math
from typing import NamedTuple

import cv2
import numpy as np

from .degradation import sample_in_range, srgb_to_linear
from .faid_io import XYZ_TO_LINEAR_SRGB
from .textures import random_texture, smooth_random_field, wall_texture

#: Colour temperature (K) of the flash, of the ambient lamps and of the indirect (fill) light.
#: Temperatures are drawn uniformly in mired (1e6 / K), which favours the warm end.
FLASH_CCT_RANGE = (5500.0, 6500.0)
LAMP_CCT_RANGE = (3300.0, 6500.0)
FILL_CCT_RANGE = (5000.0, 12000.0)
#: Share of the lamp in the ambient light (the rest is the fill light).
LAMP_SHARE_RANGE = (0.3, 0.85)
#: Distance between the flash and the lens, metres.
FLASH_BASELINE_RANGE = (0.01, 0.05)
#: Depth of the nearest objects (metres), and back wall depth / that depth (log-uniform).
NEAR_DEPTH_RANGE = (0.5, 1.5)
DEPTH_RATIO_RANGE = (1.2, 3.0)
#: Share of glossy surfaces, their specular reflectance k_s and Blinn-Phong exponent s (log-uniform).
GLOSSY_FRACTION = 0.3
SPECULAR_RANGE = (0.03, 0.25)
SHININESS_RANGE = (8.0, 200.0)
#: 97th-percentile level (channel mean) each image is exposed to, and the most pixels it may clip (see :func:`expose`).
AMBIENT_LEVEL_RANGE = (0.35, 0.92)
FLASH_LEVEL_RANGE = (0.6, 0.88)
AMBIENT_CLIPPED_RANGE = (0.0, 0.04)
FLASH_CLIPPED_RANGE = (0.002, 0.02)


class Camera(NamedTuple):
    """A pinhole camera at the origin looking along +z, focal length ``max(height, width)`` pixels."""
    height: int
    width: int

    @property
    def focal(self):
        return float(max(self.height, self.width))

    def rays(self):
        """(H, W, 3) float32 ray directions with unit z (see :func:`camera_rays`)."""
        return camera_rays(self.height, self.width)

    def project(self, points):
        """Pixel coordinates ``(u, v)`` of camera-space ``points`` (..., 3)."""
        return (self.focal * points[..., 0] / points[..., 2] + (self.width - 1) / 2,
                self.focal * points[..., 1] / points[..., 2] + (self.height - 1) / 2)


def camera_rays(height, width):
    """(H, W, 3) float32 ray directions with unit z: ``((u - cx) / f, (v - cy) / f, 1)``, f = max(H, W)."""
    focal = float(max(height, width))
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([(u - (width - 1) / 2) / focal, (v - (height - 1) / 2) / focal, np.ones_like(u)], axis=-1)


def camera_rays_at(camera, pixels):
    """(N, 3) float32 rays (unit z) through pixel coordinates ``pixels`` [(u, v), ...] of ``camera``."""
    pixels = np.float32(pixels)
    return np.stack([(pixels[:, 0] - (camera.width - 1) / 2) / camera.focal,
                     (pixels[:, 1] - (camera.height - 1) / 2) / camera.focal,
                     np.ones(len(pixels), np.float32)], axis=-1)


def planckian_xy(cct):
    """CIE 1931 chromaticity (x, y) of a black body at ``cct`` kelvin (Kim et al. 2002 cubic spline, 1667-25000 K)."""
    if not 1667 <= cct <= 25000:
        raise ValueError(f'colour temperature {cct} K is outside 1667-25000 K')
    t = float(cct)
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


def planckian_rgb(cct):
    """(3,) float32 linear sRGB colour of a black body at ``cct`` K, green = 1.

    Linear sRGB's white is D65, so this is the light's colour as a camera white-balanced for D65
    records it (the toy camera's fixed white balance, shared by the ambient and the flash image).
    """
    x, y = planckian_xy(cct)
    rgb = XYZ_TO_LINEAR_SRGB @ np.array([x / y, 1.0, (1 - x - y) / y])
    return (rgb / rgb[1]).astype(np.float32)


def draw_cct(rng, cct_range):
    """A colour temperature (K) uniform in mired (1e6 / K) between the ends of ``cct_range``."""
    low, high = (1e6 / float(t) for t in cct_range)
    return 1e6 / rng.uniform(min(low, high), max(low, high))


def _dot(a, b):
    """Dot product over the last axis (length 3); faster than a numpy reduction over a short axis."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def point_light(points, normals, light_position):
    """Irradiance of a unit point light: ``max(0, n . l) / r^2`` (H, W), and ``l`` (H, W, 3), the unit vectors to it."""
    to_light = np.float32(light_position) - points
    squared_distance = np.maximum(_dot(to_light, to_light), 1e-12)
    to_light = to_light / np.sqrt(squared_distance)[..., None]
    cosine = np.maximum(_dot(normals, to_light), 0.0)
    return (cosine / squared_distance).astype(np.float32), to_light


def blinn_phong(normals, to_light, to_camera, shininess):
    """Energy-normalised Blinn-Phong lobe ``(s + 8) / 8 * max(0, n . h) ** s``, h = unit(l + v); (H, W) float32.

    ``shininess`` (s) is a number or an (H, W) array. Multiply by ``k_s`` and the irradiance.
    """
    half = to_light + to_camera
    cosine = np.maximum(_dot(normals, half) / np.maximum(np.sqrt(_dot(half, half)), 1e-12), 0.0)
    return ((shininess + 8) / 8 * cosine**shininess).astype(np.float32)


def ambient_occlusion(depth, sigma, strength):
    """(H, W) float32 in (0, 1]: ``exp(-strength * max(0, z - blur(z)) / z)``.

    A point lying behind its neighbourhood's average depth (next to a nearer object, in a
    concave corner) sees less of the room's indirect light.
    """
    blurred = cv2.GaussianBlur(depth.astype(np.float32), (0, 0), sigma)
    return np.exp(-strength * np.maximum(depth - blurred, 0.0) / np.maximum(depth, 1e-6)).astype(np.float32)


def vignette(height, width, strength):
    """(H, W) float32 lens vignetting ``1 - strength * (r / r_corner)^2``."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    corner2 = max(((width - 1) / 2)**2 + ((height - 1) / 2)**2, 1e-12)
    radius2 = ((u - (width - 1) / 2)**2 + (v - (height - 1) / 2)**2) / corner2
    return (1 - strength * radius2).astype(np.float32)


def expose(linear, rng, level_range, clipped_range):
    """Expose an image as an auto-exposing camera does; (H, W, 3) float32 in [0, 1].

    Scale so the 97th percentile of the channel mean lands at U(level_range), unless then more
    than a fraction U(clipped_range) of the pixels would clip (any channel > 1): then scale so
    that exactly that fraction clips. Then clip to [0, 1].
    """
    reference = float(np.percentile(linear.mean(axis=-1), 97))
    scale = rng.uniform(*level_range) / max(reference, 1e-12)
    brightest = float(np.percentile(linear.max(axis=-1), 100 * (1 - rng.uniform(*clipped_range))))
    scale = min(scale, 1.0 / max(brightest, 1e-12))
    return np.clip(linear * scale, 0.0, 1.0).astype(np.float32)


def draw_lamp_position(rng, points):
    """A lamp above and beside the scene, on the camera's side of it (scaled to the median depth)."""
    scale = float(np.median(points[..., 2]))
    return np.float32([rng.uniform(-1.5, 1.5), rng.uniform(-1.5, -0.2), rng.uniform(-0.5, 1.0)]) * scale


def surface_radiance(albedo, points, normals, light_position, specular=None, shininess=None):
    """(H, W, 3) float32 radiance towards the camera of surfaces lit by a unit white point light, no shadows.

    ``(albedo + k_s * BP(n, h, s)) * max(0, n . l) / r^2`` (the module docstring's notation; the
    camera is at the origin).

    Args:
        albedo (ndarray): (H, W, 3) linear reflectance.
        points (ndarray): (H, W, 3) camera-space surface points.
        normals (ndarray): (H, W, 3) unit normals.
        light_position ((float, float, float)): the light in camera space.
        specular (ndarray | float | None): specular reflectance k_s, (H, W) or a number; None: matte.
        shininess (ndarray | float | None): Blinn-Phong exponent s, (H, W) or a number (with ``specular``).
    """
    irradiance, to_light = point_light(points, normals, light_position)
    radiance = albedo * irradiance[..., None]
    if specular is not None:
        to_camera = -points / np.maximum(np.sqrt(_dot(points, points)), 1e-12)[..., None]
        lobe = blinn_phong(normals, to_light, to_camera, np.asarray(shininess, np.float32))
        radiance = radiance + (specular * lobe * irradiance)[..., None]
    return radiance.astype(np.float32)


def render_lighting(albedo, points, normals, rng, flash_position=(0.0, 0.0, 0.0), flash_shadow=None,
                    lamp_position=None, lamp_visibility=None, specular=None, shininess=None, vignetting=None):
    """Ambient and flash-only images of a scene with known geometry (the model in the module docstring).

    Args:
        albedo (ndarray): (H, W, 3) linear reflectance in [0, 1].
        points (ndarray): (H, W, 3) camera-space surface points (z > 0).
        normals (ndarray): (H, W, 3) unit normals facing the camera (n . P < 0).
        rng (numpy.random.Generator): light colours, lamp, fill field, occlusion, vignetting, exposures.
        flash_position ((float, float, float)): the flash in camera space.
        flash_shadow (ndarray | None): (H, W) bool, True where the flash is occluded.
        lamp_position ((float, float, float) | None): the ambient lamp; None: :func:`draw_lamp_position`.
        lamp_visibility (ndarray | None): (H, W) float in [0, 1], the lamp's (soft) visibility; None: 1.
        specular (ndarray | None): (H, W) specular reflectance k_s; None: no highlights.
        shininess (ndarray | float | None): Blinn-Phong exponent s (with ``specular``).
        vignetting (float | None): vignetting strength of the lens; None: U(0, 0.4).
    Returns:
        (ambient, flash_only): two (H, W, 3) float32 linear images in [0, 1], each exposed (:func:`expose`).
    """
    height, width = albedo.shape[:2]
    flash_colour = planckian_rgb(draw_cct(rng, FLASH_CCT_RANGE))
    lamp_colour = planckian_rgb(draw_cct(rng, LAMP_CCT_RANGE))
    fill_colour = lamp_colour if rng.uniform() < 0.3 else planckian_rgb(draw_cct(rng, FILL_CCT_RANGE))
    if lamp_position is None:
        lamp_position = draw_lamp_position(rng, points)
    lamp_shininess = None if shininess is None else np.asarray(shininess, np.float32) * 0.25

    flash_only = surface_radiance(albedo, points, normals, flash_position, specular, shininess) * flash_colour
    if flash_shadow is not None:
        flash_only[flash_shadow] = 0.0
    # The lamp's highlight is weaker and broader (a lamp is larger than a flash): a quarter of the exponent.
    lamp = surface_radiance(albedo, points, normals, lamp_position, specular, lamp_shininess) * lamp_colour
    if lamp_visibility is not None:
        lamp *= lamp_visibility[..., None]
    lamp /= max(float(np.percentile(lamp, 90)), 1e-12)
    field = smooth_random_field(rng, height, width, grid=int(rng.integers(2, 5)), low=0.3, high=1.0)
    occlusion = ambient_occlusion(points[..., 2], sigma=max(height, width) / 64 * rng.uniform(1, 3),
                                  strength=rng.uniform(1, 4))
    fill = albedo * (field * occlusion)[..., None] * fill_colour
    lamp_share = rng.uniform(*LAMP_SHARE_RANGE)
    ambient = lamp_share * lamp + (1 - lamp_share) * fill
    lens = vignette(height, width, rng.uniform(0, 0.4) if vignetting is None else vignetting)[..., None]
    return (expose(ambient * lens, rng, AMBIENT_LEVEL_RANGE, AMBIENT_CLIPPED_RANGE),
            expose(flash_only * lens, rng, FLASH_LEVEL_RANGE, FLASH_CLIPPED_RANGE))


class PlanarOccluder(NamedTuple):
    """A planar shape: the plane through ``anchor`` with ``normal``, where it projects inside ``mask``.

    ``mask`` is the camera-view silhouette on a canvas with ``pad`` pixels of margin on every side
    ((H + 2 pad, W + 2 pad) uint8), so parts outside the frame still cast shadows into it; ``box``
    = (top, bottom, left, right) its extent in image pixel coordinates (may exceed the frame);
    ``min_depth`` its smallest depth.
    """
    normal: np.ndarray
    anchor: np.ndarray
    mask: np.ndarray
    pad: int
    box: tuple
    min_depth: float

    def crosses(self, points, light_position, camera):
        """(...) bool: the segment from each of ``points`` (..., 3) to the light crosses the shape."""
        light = np.float32(light_position)
        along_normal = points @ self.normal
        with np.errstate(divide='ignore', invalid='ignore'):
            fraction = (float(self.anchor @ self.normal) - along_normal) / (float(light @ self.normal) - along_normal)
        # strictly between the point (a surface does not shadow itself) and the light
        candidate = (fraction > 1e-3) & (fraction < 1 - 1e-6)
        start = points[candidate]
        crossing = start + fraction[candidate][:, None] * (light - start)
        u, v = camera.project(crossing)
        column = np.rint(u).astype(np.int64) + self.pad
        row = np.rint(v).astype(np.int64) + self.pad
        inside = ((crossing[:, 2] > 0) & (row >= 0) & (row < self.mask.shape[0]) & (column >= 0) &
                  (column < self.mask.shape[1]))
        hit = np.zeros(len(crossing), bool)
        hit[inside] = self.mask[row[inside], column[inside]] > 0
        result = np.zeros(points.shape[:-1], bool)
        result[candidate] = hit
        return result


class SphereOccluder(NamedTuple):
    """A sphere of ``radius`` around ``centre``; ``box`` and ``min_depth`` as for :class:`PlanarOccluder`."""
    centre: np.ndarray
    radius: float
    box: tuple
    min_depth: float

    def crosses(self, points, light_position, camera):
        """(...) bool: the segment from each of ``points`` (..., 3) to the light crosses the sphere."""
        to_light = np.float32(light_position) - points
        offset = points - self.centre
        a = _dot(to_light, to_light)
        b = 2 * _dot(to_light, offset)
        c = _dot(offset, offset) - self.radius**2
        discriminant = b**2 - 4 * a * c
        root = np.sqrt(np.maximum(discriminant, 0.0))
        first, last = (-b - root) / (2 * a), (-b + root) / (2 * a)
        return (discriminant > 0) & (last > 1e-3) & (first < 1 - 1e-6)


def cast_shadow(points, light_position, occluders, camera, stride=1):
    """(h, w) bool: True where the segment from a surface point to a point light crosses an occluder.

    Args:
        points (ndarray): (h, w, 3) camera-space points seen by the pixels ``(i * stride, j * stride)``
            of ``camera`` (``stride`` > 1: a subsampled image, e.g. for soft shadows).
        light_position ((float, float, float)): the light in camera space.
        occluders (list): :class:`PlanarOccluder` / :class:`SphereOccluder` shapes.
        camera (Camera): the camera whose pixels the occluder silhouettes are drawn in.
        stride (int): the subsampling of ``points``.

    A light in the camera plane (z = 0, the flash) shifts an occluder's shadow by at most
    ``f |L_xy| / min_depth`` pixels from its silhouette (the crossing point Q lies on the occluder:
    ``u_Q - u_P = f L_xy (1 / z_Q - 1 / z_P)``), so only those pixels are tested; other lights test
    every pixel.
    """
    light = np.float32(light_position)
    shadow = np.zeros(points.shape[:2], bool)
    for occluder in occluders:
        if abs(float(light[2])) < 1e-9:
            reach = camera.focal * math.hypot(float(light[0]), float(light[1])) / occluder.min_depth + 2
            top, bottom, left, right = occluder.box
            rows = slice(max(int(math.floor((top - reach) / stride)), 0),
                         max(int(math.ceil((bottom + reach) / stride)) + 1, 0))
            columns = slice(max(int(math.floor((left - reach) / stride)), 0),
                            max(int(math.ceil((right + reach) / stride)) + 1, 0))
        else:
            rows = columns = slice(None)
        region = points[rows, columns]
        if region.size:
            shadow[rows, columns] |= occluder.crosses(region, light, camera)
    return shadow


def sphere_surface(rays, centre, radius):
    """Where rays (..., 3) with unit z first meet a sphere: depth (...), unit normals (..., 3), hit (...) bool.

    Depth and normals are only meaningful where ``hit``; the camera must be outside the sphere.
    """
    centre = np.float32(centre)
    b = rays @ centre
    a = _dot(rays, rays)
    discriminant = b**2 - a * (float(centre @ centre) - radius**2)
    depth = (b - np.sqrt(np.maximum(discriminant, 0.0))) / a  # ray parameter t = depth (unit z)
    normals = (rays * depth[..., None] - centre) / radius
    return depth.astype(np.float32), normals.astype(np.float32), discriminant > 0


def _random_normal(rng, max_tilt_degrees, axis=(0.0, 0.0, -1.0)):
    """Unit normal tilted from ``axis`` (a unit vector) by up to ``max_tilt_degrees`` in a random direction."""
    axis = np.float64(axis)
    tilt = math.radians(rng.uniform(0, max_tilt_degrees))
    azimuth = rng.uniform(0, 2 * math.pi)
    helper = np.float64([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.float64([0, 1.0, 0])
    first = np.cross(axis, helper)
    first /= np.linalg.norm(first)
    second = np.cross(axis, first)
    normal = math.cos(tilt) * axis + math.sin(tilt) * (math.cos(azimuth) * first + math.sin(azimuth) * second)
    return normal.astype(np.float32)


def _plane_depth(rays, normal, anchor):
    """Depth z where each ray (unit z) meets the plane through ``anchor`` with ``normal`` (large where it misses)."""
    return float(np.dot(normal, anchor)) / np.minimum(rays @ normal, -1e-3)


def _shape_mask(rng, canvas_height, canvas_width, centre, radius):
    """(h, w) uint8 mask of one filled ellipse, rotated rectangle or polygon of about ``radius`` pixels."""
    mask = np.zeros((canvas_height, canvas_width), np.uint8)
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
    return mask


def _clip_box(box, height, width):
    """Intersection of (top, bottom, left, right) (inclusive) with the frame, as two slices, or None if empty."""
    top, bottom, left, right = box
    top, left = max(int(math.floor(top)), 0), max(int(math.floor(left)), 0)
    bottom, right = min(int(math.ceil(bottom)), height - 1), min(int(math.ceil(right)), width - 1)
    if top > bottom or left > right:
        return None
    return slice(top, bottom + 1), slice(left, right + 1)


def render_dead_leaves(rng, size=256, shape_count_range=(15, 45), near_depth_range=NEAR_DEPTH_RANGE,
                       depth_ratio_range=DEPTH_RATIO_RANGE, sphere_fraction=0.15, glossy_fraction=GLOSSY_FRACTION,
                       floor_probability=0.35, opening_probability=0.35, texture_weights=None):
    """A procedural dead-leaves scene, rendered under ambient light and under the flash.

    Args:
        rng (numpy.random.Generator): every random choice of the scene.
        size (int): output height and width in pixels.
        shape_count_range ((int, int)): number of shapes in front of the background.
        near_depth_range ((float, float)): depth of the nearest shapes, metres.
        depth_ratio_range ((float, float)): back wall depth / nearest depth (log-uniform).
        sphere_fraction (float): share of shapes that are spheres (the others are planar).
        glossy_fraction (float): share of surfaces with a specular highlight.
        floor_probability (float): probability of a floor or table top below the camera.
        opening_probability (float): probability of a doorway or window into a dark room behind the wall.
        texture_weights (dict | None): texture kind -> frequency (see :func:`.textures.random_texture`).
    Returns:
        (ambient, flash_only): two (size, size, 3) float32 linear images in [0, 1].
    """
    camera = Camera(size, size)
    height, width, focal = size, size, camera.focal
    rays = camera.rays()
    pad = size // 4  # margin of the occluder silhouettes (out-of-frame parts cast shadows too)

    near = rng.uniform(*near_depth_range)
    far = near * sample_in_range(rng, depth_ratio_range, 'log_uniform')
    specular = np.zeros((height, width), np.float32)
    shininess = np.ones((height, width), np.float32)

    def draw_gloss():
        """(k_s, s) of one surface: glossy with probability ``glossy_fraction``, else (0, 1)."""
        if rng.uniform() < glossy_fraction:
            return rng.uniform(*SPECULAR_RANGE), sample_in_range(rng, SHININESS_RANGE, 'log_uniform')
        return 0.0, 1.0

    # Background: a back wall and maybe a floor or table top (y = floor_height below the camera).
    # The camera is inside this convex "room", so each ray sees the nearest plane.
    planes = [(_random_normal(rng, 30), np.float32([0, 0, far]))]
    if rng.uniform() < floor_probability:
        floor_height = max(far * rng.uniform(0.1, 0.35), 0.35 * near)
        planes.append((_random_normal(rng, 15, axis=(0.0, -1.0, 0.0)), np.float32([0, floor_height, 0])))
    plane_depths = np.stack([_plane_depth(rays, normal, anchor) for normal, anchor in planes])
    nearest_plane = np.argmin(plane_depths, axis=0)
    depth = np.clip(np.min(plane_depths, axis=0), 0.2 * near, 6 * far).astype(np.float32)
    normals = np.zeros((height, width, 3), np.float32)
    albedo = np.zeros((height, width, 3), np.float32)
    for index, (normal, _) in enumerate(planes):
        region = nearest_plane == index
        normals[region] = normal
        if index == 0:
            texture = wall_texture(rng, height, width)
        else:
            texture = random_texture(rng, height, width, weights=texture_weights)
        albedo[region] = texture[region]
        specular[region], shininess[region] = draw_gloss()
    if rng.uniform() < opening_probability:
        # A doorway or window into a dark room behind the wall: a rectangle of the wall 2-4x farther.
        side = size * rng.uniform(0.2, 0.6)
        corners = cv2.boxPoints(((rng.uniform(0, width), rng.uniform(0, height)), (side, side * rng.uniform(0.5, 2)),
                                 float(rng.uniform(-10, 10))))
        opening = np.zeros((height, width), np.uint8)
        cv2.fillPoly(opening, [np.round(corners).astype(np.int32)], 1)
        opening = opening.astype(bool) & (nearest_plane == 0)
        normal = _random_normal(rng, 30)
        opening_depth = _plane_depth(rays, normal, np.float32([0, 0, far * rng.uniform(2, 4)]))
        depth[opening] = np.clip(opening_depth[opening], far, 6 * far)
        normals[opening] = normal
        albedo[opening] = random_texture(rng, height, width, weights=texture_weights)[opening]
        specular[opening] = 0.0

    shape_count = int(rng.integers(shape_count_range[0], shape_count_range[1] + 1))
    # Painter's order with a depth test: far shapes first, nearer ones drawn over them.
    shape_depths = np.sort(np.exp(rng.uniform(math.log(near), math.log(0.9 * far), shape_count)))[::-1]
    occluders = []
    for shape_depth in shape_depths:
        radius = size / 40 * (10**rng.uniform(0, 1.1))  # log-uniform sizes: many small, few large
        sphere = rng.uniform() < sphere_fraction
        if sphere:
            radius = min(radius, size / 8)
        centre = (float(rng.uniform(-radius, width + radius)), float(rng.uniform(-radius, height + radius)))
        ray = np.float32([(centre[0] - (width - 1) / 2) / focal, (centre[1] - (height - 1) / 2) / focal, 1])
        if sphere:
            sphere_centre = shape_depth * ray
            sphere_radius = radius * shape_depth / focal
            extent = radius * 1.2 + 2
            box = (centre[1] - extent, centre[1] + extent, centre[0] - extent, centre[0] + extent)
            occluder = SphereOccluder(sphere_centre, sphere_radius, box, float(shape_depth - sphere_radius))
            window = _clip_box(box, height, width)
            if window is not None:
                shape_depth_map, shape_normals, silhouette = sphere_surface(rays[window], sphere_centre, sphere_radius)
        else:
            normal = _random_normal(rng, 60)
            anchor = shape_depth * ray
            mask = _shape_mask(rng, height + 2 * pad, width + 2 * pad, (centre[0] + pad, centre[1] + pad), radius)
            left, top, box_width, box_height = cv2.boundingRect(mask)
            if box_width == 0:
                continue
            box = (top - pad, top - pad + box_height - 1, left - pad, left - pad + box_width - 1)
            corners = camera_rays_at(camera, [(box[2], box[0]), (box[3], box[0]), (box[2], box[1]), (box[3], box[1])])
            min_depth = max(float(np.min(_plane_depth(corners, normal, anchor))), 0.2 * near)
            occluder = PlanarOccluder(normal, anchor, mask, pad, box, min_depth)
            window = _clip_box(box, height, width)
            if window is not None:
                shape_depth_map = np.clip(_plane_depth(rays[window], normal, anchor), 0.2 * near, 6 * far)
                shape_normals = np.broadcast_to(normal, shape_depth_map.shape + (3, ))
                silhouette = mask[window[0].start + pad:window[0].stop + pad,
                                  window[1].start + pad:window[1].stop + pad].astype(bool)
        occluders.append(occluder)
        if window is None:
            continue
        inside = silhouette & (shape_depth_map < depth[window])
        if not inside.any():
            continue
        depth[window][inside] = shape_depth_map[inside]
        normals[window][inside] = shape_normals[inside]
        texture = random_texture(rng, inside.shape[0], inside.shape[1], weights=texture_weights)
        albedo[window][inside] = texture[inside]
        specular[window][inside], shininess[window][inside] = draw_gloss()

    points = rays * depth[..., None]
    baseline = rng.uniform(*FLASH_BASELINE_RANGE)
    baseline_angle = rng.uniform(0, 2 * math.pi)
    flash_position = np.float32([baseline * math.cos(baseline_angle), baseline * math.sin(baseline_angle), 0])
    flash_shadow = cast_shadow(points, flash_position, occluders, camera)

    # The lamp lights the room from inside it (in front of every background plane); its shadows are
    # computed on a 4x subsampled image and blurred, as an area light's soft shadows.
    lamp_position = draw_lamp_position(rng, points)
    for normal, anchor in planes:
        while float(np.dot(normal, lamp_position - anchor)) < 0.05 * near:
            lamp_position = lamp_position * np.float32(0.7)
    stride = 4
    lamp_shadow = cast_shadow(points[::stride, ::stride], lamp_position, occluders, camera, stride=stride)
    lamp_visibility = cv2.resize((~lamp_shadow).astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    lamp_visibility = cv2.GaussianBlur(lamp_visibility, (0, 0), size / 256 * rng.uniform(2, 6))
    return render_lighting(albedo, points, normals, rng, flash_position=flash_position, flash_shadow=flash_shadow,
                           lamp_position=lamp_position, lamp_visibility=lamp_visibility, specular=specular,
                           shininess=shininess)


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
    uniform light, so its shading is mostly baked into the albedo: an approximation). No cast
    shadows and no highlights (no occluder geometry, no gloss).

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
