"""The aligned face crop: the one input the face-image model ever sees.

Training (FER+ faces), the nodes (camera frames) and ``predict``/``evaluate`` on photo
folders all call :func:`aligned_crop`, so the model meets at run time exactly the
geometry it was trained on. No rclpy, no TensorFlow here.

The geometry comes from MediaPipe's 478 landmarks (x, y normalised to the image):

1. **Level eye line**: the image is rotated about the face so that the line through
   the two eye centres (each the mean of its two eye corners) is horizontal.
2. **Centre and scale**: the landmarks, rotated the same way, give a box; the crop is
   the square of side ``max(box width, box height) * (1 + 2 * margin)`` centred on
   that box. The box's height (forehead to chin) barely changes with head yaw, so
   the scale stays steady when the face turns, where an eye-distance scale would
   zoom in.
3. **Resampling**: the rotated square is cut out of the grey image with bilinear
   interpolation; a face more than twice the crop's size is first shrunk by an
   integer factor with area averaging (no aliasing on close faces), so that the
   bilinear step shrinks by no more than 2. Pixels outside the image repeat the
   nearest border pixel.

:data:`CROP_MARGIN` was chosen so that the crop frames a face as FER-2013's 48x48
images do (see ``models/image-cnn.md``); training and run time share it through
the model's JSON, never a second constant.

Example::

    crop = aligned_crop(rgb, face.landmarks, size=48)   # (48, 48) uint8 grey
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

#: Eye corners (MediaPipe face mesh indices): the subject's right eye (image left
#: in a camera image) and left eye.
RIGHT_EYE = (33, 133)
LEFT_EYE = (362, 263)
_EYES = np.array(RIGHT_EYE + LEFT_EYE)
#: Margin on each side of the rotated landmark box, fraction of its larger side.
CROP_MARGIN = 0.05
#: A face smaller than this many pixels (landmark box side) carries too little to classify.
MIN_FACE_PX = 12


@dataclasses.dataclass(frozen=True)
class CropGeometry:
    """Where the aligned square lies in the source image (pixels).

    Attributes:
        centre: (x, y) of the square's centre.
        side: side of the square before resampling.
        angle: eye-line angle, radians (the image is rotated by ``-angle``).
    """

    centre: tuple[float, float]
    side: float
    angle: float


def crop_geometry(landmarks: np.ndarray, image_wh, margin: float = CROP_MARGIN) -> CropGeometry:
    """The aligned square of a face, from its (478, 2+) normalised landmarks.

    Raises:
        ValueError: landmarks of the wrong shape or not finite.
    """
    lm = np.asarray(landmarks)
    if lm.ndim != 2 or lm.shape[0] <= max(LEFT_EYE + RIGHT_EYE) or lm.shape[1] < 2:
        raise ValueError(f"aligned_crop needs (478, 2 or 3) landmarks, got {lm.shape}")
    w, h = float(image_wh[0]), float(image_wh[1])
    # normalised [0, 1] -> pixel-centre coordinates (pixel i at i), column by column: on
    # every face of every image in the landmark node and the REP-155 node, a third of
    # the (478, 2) matrix version's time (0.03 against 0.09 ms), the same geometry to 1e-12
    x = lm[:, 0].astype(np.float64) * w - 0.5
    y = lm[:, 1].astype(np.float64) * h - 0.5
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("aligned_crop: landmarks are not finite")
    ex, ey = x[_EYES], y[_EYES]
    right, left = ((ex[0] + ex[1]) / 2.0, (ey[0] + ey[1]) / 2.0), ((ex[2] + ex[3]) / 2.0, (ey[2] + ey[3]) / 2.0)
    angle = math.atan2(left[1] - right[1], left[0] - right[0])
    c, s = math.cos(-angle), math.sin(-angle)
    u, v = x * c - y * s, x * s + y * c  # rotated by -angle: the eyes level
    ulo, uhi, vlo, vhi = u.min(), u.max(), v.min(), v.max()
    side = float(max(uhi - ulo, vhi - vlo)) * (1.0 + 2.0 * margin)
    mu, mv = (ulo + uhi) / 2.0, (vlo + vhi) / 2.0
    # the middle rotated back by +angle: image coordinates
    return CropGeometry((float(c * mu + s * mv), float(-s * mu + c * mv)), side, angle)


def to_crop(points_px: np.ndarray, geo: CropGeometry, size: int) -> np.ndarray:
    """Source-image pixel coordinates (N, 2) -> the crop's pixel coordinates (N, 2)
    (pixel centres at integers), the inverse of the resampling."""
    c, s = math.cos(geo.angle), math.sin(geo.angle)
    d = np.asarray(points_px, np.float64) - geo.centre
    rot = d @ np.array([[c, -s], [s, c]])  # rows rotated by -angle
    return rot * (size / geo.side) + (size / 2.0 - 0.5)


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise ValueError(f"aligned_crop needs an (H, W) grey or (H, W, 3) RGB image, got {image.shape}")


def crop_with_geometry(image: np.ndarray, geo: CropGeometry, size: int, flip: bool = False) -> np.ndarray:
    """Cut ``geo``'s square out of ``image`` as a (size, size) uint8 grey crop.

    Only the region around the square is converted to grey and resampled, so the
    cost does not grow with the camera's resolution.
    """
    if image.dtype != np.uint8 or image.size == 0:
        raise ValueError(f"aligned_crop needs a non-empty uint8 image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    cx, cy = geo.centre
    scale = size / geo.side  # output pixels per source pixel
    # A close face is first shrunk k times by area averaging (bilinear alone would alias
    # it), k whole so that OpenCV averages k x k blocks: 0.07-0.10 ms for a 640x480 face
    # where a fractional factor took 0.34 ms. The bilinear step then shrinks by
    # scale * k, in (0.5, 1].
    k = int(1.0 / scale) if scale < 0.5 else 1
    # half-diagonal of the rotated square, plus the filter's reach (and a block's)
    half = geo.side * math.sqrt(0.5) + 2.0 + (k if k > 1 else 0)
    x0, y0 = max(int(math.floor(cx - half)), 0), max(int(math.floor(cy - half)), 0)
    x1, y1 = min(int(math.ceil(cx + half)) + 1, w), min(int(math.ceil(cy + half)) + 1, h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("aligned_crop: the face lies outside the image")
    roi = _grey(image[y0:y1, x0:x1])
    f = 1.0
    if k > 1:
        pad_y, pad_x = -roi.shape[0] % k, -roi.shape[1] % k  # whole blocks; beyond the image, its border
        if pad_y or pad_x:
            roi = cv2.copyMakeBorder(roi, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        roi = cv2.resize(roi, (roi.shape[1] // k, roi.shape[0] // k), interpolation=cv2.INTER_AREA)
        f = 1.0 / k
    # Output pixel (u, v) -> source ROI pixel: p = R(angle) * ((u, v) - size/2) / scale + centre.
    c, s = math.cos(geo.angle), math.sin(geo.angle)
    k = 1.0 / scale
    sign = -1.0 if flip else 1.0
    a = np.array([[sign * c * k, -s * k], [sign * s * k, c * k]])
    t = np.array([cx - x0, cy - y0]) - a @ np.array([size / 2.0 - 0.5, size / 2.0 - 0.5])
    m = np.hstack([a, t[:, None]])
    # The shrunk ROI's pixel centres: p' = (p + 0.5) * f - 0.5.
    m *= f
    m[:, 2] += (f - 1.0) * 0.5
    return cv2.warpAffine(roi, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def aligned_crop(image: np.ndarray, landmarks: np.ndarray, size: int = 48, margin: float = CROP_MARGIN,
                 flip: bool = False) -> np.ndarray:
    """The aligned (size, size) uint8 grey face crop of ``image`` (RGB or grey uint8).

    Args:
        image: the whole image the landmarks were found in.
        landmarks: (478, 2 or 3) MediaPipe landmarks, x and y normalised to the image.
        size: output side, pixels.
        margin: margin around the landmark box, fraction of its larger side.
        flip: mirror the crop left-right (test-time augmentation).

    Raises:
        ValueError: bad image or landmarks, a face smaller than :data:`MIN_FACE_PX`,
            or a face entirely outside the image.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"aligned_crop needs an (H, W) or (H, W, 3) image, got {image.shape}")
    geo = crop_geometry(landmarks, (image.shape[1], image.shape[0]), margin)
    if geo.side / (1.0 + 2.0 * margin) < MIN_FACE_PX:
        raise ValueError(f"face of {geo.side:.0f} px is smaller than {MIN_FACE_PX} px")
    return crop_with_geometry(image, geo, size, flip)


def frame_geometry(image_wh) -> CropGeometry:
    """The centred square of a whole image, upright."""
    w, h = float(image_wh[0]), float(image_wh[1])
    return CropGeometry(((w - 1.0) / 2.0, (h - 1.0) / 2.0), min(w, h), 0.0)


def whole_image_crop(image: np.ndarray, size: int = 48) -> np.ndarray:
    """The centred square of a photo that is already a face crop, as (size, size) grey
    uint8: what the model gets where MediaPipe finds no face in a small, face-filling
    photo such as FER-2013's (``predict`` on such photos, and training)."""
    image = np.asarray(image)
    return crop_with_geometry(image, frame_geometry((image.shape[1], image.shape[0])), size)
