"""The nodes' executor (``nodes/executor.py``) over real rclpy and Fast DDS: every kind
of entity a node has is served (subscriptions, timers, parameter services, tasks,
coroutine callbacks, entities created while it spins), one wait per message, and it
stops on shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.task import Future
from std_msgs.msg import String

from conftest import own_ros_domain_fixture, wait_until
from emotion_perception.nodes.executor import LeanExecutor, spin
from emotion_perception.nodes.lazy import CHECK_PERIOD_S
from emotion_perception.nodes.qos import RESULT_QOS

own_ros_domain = own_ros_domain_fixture(5, 30)

#: Nodes whose output the fusion node may fuse.
MEMBERS = ("transformer", "lstm", "frame", "image_emotion")
#: Longest wait for discovery or a message in these tests, s.
TIMEOUT_S = 10.0


@pytest.fixture
def contexts():
    """Two rclpy contexts (two DDS participants): the served node's and the peer's."""
    made = []
    for _ in range(2):
        c = Context()
        rclpy.init(context=c)
        made.append(c)
    yield made
    for c in made:
        rclpy.try_shutdown(context=c)


class Spinner:
    """Spins an executor in a thread with spin_once(timeout_sec), counting the calls."""

    def __init__(self, executor, timeout_sec: float = 0.5):
        self.executor = executor
        self.timeout_sec = timeout_sec
        self.calls = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self._stop.is_set() and self.executor.context.ok():
                self.executor.spin_once(timeout_sec=self.timeout_sec)
                self.calls += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.executor.wake()
        self._thread.join(5.0)
        assert not self._thread.is_alive()
        self.executor.shutdown(timeout_sec=1.0)


def wait_matched(pub, n: int = 1) -> None:
    assert wait_until(lambda: pub.get_subscription_count() >= n), "subscriber not discovered"


def test_messages_in_order_with_one_wait_each(contexts):
    """Each message costs one wait of the executor: nothing wakes it again after a
    callback (rclpy's SingleThreadedExecutor triggers its guard condition twice per
    callback, so its next wait returns at once with nothing to do). Every message
    arrives, in order."""
    served, peer = Node("served", context=contexts[0]), Node("peer", context=contexts[1])
    got = []
    served.create_subscription(String, "chatter", lambda m: got.append(m.data), RESULT_QOS)
    pub = peer.create_publisher(String, "chatter", RESULT_QOS)
    ex = LeanExecutor(context=contexts[0])
    ex.add_node(served)
    with Spinner(ex) as sp:
        wait_matched(pub)
        time.sleep(0.5)  # discovery events served
        calls0 = sp.calls
        n = 40
        for i in range(n):
            pub.publish(String(data=str(i)))
            time.sleep(0.02)
        assert wait_until(lambda: len(got) == n)
        calls = sp.calls - calls0
    assert got == [str(i) for i in range(n)]
    # a pass is one wait; 0.5 s timeouts and the 1 s QoS-event polls add a few; a
    # wake-up after each callback would make 80 and more
    assert calls <= n + 5, f"{calls} passes for {n} messages"
    assert sp.error is None


def test_timers_cancel_and_reset(contexts):
    node = Node("timed", context=contexts[0])
    ticks, once = [], []
    node.create_timer(0.05, lambda: ticks.append(time.monotonic()))
    cancelled = node.create_timer(0.05, lambda: once.append(1))
    cancelled.cancel()
    ex = LeanExecutor(context=contexts[0])
    ex.add_node(node)
    with Spinner(ex):
        time.sleep(1.0)
        assert once == []  # a cancelled timer never runs
        cancelled.reset()
        assert wait_until(lambda: len(once) >= 1, 2.0)
    assert 5 <= len(ticks) <= 30, len(ticks)  # about 20 at 50 ms; a loaded machine skips a few


def test_parameter_services_answer_while_busy_and_when_idle(contexts):
    """`ros2 param set` reaches a node spun by it: at once when the executor is idle, and
    within a fraction of a second while messages keep it busy (its waits leave the
    services out for at most SERVICE_POLL_S), also right after a burst ends."""
    from rcl_interfaces.srv import SetParameters

    served, peer = Node("served", context=contexts[0]), Node("peer", context=contexts[1])
    served.declare_parameter("gain", 1.0)
    got = []
    served.create_subscription(String, "chatter", lambda m: got.append(m.data), RESULT_QOS)
    pub = peer.create_publisher(String, "chatter", RESULT_QOS)
    ex = LeanExecutor(context=contexts[0])
    ex.add_node(served)
    peer_ex = SingleThreadedExecutor(context=contexts[1])
    peer_ex.add_node(peer)
    busy = threading.Event()

    def stream():  # 200 messages a second while busy is set
        while busy.is_set():
            pub.publish(String(data="x"))
            time.sleep(0.005)

    def set_gain(value: float) -> float:
        req = SetParameters.Request(parameters=[Parameter("gain", value=value).to_parameter_msg()])
        t0 = time.monotonic()
        future = client.call_async(req)
        peer_ex.spin_until_future_complete(future, timeout_sec=TIMEOUT_S)
        assert future.result() is not None and future.result().results[0].successful
        return time.monotonic() - t0

    with Spinner(ex, timeout_sec=5.0):  # a request left waiting would wait that long
        client = peer.create_client(SetParameters, "/served/set_parameters")
        assert client.wait_for_service(timeout_sec=TIMEOUT_S)
        wait_matched(pub)
        idle_s = set_gain(2.5)
        assert served.get_parameter("gain").value == 2.5
        busy.set()
        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        time.sleep(0.5)
        n0 = len(got)
        busy_s = [set_gain(v) for v in (3.0, 3.5, 4.0)]
        assert len(got) > n0, "the executor was not busy"
        busy.clear()
        streamer.join()
        time.sleep(0.02)  # just after the burst: the executor's last wait may be one without them
        after_s = set_gain(4.5)
    peer_ex.shutdown()
    assert served.get_parameter("gain").value == 4.5
    # a request left waiting is answered only at the 5 s timeout; well below that means served
    assert idle_s < 2.5 and max(busy_s) < 2.5 and after_s < 2.5, (idle_s, busy_s, after_s)


def test_tasks_coroutines_and_late_entities(contexts):
    """create_task runs; a coroutine callback awaiting a future finishes; a subscription
    created while spinning receives."""
    served, peer = Node("served", context=contexts[0]), Node("peer", context=contexts[1])
    ex = LeanExecutor(context=contexts[0])
    ex.add_node(served)
    ran, finished = [], []
    gate = Future(executor=ex)  # ex.create_future() is Kilted's; Jazzy's rclpy 7 has only this

    async def waits_for_gate(msg):
        await gate
        finished.append(msg.data)

    with Spinner(ex) as sp:
        ex.create_task(lambda: ran.append(1))
        assert wait_until(lambda: ran == [1])
        served.create_subscription(String, "late", waits_for_gate, RESULT_QOS)
        pub = peer.create_publisher(String, "late", RESULT_QOS)
        wait_matched(pub)
        pub.publish(String(data="x"))
        time.sleep(0.3)
        assert finished == []  # suspended on the future
        gate.set_result(True)
        assert wait_until(lambda: finished == ["x"])
    assert sp.error is None


def test_spin_ends_on_shutdown_and_survives_destroyed_entities(contexts):
    served, peer = Node("served", context=contexts[0]), Node("peer", context=contexts[1])
    got = []
    sub = served.create_subscription(String, "chatter", lambda m: got.append(m.data), RESULT_QOS)
    pub = peer.create_publisher(String, "chatter", RESULT_QOS)
    outcome = []

    def run():
        try:
            spin(served)
        except ExternalShutdownException:
            outcome.append("shutdown")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    wait_matched(pub)
    pub.publish(String(data="a"))
    assert wait_until(lambda: got == ["a"])
    served.destroy_subscription(sub)  # while the executor waits on it
    pub.publish(String(data="b"))
    time.sleep(0.3)
    served.create_subscription(String, "chatter", lambda m: got.append(m.data), RESULT_QOS)
    wait_matched(pub)
    pub.publish(String(data="c"))
    assert wait_until(lambda: got[-1:] == ["c"])
    rclpy.shutdown(context=contexts[0])
    t.join(5.0)
    assert not t.is_alive()
    assert outcome == ["shutdown"]
    assert "b" not in got


def test_sequence_gaps_per_writer_and_without_writer_ids():
    """Gaps are counted per writer (Kilted's message info names it); without writer ids
    (Jazzy) only while one writer publishes, since several writers' numbers interleave."""
    from emotion_perception.nodes.sequence_gaps import SequenceGaps

    def info(seq, gid=None):
        return {"publication_sequence_number": seq, **({"publisher_gid": {"data": gid}} if gid else {})}

    g = SequenceGaps()
    assert [g.count(info(s, w)) for s, w in [(5, b"a"), (1, b"b"), (6, b"a"), (4, b"b"), (9, b"a")]] == \
        [0, 0, 0, 2, 2]
    assert g.count({}) is None and g.count(None) is None
    one, two = SequenceGaps(), SequenceGaps()
    assert [one.count(info(s), lambda: 1) for s in (1, 2, 5)] == [0, 0, 2]
    assert [two.count(info(s), lambda: 2) for s in (1, 7, 3, 9)] == [0, 0, 0, 0]
    one.reset()
    assert one.count(info(9), lambda: 1) == 0  # a fresh start: no gap before the first


def test_messages_a_slow_node_loses_in_its_queue_are_counted(contexts):
    """A node that falls behind loses the oldest messages of its keep-last queue, and
    neither DDS nor rclpy says so: the executor counts them from the publisher's
    sequence numbers. Every message is either handled or counted, on the node's
    /diagnostics too."""
    from emotion_perception.nodes.diagnostics import Diagnostics

    served, peer = Node("slow", context=contexts[0]), Node("peer", context=contexts[1])
    diag = Diagnostics(served)
    got = []

    def slow(msg):
        got.append(int(msg.data))
        time.sleep(0.05)

    # a topic of its own: another test's endpoints that are not gone yet (a participant
    # lives until its context is collected) would be a second publisher, and on Jazzy,
    # whose rclpy does not name a message's writer, gaps count only with one publisher
    topic = "slow_chatter"
    served.create_subscription(String, topic, slow, 3)
    pub = peer.create_publisher(String, topic, RESULT_QOS)
    ex = LeanExecutor(context=contexts[0])
    ex.add_node(served)
    try:
        with Spinner(ex) as sp:
            wait_matched(pub)
            time.sleep(0.5)
            n = 60
            for i in range(n):
                pub.publish(String(data=str(i)))
                time.sleep(0.002)
            assert wait_until(lambda: got[-1:] == [n - 1] and len(got) + ex.input_lost == n, 30.0), \
                (len(got), ex.input_lost, got, served.count_publishers(topic))
            time.sleep(0.2)
    finally:
        served.destroy_node()
        peer.destroy_node()
    assert got == sorted(got)
    assert 0 < ex.input_lost == n - len(got)
    assert diag.input_lost_total == ex.input_lost
    assert diag.snapshot()["input_lost_total"] == ex.input_lost
    assert sp.error is None


def talker_and_listener(context, subscribe):
    """A talker publishing ``chatter`` and a listener that ``subscribe(listener)`` makes
    subscribe to it, spun by one LeanExecutor with in-process delivery between them:
    (talker's publisher, listener, executor, delivery)."""
    from emotion_perception.nodes.in_process import InProcessDelivery

    talker, listener = Node("talker", context=context), Node("listener", context=context)
    subscribe(listener)
    pub = talker.create_publisher(String, "chatter", RESULT_QOS)
    ex = LeanExecutor(context=context)
    ex.add_node(talker)
    ex.add_node(listener)
    delivery = InProcessDelivery(ex, [talker, listener])
    assert delivery.routes == {"/chatter": 1}
    return pub, listener, ex, delivery


def test_in_process_delivery_and_outside_listeners(contexts):
    """Between nodes of one process a message is handed over in-process, in order, once;
    while a subscriber outside the process listens, it goes through DDS for everyone,
    still once each."""
    got = []
    pub, _, ex, delivery = talker_and_listener(
        contexts[0], lambda n: n.create_subscription(String, "chatter", lambda m: got.append(m.data), RESULT_QOS))
    with Spinner(ex) as sp:
        wait_matched(pub)
        for i in range(20):
            pub.publish(String(data=str(i)))  # from another thread, like the landmark node's workers
            time.sleep(0.01)
        assert wait_until(lambda: len(got) == 20)
        assert delivery.delivered == 20 and delivery.published == 0
        outside = Node("outside", context=contexts[1])
        heard = []
        outside.create_subscription(String, "chatter", lambda m: heard.append(m.data), RESULT_QOS)
        outside_ex = LeanExecutor(context=contexts[1])
        outside_ex.add_node(outside)
        with Spinner(outside_ex):
            wait_matched(pub, 2)
            # until the outside reader has matched the writer too, DDS drops what it is sent
            deadline = time.monotonic() + TIMEOUT_S
            while not heard:
                assert time.monotonic() < deadline, "outside listener never heard the talker"
                pub.publish(String(data="warm-up"))
                time.sleep(0.1)
            warm_ups = len([g for g in got if g == "warm-up"])
            for i in range(20, 40):
                pub.publish(String(data=str(i)))
                time.sleep(0.01)
            assert wait_until(lambda: len(got) == 40 + warm_ups and heard[-1:] == ["39"])
            time.sleep(0.3)
    assert [g for g in got if g != "warm-up"] == [str(i) for i in range(40)]  # each once, in order
    assert [h for h in heard if h != "warm-up"] == [str(i) for i in range(20, 40)]
    assert delivery.published == 20 + warm_ups
    assert sp.error is None


def test_an_outside_listener_loses_nothing_while_a_node_of_the_process_unsubscribes(contexts):
    """A lazy node going idle destroys its subscription (on the executor thread, where
    it leaves DDS at once), then the routes follow. A message published in between
    (the landmark node's workers publish from their own threads) must reach the
    outside listener. Before the routes were suspended for the change, the talker's one
    matched subscriber then was the outside one while the route still counted the
    destroyed local one, so the message went in-process, to the destroyed
    subscription's callback only (seen as a faces/mesh the test probe never got, 125 s
    later, on a machine loaded 3 per core)."""
    from emotion_perception.nodes.lazy import InputSubscriptions

    got, heard = [], []

    def subscribe(node):
        node.inputs = InputSubscriptions(node, {"chatter": (String, lambda m: got.append(m.data))})
        node.inputs.set(["chatter"])

    pub, listener, ex, delivery = talker_and_listener(contexts[0], subscribe)
    inputs = listener.inputs
    outside = Node("outside", context=contexts[1])
    outside.create_subscription(String, "chatter", lambda m: heard.append(m.data), RESULT_QOS)
    outside_ex = LeanExecutor(context=contexts[1])
    outside_ex.add_node(outside)
    destroy = listener.destroy_subscription

    def destroy_then_publish(sub):  # a worker thread's publish lands between the two steps
        done = destroy(sub)
        pub.publish(String(data="between"))
        return done

    listener.destroy_subscription = destroy_then_publish
    with Spinner(ex) as sp, Spinner(outside_ex):
        wait_matched(pub, 2)
        deadline = time.monotonic() + TIMEOUT_S
        while not heard:  # until the outside reader has matched the writer too
            assert time.monotonic() < deadline, "outside listener never heard the talker"
            pub.publish(String(data="warm-up"))
            time.sleep(0.1)
        ex.call_soon(lambda: inputs.set([]))  # the listener goes idle, on the executor thread as lazy nodes do
        assert wait_until(lambda: "between" in heard), f"the outside listener lost it: {heard[-3:]}"
        pub.publish(String(data="after"))
        assert wait_until(lambda: "after" in heard)
        time.sleep(0.3)
    assert "between" not in got and "after" not in got, "delivered to a destroyed subscription"
    assert delivery.routes == {} and heard.count("between") == 1
    assert sp.error is None


def test_one_process_pipeline_hands_arrays_over_in_process():
    """The whole pipeline in one process, a behaviour tree listening to emotion and
    attention only: the arrays between the nodes never go through DDS, and every image
    still gets its fused emotion and attention, once. A listener on faces/mesh (a debug
    tool) switches that topic to DDS without losing or doubling anything."""
    import cv2

    from conftest import DATA, read_rgb
    from pipeline_probe import DOWNSTREAM, Probe, constructible_nodes
    from emotion_perception.runner import Pipeline

    rgb = cv2.resize(read_rgb(DATA / "muxspace" / "images" / "Colin_Powell_0145.jpg"), (320, 320))
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[80:400, 160:480] = rgb
    nodes = ["landmark", *constructible_nodes(DOWNSTREAM)]
    finals = ("emotion", "attention")
    with Pipeline(nodes, parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        probe = Probe(p, topics=finals)
        stamp = 1_000_000_000
        assert probe.send_until_served(frame, stamp, topic="emotion", tries=6, timeout=30.0) is not None
        # the fusion node has heard every member and keeps those with weight; the lazy
        # nodes have followed (nodes/lazy.py): the routes are those of the steady state
        fusion = p.nodes.get("emotion_fusion")
        deadline = time.monotonic() + 60.0
        while fusion is not None and len(fusion._models) < len([n for n in nodes if n in MEMBERS]):
            assert time.monotonic() < deadline, fusion._models
            stamp += 66_000_000
            probe.publish(frame, stamp)  # warm-up images, before the measured ones
            time.sleep(0.1)
        time.sleep(2 * CHECK_PERIOD_S)
        assert p.wait_inputs_settled()
        assert p.delivery is not None and "/faces/mesh" in p.delivery.routes  # attention reads it
        if "image_emotion" in nodes:  # it reads the landmark node's crops, handed over in-process
            assert "/faces/crops" in p.delivery.routes
        assert p.delivery.shared == {}  # only the landmark node takes the camera images
        warm_ups = p.delivery.published  # while the nodes subscribed or left (DDS matching lags)
        for k in range(1, 16):
            assert probe.send_until_served(frame, stamp + k * 66_000_000, topic="emotion", tries=3, timeout=6.0)
            assert probe.wait("attention", stamp + k * 66_000_000, 5.0) is not None
        assert p.delivery.published == warm_ups and p.delivery.delivered >= 15 * 2
        # a debug listener on faces/mesh in its own node: that topic now goes through DDS
        debug = Probe(p, topics=("faces/mesh",), name="debug")
        deadline = time.monotonic() + TIMEOUT_S
        while p.nodes["landmark"]._mesh_pub.get_subscription_count() < p.delivery.routes["/faces/mesh"] + 1:
            assert time.monotonic() < deadline, "debug listener not matched"
            time.sleep(0.05)
        for k in range(16, 26):
            s = stamp + k * 66_000_000
            assert probe.send_until_served(frame, s, topic="emotion", tries=3, timeout=6.0)
            assert debug.wait("faces/mesh", s, 5.0) is not None
        assert p.delivery.published >= 10
        time.sleep(0.5)
        for t in finals:
            assert len(probe.order[t]) == len(set(probe.order[t])), f"{t} published an image twice"
            assert probe.order[t] == sorted(probe.order[t])


def test_call_soon_keeps_order_and_drops_the_oldest_beyond_its_bound(contexts):
    from emotion_perception.nodes.executor import SOON_MAX

    ex = LeanExecutor(context=contexts[0])
    ran = []
    for i in range(SOON_MAX + 50):
        ex.call_soon(lambda i=i: ran.append(i))
    assert ex.soon_dropped == 50
    ex.spin_once(timeout_sec=1.0)
    assert ran == list(range(50, SOON_MAX + 50))
    ex.shutdown()


def test_call_soon_from_a_soon_function_runs_depth_first(contexts):
    """What a delivery queues (a node publishing while handling it) runs right after it,
    in the order queued, before deliveries that were already waiting; calls from other
    threads still go to the end."""
    ex = LeanExecutor(context=contexts[0])
    ran = []

    def a():
        ran.append("a")
        ex.call_soon(a1)
        ex.call_soon(lambda: ran.append("a2"))

    def a1():
        ran.append("a1")
        ex.call_soon(lambda: ran.append("a1x"))

    def b():
        ran.append("b")
        t = threading.Thread(target=lambda: ex.call_soon(lambda: ran.append("from another thread")))
        t.start()
        t.join()
        ex.call_soon(lambda: ran.append("b1"))

    ex.call_soon(a)
    ex.call_soon(b)
    ex.call_soon(lambda: ran.append("c"))
    ex.spin_once(timeout_sec=1.0)
    assert ran == ["a", "a1", "a1x", "a2", "b", "b1", "c", "from another thread"]
    ex.shutdown()


def test_call_soon_from_another_thread_wakes_once_per_batch_and_loses_nothing(contexts):
    """The landmark node's worker hands a camera frame's crops, meshes and blendshapes
    to the executor thread one after the other, while the executor already runs the
    first: the later calls need no wake-up of their own (the executor drains the queue
    before it waits; each extra trigger made the next wait return with the queue
    empty), yet none of them may be left waiting for an unrelated wake-up."""
    ex = LeanExecutor(context=contexts[0])
    ran: list[tuple[int, int, float]] = []
    waits, stop = [0], threading.Event()

    def spin():  # a long timeout: a call whose wake-up was lost would wait 5 s
        while not stop.is_set():
            ex.spin_once(timeout_sec=5.0)
            waits[0] += 1

    def work(burst: int, i: int) -> None:
        ran.append((burst, i, time.monotonic()))
        if i == 0:
            time.sleep(0.002)  # the image model's turn: the rest arrives meanwhile

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    time.sleep(0.2)
    rng = np.random.default_rng(0)
    bursts, queued = 150, {}
    waits0 = waits[0]
    for b in range(bursts):
        for i in range(3):
            ex.call_soon(lambda b=b, i=i: work(b, i))
            if i == 0:
                time.sleep(0.0005)  # the executor wakes and starts the first
        queued[b] = time.monotonic()
        time.sleep(float(rng.uniform(0.003, 0.006)))  # the next frame; sometimes while the last still runs
    assert wait_until(lambda: len(ran) == 3 * bursts, 10.0)
    n_waits = waits[0] - waits0
    stop.set()
    ex.wake()
    spinner.join(6.0)
    ex.shutdown()
    assert sorted((b, i) for b, i, _ in ran) == [(b, i) for b in range(bursts) for i in range(3)]
    assert [(b, i) for b, i, _ in ran] == sorted((b, i) for b, i, _ in ran), "out of order"
    late = max(t - queued[b] for b, _, t in ran)
    assert late < 1.0, f"a call ran {late:.2f} s after it was queued: its wake-up was lost"
    # one wait per frame (a few more where the executor had drained before its wake-up
    # came); a trigger per call made about two per frame
    assert n_waits <= 1.25 * bursts, f"{n_waits} waits for {bursts} bursts of three calls"


def test_outside_topic_read_by_two_nodes_is_taken_once(contexts):
    from emotion_perception.nodes.in_process import InProcessDelivery

    a, b = Node("reader_a", context=contexts[0]), Node("reader_b", context=contexts[0])
    got_a, got_b = [], []
    a.create_subscription(String, "camera", lambda m: got_a.append(m), RESULT_QOS)
    b.create_subscription(String, "camera", lambda m: got_b.append(m), RESULT_QOS)
    ex = LeanExecutor(context=contexts[0])
    ex.add_node(a)
    ex.add_node(b)
    delivery = InProcessDelivery(ex, [a, b])
    assert delivery.shared == {"/camera": 2} and delivery.routes == {}
    camera = Node("camera", context=contexts[1])
    pub = camera.create_publisher(String, "camera", RESULT_QOS)
    with Spinner(ex):
        wait_matched(pub, 2)
        for i in range(10):
            pub.publish(String(data=str(i)))
            time.sleep(0.01)
        assert wait_until(lambda: len(got_a) == 10 and len(got_b) == 10)
        time.sleep(0.3)
    assert [m.data for m in got_a] == [str(i) for i in range(10)]
    assert all(x is y for x, y in zip(got_a, got_b))  # the same message object: taken once


def test_in_process_nodes_feeding_others_go_first(contexts):
    """A node whose output another node of the process reads (an emotion model, read by
    the fusion node) gets each message before a node whose output leaves the process
    (attention), and the reader of its output runs before that leaf too."""
    from emotion_perception.nodes.in_process import InProcessDelivery

    order = []
    talker = Node("talker", context=contexts[0])
    leaf, feeder, sink = (Node(n, context=contexts[0]) for n in ("leaf", "feeder", "sink"))
    pub = talker.create_publisher(String, "source", RESULT_QOS)
    relay = feeder.create_publisher(String, "relayed", RESULT_QOS)
    leaf.create_subscription(String, "source", lambda m: order.append(("leaf", m.data)), RESULT_QOS)
    feeder.create_subscription(String, "source", lambda m: (order.append(("feeder", m.data)),
                                                             relay.publish(String(data=m.data))), RESULT_QOS)
    sink.create_subscription(String, "relayed", lambda m: order.append(("sink", m.data)), RESULT_QOS)
    ex = LeanExecutor(context=contexts[0])
    nodes = [talker, leaf, feeder, sink]  # the leaf subscribed before the feeder
    for n in nodes:
        ex.add_node(n)
    InProcessDelivery(ex, nodes)
    with Spinner(ex):
        wait_matched(pub, 2)
        wait_matched(relay, 1)
        pub.publish(String(data="1"))
        assert wait_until(lambda: len(order) == 3)
    assert order == [("feeder", "1"), ("sink", "1"), ("leaf", "1")]


#: A node whose teardown never returns and holds the GIL meanwhile (a C call made
#: through PyDLL keeps it), as Fast DDS's participant deletion was seen to do.
HANGING_STOP = '''
import ctypes, sys
from rclpy.node import Node
from emotion_perception.nodes import process
process.STOP_WATCHDOG_S = 1.0

class Stuck(Node):
    def __init__(self):
        super().__init__("stuck_node")
        print("up", flush=True)

    def destroy_node(self):
        ctypes.PyDLL("libc.so.6").sleep(60)

sys.exit(process.run_node(Stuck))
'''


def test_a_stop_that_hangs_dumps_every_stack_and_exits():
    """A node whose stop hangs with the GIL held (so no Python thread can run, the
    stderr filter's neither) exits with status 1 about STOP_WATCHDOG_S after the
    signal, and its threads' stacks, naming where it hung, reach stderr."""
    p = subprocess.Popen([sys.executable, "-c", HANGING_STOP], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ))
    try:
        assert p.stdout.readline().strip() == "up", p.stderr.read()[-2000:]
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, err[-2000:]
    assert took < 10.0, f"took {took:.1f} s"
    assert "Timeout" in err and "in destroy_node" in err, err[-2000:]


def _affinities() -> dict[int, set]:
    """CPU affinity of every thread of this process; a thread that ends while they are
    read (an earlier test's Fast DDS threads winding down) is left out."""
    out = {}
    for t in map(int, os.listdir("/proc/self/task")):
        try:
            out[t] = os.sched_getaffinity(t)
        except ProcessLookupError:
            pass
    return out


def test_teardown_runs_on_one_cpu_at_idle_priority_then_restores():
    """yield_to_middleware_threads (around a node's teardown, see its docstring): every
    thread of the process on one CPU and the calling thread at SCHED_IDLE inside, the
    previous affinities and policy afterwards."""
    from emotion_perception.nodes.process import yield_to_middleware_threads

    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, daemon=True)
    helper.start()
    try:
        before = _affinities()
        policy = os.sched_getscheduler(0)
        with yield_to_middleware_threads():
            inside = _affinities()
            assert os.sched_getscheduler(0) == os.SCHED_IDLE
        assert helper.native_id in inside
        assert len(set(map(frozenset, inside.values()))) == 1 and len(next(iter(inside.values()))) == 1, inside
        assert os.sched_getscheduler(0) == policy
        after = {t: os.sched_getaffinity(t) for t in before if os.path.exists(f"/proc/self/task/{t}")}
        assert after == {t: before[t] for t in after}
    finally:
        stop.set()


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process delivery", "through DDS"])
def test_a_failing_callback_is_contained_in_its_node(in_process, capfd):
    """Two nodes in one process read faces/blendshapes; one of them (lstm) raises from
    its callback for every array. The other (frame, svm-blendshapes) keeps answering
    every array, the failing one keeps being called (its failures counted in its
    /diagnostics), and the log names the node once, not once per array."""
    from emotion_perception.runner import Pipeline
    from emotion_perception_msgs.msg import Blendshapes, BlendshapesArray, EmotionArray

    rng = np.random.default_rng(1)
    with Pipeline(["lstm", "frame"], parameter_overrides={"frame": {"model": "svm-blendshapes"}},
                  in_process_delivery=in_process) as p:
        lstm = p.nodes["lstm"]

        def broken(_ms):
            raise RuntimeError("broken on purpose")

        lstm.diagnostics.tick = broken  # called at the end of every array's callback
        peer = Node("peer", context=p.context)
        pub = peer.create_publisher(BlendshapesArray, "faces/blendshapes", RESULT_QOS)
        got = {"emotion/frame": 0, "emotion/lstm": 0}

        def counter(topic):
            def cb(_msg):
                got[topic] += 1
            return cb

        for topic in got:  # listeners: the lazy nodes wake
            peer.create_subscription(EmotionArray, topic, counter(topic), RESULT_QOS)
        p.add_node(peer)
        deadline = time.monotonic() + 30.0
        while pub.get_subscription_count() < 2 or not p.inputs_settled():
            assert time.monotonic() < deadline, "the nodes did not subscribe"
            time.sleep(0.05)
        n = 20
        for i in range(n):
            arr = BlendshapesArray()
            arr.header.stamp.sec, arr.header.stamp.nanosec = 100 + i, 0
            arr.faces.append(Blendshapes(header=arr.header, face_id="face_1",
                                         scores=[float(v) for v in rng.random(52)]))
            pub.publish(arr)
            time.sleep(0.05)
        deadline = time.monotonic() + 30.0
        while (got["emotion/frame"] < n or lstm.diagnostics.callback_errors_total < n) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert got["emotion/frame"] == n, got
        assert lstm.diagnostics.callback_errors_total == n
        assert lstm.diagnostics.snapshot()["callback_errors_total"] == n
        assert all(t.is_alive() for t in p._threads)
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if "a callback failed: RuntimeError: broken on purpose" in ln]
    assert len(lines) == 1 and "lstm_node" in lines[0], err[-3000:]


def test_a_pipeline_log_level_holds_only_while_it_runs(capfd):
    """``Pipeline(log_level=...)`` passes ``--log-level``, which sets the default level of
    every logger in the process. After stop() the caller's own loggers speak again (the
    REP-155 behaviour-tree example runs its pipeline at "error"; every warning later in
    that process, a whole test module's, went silent)."""
    import rclpy.logging

    from emotion_perception.runner import Pipeline

    before = rclpy.logging.get_logger_level("")
    with Pipeline(["attention"], log_level="error"):
        assert rclpy.logging.get_logger_effective_level("someone_else") == rclpy.logging.LoggingSeverity.ERROR
    assert rclpy.logging.get_logger_level("") == before
    capfd.readouterr()
    rclpy.logging.get_logger("someone_else").warning("still heard")
    assert "still heard" in capfd.readouterr().err
