"""A single-threaded executor that wakes once per batch of messages.

rclpy's ``SingleThreadedExecutor`` rebuilds its wait set in Python (every
subscription, timer, the seven parameter services and the event handlers of every
node) each time it waits, and after each callback it triggers its own guard
condition twice, so the next wait returns at once with nothing to do and the wait set
is rebuilt once more: two wake-ups and two rebuilds per message. Profiled at 30 Hz
(benchmarks/profile_nodes.py, docs/benchmarks.md) that cost 0.16-0.23 ms of CPU
per rebuild on this machine, more than the lstm node's model, and 1.5 ms per image in
the fusion node (four inputs).

:class:`LeanExecutor` keeps the entity lists and the wait set between waits (they are
rebuilt only when the executor's guard condition fires: a node added or removed, an
entity created, :meth:`wake`) and, after one wait, takes and runs every ready entity
in place, with rclpy's own ``_take_*`` helpers (the same timer info, service replies
and QoS event handling; subscriptions with rclpy's take plus the loss count below).
Nothing triggers a guard condition per callback, so each message costs one wake-up.
While messages keep it busy, the services (parameters, type description) and the lazy
nodes' matched events (:mod:`.lazy`) join a wait at most every :data:`SERVICE_POLL_S`
and the other QoS event handlers every :data:`EVENT_POLL_S`. It is single-threaded
like ``rclpy.spin``: callbacks never overlap, whatever their callback groups. A
coroutine callback that awaits is handed to rclpy's task machinery and resumed on
later spins.

A node that falls behind loses messages in its subscriptions' keep-last queues, and
neither DDS nor rclpy says so. The executor counts them from the gaps in each
publisher's sequence numbers (:mod:`.sequence_gaps`) as it takes: logged once per
:data:`DROP_LOG_S` per node and topic, in the executor's ``input_lost`` and the node's
/diagnostics ``input_lost_total``. Subscriptions whose callback takes the
``MessageInfo`` (the landmark node's camera) count their own. The count costs about
1 us per message taken (dictionary lookups on the message info rclpy returns anyway).

The experimental ``rclpy.experimental.EventsExecutor`` of the Kilted wheels was tried
first: a subscriber and a timer under it received nothing and spun at 40% of a core
in a 30-line test, with or without the package's Fast DDS profile (docs/benchmarks.md).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable

from rclpy import logging as rclpy_logging
from rclpy.executors import (ConditionReachedException, Executor, ExternalShutdownException, ShutdownException,
                             TimeoutException, await_or_execute)
from rclpy.event_handler import EventHandler
from rclpy.exceptions import InvalidHandle
from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.qos import ReliabilityPolicy
from rclpy.subscription import Subscription
from rclpy.task import Task

from .sequence_gaps import SequenceGaps

__all__ = ["LeanExecutor", "spin"]

#: Most functions call_soon keeps waiting (in-process deliveries: each is one published
#: message for every subscriber of its topic in the process).
SOON_MAX = 100
#: Dropped deliveries, and messages a node's input queue lost, are logged at most this
#: often (per node and topic), seconds.
DROP_LOG_S = 30.0

#: How often the QoS event handlers (incompatible QoS or type, one or two for each
#: publisher and subscription: 8 in the lstm node, 14 in the fusion node) are put in
#: the wait set, seconds. Their events only log a warning; checking them at every wait
#: cost more Python calls than the rest of the wait set together.
EVENT_POLL_S = 1.0

#: How long the services (each node's six parameter services and its type-description
#: service) may stay out of the wait set while the executor is busy, seconds. A wait
#: that starts this long after they were last in one includes them; one that leaves
#: them out returns after this long at most (a message comes sooner while busy), so
#: an idle executor waits with them and answers a request at once, a busy one within
#: about this time. Their 42 entries (six nodes) in every wait of the one-process
#: pipeline cost 0.3 ms of CPU per frame, half of the executor's own
#: (docs/benchmarks.md).
SERVICE_POLL_S = 0.1


#: While call_soon work keeps the executor busy, it still polls the wait set (without
#: waiting) at least this often, seconds.
FAIR_POLL_S = 0.05


def _capped(timeout_nsec: int, cap_s: float) -> int:
    """A wait's timeout (ns, -1: forever) shortened to at most ``cap_s`` seconds."""
    cap = int(cap_s * 1e9)
    return cap if timeout_nsec < 0 else min(timeout_nsec, cap)


def _nsec(timeout_sec: float | None) -> int:
    """Seconds (None or negative: forever) to the nanoseconds rcl's wait takes (-1: forever)."""
    if timeout_sec is None or timeout_sec < 0:
        return -1
    return int(timeout_sec * 1e9)


class LeanExecutor(Executor):
    """Single-threaded executor: one wait per batch of ready entities, no per-callback
    guard-condition trigger, the wait set kept between waits.

    Args:
        context: the rclpy context (the default one if None).
    """

    def __init__(self, *, context=None):
        super().__init__(context=context)
        self._stale = True  # entity lists must be gathered again
        self._wait_set = None
        self._counts = None
        self._subs: list = []
        self._timers: list = []
        self._clients: list = []
        self._services: list = []
        self._guards: list = []  # node guard conditions (with callbacks)
        self._waitables: list = []  # other than QoS event handlers: checked at every wait
        self._events: list = []  # QoS event handlers: checked every EVENT_POLL_S
        self._graph_events: list = []  # matched events of lazy nodes: checked with the services
        self._next_event_poll = 0.0
        self._next_service_poll = 0.0
        self._next_fair_poll = 0.0
        self._handles: list = []  # every handle entered around a wait
        # call_soon: functions run on the executor thread, in order, after the current batch
        self._soon: collections.deque = collections.deque(maxlen=SOON_MAX)
        self._nested: list | None = None  # what a call_soon function queues while it runs
        self._soon_lock = threading.Lock()
        self._soon_signalled = False  # a wake-up for the queue is on its way (see call_soon)
        self._soon_gc: GuardCondition | None = GuardCondition(callback=None, callback_group=None,
                                                              context=self._context)
        self._spin_thread: int | None = None
        self.soon_dropped = 0
        self._muted: set[int] = set()  # ids of subscriptions never taken from (mute)
        self._owner: dict[int, object] = {}  # id(entity) -> node (see _gather)
        self._next_drop_log = 0.0
        self._gaps: dict[int, SequenceGaps] = {}  # id(subscription) -> its publishers' sequence gaps
        self.input_lost = 0  # messages the subscriptions' queues lost before they were taken
        self._next_lost_log: dict[tuple[str, str], float] = {}

    # -------------------------------------------------------------- rclpy's API

    def spin_once(self, timeout_sec: float | None = None) -> None:
        """Wait (at most ``timeout_sec``; None = forever) and run every callback that is ready."""
        self._spin_once_impl(timeout_sec)

    def spin_once_until_future_complete(self, future, timeout_sec: float | None = None) -> None:
        future.add_done_callback(lambda _: self.wake())
        self._spin_once_impl(timeout_sec, future.done)

    def _spin_once_until_future_complete(self, future, timeout_sec=None) -> None:
        timeout = getattr(timeout_sec, "timeout", timeout_sec)  # rclpy passes a TimeoutObject
        self._spin_once_impl(timeout, future.done)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the executor thread, after the callbacks of the current batch
        (called from a callback) or at the next wake-up (from another thread), in the
        order of the calls; called from a function call_soon runs, right after that
        function, before what was queued earlier (depth first: a message a node
        publishes while handling an in-process delivery reaches its readers before the
        next delivery starts, so the end of a chain such as crops -> image model ->
        fusion -> ``emotion`` does not wait behind the other nodes' work on the same
        image). At most :data:`SOON_MAX` wait; beyond that the oldest is
        dropped and counted in ``soon_dropped``, as a full keep-last queue drops."""
        own_thread = threading.get_ident() == self._spin_thread
        if self._nested is not None and own_thread:
            self._nested.append(fn)
            return
        with self._soon_lock:
            if len(self._soon) == self._soon.maxlen:
                self._dropped(1)
            self._soon.append(fn)
            # One wake-up per batch: while a wake-up is on its way, the executor drains
            # the queue before it waits again, so later calls need none (each trigger
            # cost a wait that found the queue already empty: 0.7 per image in the
            # one-process pipeline, docs/benchmarks.md).
            if own_thread or self._soon_signalled:
                return
            self._soon_signalled = True
        if self._soon_gc is not None:
            self._soon_gc.trigger()

    def _dropped(self, n: int) -> None:
        self.soon_dropped += n
        now = time.monotonic()
        if now >= self._next_drop_log:
            self._next_drop_log = now + DROP_LOG_S
            rclpy_logging.get_logger("emotion_perception").warning(
                f"the executor thread is behind: {self.soon_dropped} in-process deliveries dropped so far "
                f"(more than {SOON_MAX} waiting)")

    def mute(self, subscription) -> None:
        """Never take from ``subscription`` (another one serves its callback: see
        :mod:`emotion_perception.nodes.in_process`)."""
        self._muted.add(id(subscription))
        self._gaps.pop(id(subscription), None)
        self.wake()

    def unmute(self, subscription) -> None:
        """Take from ``subscription`` again (undoes :meth:`mute`)."""
        self._muted.discard(id(subscription))
        self._gaps.pop(id(subscription), None)  # its queue kept only its last few meanwhile: no loss
        self.wake()

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        done = super().shutdown(timeout_sec)
        if done and self._soon_gc is not None:
            self._soon_gc.destroy()
            self._soon_gc = None
            self._soon.clear()
        return done

    def wake(self) -> None:
        """Wake the wait and gather the entity lists again (called when entities change)."""
        self._stale = True
        super().wake()

    def add_node(self, node) -> bool:
        self._stale = True
        return super().add_node(node)

    def remove_node(self, node) -> None:
        self._stale = True
        super().remove_node(node)

    # -------------------------------------------------------------- internals

    def _spin_once_impl(self, timeout_sec: float | None = None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        self._spin_thread = threading.get_ident()
        try:
            if self._run_tasks() or self._run_soon():
                # Busy with in-process deliveries: still look at the wait set (timers,
                # DDS subscriptions, services) at least every FAIR_POLL_S, without
                # waiting; a queue that never empties under load starved them (a lazy
                # node's check and the fusion node's member choice never ran).
                now = time.monotonic()
                if now < self._next_fair_poll or wait_condition():
                    return
                self._next_fair_poll = now + FAIR_POLL_S
                self._wait_and_run(0)
                self._run_soon()
                return
            if wait_condition():
                return
            self._wait_and_run(_nsec(timeout_sec))
            self._run_soon()
        except (ShutdownException, TimeoutException, ConditionReachedException):
            pass

    def _run_soon(self) -> bool:
        """Run what call_soon queued (and what that queues); True if anything ran."""
        ran = False
        while True:
            with self._soon_lock:
                if not self._soon:
                    self._soon_signalled = False  # seen empty: the next call from another thread wakes us
                    break
                fn = self._soon.popleft()
            ran = True
            self._nested = nested = []
            try:
                with self._work_tracker:
                    fn()
            except (ShutdownException, ExternalShutdownException, KeyboardInterrupt):
                raise
            except Exception as e:  # noqa: BLE001 - a delivery's callback failed: the others go on
                if not self._context.ok():
                    raise  # shutting down: not a node's failure
                from .containment import callback_failed

                callback_failed(getattr(e, "node", None), e)
            finally:
                self._nested = None
                if nested:  # depth first, in the order they were queued; a full queue loses its newest
                    with self._soon_lock:
                        over = len(self._soon) + len(nested) - SOON_MAX
                        if over > 0:
                            self._dropped(over)
                        self._soon.extendleft(reversed(nested))
        return ran

    def _run_tasks(self) -> bool:
        """Run tasks created with create_task or left by a coroutine callback; True if any ran."""
        if not self._tasks:
            return False
        with self._tasks_lock:
            tasks = list(self._tasks)
        ran = False
        for task, _entity, _node in tasks:
            if not task.executing() and not task.done():
                ran = True
                with self._work_tracker:
                    task()
        with self._tasks_lock:
            self._tasks = [t for t in self._tasks if not t[0].done() and not t[0].cancelled()]
        for task, _entity, _node in tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()
        return ran

    def _gather(self) -> None:
        """The entities of every node, their handles, and a wait set sized for them."""
        subs, timers, clients, services, guards, waitables = [], [], [], [], [], []
        owner = {}  # id(entity) -> its node, to say whose callback failed
        for node in self.get_nodes():
            mine = [*(s for s in node.subscriptions if id(s) not in self._muted), *node.timers, *node.clients,
                    *node.services, *node.guards, *node.waitables]
            owner.update((id(e), node) for e in mine)
            subs.extend(s for s in node.subscriptions if id(s) not in self._muted)
            timers.extend(node.timers)
            clients.extend(node.clients)
            services.extend(node.services)
            guards.extend(node.guards)
            waitables.extend(node.waitables)
        self._owner = owner
        live = set(map(id, subs))
        self._gaps = {k: v for k, v in self._gaps.items() if k in live}
        own = [g for g in (self._guard, self._sigint_gc, self._soon_gc) if g is not None]
        self._subs, self._timers, self._clients, self._services = subs, timers, clients, services
        self._guards = guards
        self._waitables = [w for w in waitables if not isinstance(w, EventHandler)]
        graph = [w for w in waitables if isinstance(w, EventHandler) and getattr(w, "poll_with_services", False)]
        self._graph_events = graph  # a subscriber came or left (nodes/lazy.py): polled as the services are
        self._events = [w for w in waitables if isinstance(w, EventHandler) and w not in graph]
        # (handle, wait-set method name), in the order rclpy adds them; entity by pointer
        self._adds = ([(e.handle, "add_subscription") for e in subs] + [(e.handle, "add_client") for e in clients] +
                      [(e.handle, "add_service") for e in services] + [(e.handle, "add_timer") for e in timers] +
                      [(e.handle, "add_guard_condition") for e in (*guards, *own)])
        self._handles = [h for h, _ in self._adds]
        # the same without the services (see SERVICE_POLL_S)
        self._adds_lean = [(h, m) for h, m in self._adds if m != "add_service"]
        self._handles_lean = [h for h, _ in self._adds_lean]
        self._by_pointer = {e.handle.pointer: e for e in (*subs, *timers, *clients, *services, *guards)}
        counts = [len(subs), len(guards) + len(own), len(timers), len(clients), len(services), 0]
        for w in waitables:
            n = w.get_num_entities()
            counts[0] += n.num_subscriptions
            counts[1] += n.num_guard_conditions
            counts[2] += n.num_timers
            counts[3] += n.num_clients
            counts[4] += n.num_services
            counts[5] += n.num_events
        if counts != self._counts or self._wait_set is None:
            self._wait_set = _rclpy.WaitSet(*counts, self._context.handle)
            self._counts = counts
        self._stale = False

    def _wait_and_run(self, timeout_nsec: int) -> None:
        if self._is_shutdown:
            raise ShutdownException()
        if self._stale or self._wait_set is None:
            self._gather()
        now = time.monotonic()
        poll_events = bool(self._events) and now >= self._next_event_poll
        if poll_events:
            self._next_event_poll = now + EVENT_POLL_S
        if self._events and not poll_events:
            timeout_nsec = _capped(timeout_nsec, EVENT_POLL_S)  # not in this wait: come back for them in time
        poll_services = not self._services or now >= self._next_service_poll
        waitables = self._waitables + self._events if poll_events else self._waitables
        if poll_services and self._graph_events:
            waitables = waitables + self._graph_events
        if poll_services:
            self._next_service_poll = now + SERVICE_POLL_S
            all_adds, handles = self._adds, self._handles
        else:  # in a wait less than SERVICE_POLL_S ago: left out unless this wait is long
            all_adds, handles = self._adds_lean, self._handles_lean
            timeout_nsec = _capped(timeout_nsec, SERVICE_POLL_S)  # no wake-up of its own while messages come faster
        ws = self._wait_set
        entered = []
        try:
            # Entered handles cannot be destroyed under the wait (rclpy defers it).
            missing = False
            for h in handles:
                try:
                    h.__enter__()
                except InvalidHandle:
                    missing = True  # destroyed meanwhile: leave it out now, gather again next time
                    continue
                entered.append(h)
            for w in waitables:
                w.__enter__()
                entered.append(w)
            self._context.handle.__enter__()
            entered.append(self._context.handle)
            ws.clear_entities()
            if missing:
                self._stale = True
                live = set(map(id, entered))
                adds = [(h, m) for h, m in all_adds if id(h) in live]
            else:
                adds = all_adds
            for h, method in adds:
                getattr(ws, method)(h)
            for w in waitables:
                w.add_to_wait_set(ws)
            ws.wait(timeout_nsec)
            if self._is_shutdown:
                raise ShutdownException()
            if not self._context.ok():
                raise ExternalShutdownException()
            ready = {kind: ws.get_ready_entities(kind) for kind in ("subscription", "timer", "guard_condition")}
            if self._clients:
                ready["client"] = ws.get_ready_entities("client")
            if self._services and poll_services:
                ready["service"] = ws.get_ready_entities("service")
            ready_waitables = [w for w in waitables if w.is_ready(ws)]
        finally:
            for h in reversed(entered):
                h.__exit__(None, None, None)
        guards_ready = ready["guard_condition"]
        if self._guard is not None and self._guard.handle.pointer in guards_ready:
            self._stale = True  # woken on purpose: entities may have changed
        owner = self._owner.get
        work = [(owner(id(w)), self._take_waitable(w)) for w in ready_waitables]
        by_pointer = self._by_pointer
        for p in ready["timer"]:
            t = by_pointer.get(p)
            if t is None:
                continue  # the executor's timeout timer, or an entity gone
            try:
                with t.handle:
                    due = t.handle.is_timer_ready()  # rcl reports cancelled timers too
            except InvalidHandle:
                continue
            if due:
                work.append((owner(id(t)), self._take_timer(t)))
        for kind, take in (("subscription", self._take_subscription), ("guard_condition", self._take_guard_condition),
                           ("client", self._take_client), ("service", self._take_service)):
            for p in ready.get(kind, ()):
                e = by_pointer.get(p)
                if e is not None:
                    work.append((owner(id(e)), take(e)))
        if not work and timeout_nsec >= 0 and not guards_ready:
            raise TimeoutException()
        for node, make in work:
            if make is not None:
                self._run(make, node)

    def _take_subscription(self, sub):
        """rclpy's take, and the count of what the subscription's queue lost before it (see
        the module docstring)."""
        try:
            with sub.handle:
                taken = sub.handle.take_message(sub.msg_type, sub.raw)
        except InvalidHandle:  # destroyed meanwhile: nothing to run
            return None
        if taken is None:
            return None
        if sub._callback_type is Subscription.CallbackType.MessageOnly:
            gaps = self._gaps.get(id(sub))
            if gaps is None:
                gaps = self._gaps[id(sub)] = SequenceGaps()
            lost = gaps.count(taken[1], sub.get_publisher_count)
            if lost:
                self._input_lost(sub, lost)
            args = (taken[0],)
        else:
            args = taken

        async def _execute():
            await await_or_execute(sub.callback, *args)

        return _execute

    def _input_lost(self, sub, n: int) -> None:
        from .diagnostics import Diagnostics

        self.input_lost += n
        node = self._owner.get(id(sub))
        diag = Diagnostics.of(node) if node is not None else None
        if diag is not None:
            diag.input_lost(n)
        name = node.get_name() if node is not None else "?"
        key = (name, sub.topic_name)
        now = time.monotonic()
        if now >= self._next_lost_log.get(key, 0.0):
            self._next_lost_log[key] = now + DROP_LOG_S
            total = diag.input_lost_total if diag is not None else self.input_lost
            qos = sub.qos_profile
            where = f"replaced in its queue (keep last {qos.depth})"
            if qos.reliability == ReliabilityPolicy.BEST_EFFORT:
                where += " or dropped on the way (best effort)"
            rclpy_logging.get_logger("emotion_perception").warning(
                f"{name} fell behind on {sub.topic_name}: {n} message(s) {where} before it could take them, "
                f"{total} so far (/diagnostics input_lost_total); the machine is too busy for this rate: fewer "
                "nodes, fewer faces (max_faces) or a slower camera")

    def _run(self, make, node=None) -> None:
        """Run one taken entity's coroutine to completion, or hand it to a Task if it awaits.

        An exception from the callback is logged and counted for ``node``, its owner
        (:mod:`emotion_perception.nodes.containment`), and the executor goes on: one
        node's failure does not stop the others it spins."""
        coro = make()
        with self._work_tracker:
            try:
                coro.send(None)
            except StopIteration:
                return
            except (ShutdownException, ExternalShutdownException, KeyboardInterrupt):
                raise
            except Exception as e:  # noqa: BLE001 - contained: see the docstring
                if not self._context.ok():
                    raise  # shutting down (a publish on a context being shut down): not a node's failure
                from .containment import callback_failed

                callback_failed(node, e)
                return
        task = Task(coro, executor=self)  # it awaits a future: resume it on later spins
        with self._tasks_lock:
            self._tasks.append((task, None, None))


def spin(node, executor: LeanExecutor | None = None) -> None:
    """``rclpy.spin(node)`` with a :class:`LeanExecutor`: until the context shuts down.

    Raises:
        rclpy.executors.ExternalShutdownException: the context was shut down (Ctrl-C).
    """
    executor = executor or LeanExecutor(context=node.context)
    try:
        executor.add_node(node)
        while executor.context.ok():
            executor.spin_once()
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=0)
