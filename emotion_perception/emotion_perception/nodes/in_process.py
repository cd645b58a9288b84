"""In-process delivery for the one-process pipeline: a message that one node publishes
goes straight to the callbacks of the other nodes of the process that subscribe to
its topic, as the same Python object, without serialising, DDS or taking it again.

rclpy has no intra-process communication: between two nodes of one process every
message is serialised, written to Fast DDS, and deserialised into a new Python object
for each subscription, and each subscription costs a wake-up of the executor. With
the seven nodes in one process that was 11 of the 13 messages per image
(``faces/mesh`` to four nodes, ``faces/blendshapes`` to three, four ``emotion/*``
arrays to the fusion node), most of the executor thread's CPU (docs/benchmarks.md).

A message goes the in-process way only while no subscriber outside the process
listens to its topic (the publisher's matched subscriptions are all the process's
own): then it is handed to :meth:`LeanExecutor.call_soon
<emotion_perception.nodes.executor.LeanExecutor.call_soon>`, which runs the callbacks
on the executor thread in publishing order, depth first (what a callback publishes is
delivered before the next message already waiting: crops -> image model -> fusion ->
``emotion`` finish before the other nodes' work on that image), and nothing goes to
DDS. When anyone else
listens (``ros2 topic echo faces/mesh``, a recorder, a node in another process), that
publisher publishes over DDS as before and every subscriber, the process's own
included, gets it from there; so nobody gets a message twice and the topic looks the
same from outside. The process's own DDS subscriptions stay: messages of other
publishers on these topics still arrive through them.

A topic that only comes from outside (the camera image) and that several nodes of the
process read (the landmark and image_emotion nodes) is taken once and the same
message goes to every one of them: a 640x480 image cost each subscription a
deserialisation and two copies of 921,600 bytes.

Within the process, the subscribers whose own output other nodes of the process read
(the emotion models, read by the fusion node) get each message first; the others
(the attention node) get it after what the first ones published has been delivered,
so the fusion node publishes ``emotion`` without waiting for the attention model.

Callbacks receive the publisher's object itself (every node reads, none modifies, the
messages it receives) and run on the executor thread, as they do over DDS.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Iterable

from rclpy.node import Node
from rclpy.subscription import Subscription

from .containment import contained
from .executor import LeanExecutor


def _wants_info(sub) -> bool:
    """True if the subscription's callback takes (message, MessageInfo)."""
    kind = getattr(Subscription, "CallbackType", None)
    return kind is not None and getattr(sub, "_callback_type", None) == kind.WithMessageInfo


class InProcessDelivery:
    """Routes the publishers of ``nodes`` to the subscriptions of ``nodes`` on the same
    topic and type (see the module docstring).

    The routes follow the subscriptions: a node that subscribes or unsubscribes on
    demand (:mod:`emotion_perception.nodes.lazy`) calls :meth:`suspend` before the
    change (everything goes through DDS meanwhile) and :meth:`refresh` after it, which
    routes to the subscriptions that exist now. A callback that raises is reported for its
    node (:mod:`emotion_perception.nodes.containment`); the other subscribers of that
    message still get it.

    Args:
        executor: the executor that spins ``nodes`` (its thread runs the callbacks).
        nodes: the process's nodes, already built (their publishers exist).

    Attributes:
        routes: topic name -> number of the process's subscriptions it delivers to.
        shared: outside topic name -> number of the process's subscriptions one take serves.
        delivered: messages handed over in-process.
        published: messages that went over DDS because someone outside listens.
    """

    def __init__(self, executor: LeanExecutor, nodes: Iterable[Node]):
        from .lazy import InputSubscriptions

        self._nodes = list(nodes)
        self._executor = executor
        self.routes: dict[str, int] = {}
        self.shared: dict[str, int] = {}
        self.delivered = 0
        self.published = 0
        self._targets: dict[int, tuple] = {}  # id(publisher) -> (first, last, own) while routed
        self._wrapped: set[int] = set()  # ids of publishers whose publish() is ours
        self._readers: list = []  # (subscription, its own callback) of shared topics' readers
        self._muted: list = []
        self._lock = threading.Lock()
        for node in self._nodes:
            for attr in list(vars(node).values()):
                if isinstance(attr, InputSubscriptions):
                    attr.before_change.append(self.suspend)
                    attr.on_change.append(self.refresh)
        self.refresh()

    def suspend(self) -> None:
        """Send everything through DDS until the next :meth:`refresh` (called before a
        node's subscriptions change).

        A publisher delivers in-process only while its matched subscriptions are no
        more than the process's own that it routes to. A subscription destroyed before
        the routes follow leaves the route counting it while DDS no longer does, so one
        outside subscriber looks like the missing local one: a message published then
        (the landmark node's workers publish from their own threads) would be handed to
        the destroyed subscription's callback and never reach the outside subscriber.
        Through DDS meanwhile, every subscription that exists gets it.
        """
        with self._lock:
            self._targets = {}

    def refresh(self) -> None:
        """Route to the subscriptions the nodes have now."""
        with self._lock:
            for sub, callback in self._readers:  # undo the shared takes: they are made again below
                sub.callback = callback
            for sub in self._muted:
                self._executor.unmute(sub)
            self._readers, self._muted = [], []
            subs = defaultdict(list)
            owner = {}
            for node in self._nodes:
                for sub in node.subscriptions:
                    subs[(sub.topic_name, sub.msg_type)].append(sub)
                    owner[id(sub)] = node
            published = {(pub.topic_name, pub.msg_type) for node in self._nodes for pub in node.publishers}
            # nodes whose output another node of the process reads (the emotion models feed
            # the fusion node) get a message before the nodes whose output leaves the process
            # (attention): the deepest output, emotion, is then not delayed by them
            feeds = {id(s) for node in self._nodes
                     if any((p.topic_name, p.msg_type) in subs for p in node.publishers) for s in node.subscriptions}
            targets, routes, shared = {}, {}, {}
            for node in self._nodes:
                for pub in node.publishers:
                    local = subs.get((pub.topic_name, pub.msg_type))
                    if local and not any(_wants_info(s) for s in local):  # a local message has no DDS info
                        first = tuple(contained(owner[id(s)], s.callback) for s in local if id(s) in feeds)
                        last = tuple(contained(owner[id(s)], s.callback) for s in local if id(s) not in feeds)
                        targets[id(pub)] = (first, last, len(local))
                        routes[pub.topic_name] = len(local)
                        if id(pub) not in self._wrapped:
                            self._wrap(pub)
            for (topic, msg_type), local in subs.items():
                if (topic, msg_type) not in published and len(local) > 1 and \
                        all(s.qos_profile == local[0].qos_profile for s in local):
                    self._share(local, owner)
                    shared[topic] = len(local)
            self._targets, self.routes, self.shared = targets, routes, shared

    def _wrap(self, pub) -> None:
        publish_dds = pub.publish  # the bound method: what publish() did before
        call_soon = self._executor.call_soon
        key = id(pub)

        def deliver(msg, first, last) -> None:
            for cb in first:
                cb(msg)
            if last and first:  # after what the first ones published (queued meanwhile) has run
                call_soon(lambda: _each(last, msg))
            else:
                _each(last, msg)

        def publish(msg) -> None:
            route = self._targets.get(key)
            if route is None or pub.get_subscription_count() > route[2]:
                # no subscriber in the process, or someone outside listens: everybody
                # gets it through DDS
                if route is not None:
                    self.published += 1
                publish_dds(msg)
                return
            self.delivered += 1
            call_soon(lambda: deliver(msg, route[0], route[1]))

        pub.publish = publish
        self._wrapped.add(key)

    def _share(self, local: list, owner: dict) -> None:
        """One take for every subscription of the process to an outside topic (the camera
        image: landmark and image_emotion): the first subscription's callback serves
        them all; the executor no longer takes from the others (their DDS readers keep
        only their last few messages, by their QoS depth)."""
        # the reader takes with MessageInfo if any of them wants it (the landmark node
        # counts lost camera frames by it); each callback gets what it asked for
        reader = next((s for s in local if _wants_info(s)), local[0])
        targets = [(contained(owner[id(s)], s.callback), _wants_info(s)) for s in local]

        def fan_out(msg, info) -> None:
            for cb, wants_info in targets:
                if wants_info:
                    cb(msg, info)
                else:
                    cb(msg)

        self._readers.append((reader, reader.callback))
        # rclpy picks what it passes by the callback's signature
        reader.callback = fan_out if _wants_info(reader) else (lambda msg: fan_out(msg, None))
        for s in local:
            if s is not reader:
                self._executor.mute(s)
                self._muted.append(s)


def _each(callbacks, msg) -> None:
    for cb in callbacks:
        cb(msg)
