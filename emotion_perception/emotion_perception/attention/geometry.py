"""Landmark indices and aspect-correct 3-D face geometry shared by the attention estimators.

MediaPipe gives landmark x and y normalised to the image width and height and z in
image-width units. Distances and angles only mean something once x, y and z are in
the same unit, so every estimator here works on :func:`to_pixels` coordinates
(x right, y down, z away from the camera, all in pixels).
"""

from __future__ import annotations

import numpy as np

from ..types import NUM_LANDMARKS

# "Right"/"left" are the person's own eyes (MediaPipe's convention): the right eye is
# on the image's left.
#: Eye corners (outer, inner), upper-lid and lower-lid points (paired), iris centre.
RIGHT_EYE = {"outer": 33, "inner": 133, "upper": (160, 159, 158), "lower": (144, 145, 153), "iris": 468}
LEFT_EYE = {"outer": 263, "inner": 362, "upper": (387, 386, 385), "lower": (373, 374, 380), "iris": 473}
#: Inner-lip top and bottom centre, mouth corners (inner).
MOUTH = {"top": 13, "bottom": 14, "corners": (78, 308)}
#: Points that move little with expression, used to fit head pose from landmarks.
RIGID = np.array([1, 4, 6, 168, 197, 195, 5, 33, 133, 263, 362, 70, 300, 105, 334, 10, 151, 9,
                  234, 454, 127, 356, 93, 323, 132, 361, 58, 288, 172, 397, 152, 148, 377])


class GeometryError(ValueError):
    """Landmarks of the wrong shape, non-finite, or an image size of zero."""


def to_pixels(landmarks: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
    """(478, 3) normalised landmarks -> float64 pixels (x*w, y*h, z*w).

    Raises:
        GeometryError: wrong shape, NaN/inf values or a non-positive image size.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (NUM_LANDMARKS, 3):
        raise GeometryError(f"landmarks have shape {lm.shape}, expected ({NUM_LANDMARKS}, 3)")
    if not np.all(np.isfinite(lm)):
        raise GeometryError("landmarks hold NaN or infinite values")
    w, h = float(image_wh[0]), float(image_wh[1])
    if not (w > 0 and h > 0):
        raise GeometryError(f"image size {image_wh} is not positive")
    return lm * np.array([w, h, w])


def eye_aspect_ratio(p: np.ndarray, eye: dict) -> float:
    """3-D eye aspect ratio: mean lid gap over corner distance (open ~0.3, closed < 0.1)."""
    width = np.linalg.norm(p[eye["outer"]] - p[eye["inner"]])
    gaps = np.linalg.norm(p[list(eye["upper"])] - p[list(eye["lower"])], axis=1)
    return float(gaps.mean() / max(width, 1e-9))


def mouth_aspect_ratio(p: np.ndarray) -> float:
    """3-D inner-lip gap over inner mouth width (closed ~0, open > 0.1)."""
    gap = np.linalg.norm(p[MOUTH["top"]] - p[MOUTH["bottom"]])
    width = np.linalg.norm(p[MOUTH["corners"][0]] - p[MOUTH["corners"][1]])
    return float(gap / max(width, 1e-9))
