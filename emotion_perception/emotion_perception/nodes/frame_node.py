"""``frame_node``: a frame emotion classifier over the landmark node's output.

Subscribes to what its model reads and nothing more: ``faces/mesh``
(FaceMeshArray) for the landmark models, ``faces/blendshapes`` (BlendshapesArray)
for the blendshape model; a model that read both would get the two arrays of one
image paired by its key (:class:`StampSync`) and their faces by id. Publishes
``emotion/frame`` (EmotionArray, 7 classes) for every image, empty when the image
holds no face, and subscribes only while someone listens to ``emotion/frame``
(:mod:`.lazy`). Parameter ``model`` picks ``svm-landmarks``, ``gnn-landmarks`` or
``svm-blendshapes``. Frame models keep no state: every image is classified on its own.

Each subscription costs a wake-up and a deserialisation per image whether the model
reads the message or not: with both subscribed, the blendshapes array that the
default ``svm-landmarks`` never reads cost about a quarter of the node's CPU
(docs/benchmarks.md, "Where the CPU goes").
"""

from __future__ import annotations

import time

from emotion_perception_msgs.msg import BlendshapesArray, EmotionArray, FaceMeshArray
from rclpy.node import Node

from .. import conversions
from ..classifiers import load as load_model
from ..classifiers.base import FrameInput
from .bad_input import OnceLog, refuse_oversized
from .diagnostics import Diagnostics
from .lazy import LazyInputs
from .parameters import Param, declare_parameters
from .process import run_node
from .qos import RESULT_QOS
from .stamps import StampSync, image_key

FRAME_MODELS = ("svm-landmarks", "gnn-landmarks", "svm-blendshapes")
#: p95 processing time above which /diagnostics warns, milliseconds.
WARN_PROCESSING_MS = 10.0
#: Input topic and message type of each FrameInput field a model may read.
INPUTS = {"landmarks": ("faces/mesh", FaceMeshArray), "blendshapes": ("faces/blendshapes", BlendshapesArray)}

PARAMS = [
    Param("model", "svm-landmarks", "frame classifier: svm-landmarks, gnn-landmarks or svm-blendshapes",
          choices=FRAME_MODELS, read_only=True),
    Param("max_pending", 30, "images waiting for their second array before the oldest is dropped (models "
          "that read both faces/mesh and faces/blendshapes)", 1, 1000, read_only=True),
]


class FrameNode(Node):
    def __init__(self, **kwargs):
        super().__init__("frame_node", **kwargs)
        self.params = declare_parameters(self, PARAMS)
        self.model = load_model(self.params["model"])
        self.once = OnceLog(self)
        self.fields = [k for k in INPUTS if k in self.model.needs]
        self.sync = StampSync(len(self.fields), self.params["max_pending"])
        self.diagnostics = Diagnostics(self, WARN_PROCESSING_MS, extra=lambda: {"unmatched_arrays": self.sync.unmatched})
        self.pub = self.create_publisher(EmotionArray, "emotion/frame", RESULT_QOS)
        # subscribed only while someone listens to emotion/frame
        self.inputs = LazyInputs(self, [self.pub], {INPUTS[k][0]: (INPUTS[k][1], lambda m, s=slot: self._on(s, m))
                                                    for slot, k in enumerate(self.fields)},
                                 self.diagnostics, on_idle=self._forget_all)
        self.get_logger().info(f"{self.model.name}: {' + '.join(INPUTS[k][0] for k in self.fields)} -> emotion/frame")

    def _forget_all(self) -> None:
        """Idle: the arrays waiting for their partner are void (frame models keep no state)."""
        unmatched = self.sync.unmatched
        self.sync = StampSync(len(self.fields), self.params["max_pending"])
        self.sync.unmatched = unmatched

    def _on(self, slot: int, msg) -> None:
        if refuse_oversized(msg.faces, INPUTS[self.fields[slot]][0], self.once, self.diagnostics):
            return
        if len(self.fields) == 1:
            self.on_arrays(msg)
            return
        pair = self.sync.add(slot, image_key(msg), msg)
        if pair is not None:
            self.on_arrays(*pair)

    def on_arrays(self, *arrays) -> None:
        """Classify the faces of one image: ``arrays`` holds one array per field read
        (``self.fields`` order); faces are matched by id to the first one's."""
        t0 = time.perf_counter()
        first = arrays[0]
        stamp = image_key(first)[0]
        by_field = {k: {f.face_id: f for f in a.faces} for k, a in zip(self.fields, arrays)}
        estimates = []
        for face in first.faces:
            try:
                frame = self._frame_input(face.face_id, by_field, stamp)
                estimates.append(self.model.update(face.face_id, frame))
            except ValueError as e:  # ConversionError is a ValueError
                self.diagnostics.error()
                self.once.warn(f"bad:{type(e).__name__}", f"dropped a face: {e}")
            except Exception as e:  # noqa: BLE001 - a model failure must not stop the node
                self.diagnostics.error()
                self.once.error(f"model:{type(e).__name__}", f"{self.model.name} failed on a face: {e}")
        self.pub.publish(conversions.estimates_to_emotion_array(estimates, first.header, *conversions.image_of(first)))
        self.diagnostics.tick((time.perf_counter() - t0) * 1000.0)

    @staticmethod
    def _frame_input(face_id: str, by_field: dict, stamp: int) -> FrameInput:
        kwargs = {"stamp_ns": stamp}
        for k, faces in by_field.items():
            msg = faces.get(face_id)
            if msg is None:
                raise conversions.ConversionError(f"no {INPUTS[k][0]} entry for face {face_id!r}")
            if k == "landmarks":
                m = conversions.mesh_msg_to_frame_input(msg, stamp)
                kwargs.update(landmarks=m.landmarks, image_wh=m.image_wh)
            else:
                kwargs["blendshapes"] = conversions.blendshapes_msg_scores(msg)
        return FrameInput(**kwargs)


def main(args=None) -> int:
    return run_node(FrameNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
