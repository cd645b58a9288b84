#!/usr/bin/env python3
"""Example behaviour tree: greet a happy person who looks at the robot, back off from
an angry one, idle when nobody is there, otherwise observe.

Runs against the real pipeline (the package's nodes over rclpy/Fast DDS, in one
process) fed from a video, and prints the branch the tree takes at every tick::

    .venv/bin/python examples/greet_tree.py ../shared/data/video/single_face.mp4

On a robot, drop the video part: create a node, a PerceptionSubscriber on it and tick
the same tree from a timer (see docs/behaviour-trees.md).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import py_trees
from py_trees.common import Status

from emotion_perception.bt.behaviours import (FaceToFace, NobodyThere, PerceptionToBlackboard, SomeoneFeels,
                                              SomeoneLooking)
from emotion_perception.bt.state import PerceptionState

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "video" / "single_face.mp4"
#: Minimum probability of happy / angry for the greet / back-off branches.
HAPPY_MIN, ANGRY_MIN = 0.5, 0.5
#: Minimum probability of looking at the camera to be greeted.
LOOKING_MIN = 0.5


class Act(py_trees.behaviour.Behaviour):
    """Stands in for a robot action: remembers that its branch ran."""

    def __init__(self, name: str, log: list):
        super().__init__(name)
        self.log = log

    def update(self) -> Status:
        self.log.append(self.name)
        return Status.SUCCESS


def build_tree(state: PerceptionState, log: list) -> py_trees.behaviour.Behaviour:
    """The example tree; each tick appends the branch taken to ``log``."""
    decide = py_trees.composites.Selector("Decide", memory=False, children=[
        py_trees.composites.Sequence("Idle", memory=False, children=[NobodyThere(), Act("idle", log)]),
        py_trees.composites.Sequence("Back off", memory=False, children=[
            SomeoneFeels("angry", ANGRY_MIN), Act("back off", log)]),
        py_trees.composites.Sequence("Greet", memory=False, children=[
            FaceToFace(SomeoneFeels("happy", HAPPY_MIN), SomeoneLooking(LOOKING_MIN)), Act("greet", log)]),
        Act("observe", log),
    ])
    return py_trees.composites.Sequence("Tick", memory=False, children=[PerceptionToBlackboard(state), decide])


def run(video, max_frames: int | None = None, verbose: bool = True, stale_after_s: float = 1.0) -> list[dict]:
    """Feed ``video`` through the installed nodes, tick once per frame; return the ticks."""
    from rclpy.node import Node

    from emotion_perception.bt.ros import PerceptionSubscriber
    from emotion_perception.launch_description import describe
    from emotion_perception.offline import OfflinePipeline
    from emotion_perception.sources import open_source

    desc = describe(available_only=True)
    state = PerceptionState(stale_after_s=stale_after_s)
    log: list[str] = []
    tree = py_trees.trees.BehaviourTree(build_tree(state, log))
    ticks = []
    source = open_source(video, max_frames=max_frames)
    with OfflinePipeline(desc, log_level="error", skip_unstartable=True) as op:
        outputs = op.desc.output_topics()  # the nodes that did start
        emotion_topic = next((t for t in ("emotion", "emotion/transformer", "emotion/lstm", "emotion/frame",
                                          "emotion/image") if t in outputs), None)
        attention_topic = "attention" if "attention" in outputs else None
        if verbose:
            print(f"nodes: {', '.join(op.desc.short_names)}; the tree reads {emotion_topic}, {attention_topic}, "
                  "faces/mesh")
        node = Node("greet_tree", context=op.pipeline.context)
        PerceptionSubscriber(node, state, emotion_topic=emotion_topic, attention_topic=attention_topic)
        op.add_node(node)  # spun with the pipeline, destroyed after it stops
        time.sleep(0.3)  # discovery of the tree's subscriptions
        try:
            for frame in source:
                result = op.feed(frame, wait=True)
                # the tree's own subscriber got the same messages; wait until it has this frame
                deadline = time.monotonic() + 0.5
                while state.last_stamp_ns["faces"] != result.stamp_ns and time.monotonic() < deadline:
                    time.sleep(0.002)
                tree.tick()
                snap = tree.root.children[0].state.snapshot()
                tick = {"time_s": round(frame.time_s, 3), "branch": log[-1] if log else None,
                        "faces": snap.ids()}
                ticks.append(tick)
                if verbose:
                    print(f"t={tick['time_s']:6.2f}s  branch={tick['branch']:<9} faces={tick['faces']}")
        finally:
            source.close()
    return ticks


def cli(run_fn, doc: str, default_video, argv=None) -> int:
    """The examples' command line: a video (optional), --max-frames; prints the branches taken."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", nargs="?", default=str(default_video))
    p.add_argument("--max-frames", type=int, default=None)
    args = p.parse_args(argv)
    ticks = run_fn(args.video, args.max_frames)
    counts = {}
    for t in ticks:
        counts[t["branch"]] = counts.get(t["branch"], 0) + 1
    print("branches taken:", counts)
    return 0


def main(argv=None) -> int:
    return cli(run, __doc__, DEFAULT_VIDEO, argv)


if __name__ == "__main__":
    sys.exit(main())
