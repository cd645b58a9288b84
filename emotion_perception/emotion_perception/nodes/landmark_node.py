"""``landmark_node``: camera images in, face meshes and blendshapes out.

Subscribes to ``image`` (``sensor_msgs/Image``) or, with ``use_compressed``, to
``image/compressed`` (``sensor_msgs/CompressedImage``) with the sensor-data QoS, and
publishes for every processed image, reliably and with the image's header:

* ``faces/mesh`` (``FaceMeshArray``): 478 landmarks, pixel box, head pose, score;
* ``faces/blendshapes`` (``BlendshapesArray``): MediaPipe's 52 scores;
* ``faces/blendshapes/names`` (``std_msgs/String``, latched): the 52 category names,
  one per line, once.

Both arrays are empty when an image holds no face. The subscription callback keeps at
most ``queue_size`` images (default 2: one in work, one waiting); when a newer image
arrives to a full queue the oldest waiting one is dropped and counted. A worker
thread woken by the callback does the work, so the executor never blocks on
MediaPipe, a one-frame hiccup loses nothing, and under overload latency stays bounded
(at most ``queue_size`` processing times) instead of growing. Bad
images (unsupported encoding, empty, size mismatch, corrupt JPEG) are logged once per
kind and dropped; the node runs on. See docs/landmarks.md.
"""

from __future__ import annotations

import collections
import threading
import time

from emotion_perception_msgs.msg import BlendshapesArray, FaceMeshArray
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from ..conversions import compressed_msg_to_rgb, faces_to_msgs, image_msg_to_rgb
from ..imaging import ImageError
from ..landmarks import DEFAULT_MODEL, MAX_FACES_LIMIT, FaceLandmarker, LandmarkerOptions
from ..tracking import TrackerOptions
from ..types import BLENDSHAPE_NAMES
from .common import (LATCHED_QOS, RESULT_QOS, SENSOR_QOS, Diagnostics, OnceLog, Param, declare_parameters,
                     run_node, stamp_ns)

#: How long ``destroy_node`` waits for a frame in progress, seconds.
WORKER_JOIN_TIMEOUT_S = 5.0

PARAMS = [
    Param("use_compressed", False, "subscribe to image/compressed (sensor_msgs/CompressedImage, JPEG or PNG) "
          "instead of image (sensor_msgs/Image)", read_only=True),
    Param("model_path", DEFAULT_MODEL, "Face Landmarker .task file: a name in the package's models/ or a path; "
          "its sha256 must be listed in the SHA256SUMS beside it", read_only=True),
    Param("max_faces", 2, "most faces found per image; each extra face costs about one more landmark pass",
          1, MAX_FACES_LIMIT),
    Param("min_face_detection_confidence", 0.5, "face detector score threshold, [0, 1]", 0.0, 1.0),
    Param("min_face_presence_confidence", 0.5, "landmark model face presence threshold, [0, 1]", 0.0, 1.0),
    Param("min_tracking_confidence", 0.5, "below this MediaPipe re-detects instead of tracking the face from "
          "the previous image, [0, 1]", 0.0, 1.0),
    Param("track_max_gap_s", 1.0, "a face unseen for longer than this (image time, s) gets a new id when it "
          "returns", 0.0, 60.0),
    Param("track_max_missed_frames", 10, "a face missing from more than this many consecutive processed "
          "images gets a new id when it returns", 0, 10_000),
    Param("track_min_iou", 0.1, "box overlap (intersection over union) from which a face in the new image "
          "continues a tracked one, [0, 1]", 0.0, 1.0),
    Param("track_max_centroid_distance", 0.5, "box centre distance, in face sizes, up to which a face "
          "continues a tracked one without overlapping it", 0.0, 10.0),
    Param("queue_size", 2, "images kept waiting for the worker, [1, 10]; a newer image arriving to a full "
          "queue drops the oldest (counted in /diagnostics dropped_total). 1 = only the newest image",
          1, 10),
    Param("warn_processing_ms", 50.0, "/diagnostics turns WARN when the 95th percentile processing time "
          "exceeds this, ms", 1.0, 10_000.0, read_only=True),
]


def landmarker_options(values: dict) -> LandmarkerOptions:
    """LandmarkerOptions from the node's parameter values."""
    return LandmarkerOptions(
        model_path=values["model_path"],
        max_faces=values["max_faces"],
        min_face_detection_confidence=values["min_face_detection_confidence"],
        min_face_presence_confidence=values["min_face_presence_confidence"],
        min_tracking_confidence=values["min_tracking_confidence"],
        tracker=TrackerOptions(max_gap_s=values["track_max_gap_s"],
                               max_missed_frames=values["track_max_missed_frames"],
                               min_iou=values["track_min_iou"],
                               max_centroid_distance=values["track_max_centroid_distance"]))


class LandmarkNode(Node):
    """MediaPipe Face Landmarker on a camera stream.

    Raises:
        emotion_perception.nodes.common.ParameterError: a parameter out of range.
        emotion_perception.assets.ModelFileError: the model file is missing or its
            sha256 differs (the message names the file and the expected digest).
    """

    def __init__(self, **kwargs):
        super().__init__("landmark_node", **kwargs)
        try:
            self._params = declare_parameters(self, PARAMS, on_change=self._on_params)
            self._landmarker = FaceLandmarker(landmarker_options(self._params))
        except BaseException:
            super().destroy_node()
            raise
        self._once = OnceLog(self)
        self._bad = collections.Counter()
        self._faces_last = 0
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._pending_options: LandmarkerOptions | None = None
        self._stop = False
        self._destroyed = False

        self._mesh_pub = self.create_publisher(FaceMeshArray, "faces/mesh", RESULT_QOS)
        self._shapes_pub = self.create_publisher(BlendshapesArray, "faces/blendshapes", RESULT_QOS)
        self._names_pub = self.create_publisher(String, "faces/blendshapes/names", LATCHED_QOS)
        self._names_pub.publish(String(data="\n".join(BLENDSHAPE_NAMES)))
        self._diag = Diagnostics(self, warn_processing_ms=self._params["warn_processing_ms"], extra=self._extra)

        self._compressed = bool(self._params["use_compressed"])
        if self._compressed:
            self._sub = self.create_subscription(CompressedImage, "image/compressed", self._on_image, SENSOR_QOS)
        else:
            self._sub = self.create_subscription(Image, "image", self._on_image, SENSOR_QOS)
        self._worker = threading.Thread(target=self._work, name="landmark_node-worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"listening on {self._sub.topic_name} ({'CompressedImage' if self._compressed else 'Image'}), "
            f"model {self._landmarker.model_path.name}, max_faces {self._params['max_faces']}")

    # ------------------------------------------------------------ callbacks

    def _on_image(self, msg) -> None:
        """Queue the image (dropping the oldest waiting one if full) and wake the worker."""
        with self._cond:
            self._queue.append(msg)
            while len(self._queue) > self._params["queue_size"]:
                self._queue.popleft()
                self._diag.dropped()
            self._cond.notify()

    def _on_params(self, updates: dict) -> None:
        with self._cond:
            self._params.update(updates)
            if set(updates) <= {"queue_size"}:
                self.get_logger().info(f"parameters changed: {updates}")
                return
            self._pending_options = landmarker_options(self._params)
        self.get_logger().info(f"parameters changed: {updates}; the landmarker restarts with them")

    def _extra(self) -> dict:
        return {"input_topic": self._sub.topic_name, "faces_last_image": self._faces_last,
                "landmarker_restarts": self._landmarker.recreated,
                **{f"bad_input_{k}": v for k, v in sorted(self._bad.items())}}

    # ------------------------------------------------------------ worker

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                msg = self._queue.popleft()
                options, self._pending_options = self._pending_options, None
            try:
                if options is not None:
                    self._landmarker.update_options(options)
                self._process(msg)
            except Exception as e:  # noqa: BLE001 - the worker must outlive any one frame
                self._diag.error()
                self._once.error(f"failed:{type(e).__name__}", f"processing an image failed: {type(e).__name__}: {e}")

    def _process(self, msg) -> None:
        t0 = time.perf_counter()
        try:
            rgb = compressed_msg_to_rgb(msg) if self._compressed else image_msg_to_rgb(msg)
        except ImageError as e:
            self._bad[e.reason] += 1
            self._diag.error()
            self._once.error(f"bad_image:{e.reason}", f"dropping an image from {self._sub.topic_name}: {e}")
            return
        faces = self._landmarker.process(rgb, stamp_ns(msg.header))
        meshes, shapes = faces_to_msgs(faces, msg.header)
        self._mesh_pub.publish(meshes)
        self._shapes_pub.publish(shapes)
        self._faces_last = len(faces)
        self._diag.tick((time.perf_counter() - t0) * 1e3)

    # ------------------------------------------------------------ shutdown

    def destroy_node(self):
        """Stop the worker (after the image in progress), release MediaPipe, destroy."""
        if not getattr(self, "_destroyed", True):
            self._destroyed = True
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            self._worker.join(timeout=WORKER_JOIN_TIMEOUT_S)
            if self._worker.is_alive():
                self.get_logger().warning("landmark worker did not stop in time")
            else:
                self._landmarker.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(LandmarkNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
