"""``emotion_fusion_node``: the fused emotion behaviour trees listen to.

Subscribes, of ``emotion/transformer``, ``emotion/lstm``, ``emotion/frame`` and
``emotion/image`` (EmotionArray each; any of them may be absent), those whose model
carries weight in ``models/fusion.json`` in a profile the running models can reach
(:meth:`~emotion_perception.fusion.PoolingParams.weighted_models`: the stills'
profile, or the stream profile once the LSTM's estimate rests on enough frames), or those the
``inputs`` parameter names (``inputs:=emotion/image,emotion/lstm,emotion/frame`` adds the frame classifier back):
a model of weight 0 then has no subscriber and its node sleeps (:mod:`.lazy`). A topic
whose model is not known yet is subscribed until its first estimate names it. It publishes
``emotion`` (EmotionArray, 7 classes, model ``fused``) per face id, combined by
:class:`emotion_perception.fusion.EmotionFusion` (calibrated log-linear pooling,
smoothing with hysteresis, ``confident`` flag, valence/arousal).

- Images are told apart and ordered by their key
  (:func:`~emotion_perception.nodes.stamps.image_key`: the landmark node's image number
  and stream time, which cameras with missing, repeated or late stamps still get),
  durations are measured in stream time.
- Inputs older than ``stale_after_s`` (stream time, against the newest of that face)
  are dropped: a model that stops publishing stops counting.
- A face id is forgotten when none of the input arrays of the image being fused
  names it, or when no input named it for ``forget_after_s``.
- One fused array per image, in image order, published as soon as every running
  model whose array can change it has delivered its array for that image
  (event-driven: no timer delay), with that image's header. A model whose weight is 0
  in every profile the running models can reach (with the image model and the LSTM
  running, the shipped profiles give the transformer and svm-landmarks 0:
  models/fused.md) is not waited for while every face it last named is in the
  image's other arrays: its array of that image arrives after the publication and
  updates the state as a late one. This keeps the three models' processing off the
  path of ``emotion`` (docs/benchmarks.md). When it last named a face the others do
  not (the face left, or is too small for the image model's crop), its array of the
  image is waited for, so a face that left is gone from that very image. Arrays are fused in
  image order too, whatever order they arrive in (models finish an image at different times; at high rates their arrays
  of consecutive images interleave). A model that is late by more than
  ``max_wait_s`` is not waited for (a timer publishes without it); one that
  stopped (older than ``stale_after_s``) no longer counts as running. An input
  array with no face yields an empty ``emotion`` array ("no face").
"""

from __future__ import annotations

import threading
import time

from emotion_perception_msgs.msg import EmotionArray
from rclpy.node import Node

from .. import conversions
from ..fusion import EmotionFusion, load_params, mapping_to_7
from .bad_input import OnceLog, refuse_oversized
from .diagnostics import Diagnostics
from .lazy import CHECK_PERIOD_S, InputSubscriptions
from .parameters import Param, declare_parameters
from .process import run_node
from .qos import RESULT_QOS
from .stamps import image_key

INPUT_TOPICS = ("emotion/transformer", "emotion/lstm", "emotion/frame", "emotion/image")
#: Images waiting for their arrays beyond this many are published without them.
MAX_PENDING_IMAGES = 100
#: p95 processing time above which /diagnostics warns, milliseconds.
WARN_PROCESSING_MS = 10.0

PARAMS = [
    Param("stale_after_s", 1.0, "drop an input older than this, seconds (image time)", 0.05, 60.0),
    Param("forget_after_s", 2.0, "forget a face no input named for this long, seconds (image time)", 0.1, 600.0),
    Param("smoothing_tau_s", 0.3, "time constant of the smoothing of the fused log-probabilities, seconds (0 = off)",
          0.0, 10.0),
    Param("hysteresis", 0.1, "probability margin a class needs over the current label to take it", 0.0, 0.9),
    Param("min_confidence", 0.7, "fused probability of the label below which confident is false", 0.0, 1.0),
    Param("warmup_s", 0.2, "a face seen for less than this is not confident, seconds", 0.0, 10.0),
    Param("max_wait_s", 0.05, "longest wait for the other running models' arrays of an image before publishing "
          "without them, seconds", 0.005, 1.0, read_only=True),
    Param("inputs", "", "input topics to subscribe to, comma-separated (e.g. emotion/image,emotion/lstm); empty: "
          "those whose model carries weight in a fusion.json profile the running models can reach", read_only=True),
]


def _check_inputs(values: dict) -> str | None:
    """None if the ``inputs`` parameter names only known input topics."""
    unknown = [t for t in parse_inputs(values["inputs"]) if t not in INPUT_TOPICS]
    if unknown:
        return f"inputs: unknown topic(s) {', '.join(unknown)}; choose from {', '.join(INPUT_TOPICS)}"
    return None


def parse_inputs(text: str) -> list[str]:
    """The ``inputs`` parameter as a list of topics ("" -> [])."""
    return [t.strip() for t in text.split(",") if t.strip()]


class EmotionFusionNode(Node):
    def __init__(self, **kwargs):
        super().__init__("emotion_fusion_node", **kwargs)
        self.params = declare_parameters(self, PARAMS, self._on_params, validate=_check_inputs)
        pooling, meta = load_params()
        self.fusion = EmotionFusion(pooling, **self._fusion_kwargs())
        self._models: dict[str, str] = {}  # topic -> the model name its last estimates carried
        self._weightless: dict[frozenset, frozenset] = {}  # running (topic, model) pairs -> topics of weight 0 in every reachable profile
        self.once = OnceLog(self)
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[tuple[int, int], set[str]]] = {}  # topic -> (newest image key, its face ids)
        self._pending: dict[tuple[int, int], _Pending] = {}  # image key -> arrays so far
        self._silent: set[str] = set()  # topics given up on once (max_wait_s): not waited for until they speak
        self._published: tuple[int, int] | None = None  # image key of the last published array
        self.diagnostics = Diagnostics(self, WARN_PROCESSING_MS, extra=lambda: {
            "faces": len(self.fusion.face_ids), "inputs": ",".join(sorted(self._latest)) or "none",
            "subscribed": ",".join(self.inputs.subs) or "none", "subscribed_because": self._why})
        self.pub = self.create_publisher(EmotionArray, "emotion", RESULT_QOS)
        self._named = parse_inputs(self.params["inputs"])
        self._why = ""
        # Only the members that count are subscribed: a model of weight 0 whose topic is not
        # subscribed has no subscriber and sleeps (nodes/lazy.py).
        self.inputs = InputSubscriptions(self, {t: (EmotionArray, lambda m, t=t: self.on_input(t, m))
                                                for t in INPUT_TOPICS})
        # Fallback only: publishes an image whose arrays did not all arrive in time. It
        # runs only while an image waits (armed by the first array of an image, stopped
        # when none waits): a timer always running at 40 Hz woke the node more often than
        # the camera's images did (docs/benchmarks.md, "Where the CPU goes").
        self.timer = self.create_timer(max(0.005, self.params["max_wait_s"] / 2), self._publish_overdue)
        self.timer.cancel()
        self._timer_armed = False
        self._select_inputs()
        self.select_timer = self.create_timer(CHECK_PERIOD_S, self._select_inputs)
        profiles = "; ".join(f"{pr.name}: " + ", ".join(f"{m} {w:.2f}" for m, w in pr.weight.items())
                             for pr in pooling.profiles)
        self.get_logger().info(f"fusing {', '.join(INPUT_TOPICS)} -> emotion (weights {profiles})")

    def _select_inputs(self) -> None:
        """Subscribe to the topics the ``inputs`` parameter names or, when it names none,
        to those whose model may carry weight: a topic whose model is not known yet
        (nothing heard, or its node left: a restarted node may run another model) is
        subscribed until its first estimate names the model; a known one while its
        model's weight in the pooling profile for the running models (fusion.json) is
        not 0. Checked every CHECK_PERIOD_S (in the executor thread, never inside an
        input's own callback)."""
        if self._named:
            self._why = "named by the inputs parameter"
            self.inputs.set(self._named)
            return
        with self._lock:
            for t in list(self._models):
                if self.count_publishers(self.inputs.topic_name(t)) == 0:
                    del self._models[t]  # its node left: learn the model again when one comes back
            models = dict(self._models)
        pooling = self.fusion.params
        weighted = pooling.weighted_models(set(models.values()))
        wanted = [t for t in INPUT_TOPICS if t not in models or models[t] in weighted]
        off = [f"{t} ({models[t]})" for t in INPUT_TOPICS if t not in wanted]
        self._why = "weight in fusion.json" + (f"; weight 0 in every profile: {', '.join(off)}" if off else "")
        if self.inputs.set(wanted):
            with self._lock:
                for t in INPUT_TOPICS:
                    if t not in self.inputs.subs:
                        self._latest.pop(t, None)
                        self._silent.discard(t)
                ready = self._take_ready()
                self._arm_timer()
            self._publish_all(ready)
            self.get_logger().info(f"subscribed to {', '.join(self.inputs.subs) or 'nothing'} ({self._why})")

    def _fusion_kwargs(self) -> dict:
        return {k: self.params[k] for k in ("stale_after_s", "smoothing_tau_s", "hysteresis", "min_confidence",
                                            "warmup_s")}

    def _on_params(self, updates: dict) -> None:
        with self._lock:
            for k, v in updates.items():
                if hasattr(self.fusion, k):
                    setattr(self.fusion, k, v)

    def on_input(self, topic: str, msg: EmotionArray) -> None:
        if refuse_oversized(msg.emotions, topic, self.once, self.diagnostics):
            return
        key = image_key(msg)
        stamp = key[0]  # image time, ns
        estimates = []
        for e in msg.emotions:
            try:
                est = conversions.emotion_msg_to_estimate(e)
                mapping_to_7(tuple(est.class_names))  # classes the fusion cannot map: refused here
                estimates.append(est)
            except ValueError as err:  # ConversionError, unknown class
                self.diagnostics.error()
                self.once.warn(f"bad:{topic}", f"dropped an estimate on {topic}: {err}")
        with self._lock:
            if self._published is not None and stamp < self._published[0] - self.params["stale_after_s"] * 1e9:
                # time jumped back (a looping bag): the old timeline's images are void
                self._published = None
                self._pending.clear()
                self._latest.clear()
                self._silent.clear()
            self._latest[topic] = (key, {e.face_id for e in estimates})
            if estimates:
                self._models[topic] = estimates[0].model
            self._silent.discard(topic)
            if self._published is not None and key <= self._published:
                # a late array of an image already published: it updates the state and
                # shows in the next image's array (each image is published once)
                for est in estimates:
                    self.fusion.add(est, stamp)
            else:
                entry = self._pending.get(key)
                if entry is None:
                    entry = self._pending[key] = _Pending(msg, time.monotonic())
                entry.arrays[topic] = estimates
            ready = self._take_ready()
            self._arm_timer()
        self._publish_all(ready)

    def _arm_timer(self) -> None:
        """Run the fallback timer while an image waits, stop it when none does (lock held)."""
        if self._pending and not self._timer_armed:
            self.timer.reset()
            self._timer_armed = True
        elif not self._pending and self._timer_armed:
            self.timer.cancel()
            self._timer_armed = False

    def _expected(self, topic: str, sub, key: tuple[int, int]) -> bool:
        """True while the model on ``topic`` may still deliver its array for image ``key``.

        Running: its topic has a publisher and, once it has reported, reported within
        stale_after_s of it. Models publish in image order, so one that has
        moved past ``key`` skipped it. A publisher that has not reported yet (a model
        starting up) is waited for, up to max_wait_s; a model once given up on that way
        is not waited for again until it delivers an array.
        """
        if topic in self._silent:
            return False
        if topic in self._latest:
            last = self._latest[topic][0]
            return last < key and key[0] - last[0] <= self.params["stale_after_s"] * 1e9
        return self.count_publishers(sub.topic_name) > 0

    def _take_ready(self, overdue_after_s: float | None = None) -> list:
        """Pop the pending images that can be published, oldest first, and fuse them.

        An image is ready when every running model has delivered its array for it
        (or moved past it), or when it waited ``overdue_after_s``; a newer image is
        never published before an older one. Call with the lock held.
        """
        out = []
        now = time.monotonic()
        while self._pending:
            key = min(self._pending)
            entry = self._pending[key]
            running = [t for t, sub in list(self.inputs.subs.items())
                       if t in entry.arrays or self._expected(t, sub, key)]
            complete = all(t in entry.arrays for t in running)
            if not complete:
                # a model of weight 0 is not waited for while the faces it last named are
                # all in this image's arrays; a face only it names (the image model has no
                # crop: too small, or gone) is settled by its array for this image
                named = {e.face_id for estimates in entry.arrays.values() for e in estimates}
                weightless = self._weightless_topics(running)
                complete = all(t in entry.arrays or (t in weightless and self._latest.get(t, (None, set()))[1] <= named)
                               for t in running)
            overdue = overdue_after_s is not None and now - entry.since >= overdue_after_s
            if not (complete or overdue or len(self._pending) > MAX_PENDING_IMAGES):
                break
            if not complete:
                self._silent |= {t for t in running if t not in entry.arrays}
            del self._pending[key]
            out.append((entry.first, self._fuse(key, entry)))
        return out

    def _weightless_topics(self, running: list) -> frozenset:
        """The topics among ``running`` whose model has weight 0 in every pooling profile
        the running models can reach: their arrays cannot change the fused estimate. A topic
        whose model is not known yet (no face seen on it) counts as weighted."""
        pairs = frozenset((t, self._models.get(t)) for t in running)
        out = self._weightless.get(pairs)
        if out is None:
            pooling = self.fusion.params
            weighted = pooling.weighted_models({m for _, m in pairs if m is not None})
            out = frozenset(t for t, m in pairs if m is not None and m not in weighted)
            if len(self._weightless) > 64:  # model names change only when a node restarts with another
                self._weightless.clear()
            self._weightless[pairs] = out
        return out

    def _publish_overdue(self) -> None:
        with self._lock:
            ready = self._take_ready(overdue_after_s=self.params["max_wait_s"])
            self._arm_timer()
        self._publish_all(ready)

    def _fuse(self, key: tuple[int, int], entry: "_Pending") -> list:
        """Add one image's arrays to the fusion and fuse its faces (lock held)."""
        t0 = time.perf_counter()
        stamp = key[0]
        for estimates in entry.arrays.values():
            for est in estimates:
                self.fusion.add(est, stamp)
        self._published = key
        # Every model sees the same faces of one image: a face none of this image's
        # arrays names has left.
        present = {e.face_id for estimates in entry.arrays.values() for e in estimates}
        for f in self.fusion.face_ids:
            if f not in present:
                self.fusion.forget(f)
        self.fusion.forget_stale_faces(stamp, self.params["forget_after_s"])
        estimates = [e for e in (self.fusion.fuse(f, stamp) for f in sorted(self.fusion.face_ids)) if e is not None]
        self.diagnostics.tick((time.perf_counter() - t0) * 1000.0)
        return estimates

    def _publish_all(self, ready: list) -> None:
        for first, estimates in ready:
            self.pub.publish(conversions.estimates_to_emotion_array(estimates, first.header,
                                                                    *conversions.image_of(first)))


class _Pending:
    """The arrays that came so far for one image, by input topic."""

    __slots__ = ("first", "since", "arrays")

    def __init__(self, first, since: float):
        self.first = first  # the first array that came (its header and image are the image's)
        self.since = since  # monotonic time its first array arrived
        self.arrays: dict[str, list] = {}


def main(args=None) -> int:
    return run_node(EmotionFusionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
