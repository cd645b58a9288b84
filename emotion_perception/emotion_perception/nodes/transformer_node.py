"""``transformer_node``: the landmark sequence transformer over ``faces/mesh``.

Subscribes ``faces/mesh`` (FaceMeshArray), keeps a frame buffer per face id (reset
when the id disappears), publishes ``emotion/transformer`` (EmotionArray, all six
class probabilities) for every input array, empty when there is no face.
"""

from __future__ import annotations

from emotion_perception_msgs.msg import FaceMeshArray

from .. import conversions
from ..classifiers.transformer import MIN_FRAMES, SMOOTHING_FRAMES
from .process import run_node
from .sequence_node import SequenceEmotionNode


class TransformerNode(SequenceEmotionNode):
    input_type = FaceMeshArray
    input_topic = "faces/mesh"
    output_topic = "emotion/transformer"

    def __init__(self, **kwargs):
        super().__init__("transformer_node", (MIN_FRAMES, SMOOTHING_FRAMES), **kwargs)

    def model_name(self) -> str:
        return "transformer"

    def frame_input(self, face_msg, stamp: int):
        return conversions.mesh_msg_to_frame_input(face_msg, stamp)


def main(args=None) -> int:
    return run_node(TransformerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
