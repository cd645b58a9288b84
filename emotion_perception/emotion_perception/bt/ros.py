"""Thin rclpy subscriber that keeps a :class:`~.state.PerceptionState` current.

Subscribes to ``emotion`` (EmotionArray, the fused estimate), ``attention``
(AttentionArray) and ``faces/mesh`` (FaceMeshArray: who is there, even before a
classifier has warmed up) with the package's reliable result QoS; every message replaces the
faces of its topic in the state. Message -> plain data only; all logic is in
:mod:`.state`.
"""

from __future__ import annotations

from .state import PerceptionState

ATTENTION_FIELDS = ("looking_at_camera", "talking", "drowsy", "attentive", "blinking", "perclos", "blink_rate",
                    "mouth_state", "mouth_open_probability", "left_eye_state", "right_eye_state",
                    "gaze_yaw", "gaze_pitch", "head_yaw", "head_pitch", "head_roll")


def emotion_fields(e) -> dict:
    return {"label": e.label, "confidence": float(e.confidence), "confident": bool(e.confident),
            "probabilities": dict(zip(e.class_names, (float(p) for p in e.probabilities))), "model": e.model}


def attention_fields(a) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k in ATTENTION_FIELDS for v in [getattr(a, k)]}


class PerceptionSubscriber:
    """Subscriptions on ``node`` feeding ``state``; ``destroy()`` removes them.

    Args:
        node: an rclpy node (the tree's).
        state: the store the behaviours read.
        emotion_topic: EmotionArray topic (``emotion``: the fused estimate).
        attention_topic: AttentionArray topic (None: none).
        faces_topic: FaceMeshArray topic for presence (None: none).
    """

    def __init__(self, node, state: PerceptionState, emotion_topic: str = "emotion",
                 attention_topic: str | None = "attention", faces_topic: str | None = "faces/mesh"):
        from emotion_perception_msgs.msg import AttentionArray, EmotionArray, FaceMeshArray

        from ..nodes.qos import RESULT_QOS
        from ..nodes.stamps import stamp_ns

        self.node, self.state = node, state

        def on_emotion(msg):
            state.update_emotions({e.face_id: emotion_fields(e) for e in msg.emotions}, stamp_ns(msg.header))

        def on_attention(msg):
            state.update_attention({a.face_id: attention_fields(a) for a in msg.faces}, stamp_ns(msg.header))

        def on_faces(msg):
            state.update_faces([f.face_id for f in msg.faces], stamp_ns(msg.header))

        self.subs = []
        if emotion_topic:
            self.subs.append(node.create_subscription(EmotionArray, emotion_topic, on_emotion, RESULT_QOS))
        if attention_topic:
            self.subs.append(node.create_subscription(AttentionArray, attention_topic, on_attention, RESULT_QOS))
        if faces_topic:
            self.subs.append(node.create_subscription(FaceMeshArray, faces_topic, on_faces, RESULT_QOS))

    def destroy(self) -> None:
        for s in self.subs:
            self.node.destroy_subscription(s)
        self.subs = []
