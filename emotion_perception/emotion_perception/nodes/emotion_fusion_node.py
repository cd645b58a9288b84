"""``emotion_fusion_node``: the fused emotion behaviour trees listen to.

Subscribes ``emotion/transformer``, ``emotion/lstm``, ``emotion/frame`` and
``emotion/image`` (EmotionArray each; any of them may be absent) and publishes
``emotion`` (EmotionArray, 7 classes, model ``fused``) per face id, combined by
:class:`emotion_perception.fusion.EmotionFusion` (calibrated log-linear pooling,
smoothing with hysteresis, ``confident`` flag, valence/arousal).

- Inputs older than ``stale_after_s`` (by header stamp, against the newest stamp of
  that face) are dropped: a model that stops publishing stops counting.
- A face id is forgotten when none of the input arrays of the newest image stamp
  names it, or when no input named it for ``forget_after_s``.
- One fused array per image, published as soon as every running model has
  delivered its array for the newest image stamp (event-driven: no timer delay),
  with that image's header. A model that is late by more than ``max_wait_s`` is
  not waited for (a timer publishes without it); one that stopped (older than
  ``stale_after_s``) no longer counts as running. An input array with no face
  yields an empty ``emotion`` array ("no face").
"""

from __future__ import annotations

import threading
import time

from emotion_perception_msgs.msg import EmotionArray
from rclpy.node import Node

from .. import conversions
from ..fusion import EmotionFusion, load_params
from .common import RESULT_QOS, Diagnostics, OnceLog, Param, declare_parameters, run_node, stamp_ns

INPUT_TOPICS = ("emotion/transformer", "emotion/lstm", "emotion/frame", "emotion/image")
#: p95 processing time above which /diagnostics warns, milliseconds.
WARN_PROCESSING_MS = 10.0

PARAMS = [
    Param("stale_after_s", 1.0, "drop an input older than this, seconds (header stamps)", 0.05, 60.0),
    Param("forget_after_s", 2.0, "forget a face no input named for this long, seconds (header stamps)", 0.1, 600.0),
    Param("smoothing_tau_s", 0.3, "time constant of the smoothing of the fused log-probabilities, seconds (0 = off)",
          0.0, 10.0),
    Param("hysteresis", 0.1, "probability margin a class needs over the current label to take it", 0.0, 0.9),
    Param("min_confidence", 0.45, "fused probability of the label below which confident is false", 0.0, 1.0),
    Param("warmup_s", 0.2, "a face seen for less than this is not confident, seconds", 0.0, 10.0),
    Param("max_wait_s", 0.05, "longest wait for the other running models' arrays of an image before publishing "
          "without them, seconds", 0.005, 1.0, read_only=True),
]


class EmotionFusionNode(Node):
    def __init__(self, **kwargs):
        super().__init__("emotion_fusion_node", **kwargs)
        self.params = declare_parameters(self, PARAMS, self._on_params)
        pooling, meta = load_params()
        self.fusion = EmotionFusion(pooling, **self._fusion_kwargs())
        self.once = OnceLog(self)
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[int, set[str]]] = {}  # topic -> (stamp, face ids)
        self._dirty_header = None
        self._dirty_since = 0.0  # monotonic time the newest unpublished stamp arrived
        self._published = -1  # stamp of the last published array, ns
        self.diagnostics = Diagnostics(self, WARN_PROCESSING_MS, extra=lambda: {
            "faces": len(self.fusion.face_ids), "inputs": ",".join(sorted(self._latest)) or "none"})
        self.pub = self.create_publisher(EmotionArray, "emotion", RESULT_QOS)
        self.subs = [self.create_subscription(EmotionArray, t, lambda m, t=t: self.on_input(t, m), RESULT_QOS)
                     for t in INPUT_TOPICS]
        # Fallback only: publishes an image whose arrays did not all arrive in time.
        self.timer = self.create_timer(max(0.005, self.params["max_wait_s"] / 2), self._publish_overdue)
        profiles = "; ".join(f"{pr.name}: " + ", ".join(f"{m} {w:.2f}" for m, w in pr.weight.items())
                             for pr in pooling.profiles)
        self.get_logger().info(f"fusing {', '.join(INPUT_TOPICS)} -> emotion (weights {profiles})")

    def _fusion_kwargs(self) -> dict:
        return {k: self.params[k] for k in ("stale_after_s", "smoothing_tau_s", "hysteresis", "min_confidence",
                                            "warmup_s")}

    def _on_params(self, updates: dict) -> None:
        with self._lock:
            for k, v in updates.items():
                if hasattr(self.fusion, k):
                    setattr(self.fusion, k, v)

    def on_input(self, topic: str, msg: EmotionArray) -> None:
        stamp = stamp_ns(msg.header)
        ids = set()
        with self._lock:
            for e in msg.emotions:
                try:
                    est = conversions.emotion_msg_to_estimate(e)
                    self.fusion.add(est, stamp)
                    ids.add(est.face_id)
                except ValueError as err:  # ConversionError, unknown class
                    self.diagnostics.error()
                    self.once.warn(f"bad:{topic}", f"dropped an estimate on {topic}: {err}")
            self._latest[topic] = (stamp, ids)
            if stamp < self._published - self.params["stale_after_s"] * 1e9:
                self._published = -1  # time jumped back (looping bag): start over
            # A late array of an image already published updates the state and shows
            # in the next image's array; each image is published once.
            if stamp > self._published:
                if self._dirty_header is None or stamp > stamp_ns(self._dirty_header):
                    self._dirty_since = time.monotonic()
                if self._dirty_header is None or stamp >= stamp_ns(self._dirty_header):
                    self._dirty_header = msg.header
            complete = self._dirty_header is not None and self._all_reported(stamp_ns(self._dirty_header))
        if complete:
            self.publish()

    def _all_reported(self, newest: int) -> bool:
        """True when every running model has delivered its array for ``newest``.

        Running: its topic has a publisher and, once it has reported, reported within
        stale_after_s of ``newest`` (abs(): after time jumps back, a model still at
        the old stamps is not waited for). A publisher that has not reported yet (a
        model starting up) is waited for, up to max_wait_s.
        """
        stale_ns = self.params["stale_after_s"] * 1e9
        for topic, sub in zip(INPUT_TOPICS, self.subs):
            if topic in self._latest:
                stamp = self._latest[topic][0]
                if abs(newest - stamp) <= stale_ns and stamp != newest:
                    return False
            elif self.count_publishers(sub.topic_name) > 0:
                return False
        return True

    def _publish_overdue(self) -> None:
        with self._lock:
            overdue = self._dirty_header is not None and \
                time.monotonic() - self._dirty_since >= self.params["max_wait_s"]
        if overdue:
            self.publish()

    def _present_faces(self, newest: int) -> set[str]:
        """Faces named at the newest stamp by the topics that have reported it (every
        model sees the same faces of one image, so a face none of them names has left;
        a topic still at an older stamp does not vouch for its older faces)."""
        stale_ns = self.params["stale_after_s"] * 1e9
        present = set()
        for topic, (stamp, ids) in list(self._latest.items()):
            if newest - stamp > stale_ns:
                del self._latest[topic]  # that model stopped
            elif stamp == newest:
                present |= ids
        return present

    def publish(self) -> None:
        with self._lock:
            header = self._dirty_header
            if header is None:
                return
            self._dirty_header = None
            t0 = time.perf_counter()
            newest = stamp_ns(header)
            self._published = newest
            present = self._present_faces(newest)
            for f in self.fusion.face_ids:
                if f not in present:
                    self.fusion.forget(f)
            self.fusion.forget_stale_faces(newest, self.params["forget_after_s"])
            estimates = [e for e in (self.fusion.fuse(f, newest) for f in sorted(self.fusion.face_ids))
                         if e is not None]
        self.pub.publish(conversions.estimates_to_emotion_array(estimates, header))
        self.diagnostics.tick((time.perf_counter() - t0) * 1000.0)


def main(args=None) -> int:
    return run_node(EmotionFusionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
