"""What the two sequence-model nodes share: per-face buffers kept in the model,
forgotten when a face id disappears from the input array, one EmotionArray per
input array (empty when there is no face), bad faces logged once and skipped; the
input is subscribed only while someone listens to the output (:mod:`.lazy`).

``transformer_node`` and ``lstm_node`` subclass :class:`SequenceEmotionNode` and say
which message they read and how one face of it becomes a ``FrameInput``.
"""

from __future__ import annotations

import time

from rclpy.node import Node

from .. import conversions
from ..classifiers import load as load_model
from .bad_input import OnceLog, refuse_oversized
from .diagnostics import Diagnostics
from .lazy import LazyInputs
from .parameters import Param, declare_parameters
from .qos import RESULT_QOS
from .stamps import image_key
from emotion_perception_msgs.msg import EmotionArray

#: p95 processing time above which /diagnostics warns, milliseconds.
WARN_PROCESSING_MS = 20.0


def sequence_params(min_frames: int, smoothing_frames: float) -> list[Param]:
    return [
        Param("min_frames", min_frames, "frames of a face before its estimate is marked confident", 1, 300),
        Param("smoothing_frames", smoothing_frames,
              "time constant of the per-face moving average of the probabilities, frames (0 = off)", 0.0, 100.0),
    ]


class SequenceEmotionNode(Node):
    """Base of ``transformer_node`` and ``lstm_node``.

    Subclasses set ``input_type``, ``input_topic``, ``output_topic`` and implement
    :meth:`frame_input` and :meth:`model_name`.
    """

    input_type = None
    input_topic = ""
    output_topic = ""
    extra_params: list[Param] = []

    def __init__(self, node_name: str, defaults: tuple[int, float], **kwargs):
        super().__init__(node_name, **kwargs)
        self.params = declare_parameters(self, [*self.extra_params, *sequence_params(*defaults)], self._on_params)
        self.model = load_model(self.model_name(), min_frames=self.params["min_frames"],
                                smoothing_frames=self.params["smoothing_frames"])
        self.once = OnceLog(self)
        self.diagnostics = Diagnostics(self, WARN_PROCESSING_MS, extra=lambda: {"faces": len(self.model.faces())})
        self.pub = self.create_publisher(EmotionArray, self.output_topic, RESULT_QOS)
        # subscribed only while someone listens to output_topic
        self.inputs = LazyInputs(self, [self.pub], {self.input_topic: (self.input_type, self.on_faces)},
                                 self.diagnostics, on_idle=self._forget_all)
        self.get_logger().info(f"{self.model.name}: {', '.join(self.model.class_names)}; "
                               f"{self.input_topic} -> {self.output_topic}")

    def model_name(self) -> str:
        raise NotImplementedError

    def frame_input(self, face_msg, stamp: int):
        raise NotImplementedError

    def _on_params(self, updates: dict) -> None:
        if "min_frames" in updates:
            self.model.min_frames = int(updates["min_frames"])
        if "smoothing_frames" in updates:
            self.model.smoothing_frames = float(updates["smoothing_frames"])

    def _forget_all(self) -> None:
        """Idle: the frames until the next subscriber are not seen; buffers start again."""
        for face in list(self.model.faces()):
            self.model.forget(face)

    def on_faces(self, msg) -> None:
        if refuse_oversized(msg.faces, self.input_topic, self.once, self.diagnostics):
            return
        t0 = time.perf_counter()
        stamp = image_key(msg)[0]
        estimates, present = [], set()
        for face in msg.faces:
            try:
                frame = self.frame_input(face, stamp)
                est = self.model.update(face.face_id, frame)
            except ValueError as e:  # ConversionError is a ValueError
                self.diagnostics.error()
                self.once.warn(f"bad:{type(e).__name__}", f"dropped a face of {self.input_topic}: {e}")
                continue
            except Exception as e:  # noqa: BLE001 - a model failure must not stop the node
                self.diagnostics.error()
                self.once.error(f"model:{type(e).__name__}", f"{self.model.name} failed on a face: {e}")
                continue
            present.add(face.face_id)
            estimates.append(est)
        for gone in set(self.model.faces()) - present:
            self.model.forget(gone)
        self.pub.publish(conversions.estimates_to_emotion_array(estimates, msg.header, *conversions.image_of(msg)))
        self.diagnostics.tick((time.perf_counter() - t0) * 1000.0)
