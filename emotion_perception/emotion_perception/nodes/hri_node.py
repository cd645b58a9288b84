"""``hri_node``: this package's results as ROS4HRI (REP-155) faces, expressions, TF and persons.

Reads ``faces/mesh``, ``faces/blendshapes``, ``attention`` and ``emotion`` (and, only
while someone subscribes to a face's ``cropped`` or ``aligned``, the camera ``image``;
``camera_info`` when ``camera_info_topic`` is set) and publishes:

* ``/humans/faces/tracked`` (``hri_msgs/IdsList``, the image's header) for every
  ``faces/mesh``, empty lists included;
* per confirmed face, under ``/humans/faces/<id>/`` (publishers created when the face
  is confirmed, destroyed when it has been missing for ``lost_after_s``; it is out of
  ``tracked`` from the first image without it): ``roi``, ``landmarks``,
  ``facs``, ``expression`` (unless ``publish_expressions`` is false), ``cropped`` and
  ``aligned`` (bgr8 128x128, computed only while subscribed);
* ``/tf``: ``face_<id>`` and ``gaze_<id>`` in the image's frame;
* with ``publish_persons``: anonymous persons ``/humans/persons/tracked``,
  ``/humans/persons/<pid>/face_id`` and ``anonymous`` (latched) and
  ``engagement_status``, and ``/humans/interactions/gazing``.

The mappings and rules live in :mod:`emotion_perception.hri`; docs/ros4hri.md
describes them. Face topics are reliable and volatile, like the reference face
detector's (depth 10 where it has 1: see :data:`FACE_QOS`); latched person topics
transient-local. Every name is relative
(``humans/...``, ``tf``): ``/humans/...`` and ``/tf`` in the root namespace, as REP-155
and tf2 expect, and kept inside the namespace of a namespaced pipeline.
"""

from __future__ import annotations

import collections
import functools
import math
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Bool, String

from .. import hri
from ..conversions import (ConversionError, bgr_image_msg, blendshapes_msg_scores, compressed_msg_to_rgb,
                           engagement_msg, expression_msg, facs_msg, gaze_msg, ids_list_msg, image_msg_to_rgb,
                           landmarks_msg, mesh_msg_landmarks, roi_msg, tf_message, transform_msg)
from ..imaging import ImageError
from .bad_input import OnceLog, refuse_oversized
from .diagnostics import Diagnostics
from .lazy import LazyInputs
from .parameters import Param, ParameterError, declare_parameters
from .process import run_node
from .qos import LATCHED_QOS, RESULT_QOS, SENSOR_QOS
from .stamps import stamp_ns
from emotion_perception_msgs.msg import AttentionArray, BlendshapesArray, EmotionArray, FaceMeshArray

try:
    from hri_msgs.msg import EngagementLevel, Expression, FacialActionUnits, FacialLandmarks, Gaze, IdsList
    from hri_msgs.msg import NormalizedRegionOfInterest2D
    from tf2_msgs.msg import TFMessage
except ImportError as _e:  # the launch and the runner leave the node out; say why if started by hand
    raise ImportError(f"hri_node needs hri_msgs and tf2_msgs ({_e}); `make setup` builds them from "
                      "../shared/ros2-hri-kit, a robot installs ros-$ROS_DISTRO-hri-msgs") from None

#: Face topics: reliable and volatile, as the reference face detector's (what decides
#: matching with libhri's system-default subscriptions). Its depth is 1; here 10, a
#: precaution: a reliable KEEP_LAST writer replaces a message that a slow reader has not
#: yet acknowledged once its history is full. (The losses the 30 Hz test saw were on the
#: reader's side, libhri-like readers keeping one message; the writer's depth made no
#: difference there.)
FACE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                      history=HistoryPolicy.KEEP_LAST)
#: tf2_ros' TransformBroadcaster's QoS.
TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
#: How often publishers' subscriber counts are checked (crops, the camera subscription), s.
HOUSEKEEPING_S = 0.25
#: Camera images kept to pair with a later faces/mesh of the same stamp.
IMAGE_BUFFER = 8
#: Frame used when the image's header has none.
FALLBACK_FRAME = "camera"

PARAMS = [
    Param("publish_expressions", True, "publish /humans/faces/<id>/expression (false for a robot that keeps "
          "another expression recogniser: two publishers on one expression topic conflict)", read_only=True),
    Param("publish_persons", False, "publish an anonymous person per face (/humans/persons/...), with "
          "engagement_status, and /humans/interactions/gazing; false where a person manager runs", read_only=True),
    Param("confirm_frames", 3, "consecutive images a new face must appear in before it gets a REP-155 id "
          "and publishers", 1, 100),
    Param("lost_after_s", 0.3, "a confirmed face missing from the images for longer than this (s) is lost: its "
          "publishers destroyed, its id never given again; one seen again sooner keeps its id (MediaPipe misses "
          "a face in an image now and then). Out of tracked from the first image without it either way. At most "
          "0.75: publishers gone within 1 s", 0.0, 0.75),
    Param("id_prefix", "", "prefix of the face ids (a letter first); empty = four random letters per start, "
          "so ids are never reused across restarts", read_only=True),
    Param("camera_info_topic", "", "sensor_msgs/CameraInfo of the camera: the face frames' metric translation "
          "from its intrinsics; empty = from MediaPipe's facial transformation matrix (assumes a 63 degree "
          "vertical field of view)", read_only=True),
    Param("camera_info_timeout_s", 5.0, "without camera_info for this long (s) the node says so once and "
          "uses MediaPipe's matrix", 0.1, 600.0),
    Param("use_compressed", False, "read image/compressed for the crops instead of image", read_only=True),
    Param("looking_threshold", 0.5, "Attention.looking_at_camera at or above which a person looks at the "
          "robot (gazing, engagement), [0, 1]", 0.0, 1.0),
    Param("engagement_distance_m", 2.0, "farthest face (m, face frame origin) that can be engaged", 0.1, 20.0),
    Param("engage_s", 1.0, "seconds of looking before ENGAGING turns ENGAGED (engagement parameters apply to "
          "faces confirmed after a change)", 0.0, 60.0),
    Param("disengage_s", 1.5, "seconds without looking before DISENGAGING turns DISENGAGED", 0.0, 60.0),
    Param("warn_processing_ms", 5.0, "/diagnostics turns WARN when the 95th percentile processing time of "
          "one faces/mesh exceeds this, ms", 0.1, 10_000.0, read_only=True),
]


class _Face:
    """One confirmed face: its publishers and what later messages need."""

    __slots__ = ("rep", "landmark_id", "pubs", "mesh", "key", "wh", "translation", "score", "person",
                 "person_pubs", "engagement")

    def __init__(self, rep: str, landmark_id: str):
        self.rep, self.landmark_id = rep, landmark_id
        self.pubs: dict = {}
        self.mesh = None  # the face's FaceMesh of the last image
        self.key = None
        self.wh = (0, 0)
        self.translation = None
        self.score = 1.0
        self.person = f"anonymous_person_{rep}"
        self.person_pubs: dict = {}
        self.engagement: hri.Engagement | None = None


class HriNode(Node):
    """REP-155 producer over the pipeline's topics.

    Raises:
        emotion_perception.nodes.parameters.ParameterError: a parameter out of range or an
            id prefix that is not an identifier.
    """

    def __init__(self, **kwargs):
        super().__init__("hri_node", **kwargs)
        try:
            self._params = p = declare_parameters(self, PARAMS, on_change=self._on_params)
            try:
                self._ids = hri.FaceIds(p["confirm_frames"], prefix=p["id_prefix"] or None, keep_s=p["lost_after_s"])
            except ValueError as e:
                raise ParameterError(f"hri_node: {e}") from None
        except BaseException:
            super().destroy_node()
            raise
        self._once = OnceLog(self)
        self._faces: dict[str, _Face] = {}
        self._images: collections.OrderedDict = collections.OrderedDict()  # stamp ns -> (rgb, encoding)
        self._image_sub = None
        self._intrinsics: hri.Intrinsics | None = None
        self._started = time.monotonic()
        self._tracked_pub = self.create_publisher(IdsList, "humans/faces/tracked", FACE_QOS)
        self._tf_pub = self.create_publisher(TFMessage, "tf", TF_QOS)
        self._persons = p["publish_persons"]
        if self._persons:
            self._persons_pub = self.create_publisher(IdsList, "humans/persons/tracked", FACE_QOS)
            self._gazing_pub = self.create_publisher(Gaze, "humans/interactions/gazing", FACE_QOS)
        self._diag = Diagnostics(self, warn_processing_ms=p["warn_processing_ms"], extra=self._extra)
        self._expressions = p["publish_expressions"]
        specs = {"faces/mesh": (FaceMeshArray, self._on_mesh), "faces/blendshapes": (BlendshapesArray, self._on_shapes),
                 "attention": (AttentionArray, self._on_attention)}
        if self._expressions:
            specs["emotion"] = (EmotionArray, self._on_emotion)
        # Nothing runs for nobody: the inputs (and through them the attention and fusion
        # nodes upstream) are subscribed only while someone reads the face or person
        # lists, as every libhri/pyhri listener does. /tf is no sign of interest: on a
        # robot it always has subscribers.
        outputs = [self._tracked_pub] + ([self._persons_pub] if self._persons else [])
        self.inputs = LazyInputs(self, outputs, specs, diagnostics=self._diag, on_idle=self._forget_faces)
        # each input's resolved name, for the rare log line that names it (resolving costs per message)
        self._named = {t: functools.partial(self.inputs.topic_name, t)
                       for t in ('faces/mesh', 'faces/blendshapes', 'emotion', 'attention')}
        self._info_sub = None
        if p["camera_info_topic"]:
            self._info_sub = self.create_subscription(CameraInfo, p["camera_info_topic"], self._on_info, SENSOR_QOS)
        self._timer = self.create_timer(HOUSEKEEPING_S, self._housekeeping)
        self.get_logger().info(
            f"REP-155 faces from {self.inputs.topic_name('faces/mesh')}, expressions "
            f"{'from ' + self.inputs.topic_name('emotion') if self._expressions else 'off'}, persons "
            f"{'on' if self._persons else 'off'}, face translation from "
            f"{p['camera_info_topic'] or 'MediaPipe matrix (no camera_info_topic)'}; ids {self._ids.prefix}<n>")

    def _on_params(self, updates: dict) -> None:
        """A change that passed every check: confirmation at once, engagement for faces confirmed from now on."""
        self._ids.confirm_frames = self._params["confirm_frames"]
        self._ids.keep_s = self._params["lost_after_s"]
        self.get_logger().info(f"parameters changed: {updates}")

    def _extra(self) -> dict:
        return {"tracked_faces": len(self._faces), "missing_faces": len(self._ids.missing),
                "camera_subscribed": self._image_sub is not None}

    # ------------------------------------------------------------ faces

    def _add_face(self, rep: str, landmark_id: str) -> _Face:
        f = _Face(rep, landmark_id)
        base = f"humans/faces/{rep}/"
        f.pubs["roi"] = self.create_publisher(NormalizedRegionOfInterest2D, base + "roi", FACE_QOS)
        f.pubs["landmarks"] = self.create_publisher(FacialLandmarks, base + "landmarks", FACE_QOS)
        f.pubs["facs"] = self.create_publisher(FacialActionUnits, base + "facs", FACE_QOS)
        f.pubs["cropped"] = self.create_publisher(Image, base + "cropped", FACE_QOS)
        f.pubs["aligned"] = self.create_publisher(Image, base + "aligned", FACE_QOS)
        if self._expressions:
            f.pubs["expression"] = self.create_publisher(Expression, base + "expression", FACE_QOS)
        if self._persons:
            pb = f"humans/persons/{f.person}/"
            f.person_pubs["face_id"] = self.create_publisher(String, pb + "face_id", LATCHED_QOS)
            f.person_pubs["anonymous"] = self.create_publisher(Bool, pb + "anonymous", LATCHED_QOS)
            f.person_pubs["engagement_status"] = self.create_publisher(EngagementLevel, pb + "engagement_status",
                                                                       FACE_QOS)
            f.person_pubs["face_id"].publish(String(data=rep))
            f.person_pubs["anonymous"].publish(Bool(data=True))
            p = self._params
            f.engagement = hri.Engagement(p["looking_threshold"], p["engagement_distance_m"], p["engage_s"],
                                          p["disengage_s"])
        self._faces[rep] = f
        return f

    def _forget_faces(self) -> None:
        """Gone idle: the images in between are not seen, so every face is lost (its
        publishers destroyed); a face seen after waking gets a new id."""
        self._ids.clear()  # every id, confirmed or not, ends here
        for rep in list(self._faces):
            self._drop_face(rep)

    def _drop_face(self, rep: str) -> None:
        f = self._faces.pop(rep, None)
        if f is None:
            return
        for pub in (*f.pubs.values(), *f.person_pubs.values()):
            self.destroy_publisher(pub)

    def _frame(self, header) -> str:
        if header.frame_id:
            return header.frame_id
        self._once.warn("no_frame", f"images have an empty header.frame_id: face and gaze frames are published "
                        f"in {FALLBACK_FRAME!r} (set the camera driver's frame_id)")
        return FALLBACK_FRAME

    def _on_mesh(self, msg: FaceMeshArray) -> None:
        if refuse_oversized(msg.faces, self._named['faces/mesh'], self._once, self._diag):
            return
        t0 = time.perf_counter()
        landmark_ids = [m.face_id for m in msg.faces]
        new, lost = self._ids.update(landmark_ids, time.monotonic())
        for rep in lost:
            self._drop_face(rep)
        by_rep = {r: k for k, r in self._ids.rep.items()}
        for rep in new:
            self._add_face(rep, by_rep[rep])
        tracked = self._ids.tracked(landmark_ids)
        header = msg.header
        self._tracked_pub.publish(ids_list_msg(tracked, header))
        if self._persons:
            self._persons_pub.publish(ids_list_msg([self._faces[r].person for r in tracked], header))
        key = stamp_ns(header)
        image = self._images.get(key) if self._image_sub is not None else None
        frame = self._frame(header) if tracked else ""
        transforms = []
        for m in msg.faces:
            rep = self._ids.rep.get(m.face_id)
            if rep is None:
                continue
            f = self._faces[rep]
            try:
                wh = (int(m.image_width), int(m.image_height))
                box = m.bounding_box
                roi = hri.roi_from_box(box.x_offset, box.y_offset, box.width, box.height, wh)
                f.pubs["roi"].publish(roi_msg(roi, m.score, header))
                f.mesh, f.key, f.wh, f.score = m, key, wh, float(m.score)
                if f.pubs["landmarks"].get_subscription_count():
                    f.pubs["landmarks"].publish(landmarks_msg(hri.landmarks_70(mesh_msg_landmarks(m)), m.score,
                                                              header, wh))
                if m.facial_transformation_matrix[15] != 0.0:  # 1 when MediaPipe gave a matrix
                    s = hri.SELLION_MP
                    f.translation, rot = hri.face_pose(m.facial_transformation_matrix, (m.x[s], m.y[s]), wh,
                                                       self._intrinsics)
                    transforms.append(transform_msg(header, frame, f"face_{rep}", f.translation, rot))
                if image is not None:
                    self._publish_crops(f, image, roi, header)
            except (ConversionError, ValueError) as e:
                self._once.warn("bad_mesh", f"face {m.face_id!r}: {e}; that face's REP-155 output skipped")
                self._diag.error()
        if transforms:
            self._tf_pub.publish(tf_message(transforms))
        self._diag.tick((time.perf_counter() - t0) * 1000.0)

    def _publish_crops(self, f: _Face, image, roi, header) -> None:
        rgb, _ = image
        if f.pubs["cropped"].get_subscription_count():
            f.pubs["cropped"].publish(bgr_image_msg(hri.cropped_bgr(rgb, roi, "rgb8"), header))
        if f.pubs["aligned"].get_subscription_count():
            f.pubs["aligned"].publish(bgr_image_msg(hri.aligned_bgr(rgb, mesh_msg_landmarks(f.mesh), "rgb8"), header))

    # ------------------------------------------------------------ per-face results

    def _face_of(self, landmark_id: str) -> _Face | None:
        rep = self._ids.rep.get(landmark_id)
        return None if rep is None else self._faces.get(rep)

    def _on_shapes(self, msg: BlendshapesArray) -> None:
        if refuse_oversized(msg.faces, self._named['faces/blendshapes'], self._once, self._diag):
            return
        for b in msg.faces:
            f = self._face_of(b.face_id)
            if f is None or not f.pubs["facs"].get_subscription_count():
                continue
            try:
                intensity, conf = hri.facs_of(blendshapes_msg_scores(b), f.score)
            except (ConversionError, ValueError) as e:
                self._once.warn("bad_blendshapes", f"face {b.face_id!r}: {e}; facs skipped")
                continue
            f.pubs["facs"].publish(facs_msg(intensity, conf, msg.header))

    def _on_emotion(self, msg: EmotionArray) -> None:
        if refuse_oversized(msg.emotions, self._named['emotion'], self._once, self._diag):
            return
        for e in msg.emotions:
            f = self._face_of(e.face_id)
            if f is None:
                continue
            fields = hri.expression_of(e.label, e.confidence, e.valence, e.arousal, e.confident)
            try:
                f.pubs["expression"].publish(expression_msg(fields, msg.header))
            except ConversionError as err:  # never expected: expression_of gives REP constants only
                self._once.error("bad_expression", f"expression not published: {err}")

    def _on_attention(self, msg: AttentionArray) -> None:
        if refuse_oversized(msg.faces, self._named['attention'], self._once, self._diag):
            return
        transforms = []
        t_s = stamp_ns(msg.header) * 1e-9
        frame = None
        for a in msg.faces:
            f = self._face_of(a.face_id)
            if f is None or f.translation is None:
                continue
            g = (a.gaze_direction.x, a.gaze_direction.y, a.gaze_direction.z)
            if all(map(math.isfinite, g)) and any(g):
                frame = frame or self._frame(msg.header)
                transforms.append(transform_msg(msg.header, frame, f"gaze_{f.rep}", f.translation,
                                                hri.gaze_rotation(g)))
            if self._persons:
                looking = float(a.looking_at_camera)
                level = f.engagement.update(looking, math.hypot(*f.translation), t_s)
                f.person_pubs["engagement_status"].publish(engagement_msg(level, msg.header))
                if looking >= self._params["looking_threshold"]:
                    self._gazing_pub.publish(gaze_msg(f.person, "", msg.header))
        if transforms:
            self._tf_pub.publish(tf_message(transforms))

    # ------------------------------------------------------------ camera

    def _on_info(self, msg: CameraInfo) -> None:
        k = msg.k
        if msg.width and msg.height and k[0] > 0 and k[4] > 0:
            first = self._intrinsics is None
            self._intrinsics = hri.Intrinsics(k[0], k[4], k[2], k[5], msg.width, msg.height)
            if first:
                self.get_logger().info(f"camera_info received: face translation from fx={k[0]:.1f} fy={k[4]:.1f}")
        else:
            self._once.warn("bad_info", f"{self._info_sub.topic_name}: camera_info without intrinsics (K all zero "
                            "or no size, an uncalibrated camera): face translation from MediaPipe's matrix")

    def _on_image(self, msg) -> None:
        try:
            if isinstance(msg, CompressedImage):
                rgb, encoding = compressed_msg_to_rgb(msg), "rgb8"
            else:
                rgb, encoding = image_msg_to_rgb(msg), msg.encoding
        except (ImageError, ConversionError) as e:
            self._once.warn("bad_image", f"camera image not usable for cropped/aligned: {e}")
            return
        if encoding.lower() == "mono8":
            self._once.warn("mono8", "the camera publishes mono8: cropped and aligned are grey in bgr8 (three equal "
                            "channels), as consumers of REP-155 crops expect bgr8")
        self._images[stamp_ns(msg.header)] = (rgb, encoding)
        while len(self._images) > IMAGE_BUFFER:
            self._images.popitem(last=False)

    def _housekeeping(self) -> None:
        for rep in self._ids.expire(time.monotonic()):  # missing faces are lost when the images stop too
            self._drop_face(rep)
        wanted = any(f.pubs[k].get_subscription_count() for f in self._faces.values() for k in ("cropped", "aligned"))
        if wanted and self._image_sub is None:
            if self._params["use_compressed"]:
                self._image_sub = self.create_subscription(CompressedImage, "image/compressed", self._on_image,
                                                           SENSOR_QOS)
            else:
                self._image_sub = self.create_subscription(Image, "image", self._on_image, SENSOR_QOS)
        elif not wanted and self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
            self._images.clear()
        if (self._info_sub is not None and self._intrinsics is None
                and time.monotonic() - self._started > self._params["camera_info_timeout_s"]):
            self._once.warn("no_info", f"no camera_info on {self._info_sub.topic_name} after "
                            f"{self._params['camera_info_timeout_s']:.0f} s: face translation from MediaPipe's "
                            "matrix (assumes a 63 degree vertical field of view) until it arrives")

    def destroy_node(self) -> None:
        for rep in list(self._faces):
            self._drop_face(rep)
        super().destroy_node()


def main(args=None) -> int:
    return run_node(HriNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
