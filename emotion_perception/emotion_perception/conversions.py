"""The one place where core types meet ROS messages, both directions.

Every function here is pure (no node, no publishing). Converting a message into a
core type validates it and raises :class:`ConversionError` with a message a user can
act on; nodes catch that, log it once and drop the message.
"""

from __future__ import annotations

import array
import math

import numpy as np
from emotion_perception_msgs.msg import (Blendshapes, BlendshapesArray, Emotion, EmotionArray, FaceCrop, FaceCropArray,
                                         FaceMesh, FaceMeshArray)
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header

from .types import MAX_FACES_LIMIT, NUM_BLENDSHAPES, NUM_LANDMARKS, BoundingBox, EmotionEstimate, Face

#: Largest magnitude of a landmark coordinate, normalised image units. MediaPipe's x and
#: y leave [0, 1] only for a face cut by the border (by well under one image size) and
#: z is of the scale of x; 1e30 is a broken publisher, not a face.
LANDMARK_LIMIT = 10.0
#: Blendshape scores are probabilities in [0, 1]; this much outside is float rounding.
SCORE_TOLERANCE = 1e-3


class ConversionError(ValueError):
    """A message cannot be turned into a core type (wrong length, NaN, unknown value)."""


def _f32(values, n: int, what: str, limit: tuple[float, float] | None = None) -> np.ndarray:
    a = np.asarray(values, dtype=np.float32)
    if a.shape != (n,):
        raise ConversionError(f"{what} has {a.size} values, expected {n}")
    if not np.all(np.isfinite(a)):
        raise ConversionError(f"{what} holds NaN or infinite values")
    if limit is not None and (a.min() < limit[0] or a.max() > limit[1]):
        bad = a[(a < limit[0]) | (a > limit[1])]
        raise ConversionError(f"{what} holds {bad.size} values outside [{limit[0]}, {limit[1]}] "
                              f"(e.g. {float(bad[0]):g})")
    return a


def check_face_count(n: int, what: str) -> None:
    """Refuse an array message of more faces than a landmark node can find.

    Raises:
        ConversionError: ``n`` is above :data:`~emotion_perception.types.MAX_FACES_LIMIT`
            (the upper bound of the landmark node's ``max_faces``): 500 faces stalled the
            attention node for seconds.
    """
    if n > MAX_FACES_LIMIT:
        raise ConversionError(f"{what} holds {n} faces, more than the {MAX_FACES_LIMIT} a landmark node finds "
                              f"(max_faces is at most {MAX_FACES_LIMIT}): array refused")


def _f32_field(values) -> array.array:
    """A ``float32[]`` message field's value from an array, through its bytes: the
    message keeps an ``array.array('f')``, which ``.tolist()`` would have built from one
    Python float per element (FaceMesh x: 37 vs 2.5 us per axis)."""
    return array.array("f", np.ascontiguousarray(values, dtype=np.float32).tobytes())


# ---------------------------------------------------------------- faces

def face_to_mesh_msg(face: Face, header: Header) -> FaceMesh:
    msg = FaceMesh()
    msg.header = header
    msg.face_id = face.face_id
    xyz = np.asarray(face.landmarks, dtype=np.float32).T  # rows x, y, z
    msg.x = _f32_field(xyz[0])
    msg.y = _f32_field(xyz[1])
    msg.z = _f32_field(xyz[2])
    msg.image_width, msg.image_height = int(face.image_wh[0]), int(face.image_wh[1])
    msg.bounding_box = RegionOfInterest(
        x_offset=int(face.bbox.x), y_offset=int(face.bbox.y),
        width=int(face.bbox.width), height=int(face.bbox.height), do_rectify=False)
    msg.facial_transformation_matrix = np.asarray(face.transform, dtype=np.float32).reshape(16)
    msg.score = float(face.score)
    return msg


def face_to_blendshapes_msg(face: Face, header: Header) -> Blendshapes:
    msg = Blendshapes()
    msg.header = header
    msg.face_id = face.face_id
    msg.scores = _f32_field(face.blendshapes)
    return msg


def faces_to_msgs(faces: list[Face], header: Header, image_seq: int = 0,
                  stream_time_ns: int = 0) -> tuple[FaceMeshArray, BlendshapesArray]:
    """The two arrays published for one image (empty lists when no face), with the
    image's number and stream time (see ``FaceMeshArray.msg``)."""
    meshes = FaceMeshArray(header=header, image_seq=int(image_seq), stream_time_ns=int(stream_time_ns),
                           faces=[face_to_mesh_msg(f, header) for f in faces])
    shapes = BlendshapesArray(header=header, image_seq=int(image_seq), stream_time_ns=int(stream_time_ns),
                              faces=[face_to_blendshapes_msg(f, header) for f in faces])
    return meshes, shapes


def image_of(msg) -> tuple[int, int]:
    """``(image_seq, stream_time_ns)`` of one of the package's array messages: which
    image it is about, to pass on to the arrays made from it."""
    return int(msg.image_seq), int(msg.stream_time_ns)


def crops_to_msg(crops, header: Header, image_seq: int = 0, stream_time_ns: int = 0) -> FaceCropArray:
    """A FaceCropArray from ``(face_id, crop, geometry, margin)`` tuples: ``crop`` a square
    (S, S) uint8 grey array, ``geometry`` a :class:`~emotion_perception.face_crop.CropGeometry`;
    with the image's number and stream time (see ``FaceMeshArray.msg``)."""
    faces = []
    for face_id, crop, geo, margin in crops:
        c = np.ascontiguousarray(crop, dtype=np.uint8)
        img = Image(header=header, height=c.shape[0], width=c.shape[1], encoding="mono8", is_bigendian=0,
                    step=c.shape[1], data=c.tobytes())
        faces.append(FaceCrop(face_id=face_id, image=img, center_x=float(geo.centre[0]),
                              center_y=float(geo.centre[1]), side=float(geo.side), angle=float(geo.angle),
                              margin=float(margin)))
    return FaceCropArray(header=header, image_seq=int(image_seq), stream_time_ns=int(stream_time_ns), faces=faces)


def crop_msg_pixels(msg: FaceCrop) -> np.ndarray:
    """(S, S) uint8 grey pixels of a FaceCrop, validated (no copy of the message's buffer).

    Raises:
        ConversionError: not mono8, not square, empty, or data disagreeing with the size.
    """
    img = msg.image
    if img.encoding != "mono8":
        raise ConversionError(f"FaceCrop {msg.face_id!r} has encoding {img.encoding!r}, expected mono8")
    if img.width == 0 or img.width != img.height:
        raise ConversionError(f"FaceCrop {msg.face_id!r} is {img.width}x{img.height}, expected a non-empty square")
    if img.step != img.width or len(img.data) != img.width * img.height:
        raise ConversionError(f"FaceCrop {msg.face_id!r}: {len(img.data)} bytes with step {img.step} do not make "
                              f"a {img.width}x{img.height} mono8 image")
    return np.frombuffer(img.data, dtype=np.uint8).reshape(img.height, img.width)


def mesh_msg_landmarks(msg: FaceMesh) -> np.ndarray:
    """(478, 3) float32 landmarks of a FaceMesh, validated (finite, within
    :data:`LANDMARK_LIMIT`)."""
    xyz = (msg.x, msg.y, msg.z)
    if all(len(v) == NUM_LANDMARKS for v in xyz):
        # the usual case in one pass: copied through the buffers of the message's arrays,
        # checked once; called for every face by four nodes at the camera rate
        lm = np.empty((NUM_LANDMARKS, 3), dtype=np.float32)
        for i, v in enumerate(xyz):
            lm[:, i] = v
        if np.isfinite(lm).all() and np.abs(lm).max() <= LANDMARK_LIMIT:
            return lm
    # otherwise axis by axis, to say which is wrong and how
    lim = (-LANDMARK_LIMIT, LANDMARK_LIMIT)
    return np.stack([_f32(msg.x, NUM_LANDMARKS, f"FaceMesh {msg.face_id!r} x", lim),
                     _f32(msg.y, NUM_LANDMARKS, f"FaceMesh {msg.face_id!r} y", lim),
                     _f32(msg.z, NUM_LANDMARKS, f"FaceMesh {msg.face_id!r} z", lim)], axis=1)


def mesh_msg_to_face(msg: FaceMesh, blendshapes: Blendshapes | None = None) -> Face:
    """A core Face from a FaceMesh (and optionally its Blendshapes).

    Raises:
        ConversionError: wrong-length or non-finite arrays, zero image size, or a
            Blendshapes message of another face.
    """
    if not msg.face_id:
        raise ConversionError("FaceMesh has an empty face_id")
    if msg.image_width == 0 or msg.image_height == 0:
        raise ConversionError(f"FaceMesh {msg.face_id!r} has image size {msg.image_width}x{msg.image_height}")
    landmarks = mesh_msg_landmarks(msg)
    transform = _f32(msg.facial_transformation_matrix, 16, f"FaceMesh {msg.face_id!r} transform").reshape(4, 4)
    if blendshapes is not None:
        if blendshapes.face_id != msg.face_id:
            raise ConversionError(f"Blendshapes of {blendshapes.face_id!r} paired with FaceMesh of {msg.face_id!r}")
        scores = blendshapes_msg_scores(blendshapes)
    else:
        scores = np.full(NUM_BLENDSHAPES, np.nan, dtype=np.float32)
    bb = msg.bounding_box
    return Face(face_id=msg.face_id, landmarks=landmarks, blendshapes=scores, transform=transform,
                bbox=BoundingBox(bb.x_offset, bb.y_offset, bb.width, bb.height),
                score=float(msg.score), image_wh=(int(msg.image_width), int(msg.image_height)))


def blendshapes_msg_scores(msg: Blendshapes) -> np.ndarray:
    """(52,) float32 scores of a Blendshapes message, validated (finite, in [0, 1]
    within :data:`SCORE_TOLERANCE`)."""
    if not msg.face_id:
        raise ConversionError("Blendshapes has an empty face_id")
    return _f32(msg.scores, NUM_BLENDSHAPES, f"Blendshapes {msg.face_id!r} scores",
                (-SCORE_TOLERANCE, 1.0 + SCORE_TOLERANCE))


# ---------------------------------------------------------------- emotions

def estimate_to_emotion_msg(est: EmotionEstimate, header: Header) -> Emotion:
    probs = np.asarray(est.probabilities, dtype=np.float32)
    if probs.shape != (len(est.class_names),):
        raise ConversionError(f"{est.model}: {probs.size} probabilities for {len(est.class_names)} classes")
    msg = Emotion()
    msg.header = header
    msg.face_id = est.face_id
    msg.class_names = list(est.class_names)
    msg.probabilities = _f32_field(probs)
    msg.label = est.label
    msg.confidence = est.confidence
    msg.valence = float(est.valence)
    msg.arousal = float(est.arousal)
    msg.model = est.model
    msg.frames_used = int(est.frames_used)
    msg.confident = bool(est.confident)
    return msg


def estimates_to_emotion_array(estimates: list[EmotionEstimate], header: Header, image_seq: int = 0,
                               stream_time_ns: int = 0) -> EmotionArray:
    return EmotionArray(header=header, image_seq=int(image_seq), stream_time_ns=int(stream_time_ns),
                        emotions=[estimate_to_emotion_msg(e, header) for e in estimates])


def emotion_msg_to_estimate(msg: Emotion) -> EmotionEstimate:
    """A core EmotionEstimate from an Emotion message, validated.

    Raises:
        ConversionError: empty face id or model, class and probability lists of
            different lengths, non-finite or negative probabilities.
    """
    if not msg.face_id:
        raise ConversionError("Emotion has an empty face_id")
    n = len(msg.class_names)
    if n == 0:
        raise ConversionError(f"Emotion of {msg.face_id!r} from {msg.model!r} has no classes")
    probs = _f32(msg.probabilities, n, f"Emotion of {msg.face_id!r} from {msg.model!r} probabilities")
    if np.any(probs < 0) or not math.isclose(float(probs.sum()), 1.0, abs_tol=1e-3):
        raise ConversionError(f"Emotion of {msg.face_id!r} from {msg.model!r}: probabilities are not a distribution")
    return EmotionEstimate(face_id=msg.face_id, class_names=tuple(msg.class_names), probabilities=probs,
                           model=msg.model, frames_used=int(msg.frames_used), confident=bool(msg.confident),
                           valence=float(msg.valence), arousal=float(msg.arousal))


# ---------------------------------------------------------------- images

def image_msg_to_rgb(msg) -> "np.ndarray":
    """(h, w, 3) uint8 RGB pixels of a ``sensor_msgs/Image``.

    Accepts rgb8, bgr8, rgba8, bgra8 and mono8 (see :mod:`emotion_perception.imaging`).

    Raises:
        emotion_perception.imaging.ImageError: unsupported encoding, zero size,
            ``step``/``data`` disagreeing with the size, or an image too large.
    """
    from .imaging import raw_to_rgb

    return raw_to_rgb(msg.encoding, msg.width, msg.height, msg.step, msg.data)


def compressed_msg_to_rgb(msg, on_warning=None) -> "np.ndarray":
    """(h, w, 3) uint8 RGB pixels of a JPEG or PNG ``sensor_msgs/CompressedImage``;
    ``on_warning`` gets the decoder's warnings (see :func:`.imaging.decode_compressed`).

    Raises:
        emotion_perception.imaging.ImageError: empty, truncated, corrupt or non-JPEG/PNG
            data, a depth format, or an image too large.
    """
    from .imaging import decode_compressed

    return decode_compressed(msg.data, msg.format, on_warning)


def rgb_to_image_msg(rgb, header: Header, encoding: str = "rgb8"):
    """A ``sensor_msgs/Image`` holding ``rgb`` in ``encoding`` (for publishers, tests, tools).

    Raises:
        ValueError: ``rgb`` is not (h, w, 3) uint8, or the encoding is unsupported.
    """
    from sensor_msgs.msg import Image

    from .imaging import rgb_to_raw

    width, height, step, data = rgb_to_raw(rgb, encoding)
    return Image(header=header, height=height, width=width, encoding=encoding.lower(), is_bigendian=0,
                 step=step, data=data)


def rgb_to_compressed_msg(rgb, header: Header, fmt: str = "jpeg", jpeg_quality: int = 90):
    """A ``sensor_msgs/CompressedImage`` of ``rgb`` as JPEG or PNG.

    The ``format`` field follows image_transport's convention
    (``"rgb8; jpeg compressed bgr8"``).

    Raises:
        ValueError: ``rgb`` is not (h, w, 3) uint8, or ``fmt`` is not jpeg/png.
    """
    from sensor_msgs.msg import CompressedImage

    from .imaging import encode_compressed

    data = encode_compressed(rgb, fmt, jpeg_quality)
    kind = "png" if fmt.lower() == "png" else "jpeg"
    return CompressedImage(header=header, format=f"rgb8; {kind} compressed bgr8", data=data)


# ---------------------------------------------------------------- classifier inputs (sequence models)

def mesh_msg_to_frame_input(msg: FaceMesh, stamp: int = 0):
    """A classifier FrameInput (landmarks, image size, stamp) from a FaceMesh.

    Raises:
        ConversionError: empty face id, zero image size, wrong-length or non-finite arrays.
    """
    from .classifiers.base import FrameInput

    if not msg.face_id:
        raise ConversionError("FaceMesh has an empty face_id")
    if msg.image_width == 0 or msg.image_height == 0:
        raise ConversionError(f"FaceMesh {msg.face_id!r} has image size {msg.image_width}x{msg.image_height}")
    return FrameInput(landmarks=mesh_msg_landmarks(msg), image_wh=(int(msg.image_width), int(msg.image_height)),
                      stamp_ns=int(stamp))


def blendshapes_msg_to_frame_input(msg: Blendshapes, stamp: int = 0):
    """A classifier FrameInput (blendshapes, stamp) from a Blendshapes message.

    Raises:
        ConversionError: empty face id, wrong-length or non-finite scores.
    """
    from .classifiers.base import FrameInput

    return FrameInput(blendshapes=blendshapes_msg_scores(msg), stamp_ns=int(stamp))


# ---------------------------------------------------------------- attention

def attention_estimate_to_msg(est, header: Header):
    """An ``Attention`` message from an :class:`~emotion_perception.attention.AttentionEstimate`.

    Raises:
        ConversionError: wrong-length eye probabilities or a gaze direction that is
            not a finite 3-vector.
    """
    from emotion_perception_msgs.msg import Attention
    from geometry_msgs.msg import Vector3

    g = _f32(est.gaze_direction, 3, f"Attention of {est.face_id!r} gaze_direction")
    msg = Attention()
    msg.header = header
    msg.face_id = est.face_id
    msg.gaze_direction = Vector3(x=float(g[0]), y=float(g[1]), z=float(g[2]))
    msg.gaze_point_x, msg.gaze_point_y = float(est.gaze_point[0]), float(est.gaze_point[1])
    msg.gaze_calibrated = bool(est.gaze_calibrated)
    msg.gaze_yaw, msg.gaze_pitch = float(est.gaze_yaw), float(est.gaze_pitch)
    msg.head_yaw, msg.head_pitch, msg.head_roll = float(est.head_yaw), float(est.head_pitch), float(est.head_roll)
    msg.left_eye_state, msg.right_eye_state = int(est.left_eye), int(est.right_eye)
    msg.left_eye_probabilities = _f32(est.left_eye_probabilities, 4, f"Attention of {est.face_id!r} left eye").tolist()
    msg.right_eye_probabilities = _f32(est.right_eye_probabilities, 4, f"Attention of {est.face_id!r} right eye").tolist()
    msg.mouth_state = int(est.mouth)
    msg.mouth_open_probability = float(est.mouth_open_probability)
    msg.blinking = bool(est.blinking)
    msg.blink_rate = float(est.blink_rate)
    msg.perclos = float(est.perclos)
    msg.drowsy = bool(est.drowsy)
    msg.talking = bool(est.talking)
    msg.looking_at_camera = float(est.looking_at_camera)
    msg.attentive = bool(est.attentive)
    return msg


def attention_estimates_to_array(estimates, header: Header, image_seq: int = 0, stream_time_ns: int = 0):
    """The ``AttentionArray`` published for one image (empty ``faces`` when no face)."""
    from emotion_perception_msgs.msg import AttentionArray

    return AttentionArray(header=header, image_seq=int(image_seq), stream_time_ns=int(stream_time_ns),
                          faces=[attention_estimate_to_msg(e, header) for e in estimates])


def attention_msg_to_estimate(msg):
    """An :class:`~emotion_perception.attention.AttentionEstimate` from an ``Attention`` message.

    ``looking`` (the hysteresis state, not in the message) is taken as
    ``looking_at_camera > 0.5``; the diagnostic aspect ratios are NaN.

    Raises:
        ConversionError: empty face id, unknown eye or mouth state, wrong-length or
            non-finite probabilities, probabilities outside [0, 1].
    """
    from .attention import AttentionEstimate, EyeState, MouthState

    if not msg.face_id:
        raise ConversionError("Attention has an empty face_id")
    what = f"Attention of {msg.face_id!r}"
    try:
        left, right = EyeState(msg.left_eye_state), EyeState(msg.right_eye_state)
        mouth = MouthState(msg.mouth_state)
    except ValueError as e:
        raise ConversionError(f"{what}: {e}") from None
    pl = _f32(msg.left_eye_probabilities, 4, f"{what} left_eye_probabilities")
    pr = _f32(msg.right_eye_probabilities, 4, f"{what} right_eye_probabilities")
    g = _f32([msg.gaze_direction.x, msg.gaze_direction.y, msg.gaze_direction.z], 3, f"{what} gaze_direction")
    for name in ("looking_at_camera", "mouth_open_probability", "perclos"):
        v = float(getattr(msg, name))
        if not 0.0 <= v <= 1.0:
            raise ConversionError(f"{what}: {name}={v} is outside [0, 1]")
    if np.any(pl < 0) or np.any(pl > 1) or np.any(pr < 0) or np.any(pr > 1):
        raise ConversionError(f"{what}: eye probabilities outside [0, 1]")
    return AttentionEstimate(
        face_id=msg.face_id, gaze_direction=g, gaze_point=(float(msg.gaze_point_x), float(msg.gaze_point_y)),
        gaze_calibrated=bool(msg.gaze_calibrated), gaze_yaw=float(msg.gaze_yaw), gaze_pitch=float(msg.gaze_pitch),
        head_yaw=float(msg.head_yaw), head_pitch=float(msg.head_pitch), head_roll=float(msg.head_roll),
        left_eye=left, right_eye=right, left_eye_probabilities=pl, right_eye_probabilities=pr, mouth=mouth,
        mouth_open_probability=float(msg.mouth_open_probability), blinking=bool(msg.blinking),
        blink_rate=float(msg.blink_rate), perclos=float(msg.perclos), drowsy=bool(msg.drowsy),
        talking=bool(msg.talking), looking_at_camera=float(msg.looking_at_camera),
        looking=float(msg.looking_at_camera) > 0.5, attentive=bool(msg.attentive))


# ------------------------------------------------------------------ ROS4HRI (REP-155)
# hri_msgs and tf2_msgs are imported here, on first use, so that this module (and every
# node but hri_node) works where they are not installed.


def ids_list_msg(ids, header: Header):
    """``hri_msgs/IdsList`` (the image's header)."""
    from hri_msgs.msg import IdsList

    return IdsList(header=header, ids=list(ids))


def roi_msg(roi, confidence: float, header: Header):
    """``hri_msgs/NormalizedRegionOfInterest2D`` from normalised (xmin, ymin, xmax, ymax).

    Raises:
        ConversionError: a bound outside [0, 1] or NaN, or xmin > xmax, ymin > ymax.
    """
    from hri_msgs.msg import NormalizedRegionOfInterest2D

    x0, y0, x1, y1 = (float(v) for v in roi)
    if not all(0.0 <= v <= 1.0 for v in (x0, y0, x1, y1)) or x0 > x1 or y0 > y1:
        raise ConversionError(f"ROI {roi} is not a normalised box inside [0, 1]")
    return NormalizedRegionOfInterest2D(header=header, xmin=x0, ymin=y0, xmax=x1, ymax=y1,
                                        c=min(1.0, max(0.0, float(confidence))))


def landmarks_msg(points, confidence: float, header: Header, image_wh):
    """``hri_msgs/FacialLandmarks`` from (70, 2) normalised points (``hri.landmarks_70``)."""
    from hri_msgs.msg import FacialLandmarks, NormalizedPointOfInterest2D

    c = min(1.0, max(0.0, float(confidence)))
    pts = np.asarray(points, dtype=float)
    if pts.shape != (70, 2):
        raise ConversionError(f"FacialLandmarks needs 70 points, got shape {pts.shape}")
    return FacialLandmarks(header=header, width=int(image_wh[0]), height=int(image_wh[1]),
                           landmarks=[NormalizedPointOfInterest2D(x=x, y=y, c=c) for x, y in pts.tolist()])


def expression_msg(fields, header: Header):
    """``hri_msgs/Expression`` from :class:`emotion_perception.hri.ExpressionFields`.

    Raises:
        ConversionError: an expression string that is not one of the REP's constants.
    """
    from hri_msgs.msg import Expression

    from .hri import REP_EXPRESSIONS

    if fields.expression not in REP_EXPRESSIONS:
        raise ConversionError(f"expression {fields.expression!r} is not a REP-155 constant")
    return Expression(header=header, expression=fields.expression, valence=fields.valence,
                      arousal=fields.arousal, confidence=fields.confidence)


def facs_msg(intensity, confidence, header: Header):
    """``hri_msgs/FacialActionUnits`` from 99 intensities and confidences (``hri.facs_of``)."""
    from hri_msgs.msg import FacialActionUnits

    msg = FacialActionUnits(header=header)
    msg.intensity = np.asarray(intensity, dtype=np.float32)
    msg.confidence = np.asarray(confidence, dtype=np.float32)
    return msg


def transform_msg(header: Header, parent: str, child: str, translation, rotation):
    """``geometry_msgs/TransformStamped``: ``child`` in ``parent``, translation in metres,
    ``rotation`` a 3x3 matrix."""
    from geometry_msgs.msg import TransformStamped

    from .hri import quaternion_from_matrix

    t = TransformStamped()
    t.header.stamp = header.stamp
    t.header.frame_id = parent
    t.child_frame_id = child
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (float(v) for v in translation)
    q = quaternion_from_matrix(rotation)
    t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w = q
    return t


def tf_message(transforms):
    """``tf2_msgs/TFMessage`` of TransformStamped messages."""
    from tf2_msgs.msg import TFMessage

    return TFMessage(transforms=list(transforms))


def bgr_image_msg(bgr, header: Header) -> Image:
    """``sensor_msgs/Image``, encoding bgr8, from an (h, w, 3) uint8 BGR array."""
    bgr = np.ascontiguousarray(bgr, dtype=np.uint8)
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ConversionError(f"a bgr8 image needs shape (h, w, 3), got {bgr.shape}")
    h, w = bgr.shape[:2]
    msg = Image(header=header, height=h, width=w, encoding="bgr8", is_bigendian=0, step=w * 3)
    msg.data = bgr.tobytes()
    return msg


def engagement_msg(level: int, header: Header):
    """``hri_msgs/EngagementLevel``."""
    from hri_msgs.msg import EngagementLevel

    return EngagementLevel(header=header, level=int(level))


def gaze_msg(sender: str, receiver: str, header: Header):
    """``hri_msgs/Gaze`` (receiver "" = the robot)."""
    from hri_msgs.msg import Gaze

    return Gaze(header=header, sender=sender, receiver=receiver)
