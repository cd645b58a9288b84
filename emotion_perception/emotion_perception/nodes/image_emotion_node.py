"""``image_emotion_node``: emotion from the face's pixels (``image-cnn``).

Subscribes ``faces/crops`` (FaceCropArray: each face's aligned grey crop, published by
the landmark node with the image's header) and publishes ``emotion/image``
(EmotionArray, 7 classes) for every crop array, with its header: empty when the image
holds no face. The node never sees whole camera frames, so it costs the model's own
inference and a few small messages (``docs/frame-image-fusion.md`` has the measured
comparison with cropping from the camera image here). It subscribes to ``faces/crops``
only while someone listens to ``emotion/image`` (:mod:`.lazy`).
"""

from __future__ import annotations

import time

from emotion_perception_msgs.msg import EmotionArray, FaceCropArray
from rclpy.node import Node

from .. import conversions
from ..classifiers import load as load_model
from ..classifiers.base import FrameInput
from .bad_input import OnceLog, refuse_oversized
from .diagnostics import Diagnostics
from .lazy import LazyInputs
from .parameters import declare_parameters
from .process import run_node
from .qos import RESULT_QOS
from .stamps import stamp_ns

#: p95 processing time above which /diagnostics warns, milliseconds.
WARN_PROCESSING_MS = 30.0

PARAMS: list = []


class ImageEmotionNode(Node):
    def __init__(self, **kwargs):
        super().__init__("image_emotion_node", **kwargs)
        self.params = declare_parameters(self, PARAMS)
        self.model = load_model("image-cnn")
        self.once = OnceLog(self)
        self.diagnostics = Diagnostics(self, WARN_PROCESSING_MS)
        self.pub = self.create_publisher(EmotionArray, "emotion/image", RESULT_QOS)
        # subscribed only while someone listens to emotion/image
        self.inputs = LazyInputs(self, [self.pub], {"faces/crops": (FaceCropArray, self.on_crops)},
                                 self.diagnostics)
        self.get_logger().info(f"image-cnn ({self.model.spec.size}x{self.model.spec.size} aligned crops): "
                               "faces/crops -> emotion/image")

    def on_crops(self, msg: FaceCropArray) -> None:
        if refuse_oversized(msg.faces, "faces/crops", self.once, self.diagnostics):
            return
        t0 = time.perf_counter()
        estimates = []
        stamp = stamp_ns(msg.header)
        for face in msg.faces:
            try:
                crop = conversions.crop_msg_pixels(face)
                estimates.append(self.model.update(face.face_id, FrameInput(face_crop=crop, stamp_ns=stamp)))
            except ValueError as e:  # ConversionError, a crop the model cannot take
                self.diagnostics.error()
                self.once.warn(f"bad:{type(e).__name__}", f"dropped a face crop: {e}")
            except Exception as e:  # noqa: BLE001 - a model failure must not stop the node
                self.diagnostics.error()
                self.once.error(f"model:{type(e).__name__}", f"image-cnn failed on a face: {e}")
        self.pub.publish(conversions.estimates_to_emotion_array(estimates, msg.header, *conversions.image_of(msg)))
        self.diagnostics.tick((time.perf_counter() - t0) * 1000.0)


def main(args=None) -> int:
    return run_node(ImageEmotionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
