"""``attention_node``: face meshes and blendshapes in, attention out.

Subscribes to ``faces/mesh`` (``FaceMeshArray``) and ``faces/blendshapes``
(``BlendshapesArray``), pairs the two arrays of one image by its key
(:func:`~emotion_perception.nodes.stamps.image_key`: the landmark node's image number
and stream time, so cameras with missing or repeated stamps work)
(:class:`~emotion_perception.nodes.stamps.StampSync`) and their faces by ``face_id``,
and publishes ``attention`` (``AttentionArray``, the image's header) for every image:
an empty ``faces`` list when the image holds no face. Per-face state (blinks,
PERCLOS, talking, looking hysteresis) lives in
:class:`~emotion_perception.attention.AttentionEstimator`; ids that vanish from the
meshes are forgotten. The inputs are subscribed only while someone listens to
``attention`` (:mod:`.lazy`); going idle forgets every face.

If no blendshapes arrive for ``blendshapes_timeout_s`` while meshes do, meshes are processed alone
(geometry only: eye and mouth states from the aspect ratios), with one warning. Bad
input (NaN or wrong-length arrays, stamps going backwards) is logged once per kind and
dropped; the node runs on. The estimators take well under a millisecond per face, so
the callback does the work directly. See docs/attention.md.
"""

from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node

from ..attention import AttentionEstimator, AttentionParams, CalibrationError, GazeCalibration, GeometryError
from ..conversions import (ConversionError, attention_estimates_to_array, blendshapes_msg_scores, image_of,
                           mesh_msg_to_face)
from .bad_input import OnceLog, refuse_oversized
from .diagnostics import Diagnostics
from .lazy import LazyInputs
from .parameters import Param, ParameterError, declare_parameters
from .process import run_node
from .qos import RESULT_QOS
from .stamps import StampSync, image_key
from emotion_perception_msgs.msg import AttentionArray, BlendshapesArray, FaceMeshArray

PARAMS = [
    Param("perclos_window_s", 60.0, "window of PERCLOS and of the blink rate, seconds", 1.0, 3600.0),
    Param("drowsiness_threshold", 0.2, "PERCLOS (fraction of the window with both eyes closed) above which a "
          "face is drowsy, [0, 1]", 0.0, 1.0),
    Param("max_blink_s", 0.7, "longest eye closure counted as a blink, seconds (longer ones count in PERCLOS "
          "only)", 0.05, 5.0),
    Param("looking_on", 0.6, "looking-at-camera probability above which the looking state turns on, [0, 1]",
          0.0, 1.0),
    Param("looking_off", 0.4, "probability below which the looking state turns off (<= looking_on), [0, 1]",
          0.0, 1.0),
    Param("hfov_deg", 60.0, "the camera's horizontal field of view, degrees (gaze point and the direction to "
          "the camera)", 10.0, 170.0),
    Param("calibration_file", "", "per-user gaze calibration (JSON or npz from `emotion-perception "
          "calibrate-gaze`); empty = geometric gaze", read_only=True),
    Param("blendshapes_timeout_s", 1.0, "without blendshapes for this long (wall time, s), meshes are "
          "processed alone (geometry only)", 0.1, 60.0),
    Param("warn_processing_ms", 20.0, "/diagnostics turns WARN when the 95th percentile processing time "
          "exceeds this, ms", 0.1, 10_000.0, read_only=True),
]


def _check_looking(values: dict) -> str | None:
    """The rule between parameters: the looking hysteresis turns off below where it turns on."""
    if values["looking_off"] > values["looking_on"]:
        return (f"looking_off ({values['looking_off']}) must not exceed looking_on ({values['looking_on']}) "
                "(change the other one first, or both at once)")
    return None


#: A stamp older than the previous one by more than this is a time jump (the
#: source looped or restarted), not one late image, ns.
TIME_JUMP_BACK_NS = 1_000_000_000


class AttentionNode(Node):
    """Attention estimators over the landmark node's output.

    Raises:
        emotion_perception.nodes.parameters.ParameterError: a parameter out of range,
            looking_off above looking_on, or an unreadable calibration file.
        emotion_perception.assets.ModelFileError: the fitted parameters are missing
            or tampered with.
    """

    def __init__(self, **kwargs):
        super().__init__("attention_node", **kwargs)
        try:
            self._params = declare_parameters(self, PARAMS, on_change=self._on_params, validate=_check_looking)
            self._model = AttentionParams.load()
            self._calibration = None
            if self._params["calibration_file"]:
                try:
                    self._calibration = GazeCalibration.load(self._params["calibration_file"])
                except CalibrationError as e:
                    raise ParameterError(f"attention_node: calibration_file: {e}") from None
            self._estimator = self._make_estimator(self._params)
        except BaseException:
            super().destroy_node()
            raise
        self._once = OnceLog(self)
        self._sync = StampSync(2)
        self._last_key: tuple[int, int] | None = None  # image_key of the last image processed
        self._last_blendshapes_wall: float | None = None  # set by the first mesh or blendshapes
        self._last_mesh_wall: float | None = None
        self._faces_last = 0
        self._mesh_only_frames = 0
        self._pub = self.create_publisher(AttentionArray, "attention", RESULT_QOS)
        self._diag = Diagnostics(self, warn_processing_ms=self._params["warn_processing_ms"], extra=self._extra)
        self._mesh_topic = self.resolve_topic_name("faces/mesh")
        self._shapes_topic = self.resolve_topic_name("faces/blendshapes")
        # subscribed only while someone listens to attention
        self.inputs = LazyInputs(self, [self._pub], {"faces/mesh": (FaceMeshArray, self._on_mesh),
                                                     "faces/blendshapes": (BlendshapesArray, self._on_shapes)},
                                 self._diag, on_idle=self._forget_all)
        self.get_logger().info(
            f"attention on {self._mesh_topic} + {self._shapes_topic} -> {self._pub.topic_name}, "
            f"gaze {'calibrated from ' + self._params['calibration_file'] if self._calibration else 'geometric'}")

    def _make_estimator(self, p: dict) -> AttentionEstimator:
        return AttentionEstimator(self._model, self._calibration, perclos_window_s=p["perclos_window_s"],
                                  drowsiness_threshold=p["drowsiness_threshold"], looking_on=p["looking_on"],
                                  looking_off=p["looking_off"], hfov_deg=p["hfov_deg"], max_blink_s=p["max_blink_s"])

    def _on_params(self, updates: dict) -> None:
        """A change that passed every check (:func:`_check_looking` included)."""
        self._estimator = self._make_estimator(self._params)
        self.get_logger().info(f"parameters changed: {updates}; per-face state restarts")

    def _extra(self) -> dict:
        return {"faces_last_image": self._faces_last, "tracked_faces": len(self._estimator.face_ids),
                "unmatched_stamps": self._sync.unmatched, "mesh_only_frames": self._mesh_only_frames}

    def _forget_all(self) -> None:
        """Idle: the frames until the next subscriber are not seen; per-face state
        (blinks, PERCLOS) and the wait for blendshapes start again."""
        self._estimator = self._make_estimator(self._params)
        unmatched, self._sync = self._sync.unmatched, StampSync(2)
        self._sync.unmatched = unmatched
        self._last_key = None
        self._last_blendshapes_wall = self._last_mesh_wall = None

    # ------------------------------------------------------------ callbacks

    def _on_shapes(self, msg: BlendshapesArray) -> None:
        if refuse_oversized(msg.faces, self._shapes_topic, self._once, self._diag):
            return
        self._last_blendshapes_wall = time.monotonic()
        pair = self._sync.add(1, image_key(msg), msg)
        if pair is not None:
            self._process(*pair)
            # Silence is counted from the end of the work: a slow frame (first-call
            # warm-up, a loaded machine) is not blendshapes going quiet.
            self._last_blendshapes_wall = time.monotonic()

    def _on_mesh(self, msg: FaceMeshArray) -> None:
        if refuse_oversized(msg.faces, self._mesh_topic, self._once, self._diag):
            return
        now = time.monotonic()
        timeout = self._params["blendshapes_timeout_s"]
        if (self._last_blendshapes_wall is None or self._last_mesh_wall is None
                or now - self._last_mesh_wall > timeout):
            # The first mesh, or the first after a pause of the meshes themselves: no
            # blendshapes were due meanwhile, so their silence is counted from now (the
            # first mesh after every pause was once processed alone, with a warning
            # that blendshapes were missing, though they flowed).
            self._last_blendshapes_wall = max(self._last_blendshapes_wall or now, now)
        self._last_mesh_wall = now
        pair = self._sync.add(0, image_key(msg), msg)
        if pair is not None:
            self._process(*pair)
            self._last_blendshapes_wall = time.monotonic()
        elif now - self._last_blendshapes_wall > timeout:
            self._once.warn("no_blendshapes",
                            f"no blendshapes on {self._shapes_topic} for {timeout} s while meshes "
                            "arrived: processing meshes alone (geometry only)")
            self._mesh_only_frames += 1
            self._process(msg, None)

    # ------------------------------------------------------------ work

    def _process(self, meshes: FaceMeshArray, shapes: BlendshapesArray | None) -> None:
        t0 = time.perf_counter()
        key = image_key(meshes)
        stamp, last = key[0], self._last_key
        if key == last:
            # blendshapes that arrive after their mesh was processed alone: already published
            self._diag.dropped()
            return
        if last is not None and key < last:
            # Only from a publisher that numbers no images: the landmark node's stream
            # time never goes back but for a time jump.
            if last[0] - stamp <= TIME_JUMP_BACK_NS:
                # one late image among newer ones: drop it, keep every face's state
                self._once.warn("stamp_backwards", f"faces/mesh stamp {stamp} ns is older than the previous "
                                f"{last[0]} ns: dropped (out of order)")
                self._diag.error()
                return
            # time jumped back (a bag that loops, a simulator reset): start over, as the
            # landmark node does, instead of dropping everything until time catches up
            self._once.warn("time_jump", f"faces/mesh stamp jumped back {(last[0] - stamp) / 1e9:.1f} s: "
                            "per-face state (blinks, PERCLOS, talking, looking) restarts")
            self._estimator.reset()
        self._last_key = key
        by_id = {}
        if shapes is not None:
            for s in shapes.faces:
                by_id[s.face_id] = s
        estimates = []
        seen = set()
        for m in meshes.faces:
            seen.add(m.face_id)
            try:
                face = mesh_msg_to_face(m)
                scores = None
                bs = by_id.get(m.face_id)
                if bs is not None:
                    try:
                        scores = blendshapes_msg_scores(bs)
                    except ConversionError as e:
                        self._once.warn("bad_blendshapes", f"{e}: using geometry only for that face")
                        self._diag.error()
                elif shapes is not None:
                    self._once.warn("unpaired_face", f"face {m.face_id!r} has a mesh but no blendshapes in the "
                                    "same image: using geometry only")
                estimates.append(self._estimator.update_arrays(face.face_id, face.landmarks, scores, face.transform,
                                                               face.image_wh, stamp * 1e-9))
            except (ConversionError, GeometryError, ValueError) as e:
                self._once.warn("bad_mesh", f"dropped a face: {e}")
                self._diag.error()
        for gone in set(self._estimator.face_ids) - seen:
            self._estimator.forget(gone)
        self._faces_last = len(estimates)
        try:
            self._pub.publish(attention_estimates_to_array(estimates, meshes.header, *image_of(meshes)))
        except ConversionError as e:  # NaN in an estimate: never expected, but never fatal
            self._once.error("bad_output", f"attention not published: {e}")
            self._diag.error()
            return
        self._diag.tick((time.perf_counter() - t0) * 1000.0)


def main(args=None) -> int:
    return run_node(AttentionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
