"""Behaviour-tree building blocks over the package's outputs (py_trees).

Layout as in py_trees / py_trees_ros: :mod:`.state` is ROS-free (the latest emotion
and attention per face, with a staleness timeout, and the questions a tree asks);
:mod:`.behaviours` holds py_trees behaviours (still ROS-free: they read a
:class:`~.state.PerceptionState`); :mod:`.ros` is the thin rclpy subscriber that fills
the state from the ``emotion`` and ``attention`` topics.
"""

from .state import FaceView, PerceptionState, Snapshot

__all__ = ["FaceView", "PerceptionState", "Snapshot"]
