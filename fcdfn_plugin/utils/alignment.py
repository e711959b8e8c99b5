"""Optional global pre-alignment of the flash photo onto the no-flash photo (one homography).

The network corrects the small misalignment it was trained with (corner offsets up to
``homography_strength``, 8 px); a handheld pair can move more. :func:`align_flash` estimates one
homography between the two photos from SIFT features (OpenCV) and warps the flash photo onto the
no-flash photo. The two photos are lit differently and the no-flash one is dark and noisy, so
each is first normalised (its own 99th percentile to white, sRGB-encoded) and denoised in
proportion to its noise before features are found. An alignment that fails its checks (too few
or too scattered matches, a warp that moves a corner by more than ``MAX_SHIFT`` of the image size,
folds the image, or does not make the two photos' edges agree better than before) is *not* applied:
the flash photo is returned unchanged with the reason, which the callers log. Nothing is ever
silently wrong: either a checked homography or none.
"""
import cv2
import numpy as np
import torch

#: Longest side the features are searched at (larger photos are downscaled for the search only).
SEARCH_SIDE = 1024
#: Checks a homography must pass to be applied.
MIN_INLIERS = 20
MIN_INLIER_RATIO = 0.25
MAX_SHIFT = 0.3  # largest corner displacement, as a share of the image's longer side
#: The warp must raise the edge correlation of the two photos by at least this much.
MIN_AGREEMENT_GAIN = 0.02
#: Below this largest corner displacement (px) the flash photo is left as it is (the network's own range).
MIN_SHIFT = 1.0


def _search_image(rgb, scale):
    """HxWx3 float RGB in [0, 1] -> 8-bit grey for feature search: own 99th percentile to white,
    sRGB-like gamma, resized by ``scale``, denoised (non-local means, strength from its noise) and its
    local contrast equalised (CLAHE)."""
    grey = rgb @ np.float32([0.2126, 0.7152, 0.0722])
    linear = np.where(grey <= 0.04045, grey / 12.92, ((grey + 0.055) / 1.055)**2.4)
    white = max(float(np.percentile(linear, 99)), 1e-6)
    image = np.clip(linear / white, 0, 1)**(1 / 2.2)
    if scale != 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # noise: median absolute Laplacian (2.8 = its gain on white noise), in units of the white level
    noise = 1.4826 * float(np.median(np.abs(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F)))) / 2.8
    image8 = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    if noise > 0.01:
        image8 = cv2.fastNlMeansDenoising(image8, None, h=float(min(1.2 * 255 * noise, 80)), templateWindowSize=7,
                                          searchWindowSize=21)
    # local contrast equalised: the denoised dark photo is flat, and SIFT's contrast threshold is absolute
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(image8)


def estimate_homography(lowlight_rgb, flash_rgb):
    """``(3x3 matrix mapping flash pixels to no-flash pixels, info)``; the matrix is None when the
    estimate fails a check, and ``info['reason']`` says which."""
    height, width = lowlight_rgb.shape[:2]
    scale = min(1.0, SEARCH_SIDE / max(height, width))
    sift = cv2.SIFT_create(nfeatures=4000, contrastThreshold=0.02)
    searched = [_search_image(image, scale) for image in (flash_rgb, lowlight_rgb)]
    found = [sift.detectAndCompute(image, None) for image in searched]
    (flash_points, flash_desc), (low_points, low_desc) = found
    info = {'features': [len(flash_points), len(low_points)]}
    if flash_desc is None or low_desc is None or len(flash_points) < MIN_INLIERS or len(low_points) < MIN_INLIERS:
        return None, dict(info, reason=f'too few features (flash {len(flash_points)}, no-flash {len(low_points)})')
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(flash_desc, low_desc, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < 0.8 * n.distance]
    info['matches'] = len(good)
    if len(good) < MIN_INLIERS:
        return None, dict(info, reason=f'too few matches ({len(good)} < {MIN_INLIERS})')
    source = np.float32([flash_points[m.queryIdx].pt for m in good]) / scale
    target = np.float32([low_points[m.trainIdx].pt for m in good]) / scale
    matrix, mask = cv2.findHomography(source, target, cv2.RANSAC, 3.0 / scale)
    inliers = int(mask.sum()) if mask is not None else 0
    info['inliers'] = inliers
    if matrix is None or inliers < MIN_INLIERS or inliers < MIN_INLIER_RATIO * len(good):
        return None, dict(info, reason=f'too few consistent matches ({inliers} of {len(good)})')
    corners = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]).reshape(-1, 1, 2)
    moved = cv2.perspectiveTransform(corners, matrix).reshape(-1, 2)
    shift = float(np.abs(moved - corners.reshape(-1, 2)).max())
    info['max_corner_shift'] = shift
    if shift > MAX_SHIFT * max(height, width):
        return None, dict(info, reason=f'implausible warp (a corner moves {shift:.0f} px)')
    if cv2.contourArea(moved) <= 0 or not cv2.isContourConvex(moved.astype(np.float32).reshape(-1, 1, 2)):
        return None, dict(info, reason='the warp folds the image')
    # the photos must agree better after the warp than before (edges in the same places)
    to_search = np.diag([scale, scale, 1.0])
    search_matrix = to_search @ matrix @ np.linalg.inv(to_search)
    before = _edge_agreement(searched[0], searched[1])
    after = _edge_agreement(cv2.warpPerspective(searched[0], search_matrix, searched[1].shape[::-1]), searched[1])
    info['edge_agreement'] = [before, after]
    if after < before + MIN_AGREEMENT_GAIN:
        return None, dict(info, reason=f'the warp does not make the photos agree better (edge correlation '
                                       f'{before:.3f} -> {after:.3f})')
    return matrix, dict(info, reason='ok')


def _edge_agreement(first, second):
    """Correlation of the two 8-bit images' smoothed gradient magnitudes (1: the same edges)."""
    def edges(image):
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 2.0)
        return np.hypot(cv2.Sobel(image, cv2.CV_32F, 1, 0), cv2.Sobel(image, cv2.CV_32F, 0, 1)).ravel()
    a, b = edges(first), edges(second)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))


def align_flash(lowlight, flash):
    """The flash photo (1,3,H,W) sRGB tensor warped onto the no-flash one, and what was done.

    Returns ``(flash, info)``: ``info['aligned']`` is True when a checked homography was applied;
    False with ``info['reason']`` when the flash photo is returned unchanged (the estimate failed a
    check, or the photos are already within ``MIN_SHIFT`` px).
    """
    if lowlight.shape != flash.shape or lowlight.dim() != 4 or lowlight.shape[0] != 1:
        raise ValueError(f'align_flash takes two (1,3,H,W) photos of one size, got {tuple(lowlight.shape)} '
                         f'and {tuple(flash.shape)}')

    def to_rgb(tensor):
        return tensor[0].permute(1, 2, 0).float().cpu().numpy()

    flash_rgb = to_rgb(flash)
    matrix, info = estimate_homography(to_rgb(lowlight), flash_rgb)
    if matrix is None:
        return flash, dict(info, aligned=False)
    if info['max_corner_shift'] < MIN_SHIFT:
        reason = f'already aligned (largest shift {info["max_corner_shift"]:.2f} px)'
        return flash, dict(info, aligned=False, reason=reason)
    height, width = flash_rgb.shape[:2]
    warped = cv2.warpPerspective(flash_rgb, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    result = torch.from_numpy(np.ascontiguousarray(warped.transpose(2, 0, 1)))[None].to(flash.device, flash.dtype)
    return result, dict(info, aligned=True)
