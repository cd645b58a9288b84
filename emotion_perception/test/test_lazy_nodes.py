"""Nodes work only for someone (nodes/lazy.py), over the real middleware: a classifier
node with no subscriber on its output takes no input; a subscriber (what ``ros2 topic
echo`` does) wakes it and its output arrives; it goes idle again when the subscriber
leaves; /diagnostics says which and why. In one process the fusion node subscribes
only to the members that carry weight in fusion.json, so the others sleep while the
fused emotion flows, and an echo on one of them wakes it there too.

Times are asserted generously (a loaded 2-core machine); the wake-up time itself is a
benchmark figure (benchmarks/lazy_wake.py).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from conftest import own_ros_domain_fixture, wait_until
from emotion_perception.nodes.qos import RESULT_QOS
from emotion_perception.runner import Pipeline
from emotion_perception_msgs.msg import Blendshapes, BlendshapesArray, EmotionArray
from pipeline_probe import Probe

own_ros_domain = own_ros_domain_fixture(35, 5)


class Listener(Node):
    """A stand-in for ``ros2 topic echo``: records what a topic carries and /diagnostics."""

    def __init__(self, context, name="listener"):
        super().__init__(name, context=context)
        self.lock = threading.Lock()
        self.got: dict[str, list] = {}
        self.diag: dict[str, dict[str, str]] = {}
        self.subs = {}
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, RESULT_QOS)

    def echo(self, topic: str, kind=EmotionArray) -> None:
        self.got.setdefault(topic, [])

        def cb(msg):
            with self.lock:
                self.got[topic].append(msg)

        self.subs[topic] = self.create_subscription(kind, topic, cb, RESULT_QOS)

    def stop_echo(self, topic: str) -> None:
        self.destroy_subscription(self.subs.pop(topic))

    def count(self, topic: str) -> int:
        with self.lock:
            return len(self.got.get(topic, []))

    def _on_diag(self, msg):
        with self.lock:
            for s in msg.status:
                self.diag[s.name.rsplit("/", 1)[-1]] = {"message": s.message, **{kv.key: kv.value for kv in s.values}}

    def status(self, node: str) -> dict:
        with self.lock:
            return dict(self.diag.get(node, {}))


def _blendshapes(i: int, rng) -> BlendshapesArray:
    arr = BlendshapesArray()
    arr.header.stamp.sec, arr.header.stamp.nanosec = 1000 + i // 30, (i % 30) * 33_333_333
    arr.header.frame_id = "camera"
    arr.faces.append(Blendshapes(header=arr.header, face_id="face_1", scores=[float(v) for v in rng.random(52)]))
    return arr


def test_lstm_node_sleeps_without_subscriber_and_an_echo_wakes_it():
    """Idle: not subscribed to faces/blendshapes (the publisher finds no reader), so
    nothing it publishes is taken; an echo on emotion/lstm wakes it and output flows;
    the echo gone, it sleeps again. /diagnostics says idle or active, and why."""
    rng = np.random.default_rng(0)
    with Pipeline(["lstm"]) as p:
        node = p.nodes["lstm"]
        feeder = Node("feeder", context=p.context)
        pub = feeder.create_publisher(BlendshapesArray, "faces/blendshapes", RESULT_QOS)
        listener = Listener(p.context)
        p.add_node(feeder)
        p.add_node(listener)

        # idle: no reader on faces/blendshapes, whatever is published is taken by nobody
        assert wait_until(lambda: listener.status("lstm_node").get("activity") == "idle"), listener.diag
        status = listener.status("lstm_node")
        assert status["message"].startswith("idle:") and "no subscriber on /emotion/lstm" in status["message"], status
        for i in range(10):
            pub.publish(_blendshapes(i, rng))
            time.sleep(0.02)
        time.sleep(1.5)
        assert pub.get_subscription_count() == 0 and not node.inputs.active
        assert node.diagnostics.processed == 0
        # the output's matched events drive the checks: no polling timer of its own
        assert node.inputs.timer is None

        # an echo wakes it: it subscribes, and its first output arrives
        t0 = time.monotonic()
        listener.echo("emotion/lstm")
        assert wait_until(lambda: pub.get_subscription_count() == 1), "the echo did not wake the node"
        woke_s = time.monotonic() - t0
        i = 10
        while listener.count("emotion/lstm") == 0 and i < 400:  # until the first output (a loaded machine)
            pub.publish(_blendshapes(i, rng))
            i += 1
            time.sleep(0.05)
        assert listener.count("emotion/lstm") > 0, f"woke in {woke_s:.1f} s but nothing came"
        assert wait_until(lambda: listener.status("lstm_node").get("activity") == "active")
        assert "1 subscriber(s) on /emotion/lstm" in listener.status("lstm_node")["activity_reason"]
        assert node.inputs.woken == 1

        # the echo leaves: idle again, and it takes nothing more
        listener.stop_echo("emotion/lstm")
        assert wait_until(lambda: pub.get_subscription_count() == 0 and not node.inputs.active), "still subscribed"
        assert wait_until(lambda: listener.status("lstm_node").get("activity") == "idle")
        processed = node.diagnostics.processed
        for k in range(10):
            pub.publish(_blendshapes(i + k, rng))
            time.sleep(0.02)
        time.sleep(1.0)
        assert node.diagnostics.processed == processed
        assert node.model.faces() == []  # per-face buffers forgotten: the frames in between were not seen


def test_a_missed_matched_event_is_caught_within_seconds_and_counted():
    """The middleware's matched event is the wake-up; the once-a-second diagnostics check
    is the safety net. With the event handler taken away (as if the event never came), an
    echo still wakes the node, the miss is counted in its diagnostics, and the echo's
    leaving sends it idle the same way."""
    with Pipeline(["lstm"]) as p:
        node = p.nodes["lstm"]
        listener = Listener(p.context)
        p.add_node(listener)
        assert wait_until(lambda: listener.status("lstm_node").get("activity") == "idle"), listener.diag
        handlers = [h for h in node.pub.event_handlers if getattr(h, "poll_with_services", False)]
        assert len(handlers) == 1, "the output publisher has no matched-event handler"
        node.pub.event_handlers.remove(handlers[0])
        node.remove_waitable(handlers[0])
        handlers[0].destroy()

        listener.echo("emotion/lstm")
        assert wait_until(lambda: node.inputs.active), "the periodic check did not wake the node"
        # the check subscribes first and counts the miss after: wait for the count too
        assert wait_until(lambda: node.inputs.missed == 1), node.inputs.missed
        assert node.inputs.woken == 1
        assert wait_until(lambda: listener.status("lstm_node").get("missed_match_events") == "1"), \
            listener.status("lstm_node")
        listener.stop_echo("emotion/lstm")
        assert wait_until(lambda: not node.inputs.active), "the periodic check did not idle the node"
        assert wait_until(lambda: node.inputs.missed == 2), node.inputs.missed


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process delivery", "through DDS"])
def test_fusion_wakes_only_weighted_members_and_an_echo_wakes_another(astronaut_rgb, in_process):
    """The whole pipeline in one process: once the models have named themselves, the
    fusion node subscribes only to the members with weight in fusion.json (the image
    model and the LSTM with the shipped file, whose stream profile weights the LSTM), so
    the others take no more arrays while emotion keeps
    coming; an echo on a sleeping member's topic wakes it (its arrays reach the echo),
    and it sleeps again when the echo leaves. Nobody listens to attention: it sleeps."""
    from emotion_perception.fusion import load_params

    pooling, _ = load_params()
    nodes = ["landmark", "transformer", "lstm", "frame", "image_emotion", "emotion_fusion", "attention"]
    with Pipeline(nodes, in_process_delivery=in_process) as p:
        probe = Probe(p, topics=("emotion",))
        listener = Listener(p.context)
        p.add_node(listener)
        fusion = p.nodes["emotion_fusion"]
        stamp = [1_000_000_000]

        def send(n):
            for _ in range(n):
                stamp[0] += 33_333_333
                probe.publish(astronaut_rgb, stamp[0])
                time.sleep(1 / 15)

        # until the fused emotion flows and the fusion node has settled its inputs
        assert probe.send_until_served(astronaut_rgb, stamp[0], topic="emotion", tries=10, timeout=60.0) is not None
        models = {}

        def settled():
            send(3)
            models.update(fusion._models)
            weighted = pooling.weighted_models(set(models.values()))
            return len(models) == 4 and set(fusion.inputs.subs) == {t for t, m in models.items() if m in weighted}
        assert wait_until(settled, 60.0, 0.0), (fusion._models, list(fusion.inputs.subs))
        weighted = pooling.weighted_models(set(models.values()))
        asleep = [short for short, topic in (("transformer", "emotion/transformer"), ("lstm", "emotion/lstm"),
                                             ("frame", "emotion/frame"), ("image_emotion", "emotion/image"))
                  if models[topic] not in weighted]
        assert "image_emotion" not in asleep and asleep, (models, sorted(weighted))
        assert wait_until(lambda: not any(p.nodes[s].inputs.active for s in asleep) and not p.nodes["attention"].inputs.active)
        time.sleep(1.0)  # arrays taken (or queued in-process) before they unsubscribed are handled
        before = {s: p.nodes[s].diagnostics.processed for s in asleep}
        fused_before = len(probe.arrays["emotion"])
        send(15)
        assert wait_until(lambda: len(probe.arrays["emotion"]) >= fused_before + 10, 30.0), "emotion stopped"
        assert {s: p.nodes[s].diagnostics.processed for s in asleep} == before
        assert p.nodes["attention"]._diag.processed == 0

        # an echo on a sleeping member wakes it; its arrays reach the echo
        member = asleep[0]
        topic = p.nodes[member].pub.topic_name
        node = p.nodes[member]
        listener.echo(topic)
        assert wait_until(lambda: node.inputs.active), f"the echo did not wake {member}"
        assert wait_until(lambda: (send(1), listener.count(topic) > 0)[1], 60.0, 0.0)
        listener.stop_echo(topic)
        assert wait_until(lambda: not node.inputs.active), f"{member} did not go idle"
