"""Feed frames through the real nodes in one process and record every output.

``emotion-perception run``, ``bag evaluate``, ``demo`` and the behaviour-tree example
all use :class:`OfflinePipeline`: the nodes of a
:class:`~emotion_perception.launch_description.PipelineDescription` run in a
:class:`~emotion_perception.runner.Pipeline` (real rclpy, real Fast DDS); a source
node publishes each frame on ``image`` (or ``image/compressed``) and a recorder node
subscribes to every output topic. In ``wait`` mode each frame's outputs are awaited
(or a timeout passes) before the next frame goes out, so nothing is dropped offline;
in free-running mode frames go out at their recorded pace and the recorder matches
outputs to frames by header stamp, so drops become visible.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import threading
import time

import numpy as np

from .launch_description import PipelineDescription

#: How long to wait for the nodes to discover the source and the recorder, s.
DISCOVERY_TIMEOUT_S = 30.0
#: Wait for the outputs of the first frame (models warm up), s.
FIRST_FRAME_TIMEOUT_S = 20.0
#: Wait for the outputs of every later frame, s.
FRAME_TIMEOUT_S = 3.0
#: After a frame's outputs are all in, wait this long for a repeated output of the
#: same stamp (a fusion node may publish again as slower models report), s.
SETTLE_S = 0.0
#: A frame none of whose outputs came within this long is published again, once, if
#: the landmark node never received it: the camera topic is best effort (the nodes'
#: sensor-data QoS), so an image can be lost on the way. One that arrived and is only
#: slow (a loaded machine) is not sent again: a second copy with the same stamp,
#: arriving more than a second after the first, is timed by its arrival
#: (:class:`~emotion_perception.landmarks.StreamClock`) and ended the face's track
#: there, so a looping bag's one face came out as two ids, s.
RESEND_AFTER_S = 1.0
#: Publish an image stamp of 0 is "unknown" in ROS: derived stamps start here, ns.
STAMP_BASE_NS = 1_700_000_000 * 1_000_000_000

_COUNTER = itertools.count()
#: (short name, params file) -> why the node could not start, for this process.
_UNSTARTABLE: dict[tuple[str, str], str] = {}

EMOTION_TOPIC_MODEL = {
    "emotion/transformer": "transformer",
    "emotion/lstm": "lstm",
    "emotion/frame": "frame",
    "emotion/image": "image",
    "emotion": "fused",
}


# ---------------------------------------------------------------- plain data

def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def emotion_to_dict(e) -> dict:
    """An ``Emotion`` message as JSON-ready data."""
    return {
        "model": e.model, "label": e.label, "confidence": _f(e.confidence), "confident": bool(e.confident),
        "probabilities": {c: _f(p) for c, p in zip(e.class_names, e.probabilities)},
        "valence": _f(e.valence), "arousal": _f(e.arousal), "frames_used": int(e.frames_used),
    }


def _plain(value):
    if hasattr(value, "get_fields_and_field_types"):
        return {k: _plain(getattr(value, k)) for k in value.get_fields_and_field_types() if k != "header"}
    if isinstance(value, (list, tuple, np.ndarray)) or type(value).__name__ == "array":
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _f(value)
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    return value


def attention_to_dict(a) -> dict:
    """An ``Attention`` message as JSON-ready data (every field but the header)."""
    d = _plain(a)
    d.pop("face_id", None)
    return d


def mesh_to_dict(m) -> dict:
    """What the annotation needs of a ``FaceMesh``: box and landmark pixels."""
    w, h = int(m.image_width), int(m.image_height)
    bb = m.bounding_box
    return {
        "bbox": [int(bb.x_offset), int(bb.y_offset), int(bb.width), int(bb.height)],
        "score": _f(m.score),
        "landmarks_px": np.stack([np.asarray(m.x, np.float32) * w, np.asarray(m.y, np.float32) * h], axis=1),
    }


@dataclasses.dataclass
class FrameResult:
    """Everything the nodes published for one frame.

    ``faces`` maps face id -> {"emotions": {model: dict}, "fused": dict|None,
    "attention": dict|None, "mesh": dict|None}. ``received`` maps topic -> wall-clock
    latency from sending the image to receiving the output, ms. ``missing`` lists
    topics that did not arrive before the timeout.
    """

    index: int
    time_s: float
    stamp_ns: int
    sent_wall: float
    faces: dict
    received: dict
    missing: list
    face_count: int | None = None

    def record(self) -> dict:
        """The JSON line of this frame (mesh landmarks left out)."""
        faces = []
        for fid, f in sorted(self.faces.items()):
            faces.append({
                "face_id": fid,
                "bbox": f["mesh"]["bbox"] if f.get("mesh") else None,
                "emotions": f["emotions"],
                "fused": f.get("fused"),
                "attention": f.get("attention"),
            })
        return {"frame": self.index, "time_s": round(self.time_s, 4), "stamp_ns": self.stamp_ns,
                "face_count": self.face_count, "faces": faces,
                "latency_ms": {k: round(v, 2) for k, v in self.received.items()}, "missing": self.missing}


class _Pending:
    def __init__(self, index, time_s, stamp_ns, expected):
        self.result = FrameResult(index=index, time_s=time_s, stamp_ns=stamp_ns, sent_wall=time.monotonic(),
                                  faces={}, received={}, missing=[])
        self.expected = set(expected)
        self.done = threading.Event()


# ---------------------------------------------------------------- the pipeline

class OfflinePipeline:
    """The described nodes plus a source and a recorder, in one process.

    Args:
        desc: which nodes, parameters and image topic (raw or compressed).
        frame_timeout_s: wait per frame for its outputs (``feed(wait=True)``).
        log_level: ROS log level of the nodes.
        skip_unstartable: leave out (and report in ``skipped``) nodes that fail to
            start, e.g. a classifier whose model is not installed.
        isolate: without a namespace in ``desc``, run in a private one
            (``offline_<pid>_<n>``) so other ROS processes cannot interfere.

    Use as a context manager; :meth:`feed` publishes one frame.
    """

    def __init__(self, desc: PipelineDescription, frame_timeout_s: float = FRAME_TIMEOUT_S,
                 first_frame_timeout_s: float = FIRST_FRAME_TIMEOUT_S, log_level: str | None = None,
                 skip_unstartable: bool = False, isolate: bool = True):
        if isolate and not desc.namespace:
            # Other ROS processes on this host/domain (a robot's camera, someone's test)
            # must not feed these nodes, nor these results reach them.
            desc = dataclasses.replace(desc, namespace=f"offline_{os.getpid()}_{next(_COUNTER)}")
            # nobody outside can listen to the REP-155 producer there: leave it out
            desc = dataclasses.replace(desc, nodes=tuple(n for n in desc.nodes if n.short != "hri"))
        self.desc = desc
        self.skip_unstartable = skip_unstartable
        self.skipped: dict[str, str] = {}
        self.frame_timeout_s = frame_timeout_s
        self.first_frame_timeout_s = first_frame_timeout_s
        self.log_level = log_level
        self.topics = desc.output_topics()
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._last_stamp = None
        self._frames_sent = 0
        self.late_outputs = 0
        #: Frames published a second time because none of their outputs came (see RESEND_AFTER_S).
        self.resent = 0
        self.extra_nodes: list = []
        self.on_message = None  # optional callback(topic, msg) for extra consumers (a BT)

    # -- set up
    def __enter__(self) -> "OfflinePipeline":
        from rclpy.node import Node
        from sensor_msgs.msg import CompressedImage, Image

        from .nodes.qos import RESULT_QOS
        from .runner import Pipeline

        self.pipeline = self._start_pipeline(Pipeline)
        try:
            self.node = Node("offline_source_recorder", context=self.pipeline.context)
            if self.desc.compressed:
                self.image_topic = self.desc.image_topic.rstrip("/") + "/compressed"
                self.pub = self.node.create_publisher(CompressedImage, self.image_topic, RESULT_QOS)
            else:
                self.image_topic = self.desc.image_topic
                self.pub = self.node.create_publisher(Image, self.image_topic, RESULT_QOS)
            self.subs = [self._subscribe(t) for t in self.topics]
            self.pipeline.add_node(self.node)
            self._wait_discovery()
        except BaseException:
            self.pipeline.stop()
            raise
        return self

    def _make(self, Pipeline, desc):
        return Pipeline(desc.short_names, params_file=desc.params_file, remaps=desc.remap_args(),
                        namespace=desc.namespace or None, parameter_overrides=desc.parameter_overrides(),
                        log_level=self.log_level)

    def _probe(self, spec) -> None:
        """Construct one node in a context of its own (no executor) and destroy it again.

        Raises what the node's constructor raises (a missing model, a bad parameter).
        """
        import rclpy
        from rclpy.context import Context
        from rclpy.parameter import Parameter

        from .nodes import node_class
        from .runner import default_log_level_before, restore_default_log_level, ros_args

        context = Context()
        saved_level = default_log_level_before(self.log_level)
        rclpy.init(args=ros_args(self.desc.params_file, self.desc.remap_args(), self.desc.namespace or None,
                                 self.log_level), context=context)
        try:
            overrides = [Parameter(k, value=v) for k, v in spec.overrides.items()]
            node_class(spec.short)(context=context, parameter_overrides=overrides).destroy_node()
        finally:
            rclpy.try_shutdown(context=context)
            restore_default_log_level(saved_level)

    def _start_pipeline(self, Pipeline):
        """Start the nodes; with ``skip_unstartable`` leave out (and report) those that fail to start."""
        import sys

        if self.skip_unstartable:  # known failures of this process: do not probe again
            known = {n.name: _UNSTARTABLE[(n.short, self.desc.params_file)] for n in self.desc.nodes
                     if (n.short, self.desc.params_file) in _UNSTARTABLE}
            if known:
                self.skipped.update(known)
                self.desc = dataclasses.replace(self.desc, nodes=tuple(n for n in self.desc.nodes
                                                                        if n.name not in known))
                self.topics = self.desc.output_topics()
        try:
            return self._make(Pipeline, self.desc).start()
        except Exception:
            if not self.skip_unstartable:
                raise
        keep = []
        for spec in self.desc.nodes:
            try:
                self._probe(spec)
                keep.append(spec)
            except Exception as e:  # noqa: BLE001 - a node that cannot start (missing model, bad parameter)
                self.skipped[spec.name] = _UNSTARTABLE[(spec.short, self.desc.params_file)] = \
                    f"{type(e).__name__}: {e}"
                print(f"emotion-perception: {spec.name} cannot start, running without it ({e})", file=sys.stderr)
        self.desc = dataclasses.replace(self.desc, nodes=tuple(keep))
        self.topics = self.desc.output_topics()
        return self._make(Pipeline, self.desc).start()

    def _subscribe(self, topic: str):
        from emotion_perception_msgs.msg import (AttentionArray, BlendshapesArray, EmotionArray, FaceCropArray,
                                                 FaceMeshArray)

        from .nodes.qos import RESULT_QOS

        if topic == "faces/crops":  # waited for like every output, not recorded (the image model's input)
            return self.node.create_subscription(FaceCropArray, topic, lambda m: self._on_any(topic, m), RESULT_QOS)
        if topic == "faces/mesh":
            return self.node.create_subscription(FaceMeshArray, topic, lambda m: self._on_mesh(topic, m), RESULT_QOS)
        if topic == "faces/blendshapes":
            return self.node.create_subscription(BlendshapesArray, topic, lambda m: self._on_any(topic, m),
                                                 RESULT_QOS)
        if topic == "attention":
            return self.node.create_subscription(AttentionArray, topic, lambda m: self._on_attention(topic, m),
                                                 RESULT_QOS)
        return self.node.create_subscription(EmotionArray, topic, lambda m: self._on_emotion(topic, m), RESULT_QOS)

    def _wait_discovery(self) -> None:
        from .launch_description import IMAGE_NODES

        consumers = sum(1 for n in self.desc.nodes if n.short in IMAGE_NODES)
        deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            if (self.pub.get_subscription_count() >= consumers
                    and all(s.get_publisher_count() >= 1 for s in self.subs)):
                # the lazy nodes the recorder listens to subscribe to their inputs (nodes/lazy.py)
                self.pipeline.wait_inputs_settled(max(0.0, deadline - time.monotonic()))
                time.sleep(0.2)  # let the matched endpoints settle before the first frame
                return
            time.sleep(0.02)
        silent = [s.topic_name for s in self.subs if s.get_publisher_count() < 1]
        raise RuntimeError(
            f"the nodes did not discover the offline source/recorder within {DISCOVERY_TIMEOUT_S:.0f} s: "
            f"{self.pub.get_subscription_count()} of {consumers} image subscribers on {self.pub.topic_name}, "
            f"no publisher on {', '.join(silent) or '-'} (check FASTDDS_BUILTIN_TRANSPORTS / XML profile)")

    def __exit__(self, *exc) -> None:
        # Stop the executor before destroying anything it may be waiting on.
        extra = [self.node] + list(self.extra_nodes)
        self.pipeline.stop()
        for node in extra:
            node.destroy_node()

    def add_node(self, node) -> None:
        """Spin ``node`` (created in ``self.pipeline.context``) with the pipeline; destroyed on exit."""
        self.extra_nodes.append(node)
        self.pipeline.add_node(node)

    # -- recording
    def _entry(self, header):
        from .nodes.stamps import stamp_ns

        with self._lock:
            p = self._pending.get(stamp_ns(header))
        if p is None:
            self.late_outputs += 1
        return p

    def _arrived(self, p: _Pending, topic: str) -> None:
        r = p.result.received
        r[topic] = (time.monotonic() - p.result.sent_wall) * 1000.0  # a repeat keeps the newest
        # The fusion node publishes a frame's fused array once, after every running
        # classifier delivered its array for that frame (or after its max_wait_s), so
        # the frame is complete when every expected topic has arrived.
        if p.expected <= set(r):
            p.done.set()

    def _face(self, p, fid):
        return p.result.faces.setdefault(fid, {"emotions": {}, "fused": None, "attention": None, "mesh": None})

    def _on_mesh(self, topic, msg):
        self._notify(topic, msg)
        p = self._entry(msg.header)
        if p is None:
            return
        with self._lock:
            p.result.face_count = len(msg.faces)
            for m in msg.faces:
                self._face(p, m.face_id)["mesh"] = mesh_to_dict(m)
            self._arrived(p, topic)

    def _on_emotion(self, topic, msg):
        self._notify(topic, msg)
        p = self._entry(msg.header)
        if p is None:
            return
        model = EMOTION_TOPIC_MODEL.get(topic, topic)
        with self._lock:
            for e in msg.emotions:
                d = emotion_to_dict(e)
                face = self._face(p, e.face_id)
                if model == "fused":
                    face["fused"] = d
                else:
                    face["emotions"][model] = d
            self._arrived(p, topic)

    def _on_attention(self, topic, msg):
        self._notify(topic, msg)
        p = self._entry(msg.header)
        if p is None:
            return
        with self._lock:
            for a in msg.faces:
                self._face(p, a.face_id)["attention"] = attention_to_dict(a)
            self._arrived(p, topic)

    def _on_any(self, topic, msg):
        self._notify(topic, msg)
        p = self._entry(msg.header)
        if p is not None:
            with self._lock:
                self._arrived(p, topic)

    def _notify(self, topic, msg):
        if self.on_message is not None:
            self.on_message(topic, msg)

    # -- feeding
    def _stamp_for(self, frame) -> int:
        if frame.stamp_ns is not None:
            return frame.stamp_ns
        return STAMP_BASE_NS + int(round(frame.time_s * 1e9))

    def _message(self, frame, stamp: int):
        from builtin_interfaces.msg import Time
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import Header

        from . import conversions

        header = Header(stamp=Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000),
                        frame_id=frame.frame_id or "camera")
        if frame.raw is not None and frame.msgtype.endswith("CompressedImage") == self.desc.compressed:
            msg = deserialize_message(frame.raw, CompressedImage if self.desc.compressed else Image)
            msg.header = header  # the bag's own stamp and frame_id (already in `header`)
        elif self.desc.compressed:
            msg = conversions.rgb_to_compressed_msg(frame.rgb, header)
        else:
            msg = conversions.rgb_to_image_msg(frame.rgb, header)
        return msg

    def feed(self, frame, wait: bool = True) -> FrameResult | None:
        """Publish one frame; with ``wait`` return its outputs (``missing`` lists late ones).

        Frames with the same stamp as one still pending (a looping bag) replace it.
        Without ``wait`` return None; collect results with :meth:`collect`.
        """
        stamp = self._stamp_for(frame)
        msg = self._message(frame, stamp)
        p = _Pending(frame.index, frame.time_s, stamp, self.topics)
        with self._lock:
            self._pending[stamp] = p
        p.result.sent_wall = time.monotonic()
        received = self._images_received()
        self.pub.publish(msg)
        self._frames_sent += 1
        if not wait:
            return None
        timeout = self.first_frame_timeout_s if self._frames_sent == 1 else self.frame_timeout_s
        if not p.done.wait(min(RESEND_AFTER_S, timeout)):
            with self._lock:
                nothing_yet = not p.result.received
            if nothing_yet and self._images_received() == received:  # the image was lost on the way
                self.resent += 1
                self.pub.publish(msg)
            p.done.wait(max(0.0, timeout - RESEND_AFTER_S))
        if SETTLE_S:
            time.sleep(SETTLE_S)
        with self._lock:
            self._pending.pop(stamp, None)
            p.result.missing = sorted(set(self.topics) - set(p.result.received))
        return p.result

    def _images_received(self) -> int | None:
        """The landmark node's count of camera images taken (None without one)."""
        node = self.pipeline.nodes.get("landmark")
        return None if node is None else node.images_received

    def collect(self, older_than_s: float = 0.0) -> list[FrameResult]:
        """Results of frames fed without waiting that are complete or older than ``older_than_s``."""
        now = time.monotonic()
        out = []
        with self._lock:
            for stamp, p in list(self._pending.items()):
                if p.done.is_set() or now - p.result.sent_wall >= older_than_s:
                    del self._pending[stamp]
                    p.result.missing = sorted(set(self.topics) - set(p.result.received))
                    out.append(p.result)
        return sorted(out, key=lambda r: r.index)

    def drain(self, timeout_s: float | None = None) -> list[FrameResult]:
        """Wait for every pending frame (or its timeout) and return all of them."""
        deadline = time.monotonic() + (self.frame_timeout_s if timeout_s is None else timeout_s)
        while time.monotonic() < deadline:
            with self._lock:
                if all(p.done.is_set() for p in self._pending.values()):
                    break
            time.sleep(0.01)
        return self.collect(older_than_s=0.0)


# ---------------------------------------------------------------- the run command

def run_to_folder(source, out_dir, desc: PipelineDescription, progress: bool = True, video: bool = True,
                  frame_timeout_s: float = FRAME_TIMEOUT_S, log_level: str | None = None) -> dict:
    """Every frame of ``source`` through the nodes; write the run outputs to ``out_dir``.

    Returns:
        the summary (also written to ``summary.json``).
    """
    from tqdm import tqdm

    from .run_output import RunWriter
    from .sources import skipped_inputs

    writer = RunWriter(out_dir, fps=source.fps or 25.0, video=video)
    t0 = time.monotonic()
    with OfflinePipeline(desc, frame_timeout_s=frame_timeout_s, log_level=log_level, skip_unstartable=True) as op:
        bar = tqdm(total=source.count, unit="frame", desc=source.name, disable=not progress, leave=False)
        try:
            for frame in source:
                writer.add(op.feed(frame, wait=True), frame.rgb)
                bar.update(1)
        finally:
            bar.close()
            source.close()
    wall = time.monotonic() - t0
    info = {"input": str(getattr(source, "path", source.name)), "input_kind": source.kind,
            "fps": source.fps, "nodes": list(op.desc.short_names), "nodes_not_started": op.skipped,
            "compressed": desc.compressed, "inputs_skipped": skipped_inputs(source),
            "wall_time_s": round(wall, 2)}
    return writer.finish(info)
