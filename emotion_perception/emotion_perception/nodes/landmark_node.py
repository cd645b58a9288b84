"""``landmark_node``: camera images in, face meshes and blendshapes out.

Subscribes to ``image`` (``sensor_msgs/Image``) or, with ``use_compressed``, to
``image/compressed`` (``sensor_msgs/CompressedImage``) with the sensor-data QoS, and
publishes for every processed image, reliably and with the image's header:

* ``faces/mesh`` (``FaceMeshArray``): 478 landmarks, pixel box, head pose, score;
* ``faces/blendshapes`` (``BlendshapesArray``): MediaPipe's 52 scores;
* ``faces/blendshapes/names`` (``std_msgs/String``, latched): the 52 category names,
  one per line, once;
* ``faces/crops`` (``FaceCropArray``, with ``publish_crops``): each face's aligned grey
  crop (:mod:`emotion_perception.face_crop`) at the size and margin of the shipped
  image model, so that the image model's node never receives whole camera frames.

The arrays are empty when an image holds no face. The subscription callback keeps at
most ``queue_size`` images (default 2: one in work, one waiting); when a newer image
arrives to a full queue the oldest waiting one is dropped and counted. A worker
thread woken by the callback does the work, so the executor never blocks on
MediaPipe, a one-frame hiccup loses nothing, and under overload latency stays bounded
(at most ``queue_size`` processing times) instead of growing. With ``workers`` > 1
that many MediaPipe landmarkers take consecutive images at once (where cores are
free the node holds a higher rate); one tracker gives the ids and the results are
published in image order. Bad
images (unsupported encoding, empty, size mismatch, corrupt JPEG) are logged once per
kind and dropped; the node runs on. See docs/landmarks.md.
"""

from __future__ import annotations

import collections
import math
import threading
import time

from emotion_perception_msgs.msg import BlendshapesArray, FaceCropArray, FaceMeshArray
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from ..conversions import compressed_msg_to_rgb, crops_to_msg, faces_to_msgs, image_msg_to_rgb
from ..face_crop import MIN_FACE_PX, crop_geometry, crop_with_geometry
from ..imaging import ImageError
from ..landmarks import (DEFAULT_MODEL, LATE_FRAME_TOLERANCE_NS, MAX_FACES_LIMIT, MAX_SEARCH_PERIOD_S,
                         FaceIdentifier, FaceLandmarker, LandmarkerOptions, StreamClock)
from ..tracking import TrackerOptions
from ..types import BLENDSHAPE_NAMES
from .bad_input import OnceLog
from .diagnostics import Diagnostics
from .native_threads import name_os_thread
from .sequence_gaps import SequenceGaps
from .parameters import Param, declare_parameters
from .process import run_node
from .qos import LATCHED_QOS, RESULT_QOS, SENSOR_QOS
from .stamps import stamp_ns

#: How long ``destroy_node`` waits for a frame in progress, seconds.
WORKER_JOIN_TIMEOUT_S = 5.0
#: Finished images that may wait for an earlier one still in MediaPipe (workers > 1)
#: before the next worker to finish waits too.
MAX_FINISHED_WAITING = 8
#: Camera publications looked at together to judge the transport, and the share of
#: them missing from which the camera and the node likely use different transports
#: (with the package's profile on both sides none is missing at 30 Hz; a camera on
#: Fast DDS's default transports lost 33 of 90 640x480 frames here, 278 of 300 in the
#: field).
TRANSPORT_WINDOW = 30
MISMATCH_LOST_SHARE = 0.25

PARAMS = [
    Param("use_compressed", False, "subscribe to image/compressed (sensor_msgs/CompressedImage, JPEG or PNG) "
          "instead of image (sensor_msgs/Image)", read_only=True),
    Param("model_path", DEFAULT_MODEL, "Face Landmarker .task file: a name in the package's models/ or a path; "
          "its sha256 must be listed in the SHA256SUMS beside it", read_only=True),
    Param("max_faces", 2, "most faces found per image; each extra face costs about one more landmark pass",
          1, MAX_FACES_LIMIT),
    Param("face_search_period", 0.0, "0 (default): look for new faces on every image while fewer than "
          "max_faces are tracked, as MediaPipe does (the features the shipped fusion was fitted on). Above 0, with "
          "max_faces > 1 and at most one face in view: look for more once per this much image time (s) and "
          "track the one face in between: MediaPipe's num_faces 1 results, for x1.07-1.14 its CPU instead of "
          "x1.14-1.19; a face that enters is found within this and two images (docs/landmarks.md)",
          0.0, MAX_SEARCH_PERIOD_S),
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
    Param("workers", 2, "MediaPipe landmarkers working on consecutive images at once, [1, 4]; results are "
          "still published in image order with one set of face ids. Each one more raises the rate the node "
          "holds where a core is free (alone on 2 cores: 130 Hz with 1, over 170 Hz with 2) for about "
          "30 MB (twice that where max_faces > 1 and face_search_period > 0: two landmarkers each); it does "
          "not lower the latency of one image", 1, 4, read_only=True),
    Param("publish_crops", True, "publish each face's aligned grey crop on faces/crops (the image model's "
          "input, at its size and margin; about 0.3 ms per face)", read_only=True),
    Param("warn_processing_ms", 50.0, "/diagnostics turns WARN when the 95th percentile processing time "
          "exceeds this, ms", 1.0, 10_000.0, read_only=True),
]


def landmarker_options(values: dict) -> LandmarkerOptions:
    """LandmarkerOptions from the node's parameter values."""
    return LandmarkerOptions(
        model_path=values["model_path"],
        max_faces=values["max_faces"],
        search_period_s=values["face_search_period"],
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
        emotion_perception.nodes.parameters.ParameterError: a parameter out of range.
        emotion_perception.assets.ModelFileError: the model file is missing or its
            sha256 differs (the message names the file and the expected digest).
    """

    def __init__(self, **kwargs):
        super().__init__("landmark_node", **kwargs)
        try:
            self._params = declare_parameters(self, PARAMS, on_change=self._on_params)
            options = landmarker_options(self._params)
            self._engines: list[FaceLandmarker] = []
            for _ in range(self._params["workers"]):
                self._engines.append(FaceLandmarker(options))
                self._engines[-1].warm_up()  # a first call's extra ~10 ms, before the camera's frames
        except BaseException:
            for engine in getattr(self, "_engines", []):
                engine.close()
            super().destroy_node()
            raise
        # One set of ids for every engine, given in image order (see _commit).
        self._ids = FaceIdentifier(options.tracker)
        self._once = OnceLog(self)
        self._once_per_run = OnceLog(self, repeat_s=math.inf)
        self._decode_warnings = 0
        self._bad = collections.Counter()
        self._faces_last = 0
        # Guards the queue, the workers' idle flags and the pending options (reentrant:
        # a test queues images while holding it).
        self._lock = threading.RLock()
        # One condition per worker on that lock: an image wakes the first idle worker
        # in index order, so that at a rate worker 0 keeps up with, one MediaPipe
        # landmarker sees every image and tracks each face from the image before (a
        # plain notify() wakes the longest-waiting worker: the images would alternate).
        self._wake = [threading.Condition(self._lock) for _ in self._engines]
        self._idle = [False] * len(self._engines)
        self._queue: collections.deque = collections.deque()
        self._pending_options: list[LandmarkerOptions | None] = [None] * len(self._engines)
        self._pending_tracker: TrackerOptions | None = None  # new options: tracks end
        self._stream_clock = StreamClock()
        self._image_seq = 0  # image_seq of the last image received (arrival order)
        self._stamp_faults = collections.Counter()
        self._gaps = SequenceGaps()
        self._lost = 0  # camera images that never reached the node (publication sequence gaps)
        self._window = [0, 0]  # [arrived, lost] over the current TRANSPORT_WINDOW publications
        self._next_seq = 0  # sequence number of the next image a worker takes
        self._order = threading.Condition()
        self._committed = 0  # images before this sequence number are published or given up
        self._done: dict[int, tuple] = {}  # finished images waiting for an earlier one, by sequence number
        self._publishing = False  # a worker is publishing the finished images in order
        self._stop = False
        self._destroyed = False

        self._mesh_pub = self.create_publisher(FaceMeshArray, "faces/mesh", RESULT_QOS)
        self._shapes_pub = self.create_publisher(BlendshapesArray, "faces/blendshapes", RESULT_QOS)
        self._names_pub = self.create_publisher(String, "faces/blendshapes/names", LATCHED_QOS)
        self._crop_spec = self._load_crop_spec() if self._params["publish_crops"] else None
        self._crops_pub = (self.create_publisher(FaceCropArray, "faces/crops", RESULT_QOS)
                           if self._crop_spec is not None else None)
        self._names_pub.publish(String(data="\n".join(BLENDSHAPE_NAMES)))
        self._diag = Diagnostics(self, warn_processing_ms=self._params["warn_processing_ms"], extra=self._extra)

        self._compressed = bool(self._params["use_compressed"])
        if self._compressed:
            self._sub = self.create_subscription(CompressedImage, "image/compressed", self._on_image, SENSOR_QOS)
        else:
            self._sub = self.create_subscription(Image, "image", self._on_image, SENSOR_QOS)
        self._workers = [threading.Thread(target=self._work, args=(i,), name=f"landmark_node-worker-{i}",
                                          daemon=True) for i in range(len(self._engines))]
        for w in self._workers:
            w.start()
        self.get_logger().info(
            f"listening on {self._sub.topic_name} ({'CompressedImage' if self._compressed else 'Image'}), "
            f"model {self._engines[0].model_path.name}, max_faces {self._params['max_faces']}, "
            f"{len(self._engines)} worker(s)")

    @property
    def images_received(self) -> int:
        """Camera images taken from the topic so far (queued, processed or dropped), for a
        caller that must tell an image lost on the way from one still being processed."""
        return self._image_seq

    @property
    def restarts(self) -> int:
        """How often a MediaPipe landmarker was recreated (time went back, size or options changed)."""
        return sum(e.recreated for e in self._engines)

    # ------------------------------------------------------------ callbacks

    def _on_image(self, msg, info) -> None:
        """Number and time the image, queue it (dropping the oldest waiting one if full)
        and wake the worker; count the camera's images that never arrived."""
        arrival = time.monotonic_ns()
        self._count_lost(info)
        with self._lock:
            self._image_seq += 1
            image_time, fault = self._stream_clock(stamp_ns(msg.header), arrival)
            if fault is not None:  # said before the image's result can be out
                self._on_stamp_fault(fault, msg)
            self._queue.append((msg, self._image_seq, image_time, fault == StreamClock.LATE))
            while len(self._queue) > self._params["queue_size"]:
                self._queue.popleft()
                self._diag.dropped()
            self._wake_first_idle()

    def _first_idle(self) -> int | None:
        """Index of the first worker waiting for an image (call holding the lock)."""
        return self._idle.index(True) if True in self._idle else None

    def _wake_first_idle(self) -> None:
        """Give the next queued image to the first idle worker (call holding the lock)."""
        i = self._first_idle()
        if self._queue and i is not None:
            self._wake[i].notify()

    def _count_lost(self, info) -> None:
        """Images the camera published that never reached this node, from the gaps in
        each publisher's publication sequence numbers (DDS numbers every sample a
        writer sends). They were lost in transport (a frame larger than the transport
        carries: 16 MiB shared-memory segments with the package's profile; UDP
        fragments of large images) or overwritten in the subscription's queue (depth 5)
        before the node took them. Said once; when many images of a window are missing
        (:data:`MISMATCH_LOST_SHARE`) the camera likely publishes over another
        transport: said once too."""
        lost = self._gaps.count(info, self._sub.get_publisher_count)
        if lost is None:
            return
        self._window[0] += 1
        self._window[1] += lost
        if sum(self._window) >= TRANSPORT_WINDOW:
            arrived, missing = self._window
            self._window = [0, 0]
            if missing >= MISMATCH_LOST_SHARE * (arrived + missing):
                self._once_per_run.warn("transport_mismatch", (
                    f"only {arrived} of {arrived + missing} images published on {self._sub.topic_name} reached "
                    "this node (publication sequence numbers): the camera likely publishes over another Fast DDS "
                    "transport. Load the package's profile in the camera's process too (config/fastdds_shm.xml), "
                    "or send image/compressed; see docs/transport.md"))
        if not lost:
            return
        self._lost += lost
        self._bad["lost_in_transport"] += lost
        self._diag.error(lost)
        self._once.warn("lost_in_transport", (
            f"{lost} image(s) published on {self._sub.topic_name} never reached this node (a gap in the publisher's "
            "sequence numbers): lost in transport, e.g. larger than the transport carries (16 MiB shared-memory "
            "segments with config/fastdds_shm.xml), or overwritten in the subscription's queue; counted in "
            "/diagnostics lost_in_transport_total"))

    def _on_stamp_fault(self, fault: str, msg) -> None:
        """Say once per run what the camera's stamps lack and what the node does instead."""
        self._stamp_faults[fault] += 1
        topic = self._sub.topic_name
        if fault == StreamClock.JUMP:
            self._once.warn("stamp_jump", f"stamps on {topic} jumped back more than "
                            f"{LATE_FRAME_TOLERANCE_NS / 1e9:g} s (a bag that loops?): face tracks restart")
            return
        what = {StreamClock.MISSING: "carry no stamp (header.stamp 0)",
                StreamClock.REPEATED: "repeat the previous image's stamp",
                StreamClock.LATE: f"arrive with a stamp older than the previous image's (late frames, up to "
                                  f"{LATE_FRAME_TOLERANCE_NS / 1e9:g} s tolerated)"}[fault]
        self._once_per_run.warn(f"stamp_{fault}", f"images on {topic} {what}: each is still processed, told apart "
                                "by arrival order (image_seq) and timed by its arrival (stream_time_ns); see "
                                "docs/landmarks.md. Counted in /diagnostics stamps_" + fault + "_total")

    def _on_params(self, updates: dict) -> None:
        with self._lock:
            self._params.update(updates)
            if set(updates) <= {"queue_size"}:
                self.get_logger().info(f"parameters changed: {updates}")
                return
            options = landmarker_options(self._params)
            self._pending_options = [options] * len(self._engines)
            self._pending_tracker = options.tracker
        self.get_logger().info(f"parameters changed: {updates}; the landmarker restarts with them")

    def _extra(self) -> dict:
        return {"input_topic": self._sub.topic_name, "faces_last_image": self._faces_last,
                "landmarker_restarts": self.restarts, "workers": len(self._engines),
                "face_searches_total": sum(e.searches for e in self._engines),
                "decode_warnings_total": self._decode_warnings, "lost_in_transport_total": self._lost,
                **{f"stamps_{k}_total": v for k, v in sorted(self._stamp_faults.items())},
                **{f"bad_input_{k}": v for k, v in sorted(self._bad.items())}}

    def _load_crop_spec(self):
        """The image model's crop size and margin (from its verified JSON); None, with one
        error line, when that file is missing or tampered: meshes still flow."""
        from ..assets import ModelFileError
        from ..classifiers.image_cnn import crop_spec

        try:
            return crop_spec()
        except (ModelFileError, KeyError, ValueError) as e:
            self.get_logger().error(f"faces/crops not published: {e}")
            return None

    # ------------------------------------------------------------ worker

    def _work(self, index: int) -> None:
        name_os_thread(f"lm-worker-{index}")
        engine = self._engines[index]
        while True:
            with self._lock:
                self._idle[index] = True
                while not self._stop and not (self._queue and self._first_idle() == index):
                    self._wake[index].wait()
                self._idle[index] = False
                if self._stop:
                    return
                msg, image_seq, image_time, late = self._queue.popleft()
                self._wake_first_idle()  # images still queued: the next idle worker takes one
                seq, self._next_seq = self._next_seq, self._next_seq + 1
                options, self._pending_options[index] = self._pending_options[index], None
            t0 = time.perf_counter()
            detections = crops = None
            try:
                if options is not None:
                    engine.update_options(options)
                detections, crops = self._detect(engine, msg, image_time)
                if late and detections is not None and not detections.boxes and self._faces_last:
                    # A late frame that lost every face: perhaps not late but a cut back
                    # (a short bag that loops), which MediaPipe tracked from the newer
                    # frame's face regions. Retried on a restarted landmarker, as a time
                    # jump is; a late frame of the same scene keeps its faces and costs
                    # nothing.
                    engine.reset()
                    detections, crops = self._detect(engine, msg, image_time)
            except Exception as e:  # noqa: BLE001 - the worker must outlive any one frame
                self._diag.error()
                self._once.error(f"failed:{type(e).__name__}", f"processing an image failed: {type(e).__name__}: {e}")
            finally:
                self._commit(seq, msg, image_seq, detections, crops, t0)

    def _detect(self, engine: FaceLandmarker, msg, image_time: int):
        """MediaPipe on one image message at its stream time, and the faces' aligned
        crops (None without ``publish_crops``); (None, None) for a bad image (logged once
        per kind)."""
        try:
            rgb = (compressed_msg_to_rgb(msg, self._on_decode_warning) if self._compressed
                   else image_msg_to_rgb(msg))
        except ImageError as e:
            self._bad[e.reason] += 1
            self._diag.error()
            self._once.error(f"bad_image:{e.reason}", f"dropping an image from {self._sub.topic_name}: {e}")
            return None, None
        detections = engine.detect(rgb, image_time)
        return detections, (self._crops(rgb, detections) if self._crop_spec is not None else None)

    def _crops(self, rgb, detections) -> list:
        """(crop, geometry) per detected face; None for a face too small to crop."""
        spec, out = self._crop_spec, []
        for landmarks in detections.landmarks:
            geo = crop_geometry(landmarks, detections.image_wh, spec.margin)
            if geo.side / (1.0 + 2.0 * spec.margin) < MIN_FACE_PX:
                out.append(None)
            else:
                out.append((crop_with_geometry(rgb, geo, spec.size), geo))
        return out

    def _on_decode_warning(self, text: str) -> None:
        """A decoder warning on an image that was still decoded whole: said once per run."""
        self._decode_warnings += 1
        self._once_per_run.warn("decode_warning", f"{self._sub.topic_name}: {text} (the image is processed; "
                                "later warnings are only counted: /diagnostics decode_warnings_total)")

    def _commit(self, seq: int, msg, image_seq: int, detections, crops, t0: float) -> None:
        """Give ids and publish, in the order the images were taken from the queue.

        With workers > 1 a later image can finish first: it then waits in ``_done``
        and its worker goes back to the queue at once, and the worker that finishes
        the image before it publishes both, in order. A worker waits for another's
        image only behind :data:`MAX_FINISHED_WAITING` finished ones, so one slow
        MediaPipe call does not hold the other workers (which let the queue overflow
        and drop images: docs/landmarks.md). Tracks end where a single landmarker's
        would: stamps going back, the image size changing (:class:`FaceIdentifier`),
        new options.
        """
        with self._order:
            # bounded: behind an image that takes very long, a worker waits as it used to
            # (never the one holding that image: its turn has come)
            while len(self._done) >= MAX_FINISHED_WAITING and seq != self._committed and not self._stop:
                self._order.wait(0.5)
            self._done[seq] = (msg, image_seq, detections, crops, t0)
            if self._publishing:  # the publishing worker takes this one too when its turn comes
                return
            self._publishing = True
        while True:
            with self._order:
                item = self._done.pop(self._committed, None)
                if item is None or self._stop:
                    self._publishing = False
                    return
            msg, image_seq, detections, crops, t0 = item
            try:
                if detections is not None:
                    self._publish(msg, image_seq, detections, crops, t0)
            except Exception as e:  # noqa: BLE001 - a publish failure must not stall the order
                if self.context.ok():  # else shutdown began under the worker: nothing went wrong
                    self._diag.error()
                    self._once.error(f"publish:{type(e).__name__}", f"publishing faces failed: {type(e).__name__}: {e}")
            finally:
                with self._order:
                    self._committed += 1
                    self._order.notify_all()

    def _publish(self, msg, image_seq: int, detections, crops, t0: float) -> None:
        with self._lock:
            tracker_options, self._pending_tracker = self._pending_tracker, None
        if tracker_options is not None:
            self._ids.tracker.options = tracker_options
            self._ids.reset()
        faces = self._ids.faces(detections)
        # crops first, before the meshes are built: they feed the image model, the one
        # model `emotion` waits for with the shipped fusion; in one process they are also
        # handled first
        if self._crops_pub is not None:
            self._crops_pub.publish(crops_to_msg(
                [(f.face_id, c[0], c[1], self._crop_spec.margin) for f, c in zip(faces, crops) if c is not None],
                msg.header, image_seq, detections.stamp_ns))
        meshes, shapes = faces_to_msgs(faces, msg.header, image_seq, detections.stamp_ns)
        self._mesh_pub.publish(meshes)
        self._shapes_pub.publish(shapes)
        self._faces_last = len(faces)
        self._diag.tick((time.perf_counter() - t0) * 1e3)

    # ------------------------------------------------------------ shutdown

    def destroy_node(self):
        """Stop the workers (after the images in progress), release MediaPipe, destroy."""
        if not getattr(self, "_destroyed", True):
            self._destroyed = True
            with self._lock:
                self._stop = True
                for wake in self._wake:
                    wake.notify_all()
            with self._order:
                self._order.notify_all()
            deadline = time.monotonic() + WORKER_JOIN_TIMEOUT_S
            for w in self._workers:
                w.join(timeout=max(0.0, deadline - time.monotonic()))
            if any(w.is_alive() for w in self._workers):
                self.get_logger().warning("landmark worker did not stop in time")
            else:
                for engine in self._engines:
                    engine.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(LandmarkNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
