"""Behaviour-tree core without ROS: the per-face state, staleness and the conditions,
ticked through real py_trees trees with plain data."""

import py_trees
import pytest
from py_trees.common import Status

from emotion_perception.bt.behaviours import (FaceToFace, NobodyThere, PerceptionToBlackboard, SomeoneDrowsy,
                                              SomeoneFeels, SomeoneLooking, SomeoneTalking)
from emotion_perception.bt.state import PerceptionState


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def emotion(label, p, confident=True, classes=("angry", "happy", "neutral")):
    probs = {c: (p if c == label else (1 - p) / (len(classes) - 1)) for c in classes}
    return {"label": label, "confidence": p, "confident": confident, "probabilities": probs}


def attention(looking=0.9, talking=False, drowsy=False):
    return {"looking_at_camera": looking, "talking": talking, "drowsy": drowsy, "attentive": looking > 0.5}


def tick(state, condition):
    py_trees.blackboard.Blackboard.clear()
    root = py_trees.composites.Sequence("root", memory=False, children=[PerceptionToBlackboard(state), condition])
    root.tick_once()
    return condition.status


def test_nobody_until_someone_arrives_and_again_when_data_goes_stale():
    clock = Clock()
    s = PerceptionState(stale_after_s=1.0, clock=clock)
    assert tick(s, NobodyThere()) == Status.SUCCESS
    s.update_faces(["face_1"])
    assert tick(s, NobodyThere()) == Status.FAILURE
    clock.t += 0.9
    assert tick(s, NobodyThere()) == Status.FAILURE
    clock.t += 0.2  # 1.1 s without a message: the pipeline may be dead
    assert tick(s, NobodyThere()) == Status.SUCCESS
    s.update_faces([])  # a processed image with no face
    assert tick(s, NobodyThere()) == Status.SUCCESS


def test_emotion_threshold_uses_the_class_probability_and_the_confident_flag():
    s = PerceptionState(clock=Clock())
    s.update_emotions({"face_1": emotion("happy", 0.8), "face_2": emotion("angry", 0.45)})
    assert tick(s, SomeoneFeels("happy", 0.7)) == Status.SUCCESS
    assert tick(s, SomeoneFeels("happy", 0.85)) == Status.FAILURE
    assert tick(s, SomeoneFeels("angry", 0.4)) == Status.SUCCESS
    assert tick(s, SomeoneFeels("angry", 0.5)) == Status.FAILURE
    s.update_emotions({"face_1": emotion("happy", 0.9, confident=False)})
    assert tick(s, SomeoneFeels("happy", 0.5)) == Status.FAILURE  # still warming up
    assert tick(s, SomeoneFeels("happy", 0.5, require_confident=False)) == Status.SUCCESS
    assert s.snapshot().ids() == ["face_1"]  # face_2 left: the newest message replaces the faces


def test_attention_conditions():
    s = PerceptionState(clock=Clock())
    s.update_attention({"face_1": attention(looking=0.2, talking=True), "face_2": attention(drowsy=True)})
    snap = s.snapshot()
    assert snap.looking(0.5) == ["face_2"] and snap.talking() == ["face_1"] and snap.drowsy() == ["face_2"]
    assert tick(s, SomeoneLooking(0.5)) == Status.SUCCESS
    assert tick(s, SomeoneLooking(0.95)) == Status.FAILURE
    assert tick(s, SomeoneTalking()) == Status.SUCCESS
    assert tick(s, SomeoneDrowsy()) == Status.SUCCESS
    s.update_attention({"face_1": attention()})
    assert tick(s, SomeoneDrowsy()) == Status.FAILURE and tick(s, SomeoneTalking()) == Status.FAILURE


def test_same_face_must_be_happy_and_looking():
    s = PerceptionState(clock=Clock())
    s.update_emotions({"face_1": emotion("happy", 0.9), "face_2": emotion("neutral", 0.9)})
    s.update_attention({"face_1": attention(looking=0.1), "face_2": attention(looking=0.9)})
    assert tick(s, FaceToFace(SomeoneFeels("happy", 0.5), SomeoneLooking(0.5))) == Status.FAILURE
    s.update_attention({"face_1": attention(looking=0.9), "face_2": attention(looking=0.9)})
    assert tick(s, FaceToFace(SomeoneFeels("happy", 0.5), SomeoneLooking(0.5))) == Status.SUCCESS


def test_condition_without_perception_on_the_blackboard_fails_with_a_reason():
    py_trees.blackboard.Blackboard.clear()
    c = NobodyThere()
    c.tick_once()
    assert c.status == Status.FAILURE and "PerceptionToBlackboard" in c.feedback_message


def test_bad_staleness_refused():
    with pytest.raises(ValueError):
        PerceptionState(stale_after_s=0)
