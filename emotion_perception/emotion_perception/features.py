"""Landmark features that do not depend on where a face is or how large it is.

The sequence transformer (and the frame SVM on landmark distances) need one number
per landmark that describes the *shape* of the face, not its position in the image.
:func:`landmark_distances` gives, for each of MediaPipe's 478 landmarks, its
Euclidean distance to a fixed reference landmark (the nose tip by default), divided
by the inter-ocular distance (outer eye corners).  Coordinates are first turned into
pixel-aspect-correct units: x times image width, y times image height, z times image
width (MediaPipe's z is in the same scale as x), so a face in a 640x360 image gives
the same feature as the same face in a square crop.

Properties (tested in ``test/test_features_landmarks.py``):
- invariant to translation, uniform scaling and in-plane rotation of the face;
- invariant to the image size when the face's pixel geometry is unchanged;
- the reference landmark's own feature is 0; each eye corner's distance to the other
  is exactly 1 by construction.

ROS-free and TensorFlow-free: numpy only.
"""

from __future__ import annotations

import numpy as np

from .types import NUM_LANDMARKS

#: MediaPipe face-mesh index of the nose tip (the default reference landmark).
NOSE_TIP = 1
#: Outer corner of the person's right eye (image left in a frontal view).
RIGHT_EYE_OUTER = 33
#: Outer corner of the person's left eye.
LEFT_EYE_OUTER = 263
#: Inter-ocular distances below this (in pixels) mean a degenerate face: refused.
MIN_INTEROCULAR_PX = 1e-6


def pixel_coordinates(landmarks: np.ndarray, image_wh=(1, 1), use_z: bool = True) -> np.ndarray:
    """Landmarks in pixel-aspect-correct units.

    Args:
        landmarks: (..., 478, 3) MediaPipe normalised coordinates.
        image_wh: (width, height) in pixels, or an (N, 2) array, one per face of a
            (N, 478, 3) batch.
        use_z: keep z (scaled by the image width like x); otherwise return 2-D.

    Returns:
        (..., 478, 3) or (..., 478, 2) float32.
    """
    lm = np.asarray(landmarks, dtype=np.float32)
    wh = np.asarray(image_wh, dtype=np.float32)
    if wh.ndim == 1:
        w, h = wh[0], wh[1]
    else:
        w = wh[..., 0].reshape(wh.shape[:-1] + (1,))
        h = wh[..., 1].reshape(wh.shape[:-1] + (1,))
    out = [lm[..., 0] * w, lm[..., 1] * h]
    if use_z:
        out.append(lm[..., 2] * w)
    return np.stack(out, axis=-1)


def interocular_distance(landmarks: np.ndarray, image_wh=(1, 1), use_z: bool = True) -> np.ndarray:
    """Distance between the outer eye corners in pixels, shape (...)."""
    p = pixel_coordinates(landmarks, image_wh, use_z)
    return np.linalg.norm(p[..., RIGHT_EYE_OUTER, :] - p[..., LEFT_EYE_OUTER, :], axis=-1)


def landmark_distances(landmarks: np.ndarray, image_wh=(1, 1), reference: int = NOSE_TIP,
                       use_z: bool = True) -> np.ndarray:
    """Distance of every landmark to ``reference``, in inter-ocular distances.

    Args:
        landmarks: (478, 3) for one face or (N, 478, 3) for a batch, MediaPipe
            normalised coordinates (x by image width, y by image height, z in
            image-width units).
        image_wh: (width, height) pixels of the source image, or (N, 2) for a batch
            whose images differ.
        reference: index of the landmark distances are measured to (nose tip).
        use_z: measure in 3-D (default) or in the image plane only.

    Returns:
        (478,) or (N, 478) float32, one unit-less distance per landmark.

    Raises:
        ValueError: wrong shape, non-finite values, or a degenerate face (eye
            corners on top of each other).
    """
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.ndim not in (2, 3) or lm.shape[-2:] != (NUM_LANDMARKS, 3):
        raise ValueError(f"landmarks must be (478, 3) or (N, 478, 3), got {lm.shape}")
    if not np.all(np.isfinite(lm)):
        raise ValueError("landmarks hold NaN or infinite values")
    wh = np.asarray(image_wh, dtype=np.float32)
    if wh.ndim == 1 and wh.shape != (2,) or wh.ndim == 2 and (lm.ndim != 3 or wh.shape != (lm.shape[0], 2)):
        raise ValueError(f"image_wh must be (2,) or (N, 2) matching the batch, got {wh.shape}")
    if np.any(wh <= 0):
        raise ValueError(f"image_wh must be positive, got {wh.tolist()}")
    p = pixel_coordinates(lm, wh, use_z)
    iod = np.linalg.norm(p[..., RIGHT_EYE_OUTER, :] - p[..., LEFT_EYE_OUTER, :], axis=-1)
    if np.any(iod < MIN_INTEROCULAR_PX):
        raise ValueError("degenerate face: the outer eye corners coincide")
    d = np.linalg.norm(p - p[..., reference:reference + 1, :], axis=-1)
    return (d / iod[..., None]).astype(np.float32)


# ---------------------------------------------------------------- graph input (gnn-landmarks, issue 4)

def normalised_xy(landmarks: np.ndarray, image_wh=(1, 1), reference: int = NOSE_TIP) -> np.ndarray:
    """Image-plane landmark positions relative to ``reference``, in inter-ocular distances.

    The node features of the landmark graph network: pixel-aspect-correct x and y
    (x times width, y times height), the nose tip moved to the origin, divided by the
    2-D distance between the outer eye corners. Invariant to translation and uniform
    scale (not to in-plane rotation: the network sees head roll).

    Args:
        landmarks: (478, 3) or (N, 478, 3) MediaPipe normalised coordinates.
        image_wh: (width, height) or (N, 2) pixels.
        reference: landmark moved to the origin.

    Returns:
        (478, 2) or (N, 478, 2) float32.

    Raises:
        ValueError: wrong shape, non-finite values or a degenerate face.
    """
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.ndim not in (2, 3) or lm.shape[-2:] != (NUM_LANDMARKS, 3):
        raise ValueError(f"landmarks must be (478, 3) or (N, 478, 3), got {lm.shape}")
    if not np.all(np.isfinite(lm)):
        raise ValueError("landmarks hold NaN or infinite values")
    p = pixel_coordinates(lm, image_wh, use_z=False)
    iod = np.linalg.norm(p[..., RIGHT_EYE_OUTER, :] - p[..., LEFT_EYE_OUTER, :], axis=-1)
    if np.any(iod < MIN_INTEROCULAR_PX):
        raise ValueError("degenerate face: the outer eye corners coincide")
    return ((p - p[..., reference:reference + 1, :]) / iod[..., None, None]).astype(np.float32)
