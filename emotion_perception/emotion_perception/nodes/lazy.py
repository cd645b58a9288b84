"""Nodes that work only for someone: input subscriptions that exist only while they are
wanted.

A classifier node whose output nobody reads still took every face array, ran its model
and published, CPU the robot paid for nothing. :class:`LazyInputs` subscribes to a
node's inputs only while at least one subscriber listens to one of its outputs, and
destroys the subscriptions when the last one leaves, as image_proc's nodes do. It checks
whenever an output publisher's *matched* event says a subscriber came or left (the
publisher's matched subscriptions count subscribers in this process and outside it
alike), so ``ros2 topic echo emotion/lstm`` wakes the LSTM node as soon as discovery
matches the echo; an idle node takes no message and runs no timer of its own. It also
checks once a second when it publishes its /diagnostics (a timer every node runs anyway),
so a matched event the middleware failed to deliver costs at most a second, and is
counted (``missed_match_events`` in its diagnostics) and logged, not an idle node
forever. Where the middleware has no matched event and the node has no diagnostics, it
checks every :data:`CHECK_PERIOD_S` instead (that timer alone was 0.03-0.04 ms of CPU per
camera image at 30 Hz: ``benchmarks/lazy_wake.py``). Its /diagnostics says
``activity: active`` or ``idle`` and why.

:class:`InputSubscriptions` is the part that makes and destroys the subscriptions: the
fusion node uses it to subscribe to the members it fuses. Both tell their
``before_change`` callbacks before the subscriptions change and their ``on_change``
callbacks after, so that the one-process pipeline's in-process delivery
(:mod:`emotion_perception.nodes.in_process`) sends everything through DDS meanwhile
and then routes to the subscriptions that exist now.
"""

from __future__ import annotations

from typing import Callable, Iterable

from rclpy.event_handler import EventHandler, QoSPublisherEventType, UnsupportedEventTypeError
from rclpy.node import Node

from .qos import RESULT_QOS

#: How often a lazy node checks whether anyone listens to its output, seconds, where
#: the middleware has no publisher matched event.
CHECK_PERIOD_S = 0.5


def watch_matches(node: Node, pub, callback: Callable[[], None]) -> bool:
    """Call ``callback`` (no arguments) on ``node``'s executor whenever ``pub`` matches or
    loses a subscriber; False where the middleware has no matched event.

    The handler is one of ``pub``'s event handlers, so destroying the publisher destroys
    it; it is marked for :class:`~emotion_perception.nodes.executor.LeanExecutor` to poll
    with the services (within 0.1 s while busy, at once while idle) rather than with the
    QoS warnings (every second); any other executor polls it at every wait.
    """
    try:
        h = EventHandler(callback_group=node.default_callback_group, callback=lambda _info: callback(),
                         event_type=QoSPublisherEventType.RCL_PUBLISHER_MATCHED, parent_impl=pub.handle)
    except UnsupportedEventTypeError:
        return False
    h.poll_with_services = True
    pub.event_handlers.append(h)
    node.add_waitable(h)
    return True


class InputSubscriptions:
    """A node's input subscriptions, made and destroyed on demand.

    Args:
        node: the node that owns them.
        specs: input topic (relative, before remapping) -> (message type, callback),
            in the order the subscriptions are made.
        qos: their QoS profile.

    Attributes:
        subs: topic -> subscription, for the topics subscribed now.
        before_change: called (no arguments) before the subscriptions change.
        on_change: called (no arguments) after the subscriptions changed.
    """

    def __init__(self, node: Node, specs: dict[str, tuple[type, Callable]], qos=RESULT_QOS):
        self._node = node
        self._specs = dict(specs)
        self._qos = qos
        self.subs: dict = {}
        self.before_change: list[Callable[[], None]] = []
        self.on_change: list[Callable[[], None]] = []

    @property
    def topics(self) -> tuple[str, ...]:
        """Every input topic this node may subscribe to (relative names)."""
        return tuple(self._specs)

    def topic_name(self, topic: str) -> str:
        """``topic`` as the node resolves it (namespace, remappings): what logs should name."""
        return self._node.resolve_topic_name(topic)

    def set(self, topics: Iterable[str]) -> bool:
        """Subscribe to ``topics`` (of :attr:`topics`) and to no other; True if anything changed."""
        wanted = set(topics)
        gone = [t for t in self.subs if t not in wanted]
        new = [t for t in self._specs if t in wanted and t not in self.subs]  # in the specs' order
        if not gone and not new:
            return False
        for f in list(self.before_change):
            f()
        for t in gone:
            self._node.destroy_subscription(self.subs.pop(t))
        for t in new:
            msg_type, callback = self._specs[t]
            self.subs[t] = self._node.create_subscription(msg_type, t, callback, self._qos)
        for f in list(self.on_change):
            f()
        return True


class LazyInputs(InputSubscriptions):
    """Subscribes a node's inputs only while someone listens to its ``outputs``.

    Args:
        node: the node.
        outputs: its output publishers; anyone on any of them keeps it active.
        specs: see :class:`InputSubscriptions`.
        diagnostics: the node's :class:`~emotion_perception.nodes.diagnostics.Diagnostics`;
            its status then reports the activity.
        on_idle: called when the node goes idle (forget per-face state: the frames in
            between are not seen).
        period_s: how often to check where the middleware has no matched event.

    Attributes:
        woken: how many times the node went from idle to active.
        missed: how many times the once-a-second check (with the diagnostics) found the
            subscriptions wrong: a matched event that never came.
        timer: the periodic check, or None where matched events (and the diagnostics'
            period) drive the checks.
    """

    def __init__(self, node: Node, outputs: list, specs: dict[str, tuple[type, Callable]], diagnostics=None,
                 on_idle: Callable[[], None] | None = None, period_s: float = CHECK_PERIOD_S, qos=RESULT_QOS):
        super().__init__(node, specs, qos)
        self._outputs = list(outputs)
        self._on_idle = on_idle
        self.woken = 0
        self.missed = 0
        self._listeners = 0
        if diagnostics is not None:
            diagnostics.activity = self._checked_status
            diagnostics.extras.append(lambda: {"missed_match_events": self.missed})
        # watch first: a subscriber matched between the first check and the watch would go unseen
        self._events = all([watch_matches(node, p, self.check) for p in self._outputs])
        self.check()
        self.timer = None if self._events and diagnostics is not None else node.create_timer(period_s, self.check)

    @property
    def active(self) -> bool:
        return bool(self.subs)

    def listeners(self) -> int:
        """Subscribers matched to the node's outputs now, in this process or elsewhere."""
        return sum(p.get_subscription_count() for p in self._outputs)

    def check(self) -> bool:
        """Subscribe or unsubscribe the inputs as the output's subscribers say; True if
        that changed anything."""
        self._listeners = n = self.listeners()
        if n and not self.subs:
            self.woken += 1
            self.set(self._specs)
            self._node.get_logger().info(f"active: {self._why()}")
        elif not n and self.subs:
            self.set(())
            if self._on_idle is not None:
                self._on_idle()
            self._node.get_logger().info(f"idle: {self._why()}")
        else:
            return False
        return True

    def _checked_status(self) -> tuple[str, str]:
        """:meth:`status` after a :meth:`check`: the diagnostics' once-a-second safety net."""
        if self.check() and self._events:
            self.missed += 1
            self._node.get_logger().warning(
                f"the middleware's matched event for {', '.join(p.topic_name for p in self._outputs)} did not "
                f"come; caught by the once-a-second check ({self.missed} so far)")
        return self.status()

    def _why(self) -> str:
        outs = ", ".join(p.topic_name for p in self._outputs)
        if self._listeners:
            return f"{self._listeners} subscriber(s) on {outs}; subscribed to " + \
                ", ".join(self.topic_name(t) for t in self.subs)
        return f"no subscriber on {outs}; not subscribed to " + ", ".join(self.topic_name(t) for t in self._specs)

    def status(self) -> tuple[str, str]:
        """("active" or "idle", why), for /diagnostics."""
        return ("active" if self.subs else "idle"), self._why()
