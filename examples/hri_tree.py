#!/usr/bin/env python3
"""Example behaviour tree over the ROS4HRI (REP-155) topics only: what a robot's HRI
code sees, with no message of this package.

It reads ``/humans/faces/tracked`` and each face's ``expression``, and
``/humans/persons/tracked`` with each person's ``engagement_status``, subscribing as
libhri/pyhri do (system-default QoS; a face's topics opened when its id appears), and
ticks a py_trees tree once per image: idle when nobody is there, greet an engaged
person who smiles, back off from a scared or angry face, otherwise observe.

Runs against the real pipeline (every node, hri_node with anonymous persons, in one
process over rclpy/Fast DDS) fed from a video::

    .venv/bin/python examples/hri_tree.py emotion_perception/test/fixtures/data/video/single_face.mp4

On a robot, drop the video part: create an ``HriReader`` on your node and tick the tree
from a timer (docs/ros4hri.md).
"""

from __future__ import annotations

import pathlib
import sys
import threading
import time

import py_trees
from py_trees.common import Status

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples"))
from greet_tree import Act, cli  # noqa: E402 - the stand-in robot action and the command line, shared
DEFAULT_VIDEO = REPO / "emotion_perception" / "test" / "fixtures" / "data" / "video" / "single_face.mp4"
#: Minimum expression confidence for the greet / back-off branches.
CONFIDENCE_MIN = 0.4
#: Expressions that make the robot back off (REP-155 constants).
BACK_OFF = ("scared", "angry", "furious")
#: EngagementLevel.ENGAGED and ENGAGING
ENGAGED_LEVELS = (2, 3)


class HriReader:
    """What a ROS4HRI consumer knows: tracked faces, their latest expression, persons'
    engagement. Subscribes on ``node`` as libhri does."""

    def __init__(self, node):
        from hri_msgs.msg import IdsList
        from rclpy.qos import qos_profile_system_default

        self.node = node
        self.lock = threading.Lock()
        self.faces: list[str] = []
        self.stamp_ns = -1  # of the last tracked list
        self.expressions: dict[str, tuple[str, float]] = {}
        self.engagement: dict[str, int] = {}
        self._subs: dict[str, list] = {}
        node.create_subscription(IdsList, "/humans/faces/tracked", self._on_faces, qos_profile_system_default)
        node.create_subscription(IdsList, "/humans/persons/tracked", self._on_persons, qos_profile_system_default)

    def _on_faces(self, msg) -> None:
        from hri_msgs.msg import Expression
        from rclpy.qos import qos_profile_system_default

        with self.lock:
            self.faces = list(msg.ids)
            self.stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            for f in msg.ids:
                if f not in self._subs:
                    self._subs[f] = [self.node.create_subscription(
                        Expression, f"/humans/faces/{f}/expression",
                        lambda m, f=f: self._set(self.expressions, f, (m.expression, m.confidence)),
                        qos_profile_system_default)]
            for f in [f for f in self.expressions if f not in msg.ids]:
                del self.expressions[f]

    def _on_persons(self, msg) -> None:
        from hri_msgs.msg import EngagementLevel
        from rclpy.qos import qos_profile_system_default

        with self.lock:
            for p in msg.ids:
                if p not in self._subs:
                    self._subs[p] = [self.node.create_subscription(
                        EngagementLevel, f"/humans/persons/{p}/engagement_status",
                        lambda m, p=p: self._set(self.engagement, p, m.level), qos_profile_system_default)]
            self.engagement = {p: v for p, v in self.engagement.items() if p in msg.ids}

    def _set(self, table: dict, key: str, value) -> None:
        with self.lock:
            table[key] = value

    def snapshot(self) -> dict:
        with self.lock:
            return {"faces": list(self.faces), "expressions": dict(self.expressions),
                    "engaged": any(v in ENGAGED_LEVELS for v in self.engagement.values())}


class Check(py_trees.behaviour.Behaviour):
    """SUCCESS when ``test(snapshot)`` holds."""

    def __init__(self, name: str, reader: HriReader, test):
        super().__init__(name)
        self.reader, self.test = reader, test

    def update(self) -> Status:
        return Status.SUCCESS if self.test(self.reader.snapshot()) else Status.FAILURE


def _shows(s: dict, expressions) -> bool:
    return any(e in expressions and c >= CONFIDENCE_MIN for e, c in s["expressions"].values())


def build_tree(reader: HriReader, log: list) -> py_trees.behaviour.Behaviour:
    """The example tree; each tick appends the branch taken to ``log``."""
    return py_trees.composites.Selector("Decide", memory=False, children=[
        py_trees.composites.Sequence("Idle", memory=False, children=[
            Check("nobody tracked", reader, lambda s: not s["faces"]), Act("idle", log)]),
        py_trees.composites.Sequence("Back off", memory=False, children=[
            Check("scared or angry", reader, lambda s: _shows(s, BACK_OFF)), Act("back off", log)]),
        py_trees.composites.Sequence("Greet", memory=False, children=[
            Check("engaged", reader, lambda s: s["engaged"]),
            Check("smiling", reader, lambda s: _shows(s, ("happy",))), Act("greet", log)]),
        Act("observe", log),
    ])


def run(video, max_frames: int | None = None, verbose: bool = True) -> list[dict]:
    """Feed ``video`` through the pipeline (hri_node with persons), tick once per image."""
    from rclpy.node import Node
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from emotion_perception.conversions import rgb_to_image_msg
    from emotion_perception.launch_description import describe
    from emotion_perception.nodes.qos import SENSOR_QOS
    from emotion_perception.runner import Pipeline
    from emotion_perception.sources import open_source

    desc = describe()
    if "hri" not in desc.short_names:
        raise SystemExit(f"hri_tree: {' '.join(desc.notes)}")
    overrides = desc.parameter_overrides()
    overrides.setdefault("hri", {})["publish_persons"] = True
    ticks: list[dict] = []
    log: list[str] = []
    source = open_source(video, max_frames=max_frames)
    with Pipeline(desc.short_names, params_file=desc.params_file, parameter_overrides=overrides,
                  log_level="error") as p:
        node = Node("hri_tree", context=p.context)
        reader = HriReader(node)
        camera = node.create_publisher(Image, "image", SENSOR_QOS)
        p.add_node(node)
        tree = py_trees.trees.BehaviourTree(build_tree(reader, log))
        deadline = time.monotonic() + 10.0
        while camera.get_subscription_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            for frame in source:
                stamp = 1_000_000_000 + int(frame.time_s * 1e9)
                header = Header(frame_id="camera")
                header.stamp.sec, header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                camera.publish(rgb_to_image_msg(frame.rgb, header))
                # wait until the tracked list of this image is in (and its expression, if any, just after)
                end = time.monotonic() + 5.0
                while reader.stamp_ns < stamp and time.monotonic() < end:
                    time.sleep(0.002)
                time.sleep(0.03)
                tree.tick()
                s = reader.snapshot()
                tick = {"time_s": round(frame.time_s, 3), "branch": log[-1] if log else None, "faces": s["faces"],
                        "expressions": sorted(e for e, _ in s["expressions"].values()), "engaged": s["engaged"]}
                ticks.append(tick)
                if verbose:
                    print(f"t={tick['time_s']:6.2f}s  branch={tick['branch']:<9} faces={tick['faces']} "
                          f"expressions={tick['expressions']} engaged={tick['engaged']}")
        finally:
            source.close()
    return ticks


def main(argv=None) -> int:
    return cli(run, __doc__, DEFAULT_VIDEO, argv)


if __name__ == "__main__":
    sys.exit(main())
