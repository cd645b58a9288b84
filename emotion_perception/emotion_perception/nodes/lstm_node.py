"""``lstm_node``: the blendshape LSTM over ``faces/blendshapes``.

Subscribes ``faces/blendshapes`` (BlendshapesArray), keeps a frame buffer per face id
(reset when the id disappears), publishes ``emotion/lstm`` (EmotionArray) for every
input array, empty when there is no face. Parameter ``model`` picks the 7-class
(``lstm``) or the 3-class (``lstm-3class``: happy, sad, unknown) head.
"""

from __future__ import annotations

from emotion_perception_msgs.msg import BlendshapesArray

from .. import conversions
from ..classifiers.lstm import MIN_FRAMES, SMOOTHING_FRAMES
from .parameters import Param
from .process import run_node
from .sequence_node import SequenceEmotionNode


class LstmNode(SequenceEmotionNode):
    input_type = BlendshapesArray
    input_topic = "faces/blendshapes"
    output_topic = "emotion/lstm"
    extra_params = [Param("model", "lstm", "which head: lstm (7 classes) or lstm-3class (happy, sad, unknown)",
                          choices=("lstm", "lstm-3class"), read_only=True)]

    def __init__(self, **kwargs):
        super().__init__("lstm_node", (MIN_FRAMES, SMOOTHING_FRAMES), **kwargs)

    def model_name(self) -> str:
        return self.params["model"]

    def frame_input(self, face_msg, stamp: int):
        return conversions.blendshapes_msg_to_frame_input(face_msg, stamp)


def main(args=None) -> int:
    return run_node(LstmNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
