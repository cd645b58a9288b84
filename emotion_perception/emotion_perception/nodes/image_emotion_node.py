"""``image_emotion_node``: emotion from the face's pixels (``image-cnn``).

Subscribes the camera ``image`` (sensor_msgs/Image, or ``image/compressed``
sensor_msgs/CompressedImage when parameter ``use_compressed`` is true) and ``faces/mesh``
(FaceMeshArray), pairs them by header stamp, crops each face at its MediaPipe box
(square, widened by ``crop_margin``) and publishes ``emotion/image`` (EmotionArray, 7
classes), empty when the image holds no face. The heavy work runs on the executor
thread of the subscription that completes a pair; images waiting for their mesh are
bounded (``max_pending``) and dropped oldest first (counted in /diagnostics).
"""

from __future__ import annotations

import math
import time

from emotion_perception_msgs.msg import EmotionArray, FaceMeshArray
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from .. import conversions
from ..classifiers import load as load_model
from ..classifiers.base import FrameInput
from ..classifiers.image_cnn import DEFAULT_MARGIN, MIN_CROP_PX, crop_face, landmarks_box
from .common import (RESULT_QOS, SENSOR_QOS, Diagnostics, OnceLog, Param, StampSync, declare_parameters,
                     refuse_oversized, run_node, stamp_ns)

#: p95 processing time above which /diagnostics warns, milliseconds.
WARN_PROCESSING_MS = 30.0

PARAMS = [
    Param("use_compressed", False, "subscribe image/compressed (JPEG/PNG) instead of image (the landmark "
          "node's parameter of the same name)", read_only=True),
    Param("crop_margin", DEFAULT_MARGIN, "widening of the square face box on each side, fraction of its side",
          0.0, 1.0),
    Param("max_pending", 10, "image stamps waiting for their faces/mesh before the oldest is dropped", 1, 100,
          read_only=True),
]


class ImageEmotionNode(Node):
    def __init__(self, **kwargs):
        super().__init__("image_emotion_node", **kwargs)
        self.params = declare_parameters(self, PARAMS)
        self.model = load_model("image-cnn")
        self.once = OnceLog(self)
        self.once_per_run = OnceLog(self, repeat_s=math.inf)  # decoder warnings on images still decoded
        self.sync = StampSync(2, self.params["max_pending"])
        self.diagnostics = Diagnostics(self, WARN_PROCESSING_MS,
                                       extra=lambda: {"unmatched_images": self.sync.unmatched})
        self.pub = self.create_publisher(EmotionArray, "emotion/image", RESULT_QOS)
        if self.params["use_compressed"]:
            self.image_topic = "image/compressed"
            self.sub_image = self.create_subscription(CompressedImage, self.image_topic, lambda m: self._on(0, m),
                                                      SENSOR_QOS)
        else:
            self.image_topic = "image"
            self.sub_image = self.create_subscription(Image, self.image_topic, lambda m: self._on(0, m), SENSOR_QOS)
        self.sub_mesh = self.create_subscription(FaceMeshArray, "faces/mesh", lambda m: self._on(1, m), RESULT_QOS)
        self.get_logger().info(f"image-cnn: {self.image_topic} + faces/mesh -> emotion/image")

    def _on(self, slot: int, msg) -> None:
        if slot == 1 and refuse_oversized(msg.faces, "faces/mesh", self.once, self.diagnostics):
            return
        pair = self.sync.add(slot, stamp_ns(msg.header), msg)
        if pair is not None:
            self.on_pair(*pair)

    def on_pair(self, image, meshes: FaceMeshArray) -> None:
        t0 = time.perf_counter()
        estimates = []
        if meshes.faces:
            try:
                rgb = (conversions.compressed_msg_to_rgb(image, lambda text: self.once_per_run.warn(
                           "decode_warning", f"{self.image_topic}: {text} (the image is used; said once)"))
                       if self.params["use_compressed"]
                       else conversions.image_msg_to_rgb(image))
            except ValueError as e:  # ImageError
                self.diagnostics.error()
                self.once.warn(f"image:{getattr(e, 'reason', type(e).__name__)}", f"dropped an image: {e}")
                return
            for mesh in meshes.faces:
                try:
                    f = conversions.mesh_msg_to_frame_input(mesh)
                    box = landmarks_box(f.landmarks, (rgb.shape[1], rgb.shape[0]))
                    if min(box.width, box.height) < MIN_CROP_PX:
                        self.once.warn("small", f"face {mesh.face_id} smaller than {MIN_CROP_PX} px: skipped")
                        continue
                    crop = crop_face(rgb, box, self.params["crop_margin"])
                    estimates.append(self.model.update(mesh.face_id, FrameInput(face_crop=crop,
                                                                                stamp_ns=stamp_ns(meshes.header))))
                except ValueError as e:
                    self.diagnostics.error()
                    self.once.warn(f"bad:{type(e).__name__}", f"dropped a face: {e}")
                except Exception as e:  # noqa: BLE001 - a model failure must not stop the node
                    self.diagnostics.error()
                    self.once.error(f"model:{type(e).__name__}", f"image-cnn failed on a face: {e}")
        self.pub.publish(conversions.estimates_to_emotion_array(estimates, meshes.header,
                                                                *conversions.image_of(meshes)))
        self.diagnostics.tick((time.perf_counter() - t0) * 1000.0)


def main(args=None) -> int:
    return run_node(ImageEmotionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
