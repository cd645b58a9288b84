"""ROS4HRI (REP-155) from this package's results: the tables and the geometry, no rclpy.

:mod:`emotion_perception.nodes.hri_node` publishes what these functions compute; they
are plain Python and numpy so that they are unit-tested everywhere and documented in
one place (docs/ros4hri.md):

* :class:`FaceIds`: REP-155 face ids (valid identifiers, never reused), confirmation
  of new faces and loss of gone ones, from the landmark node's face ids;
* :func:`expression_of`: this package's ``Emotion`` -> ``hri_msgs/Expression`` fields
  (:data:`EXPRESSION_OF`, the REP's constant strings);
* :func:`facs_of`: MediaPipe's 52 blendshapes -> FACS action-unit intensities
  (:data:`AU_FROM_BLENDSHAPES`);
* :data:`LANDMARKS_70`: MediaPipe's 478 landmarks -> the 70 of ``FacialLandmarks``
  (dlib/OpenPose order plus both pupils);
* :func:`face_pose` and :func:`gaze_rotation`: the ``face_<id>`` and ``gaze_<id>`` TF
  frames (REP-155 axes, origin at the sellion, metres);
* :class:`Engagement`: ``EngagementLevel`` from this package's attention;
* :func:`normalised_roi`, :func:`cropped_bgr`, :func:`aligned_bgr`: ``roi``,
  ``cropped`` and ``aligned``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import string

import cv2
import numpy as np

from .types import BLENDSHAPE_NAMES

# ------------------------------------------------------------------ expressions

#: The expression constants of ``hri_msgs/Expression`` (hri_msgs 2.0.0 to 2.3.2).
REP_EXPRESSIONS = (
    "neutral", "angry", "sad", "happy", "surprised", "disgusted", "scared", "pleading", "vulnerable",
    "despaired", "guilty", "disappointed", "embarrassed", "horrified", "skeptical", "annoyed", "furious",
    "suspicious", "rejected", "bored", "tired", "asleep", "confused", "amazed", "excited")

#: This package's class names (``Emotion.label``) -> REP-155 expression constants. Three are
#: spelled differently (surprise, disgust, fear). The 3-class LSTM's ``unknown`` has none.
EXPRESSION_OF = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "scared",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprise": "surprised",
}


@dataclasses.dataclass(frozen=True)
class ExpressionFields:
    """The fields of one ``hri_msgs/Expression`` (header aside)."""

    expression: str
    valence: float
    arousal: float
    confidence: float


def _unit(x: float) -> float:
    """A valence or arousal for REP-155: [-1, 1], NaN -> 0 (the reference recogniser's value)."""
    x = float(x)
    return 0.0 if not math.isfinite(x) else min(1.0, max(-1.0, x))


def expression_of(label: str, confidence: float, valence: float = float("nan"), arousal: float = float("nan"),
                  confident: bool = True) -> ExpressionFields:
    """``hri_msgs/Expression`` fields from one ``Emotion``.

    The documented choice for weak evidence: the expression string is always one of
    the REP's constants (never empty, never this package's spelling); a label with no
    REP constant (``unknown``) is ``neutral``. ``confidence`` is the label's probability
    when the estimate is ``confident`` and finite, else 0.0, so a consumer that
    thresholds on confidence (as the reference pipeline does) ignores a warming-up or
    NaN estimate. Valence and arousal are clipped to [-1, 1]; NaN becomes 0.0.

    Args:
        label: ``Emotion.label``.
        confidence: ``Emotion.confidence``, [0, 1].
        valence: ``Emotion.valence`` (NaN when the model gives none).
        arousal: ``Emotion.arousal``.
        confident: ``Emotion.confident``.
    """
    expression = EXPRESSION_OF.get(label)
    c = float(confidence)
    if expression is None or not confident or not math.isfinite(c):
        c = 0.0
    return ExpressionFields(expression or "neutral", _unit(valence), _unit(arousal), min(1.0, max(0.0, c)))


# ------------------------------------------------------------------ FACS

_BS = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}

#: FACS action unit (``FacialActionUnits`` index = AU code) -> (rule, blendshapes).
#: ``mean``: the mean of the two sides (ARKit's blendshapes are per side, FACS
#: intensities per face); ``max``: either side; ``one``: a single blendshape;
#: ``diff``: the first minus the second, clipped at 0. The ARKit blendshapes were
#: designed from FACS, so most are one action unit each; the rest have no
#: blendshape (docs/ros4hri.md lists them) and stay at intensity 0, confidence 0.
AU_FROM_BLENDSHAPES = {
    1: ("one", ("browInnerUp",)),                                  # inner brow raiser
    2: ("mean", ("browOuterUpLeft", "browOuterUpRight")),          # outer brow raiser
    4: ("mean", ("browDownLeft", "browDownRight")),                # brow lowerer
    5: ("mean", ("eyeWideLeft", "eyeWideRight")),                  # upper lid raiser
    6: ("mean", ("cheekSquintLeft", "cheekSquintRight")),          # cheek raiser
    7: ("mean", ("eyeSquintLeft", "eyeSquintRight")),              # lid tightener
    9: ("mean", ("noseSneerLeft", "noseSneerRight")),              # nose wrinkler
    10: ("mean", ("mouthUpperUpLeft", "mouthUpperUpRight")),       # upper lip raiser
    12: ("mean", ("mouthSmileLeft", "mouthSmileRight")),           # lip corner puller
    14: ("mean", ("mouthDimpleLeft", "mouthDimpleRight")),         # dimpler
    15: ("mean", ("mouthFrownLeft", "mouthFrownRight")),           # lip corner depressor
    16: ("mean", ("mouthLowerDownLeft", "mouthLowerDownRight")),   # lower lip depressor
    17: ("one", ("mouthShrugLower",)),                             # chin raiser
    18: ("one", ("mouthPucker",)),                                 # lip pucker
    20: ("mean", ("mouthStretchLeft", "mouthStretchRight")),       # lip stretcher
    22: ("one", ("mouthFunnel",)),                                 # lip funneler
    24: ("mean", ("mouthPressLeft", "mouthPressRight")),           # lip pressor
    25: ("diff", ("jawOpen", "mouthClose")),                       # lips part
    26: ("one", ("jawOpen",)),                                     # jaw drop
    28: ("mean", ("mouthRollLower", "mouthRollUpper")),            # lip suck
    29: ("one", ("jawForward",)),                                  # jaw thrust
    30: ("max", ("jawLeft", "jawRight")),                          # jaw sideways
    34: ("one", ("cheekPuff",)),                                   # cheek puff
    43: ("mean", ("eyeBlinkLeft", "eyeBlinkRight")),               # eyes closed
    61: ("mean", ("eyeLookOutLeft", "eyeLookInRight")),            # eyes turn (the person's) left
    62: ("mean", ("eyeLookInLeft", "eyeLookOutRight")),            # eyes turn right
    63: ("mean", ("eyeLookUpLeft", "eyeLookUpRight")),             # eyes up
    64: ("mean", ("eyeLookDownLeft", "eyeLookDownRight")),         # eyes down
}
#: Length of ``FacialActionUnits.intensity`` and ``.confidence``.
NUM_AU_SLOTS = 99

_AU_CODES = np.array(sorted(AU_FROM_BLENDSHAPES), dtype=np.intp)
_AU_A = np.array([_BS[AU_FROM_BLENDSHAPES[a][1][0]] for a in _AU_CODES], dtype=np.intp)
_AU_B = np.array([_BS[AU_FROM_BLENDSHAPES[a][1][-1]] for a in _AU_CODES], dtype=np.intp)
_AU_RULE = np.array([AU_FROM_BLENDSHAPES[a][0] for a in _AU_CODES])


def facs_of(scores, confidence: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Action-unit intensities and confidences from MediaPipe's 52 blendshapes.

    Args:
        scores: 52 blendshape scores in [0, 1], MediaPipe's order.
        confidence: confidence given to every mapped action unit, [0, 1] (the node passes
            the face's detection quality, ``FaceMesh.score``: MediaPipe gives no
            per-blendshape confidence).

    Returns:
        (intensity, confidence), each 99 float32 indexed by AU code; unmapped action
        units are 0 with confidence 0.

    Raises:
        ValueError: not 52 finite scores.
    """
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    if s.size != len(BLENDSHAPE_NAMES) or not np.all(np.isfinite(s)):
        raise ValueError(f"facs_of needs {len(BLENDSHAPE_NAMES)} finite blendshape scores, got {s.size}")
    a, b = s[_AU_A], s[_AU_B]
    values = np.where(_AU_RULE == "mean", (a + b) * 0.5,
                      np.where(_AU_RULE == "max", np.maximum(a, b),
                               np.where(_AU_RULE == "diff", a - b, a)))
    intensity = np.zeros(NUM_AU_SLOTS, np.float32)
    conf = np.zeros(NUM_AU_SLOTS, np.float32)
    intensity[_AU_CODES] = np.clip(values, 0.0, 1.0)
    conf[_AU_CODES] = min(1.0, max(0.0, float(confidence)))
    return intensity, conf


# ------------------------------------------------------------------ landmarks

#: ``FacialLandmarks`` index (dlib's 68 points, then the right and left pupils) ->
#: MediaPipe face-mesh index. "Right"/"left" are the person's own, as in both
#: conventions. Contour points were picked at even spacing along MediaPipe's
#: silhouette and lip loops between the same anatomical end points as dlib's.
LANDMARKS_70 = (
    # 0-16 jaw line, from the right ear (image left) over the menton (8) to the left ear
    234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454,
    # 17-21 right eyebrow, outside to inside; 22-26 left eyebrow, inside to outside
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # 27-30 nose bridge from the sellion down to the tip; 31-35 nostrils, right to left
    168, 197, 5, 4, 98, 97, 2, 326, 327,
    # 36-41 right eye: outside, top 1, top 2, inside, bottom 2, bottom 1
    33, 160, 158, 133, 153, 144,
    # 42-47 left eye: inside, top 2, top 1, outside, bottom 1, bottom 2
    362, 385, 387, 263, 373, 380,
    # 48-59 outer lips from the right corner over the top, then back along the bottom
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # 60-67 inner lips from the right corner over the top, then back along the bottom
    78, 81, 13, 311, 308, 402, 14, 178,
    # 68 right pupil, 69 left pupil (iris centres)
    468, 473,
)
#: ``FacialLandmarks.SELLION`` and the MediaPipe landmark at the sellion.
SELLION_70 = 27
SELLION_MP = LANDMARKS_70[SELLION_70]
_LM70 = np.array(LANDMARKS_70, dtype=np.intp)


def landmarks_70(landmarks: np.ndarray) -> np.ndarray:
    """(70, 2) normalised image coordinates from MediaPipe's (478, >=2) landmarks."""
    return np.asarray(landmarks)[_LM70, :2]


# ------------------------------------------------------------------ ROI and crops

#: Side of ``cropped`` and ``aligned``, pixels (the reference face detector's).
CROP_SIDE = 128


def roi_from_box(x: int, y: int, width: int, height: int, image_wh) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) normalised and clipped to [0, 1] from a pixel box (``FaceMesh.bounding_box``)."""
    w, h = max(1, int(image_wh[0])), max(1, int(image_wh[1]))
    return (min(1.0, max(0.0, x / w)), min(1.0, max(0.0, y / h)), min(1.0, max(0.0, (x + width) / w)),
            min(1.0, max(0.0, (y + height) / h)))


def normalised_roi(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of the landmarks' box, normalised and clipped to [0, 1]."""
    lm = np.asarray(landmarks)
    x0, y0 = np.clip(lm[:, :2].min(axis=0), 0.0, 1.0)
    x1, y1 = np.clip(lm[:, :2].max(axis=0), 0.0, 1.0)
    return float(x0), float(y0), float(x1), float(y1)


def _to_bgr(image: np.ndarray, encoding: str) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if encoding.startswith("rgb"):
        return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)
    return image[..., :3]


def cropped_bgr(image: np.ndarray, roi: tuple[float, float, float, float], encoding: str = "bgr8",
                side: int = CROP_SIDE) -> np.ndarray:
    """REP-155 ``cropped``: the ROI scaled (aspect kept), centred and zero-padded into side x side bgr8.

    Args:
        image: (H, W), (H, W, 3) or (H, W, 4) uint8 camera image.
        roi: normalised (xmin, ymin, xmax, ymax).
        encoding: the image's encoding (rgb8, bgr8, rgba8, bgra8, mono8).
    """
    h, w = image.shape[:2]
    x0, y0 = int(roi[0] * w), int(roi[1] * h)
    x1, y1 = max(x0 + 1, int(math.ceil(roi[2] * w))), max(y0 + 1, int(math.ceil(roi[3] * h)))
    patch = image[y0:y1, x0:x1]
    ph, pw = patch.shape[:2]
    scale = side / max(ph, pw)
    nw, nh = max(1, round(pw * scale)), max(1, round(ph * scale))
    # area averaging only where bilinear would alias (shrinking by more than 2); colour after
    # resizing, on the small picture
    small = _to_bgr(cv2.resize(patch, (nw, nh), interpolation=cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR),
                    encoding)
    out = np.zeros((side, side, 3), np.uint8)
    ox, oy = (side - nw) // 2, (side - nh) // 2
    out[oy:oy + nh, ox:ox + nw] = small
    return out


def aligned_bgr(image: np.ndarray, landmarks: np.ndarray, encoding: str = "bgr8", side: int = CROP_SIDE,
                margin: float = 0.05) -> np.ndarray:
    """REP-155 ``aligned``: the face rotated so that the eyes are level, side x side bgr8.

    The same geometry as the image model's crop
    (:func:`emotion_perception.face_crop.crop_geometry`), in colour.
    """
    from .face_crop import crop_geometry

    h, w = image.shape[:2]
    geo = crop_geometry(np.asarray(landmarks), (w, h), margin)
    # warp only the part of the image the rotated square can reach (a circle of radius
    # side/sqrt(2) about its centre): the cost then follows the face, not the camera
    reach = geo.side * 0.7072 + 2
    cx, cy = geo.centre
    x0, y0 = max(0, int(cx - reach)), max(0, int(cy - reach))
    x1, y1 = min(w, int(math.ceil(cx + reach))), min(h, int(math.ceil(cy + reach)))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((side, side, 3), np.uint8)
    m = cv2.getRotationMatrix2D((cx - x0, cy - y0), math.degrees(geo.angle), side / geo.side)
    m[0, 2] += side / 2 - (cx - x0)
    m[1, 2] += side / 2 - (cy - y0)
    return _to_bgr(cv2.warpAffine(image[y0:y1, x0:x1], m, (side, side), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT), encoding)


# ------------------------------------------------------------------ TF

#: The sellion (MediaPipe canonical face vertex 168) in MediaPipe's canonical face model,
#: centimetres (x towards the person's left, y up, z out of the face). Read from
#: ``geometry_pipeline_metadata_landmarks.binarypb`` inside ``face_landmarker.task``
#: (the unit test reads it again).
SELLION_CANONICAL_CM = np.array([0.0, 3.271, 5.236])
#: The vertical field of view of the virtual perspective camera in which MediaPipe's
#: facial transformation matrix places the face, degrees (MediaPipe's face geometry
#: environment for the Face Landmarker).
MEDIAPIPE_VERTICAL_FOV_DEG = 63.0


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera (``sensor_msgs/CameraInfo``'s K), pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


def quaternion_from_matrix(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a 3x3 rotation matrix (Shepperd's method, w >= 0)."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = np.asarray(r, float).tolist()
    t = m00 + m11 + m22
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = ((m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s, 0.25 * s)
    elif m00 > m11 and m00 > m22:
        s = math.sqrt(1.0 + m00 - m11 - m22) * 2
        q = (0.25 * s, (m01 + m10) / s, (m02 + m20) / s, (m21 - m12) / s)
    elif m11 > m22:
        s = math.sqrt(1.0 + m11 - m00 - m22) * 2
        q = ((m01 + m10) / s, 0.25 * s, (m12 + m21) / s, (m02 - m20) / s)
    else:
        s = math.sqrt(1.0 + m22 - m00 - m11) * 2
        q = ((m02 + m20) / s, (m12 + m21) / s, 0.25 * s, (m10 - m01) / s)
    n = math.sqrt(sum(v * v for v in q))
    q = tuple(v / n for v in q)
    return q if q[3] >= 0 else tuple(-v for v in q)


def matrix_from_quaternion(q) -> np.ndarray:
    """3x3 rotation matrix of (x, y, z, w)."""
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def face_pose(transform, sellion_xy, image_wh, intrinsics: Intrinsics | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The ``face_<id>`` frame in the camera's optical frame.

    Rotation: MediaPipe's facial transformation matrix, turned into REP-155 face axes
    (x forward out of the face, y to the person's left, z up) and the optical frame
    (x right, y down, z forward). Origin: the sellion.

    Translation, metres: the depth of the sellion of MediaPipe's metric canonical face
    as the matrix places it, and x, y on the ray through the sellion's pixel. MediaPipe
    places the face in a virtual camera with a 63 degree vertical field of view and
    the principal point at the image centre. Without ``intrinsics`` that camera is
    assumed, so the depth is right only for a camera of about that field of view
    (a 90 degree camera puts faces 1.6 times too far). With ``intrinsics``
    (``camera_info``) the depth is rescaled by the ratio of the real to the assumed
    focal length (the face keeps its size in pixels) and the ray goes through the real
    principal point. Both assume MediaPipe's average face size (about +-10% per person).

    Args:
        transform: 4x4 facial transformation matrix (row-major values or array), cm.
        sellion_xy: the sellion's landmark, normalised image coordinates.
        image_wh: image size, pixels.
        intrinsics: the camera's, or None.

    Returns:
        (translation (3,) metres, rotation 3x3) in the optical frame.
    """
    # plain floats: about 10 times faster than numpy on 3-vectors, and this runs per face per image
    m = [float(v) for v in np.asarray(transform, dtype=float).reshape(-1)[:16]]
    scale = (math.sqrt(m[0] ** 2 + m[4] ** 2 + m[8] ** 2) + math.sqrt(m[1] ** 2 + m[5] ** 2 + m[9] ** 2)
             + math.sqrt(m[2] ** 2 + m[6] ** 2 + m[10] ** 2)) / 3.0  # the matrix may carry a scale
    w, h = image_wh
    sx, sy, sz = SELLION_CANONICAL_CM
    depth = -(m[8] * sx + m[9] * sy + m[10] * sz + m[11]) / 100.0  # MediaPipe's z points at the viewer
    f_assumed = (h / 2.0) / math.tan(math.radians(MEDIAPIPE_VERTICAL_FOV_DEG) / 2.0)
    cam = intrinsics or Intrinsics(f_assumed, f_assumed, w / 2.0, h / 2.0, int(w), int(h))
    if intrinsics is not None:
        # focal length in pixels of the image at hand (camera_info may be of another resolution)
        f_real = 0.5 * (cam.fx * w / max(1, cam.width) + cam.fy * h / max(1, cam.height))
        depth *= f_real / f_assumed
    u, v = float(sellion_xy[0]) * cam.width, float(sellion_xy[1]) * cam.height
    p = np.array([(u - cam.cx) * depth / cam.fx, (v - cam.cy) * depth / cam.fy, depth])
    # REP face axes (x = canonical z, y = canonical x, z = canonical y) in MediaPipe's camera,
    # then into the optical frame (y and z flipped)
    k = 1.0 / scale
    rot = np.array([[m[2] * k, m[0] * k, m[1] * k],
                    [-m[6] * k, -m[4] * k, -m[5] * k],
                    [-m[10] * k, -m[8] * k, -m[9] * k]])
    return p, rot


def gaze_rotation(direction) -> np.ndarray:
    """The ``gaze_<id>`` frame's rotation in the optical frame: z along ``direction``
    (the gaze, a vector in the optical frame), x to the gazer's right, y down
    (an optical frame looking along the gaze; x = camera y x z, so a gaze straight into
    the camera has x towards the image's left, the person's right)."""
    zx, zy, zz = (float(v) for v in direction)
    n = math.sqrt(zx * zx + zy * zy + zz * zz)
    zx, zy, zz = zx / n, zy / n, zz / n
    xx, xz = zz, -zx  # (0, 1, 0) x z
    n = math.hypot(xx, xz)
    xx, xz = (xx / n, xz / n) if n > 1e-6 else (1.0, 0.0)  # looking straight up or down
    # y = z x x, with x = (xx, 0, xz)
    yx, yy, yz = zy * xz, zz * xx - zx * xz, -zy * xx
    return np.array([[xx, yx, zx], [0.0, yy, zy], [xz, yz, zz]])


# ------------------------------------------------------------------ ids


def _prefix(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(4))


class FaceIds:
    """REP-155 face ids from the landmark node's tracked ids.

    A face is confirmed (gets a REP id and appears in ``tracked``) once its landmark id
    was in ``confirm_frames`` consecutive images. It is out of ``tracked`` at the first
    image without it. It is *lost* (its REP id ends; the node destroys its publishers)
    once it has been missing for more than ``keep_s`` seconds; seen again sooner under
    the same landmark id (MediaPipe misses a face in an image now and then, and the
    landmark node's tracker keeps its id through such gaps), it keeps its REP id, so a
    consumer does not meet a new person at every missed image. A lost REP id is never
    given again: a face that comes back later is confirmed anew under a new id. Ids are
    ``<prefix><n>``: a prefix of four random letters per start (a valid identifier; two
    runs, or two restarts, never share ids) and a counter.

    Times (``now``) are seconds on any clock that does not go back; the node uses
    ``time.monotonic()``.

    Args:
        confirm_frames: consecutive images before a face is confirmed, >= 1.
        prefix: the id prefix (None: random letters).
        keep_s: how long a confirmed face may be missing before it is lost, >= 0
            (0: lost at the first image without it).
    """

    def __init__(self, confirm_frames: int = 3, prefix: str | None = None, seed: int | None = None,
                 keep_s: float = 0.3):
        if confirm_frames < 1:
            raise ValueError("confirm_frames must be >= 1")
        if not keep_s >= 0:
            raise ValueError("keep_s must be >= 0")
        self.confirm_frames = confirm_frames
        self.keep_s = float(keep_s)
        self.prefix = prefix if prefix is not None else _prefix(random.Random(seed))
        if not (self.prefix[:1].isalpha() and (self.prefix.isidentifier() or not self.prefix)):
            raise ValueError(f"id prefix {self.prefix!r} must start with a letter and be an identifier")
        self._count = 0
        self._seen: dict[str, int] = {}  # landmark id -> consecutive images, not yet confirmed
        self.rep: dict[str, str] = {}  # landmark id -> REP id of confirmed faces, missing ones not yet lost included
        self._missing: dict[str, float] = {}  # landmark id -> since when a confirmed face is missing

    def update(self, landmark_ids, now: float) -> tuple[list[str], list[str]]:
        """One image's landmark face ids at time ``now`` -> (new REP ids, lost REP ids).

        :attr:`rep` then maps the confirmed landmark ids, the image's and those missing
        for at most ``keep_s``, to their REP ids.
        """
        ids = list(dict.fromkeys(landmark_ids))
        present = set(ids)
        for k in self.rep:
            if k in present:
                self._missing.pop(k, None)
            else:
                self._missing.setdefault(k, now)
        lost = self.expire(now)
        self._seen = {k: n for k, n in self._seen.items() if k in present}
        new = []
        for k in ids:
            if k in self.rep:
                continue
            n = self._seen.get(k, 0) + 1
            if n >= self.confirm_frames:
                self._count += 1
                self.rep[k] = f"{self.prefix}{self._count}"
                new.append(self.rep[k])
                self._seen.pop(k, None)
            else:
                self._seen[k] = n
        return new, lost

    def expire(self, now: float) -> list[str]:
        """The REP ids of faces missing for more than ``keep_s`` at ``now``, now lost (also
        called between images, so that a face is lost when the images stop too)."""
        gone = [k for k, since in self._missing.items() if now - since > self.keep_s or self.keep_s == 0]
        for k in gone:
            del self._missing[k]
        return [self.rep.pop(k) for k in gone]

    def clear(self) -> list[str]:
        """End every id, confirmed or not; the REP ids lost."""
        lost = list(self.rep.values())
        self.rep, self._seen, self._missing = {}, {}, {}
        return lost

    @property
    def missing(self) -> list[str]:
        """REP ids of confirmed faces missing from the last image, not yet lost."""
        return [self.rep[k] for k in self._missing]

    def tracked(self, landmark_ids) -> list[str]:
        """The REP ids of the image's confirmed faces, in the image's order."""
        return [self.rep[k] for k in landmark_ids if k in self.rep]


# ------------------------------------------------------------------ engagement

#: ``hri_msgs/EngagementLevel`` constants.
UNKNOWN, DISENGAGED, ENGAGING, ENGAGED, DISENGAGING = 0, 1, 2, 3, 4


class Engagement:
    """``EngagementLevel`` of one person from this package's attention.

    The rule (docs/ros4hri.md): the person *signals* engagement in an image when their
    probability of looking at the camera is at least ``looking`` and they are within
    ``max_distance_m``. UNKNOWN until the first attention; DISENGAGED -> ENGAGING at
    the first signalling image; ENGAGING -> ENGAGED after ``engage_s`` of signalling
    without a gap; ENGAGING -> DISENGAGED as soon as the signal stops; ENGAGED ->
    DISENGAGING when it stops; DISENGAGING -> ENGAGED when it comes back,
    -> DISENGAGED after ``disengage_s`` without it.
    """

    def __init__(self, looking: float = 0.5, max_distance_m: float = 2.0, engage_s: float = 1.0,
                 disengage_s: float = 1.5):
        self.looking, self.max_distance_m = looking, max_distance_m
        self.engage_s, self.disengage_s = engage_s, disengage_s
        self.level = UNKNOWN
        self._since: float | None = None  # start of the current signal (or of its absence)

    def update(self, looking_probability: float, distance_m: float | None, t_s: float) -> int:
        """The level after one image at time ``t_s`` (seconds, never going back)."""
        near = distance_m is None or distance_m <= self.max_distance_m
        signal = bool(looking_probability >= self.looking and near)
        lvl = self.level
        if lvl in (UNKNOWN, DISENGAGED):
            if signal:
                lvl, self._since = ENGAGING, t_s
                if self.engage_s <= 0:
                    lvl = ENGAGED
            else:
                lvl = DISENGAGED
        elif lvl == ENGAGING:
            if not signal:
                lvl = DISENGAGED
            elif t_s - self._since >= self.engage_s:
                lvl = ENGAGED
        elif lvl == ENGAGED:
            if not signal:
                lvl, self._since = DISENGAGING, t_s
        elif lvl == DISENGAGING:
            if signal:
                lvl = ENGAGED
            elif t_s - self._since >= self.disengage_s:
                lvl = DISENGAGED
        self.level = lvl
        return lvl
