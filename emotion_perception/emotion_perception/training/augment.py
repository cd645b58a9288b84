"""Landmark augmentation: horizontal flip with mirrored indices, grid and optical
distortion.

A horizontal flip of the image moves the person's left eye to where the right eye
was: flipping only x would leave landmark 33 (right eye outer corner) describing the
left eye, so the indices must be mirrored too. :func:`mesh_mirror_map` derives the
478-index map from data (the mean frontal face reflected about its own symmetry
axis, matched point to point by the Hungarian method); the test checks that it is an
involution, that it maps MediaPipe's tessellation onto itself and that known pairs
(eye corners 33/263, mouth corners 61/291, iris centres 468/473) swap.

Grid and optical distortion follow the image augmentations of the same names
(albumentations' GridDistortion / OpticalDistortion), applied to the landmark
coordinates instead of the pixels: a random piecewise-linear warp of each axis on a
coarse grid over the face box, and a radial barrel/pincushion distortion about the
face centre.
"""

from __future__ import annotations

import numpy as np

from ..types import NUM_LANDMARKS

GRID_STEPS = 5
#: Largest relative change of one grid cell's width (GridDistortion's distort_limit).
GRID_DISTORT_LIMIT = 0.3
#: Largest radial coefficient of the optical distortion (r' = r (1 + k r^2), r in face radii).
OPTICAL_DISTORT_LIMIT = 0.1


def mesh_mirror_map(landmarks: np.ndarray, image_wh: np.ndarray) -> np.ndarray:
    """The index each landmark moves to under a horizontal flip, from data.

    Args:
        landmarks: (N, 478, 3) faces, mostly frontal (hundreds are plenty).
        image_wh: (N, 2) image sizes.

    Returns:
        (478,) int64 permutation ``m`` with ``flipped[m[i]] == mirror(original[i])``;
        ``m[m[i]] == i``.
    """
    from scipy.optimize import linear_sum_assignment

    p = landmarks[..., :2].astype(np.float64) * image_wh[:, None, :].astype(np.float64)
    p = p - p.mean(1, keepdims=True)
    p /= np.linalg.norm(p, axis=(1, 2), keepdims=True)
    # align each face's eye line with the x axis before averaging
    v = p[:, 263] - p[:, 33]
    a = -np.arctan2(v[:, 1], v[:, 0])
    rot = np.stack([np.stack([np.cos(a), -np.sin(a)], -1), np.stack([np.sin(a), np.cos(a)], -1)], -2)
    m = np.einsum("nij,nkj->nki", rot, p).mean(0)
    r = m.copy()
    r[:, 0] = 2 * m[:, 0].mean() - r[:, 0]
    cost = ((m[:, None, :] - r[None, :, :]) ** 2).sum(-1)
    _, col = linear_sum_assignment(cost)
    col = np.asarray(col, dtype=np.int64)
    # make it an exact involution: keep pairs agreed both ways, fix the rest to themselves
    bad = col[col] != np.arange(NUM_LANDMARKS)
    col[bad] = np.flatnonzero(bad)
    return col


def flip(landmarks: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Landmarks of the horizontally flipped image: x -> 1 - x, indices mirrored.

    Args:
        landmarks: (..., 478, 3) normalised coordinates.
        mirror: the map of :func:`mesh_mirror_map`.
    """
    out = np.array(landmarks, dtype=np.float32, copy=True)
    out[..., 0] = 1.0 - out[..., 0]
    res = np.empty_like(out)
    res[..., mirror, :] = out
    return res


def _piecewise(u: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Map u in [0, 1] through a piecewise-linear warp with cell widths ``steps`` (sum 1)."""
    knots_in = np.linspace(0.0, 1.0, len(steps) + 1)
    knots_out = np.concatenate([[0.0], np.cumsum(steps)])
    return np.interp(u, knots_in, knots_out)


def grid_distort(landmarks: np.ndarray, image_wh, rng: np.random.Generator,
                 limit: float = GRID_DISTORT_LIMIT) -> np.ndarray:
    """Random piecewise-linear warp of x and y over the face's box (one face (478, 3))."""
    lm = np.array(landmarks, dtype=np.float32, copy=True)
    for axis in (0, 1):
        lo, hi = float(lm[:, axis].min()), float(lm[:, axis].max())
        span = max(hi - lo, 1e-6)
        steps = 1.0 + rng.uniform(-limit, limit, GRID_STEPS)
        steps /= steps.sum()
        u = (lm[:, axis] - lo) / span
        lm[:, axis] = lo + span * _piecewise(u, steps)
    return lm


def optical_distort(landmarks: np.ndarray, image_wh, rng: np.random.Generator,
                    limit: float = OPTICAL_DISTORT_LIMIT) -> np.ndarray:
    """Radial distortion about the face centre, in pixel-aspect-correct units."""
    lm = np.array(landmarks, dtype=np.float32, copy=True)
    w, h = float(image_wh[0]), float(image_wh[1])
    p = lm[:, :2] * np.array([w, h], dtype=np.float32)
    c = p.mean(0)
    d = p - c
    radius = float(np.sqrt((d ** 2).sum(1)).max()) or 1.0
    r2 = (d ** 2).sum(1, keepdims=True) / radius ** 2
    k = rng.uniform(-limit, limit)
    p = c + d * (1.0 + k * r2)
    lm[:, :2] = p / np.array([w, h], dtype=np.float32)
    return lm


def augment(landmarks: np.ndarray, image_wh: np.ndarray, labels: np.ndarray, mirror: np.ndarray,
            rng: np.random.Generator, copies: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Originals, their mirrored copies and ``copies`` distorted copies of each
    (grid or optical distortion at random, flipped at random).

    Returns:
        (landmarks, image_wh, labels) of (2 + copies) * N rows.
    """
    lm = [landmarks.astype(np.float32), flip(landmarks, mirror)]
    wh = [image_wh, image_wh]
    lab = [labels, labels]
    for _ in range(copies):
        out = np.empty_like(lm[0])
        for i in range(len(landmarks)):
            f = lm[1][i] if rng.random() < 0.5 else lm[0][i]
            if rng.random() < 0.5:
                out[i] = grid_distort(f, image_wh[i], rng)
            else:
                out[i] = optical_distort(f, image_wh[i], rng)
        lm.append(out)
        wh.append(image_wh)
        lab.append(labels)
    return np.concatenate(lm), np.concatenate(wh), np.concatenate(lab)
