"""py_trees behaviours over a :class:`~emotion_perception.bt.state.PerceptionState`.

:class:`PerceptionToBlackboard` copies a snapshot of the state to the blackboard key
``/perception`` once per tick (put it first in the tree); the conditions read that
key, so every condition of one tick sees the same instant. Conditions return SUCCESS
or FAILURE and write the matching face ids to ``/perception_faces`` for the action
that follows. No ROS here: :mod:`emotion_perception.bt.ros` fills the state.
"""

from __future__ import annotations

import py_trees
from py_trees.common import Access, Status

from .state import DEFAULT_LOOKING_MIN, PerceptionState, Snapshot

KEY = "perception"
FACES_KEY = "perception_faces"


class PerceptionToBlackboard(py_trees.behaviour.Behaviour):
    """Writes ``state.snapshot()`` to ``/perception``; always SUCCESS."""

    def __init__(self, state: PerceptionState, name: str = "Perception to blackboard"):
        super().__init__(name)
        self.state = state
        self.bb = self.attach_blackboard_client(name=name)
        self.bb.register_key(key=KEY, access=Access.WRITE)

    def update(self) -> Status:
        snap = self.state.snapshot()
        self.bb.set(KEY, snap)
        self.feedback_message = f"{len(snap.faces)} face(s)"
        return Status.SUCCESS


class _Condition(py_trees.behaviour.Behaviour):
    def __init__(self, name: str):
        super().__init__(name)
        self.bb = self.attach_blackboard_client(name=name)
        self.bb.register_key(key=KEY, access=Access.READ)
        self.bb.register_key(key=FACES_KEY, access=Access.WRITE)

    def faces(self, snap: Snapshot) -> list[str] | bool:
        raise NotImplementedError

    def update(self) -> Status:
        try:
            snap = self.bb.get(KEY)
        except KeyError:
            self.feedback_message = "no perception on the blackboard (PerceptionToBlackboard missing?)"
            return Status.FAILURE
        hit = self.faces(snap)
        if isinstance(hit, list):
            self.bb.set(FACES_KEY, hit)
            self.feedback_message = ", ".join(hit) or "none"
        return Status.SUCCESS if hit else Status.FAILURE


class SomeoneFeels(_Condition):
    """Someone is ``emotion`` with probability >= ``min_confidence`` (and a confident estimate)."""

    def __init__(self, emotion: str, min_confidence: float = 0.5, require_confident: bool = True,
                 name: str | None = None):
        super().__init__(name or f"Someone {emotion} > {min_confidence:g}?")
        self.emotion, self.min_confidence, self.require_confident = emotion, min_confidence, require_confident

    def faces(self, snap):
        return snap.feeling(self.emotion, self.min_confidence, self.require_confident)


class SomeoneLooking(_Condition):
    """Someone looks at the robot (``looking_at_camera`` >= ``min_probability``)."""

    def __init__(self, min_probability: float = DEFAULT_LOOKING_MIN, name: str | None = None):
        super().__init__(name or "Someone looking at me?")
        self.min_probability = min_probability

    def faces(self, snap):
        return snap.looking(self.min_probability)


class SomeoneTalking(_Condition):
    """Someone's mouth moves like speech."""

    def __init__(self, name: str = "Someone talking?"):
        super().__init__(name)

    def faces(self, snap):
        return snap.talking()


class SomeoneDrowsy(_Condition):
    """Someone is drowsy (PERCLOS above the attention node's threshold)."""

    def __init__(self, name: str = "Someone drowsy?"):
        super().__init__(name)

    def faces(self, snap):
        return snap.drowsy()


class NobodyThere(_Condition):
    """No fresh face at all (none seen, or the pipeline went silent)."""

    def __init__(self, name: str = "Nobody there?"):
        super().__init__(name)

    def faces(self, snap):
        return snap.nobody()


class FaceToFace(_Condition):
    """One face both satisfies ``a`` and ``b`` (e.g. happy AND looking), not two different people."""

    def __init__(self, a: _Condition, b: _Condition, name: str | None = None):
        super().__init__(name or f"{a.name} and {b.name} (same face)")
        self.a, self.b = a, b

    def faces(self, snap):
        return sorted(set(self.a.faces(snap)) & set(self.b.faces(snap)))
