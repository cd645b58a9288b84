"""``frame_node``: a frame emotion classifier over the landmark node's output.

Subscribes ``faces/mesh`` (FaceMeshArray) and ``faces/blendshapes``
(BlendshapesArray), pairs the two arrays of one image by header stamp
(:class:`StampSync`) and their faces by id, and publishes ``emotion/frame``
(EmotionArray, 7 classes) for every pair, empty when the image holds no face.
Parameter ``model`` picks ``svm-landmarks``, ``gnn-landmarks`` or ``svm-blendshapes``.
Frame models keep no state: every image is classified on its own.
"""

from __future__ import annotations

import time

from emotion_perception_msgs.msg import BlendshapesArray, EmotionArray, FaceMeshArray
from rclpy.node import Node

from .. import conversions
from ..classifiers import load as load_model
from ..classifiers.base import FrameInput
from .common import (RESULT_QOS, Diagnostics, OnceLog, Param, StampSync, declare_parameters, image_key,
                     refuse_oversized, run_node)

FRAME_MODELS = ("svm-landmarks", "gnn-landmarks", "svm-blendshapes")
#: p95 processing time above which /diagnostics warns, milliseconds.
WARN_PROCESSING_MS = 10.0

PARAMS = [
    Param("model", "svm-landmarks", "frame classifier: svm-landmarks, gnn-landmarks or svm-blendshapes",
          choices=FRAME_MODELS, read_only=True),
    Param("max_pending", 30, "image stamps waiting for their second array before the oldest is dropped", 1, 1000,
          read_only=True),
]


class FrameNode(Node):
    def __init__(self, **kwargs):
        super().__init__("frame_node", **kwargs)
        self.params = declare_parameters(self, PARAMS)
        self.model = load_model(self.params["model"])
        self.once = OnceLog(self)
        self.sync = StampSync(2, self.params["max_pending"])
        self.diagnostics = Diagnostics(self, WARN_PROCESSING_MS, extra=lambda: {"unmatched_arrays": self.sync.unmatched})
        self.pub = self.create_publisher(EmotionArray, "emotion/frame", RESULT_QOS)
        self.sub_mesh = self.create_subscription(FaceMeshArray, "faces/mesh", lambda m: self._on(0, m), RESULT_QOS)
        self.sub_shapes = self.create_subscription(BlendshapesArray, "faces/blendshapes", lambda m: self._on(1, m),
                                                   RESULT_QOS)
        self.get_logger().info(f"{self.model.name}: faces/mesh + faces/blendshapes -> emotion/frame")

    def _on(self, slot: int, msg) -> None:
        if refuse_oversized(msg.faces, ("faces/mesh", "faces/blendshapes")[slot], self.once, self.diagnostics):
            return
        pair = self.sync.add(slot, image_key(msg), msg)
        if pair is not None:
            self.on_pair(*pair)

    def on_pair(self, meshes: FaceMeshArray, shapes: BlendshapesArray) -> None:
        t0 = time.perf_counter()
        stamp = image_key(meshes)[0]
        by_id = {b.face_id: b for b in shapes.faces}
        estimates = []
        for mesh in meshes.faces:
            try:
                m = conversions.mesh_msg_to_frame_input(mesh, stamp)
                b = by_id.get(mesh.face_id)
                if b is None and "blendshapes" in self.model.needs:
                    raise conversions.ConversionError(f"no Blendshapes for face {mesh.face_id!r}")
                scores = conversions.blendshapes_msg_scores(b) if b is not None else None
                frame = FrameInput(landmarks=m.landmarks, blendshapes=scores, image_wh=m.image_wh, stamp_ns=stamp)
                estimates.append(self.model.update(mesh.face_id, frame))
            except ValueError as e:  # ConversionError is a ValueError
                self.diagnostics.error()
                self.once.warn(f"bad:{type(e).__name__}", f"dropped a face: {e}")
            except Exception as e:  # noqa: BLE001 - a model failure must not stop the node
                self.diagnostics.error()
                self.once.error(f"model:{type(e).__name__}", f"{self.model.name} failed on a face: {e}")
        self.pub.publish(conversions.estimates_to_emotion_array(estimates, meshes.header,
                                                                *conversions.image_of(meshes)))
        self.diagnostics.tick((time.perf_counter() - t0) * 1000.0)


def main(args=None) -> int:
    return run_node(FrameNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
