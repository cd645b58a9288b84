"""A test probe for a running :class:`emotion_perception.runner.Pipeline`: publishes
camera images and records every output topic by header stamp, with receive times.

Not a test module; the fault and overload tests import it.
"""

from __future__ import annotations

import collections
import importlib
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from emotion_perception.conversions import rgb_to_image_msg
from emotion_perception.nodes.qos import RESULT_QOS, SENSOR_QOS

#: Output topics of the package: topic -> (message module, class).
OUTPUTS = {
    "faces/mesh": ("emotion_perception_msgs.msg", "FaceMeshArray"),
    "faces/blendshapes": ("emotion_perception_msgs.msg", "BlendshapesArray"),
    "emotion/transformer": ("emotion_perception_msgs.msg", "EmotionArray"),
    "emotion/lstm": ("emotion_perception_msgs.msg", "EmotionArray"),
    "emotion/frame": ("emotion_perception_msgs.msg", "EmotionArray"),
    "emotion/image": ("emotion_perception_msgs.msg", "EmotionArray"),
    "emotion": ("emotion_perception_msgs.msg", "EmotionArray"),
    "attention": ("emotion_perception_msgs.msg", "AttentionArray"),
}
#: What the probe records with: reliable, and deep enough that a probe behind on a busy
#: machine loses nothing (its reader acknowledges in Fast DDS's threads; a node's own
#: queue, RESULT_QOS, keeps the last 10).
RECORD_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
#: Short node name -> the topic it publishes.
NODE_OUTPUT = {"landmark": "faces/mesh", "transformer": "emotion/transformer", "lstm": "emotion/lstm",
               "frame": "emotion/frame", "image_emotion": "emotion/image", "emotion_fusion": "emotion",
               "attention": "attention"}


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def image_msg(rgb: np.ndarray, stamp_ns: int) -> Image:
    """An rgb8 camera image of frame ``camera`` stamped ``stamp_ns``."""
    header = Header(frame_id="camera")
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return rgb_to_image_msg(rgb, header)


class Probe:
    """Publishes ``image`` and records ``topics`` (stamp -> (msg, receive monotonic s));
    ``arrays[topic]`` keeps every message in arrival order (images with equal stamps
    differ by ``image_seq``)."""

    def __init__(self, pipeline, topics=("faces/mesh",), name: str = "probe"):
        self.pipeline = pipeline
        self.node = Node(name, context=pipeline.context)
        self.pub = self.node.create_publisher(Image, "image", SENSOR_QOS)
        self.got: dict[str, dict[int, tuple[object, float]]] = {t: {} for t in topics}
        self.order: dict[str, list[int]] = {t: [] for t in topics}
        self.arrays: dict[str, list] = {t: [] for t in topics}
        self.diag: dict[str, dict[str, str]] = {}
        self.cond = threading.Condition()
        for t in topics:
            module, cls = OUTPUTS[t]
            kind = getattr(importlib.import_module(module), cls)
            self.node.create_subscription(kind, t, self._recorder(t), RECORD_QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, RESULT_QOS)
        pipeline.add_node(self.node)
        # matched to the pipeline's publishers, and the nodes whose output it records
        # subscribed to their inputs (nodes/lazy.py)
        published = {pub.topic_name for n in pipeline.nodes.values() for pub in n.publishers}
        deadline = time.monotonic() + 30.0
        while any(s.get_publisher_count() == 0 for s in self.node.subscriptions if s.topic_name in published):
            assert time.monotonic() < deadline, "the probe did not match the pipeline's publishers"
            time.sleep(0.02)
        assert pipeline.wait_inputs_settled(), "the recorded nodes did not subscribe to their inputs"

    def _recorder(self, topic):
        def cb(msg):
            now = time.monotonic()
            with self.cond:
                s = stamp_of(msg)
                self.got[topic][s] = (msg, now)
                self.order[topic].append(s)
                self.arrays[topic].append(msg)
                self.cond.notify_all()
        return cb

    def _on_diag(self, msg):
        with self.cond:
            for s in msg.status:
                self.diag[s.name.rsplit("/", 1)[-1]] = {kv.key: kv.value for kv in s.values}
            self.cond.notify_all()

    def publish(self, rgb: np.ndarray, stamp_ns: int) -> float:
        self.pub.publish(image_msg(rgb, stamp_ns))
        return time.monotonic()

    def publish_msg(self, msg, stamp_ns: int) -> float:
        """Publish a prebuilt image with a new stamp (big frames: no per-frame copy in Python)."""
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
        self.pub.publish(msg)
        return time.monotonic()

    def wait(self, topic: str, stamp_ns: int, timeout: float = 5.0):
        end = time.monotonic() + timeout
        with self.cond:
            while stamp_ns not in self.got[topic] and time.monotonic() < end:
                self.cond.wait(0.02)
            return self.got[topic].get(stamp_ns)

    def wait_all(self, topics, stamp_ns: int, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        return all(self.wait(t, stamp_ns, max(0.0, end - time.monotonic())) is not None for t in topics)

    def send_until_served(self, rgb, stamp_ns: int, topic="faces/mesh", tries=3, timeout=5.0):
        """Publish (again, with the same stamp, if the best-effort frame never reached the
        landmark node) until served. A frame that arrived and is only slow is not sent
        again: its copy, timed by its late arrival, ended the face's track (two ids for
        one face on a loaded machine; offline.RESEND_AFTER_S)."""
        lm = self.pipeline.nodes.get("landmark")
        end = time.monotonic() + timeout
        for _ in range(tries):
            before = lm.images_received if lm is not None else None
            self.publish(rgb, stamp_ns)
            while True:
                r = self.wait(topic, stamp_ns, timeout / tries)
                if r is not None:
                    return r
                if time.monotonic() >= end:
                    return None
                if lm is None or lm.images_received == before:
                    break  # lost on the way: send it again
        return None

    def wait_diag(self, node: str, key: str, at_least: float, timeout: float = 5.0) -> float:
        end = time.monotonic() + timeout
        with self.cond:
            while float(self.diag.get(node, {}).get(key, "0")) < at_least and time.monotonic() < end:
                self.cond.wait(0.1)
            return float(self.diag.get(node, {}).get(key, "0"))


def constructible_nodes(candidates) -> list[str]:
    """The short names among ``candidates`` whose node can be built here (its module
    and model files exist). The landmark node must always be there."""
    import rclpy
    from rclpy.context import Context

    from emotion_perception.nodes import node_class

    ok = []
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        for name in candidates:
            try:
                node = node_class(name)(context=ctx)
            except Exception:  # noqa: BLE001 - module or model not shipped yet
                continue
            node.destroy_node()
            ok.append(name)
    finally:
        rclpy.try_shutdown(context=ctx)
    return ok


DOWNSTREAM = collections.OrderedDict((k, v) for k, v in NODE_OUTPUT.items() if k != "landmark")
