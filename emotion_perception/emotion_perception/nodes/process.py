"""A node process from start to exit: ``main()`` of every node (:func:`run_node`) and a
teardown that cannot hang in the middleware (:class:`yield_to_middleware_threads`)."""

from __future__ import annotations

import os
from typing import Callable

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from .memory import keep_large_buffers
from .native_threads import limit_native_threads


class yield_to_middleware_threads:
    """Context manager for tearing down rclpy entities: every thread of this process on
    the calling thread's CPU, and the calling thread at the lowest priority
    (SCHED_IDLE); both restored on exit.

    Why: Fast DDS 3.2 (Kilted) deletes a participant by first waiting, without a
    timeout, until no discovery callback is in flight
    (``DomainParticipant::set_listener(nullptr)`` in ``rmw_destroy_node``). That wait
    does not block: it re-takes the participant's lock in a tight loop, and a
    reception thread whose callback (another node leaving) must take the same lock to
    end was seen to lose that race for good (the node's stop hung until SIGKILL; see
    docs/running.md). On one CPU, with the deleting thread at idle priority, the
    waiting thread runs as soon as the lock is let go, and the loop ends. Outside a
    teardown nothing changes. Does nothing where Linux's scheduling calls are missing.
    """

    def __enter__(self):
        self._affinity: dict[int, set] = {}
        self._policy = None
        try:
            import ctypes

            cpu = ctypes.CDLL(None).sched_getcpu()
            for tid in map(int, os.listdir("/proc/self/task")):
                try:
                    self._affinity[tid] = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, {cpu})
                except OSError:  # a thread that ended meanwhile
                    pass
            self._policy = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (OSError, AttributeError):
            pass
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._policy is not None:
                os.sched_setscheduler(0, *self._policy)
            for tid, cpus in self._affinity.items():
                try:
                    os.sched_setaffinity(tid, cpus)
                except OSError:
                    pass
        except (OSError, AttributeError):
            pass


#: Seconds a node's stop may take before it dumps its threads' stacks and exits with 1
#: (``ros2 launch`` sends SIGTERM after 5 s, which a stopping node ignores, and SIGKILL after 15 s).
STOP_WATCHDOG_S = 10.0


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """``main()`` of every node: init, spin, shut down cleanly on Ctrl-C or SIGTERM.

    A node whose constructor raises (bad parameter, missing or tampered model) logs
    one line naming the problem and exits with status 1; arguments ROS cannot take (a
    parameter file it cannot parse) give one line and status 2. Before the first participant
    exists it loads the package's Fast DDS profile (``config/fastdds_shm.xml``, unless
    the user chose a transport or an XML profile; see ``transport.py``), so camera-sized
    images reach a node started alone (``ros2 run``) as they reach the pipeline, and
    removes shared-memory segments that crashed processes left in /dev/shm.

    Signals: rclpy's own handler (installed by ``rclpy.init``) shuts the context down on
    the first SIGINT or SIGTERM, which ends ``spin`` with ExternalShutdownException; the
    node is then destroyed and the process exits with 0 ("process has finished
    cleanly" under ``ros2 launch``). Python itself ignores both signals, from before
    ``rclpy.init`` to exit, because a terminal's Ctrl-C reaches each node twice: from
    the terminal (the whole process group) and again from ``ros2 launch``. With
    Python's default handler the second one raised KeyboardInterrupt inside
    ``destroy_node()`` (a traceback and exit code -2 in every node), and once the
    interpreter is finalising (which restores the default handlers it installed) it
    killed the process (exit code -2 without a traceback). A callback that publishes
    while the context is being shut down raises RCLError ("publisher's context is
    invalid"); that is part of shutting down, not a failure.
    """
    import faulthandler
    import signal

    from .. import quiet, transport
    from .executor import LeanExecutor, spin

    quiet.install()  # MediaPipe/TFLite native log lines off stderr (EMOTION_PERCEPTION_VERBOSE=1 keeps them)
    keep_large_buffers()

    def ignore_signals():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)

    ignore_signals()  # rclpy's handler, installed over this, still acts on the first one
    cleaned = transport.prepare_process()
    try:
        rclpy.init(args=args)
    except RCLError as e:  # e.g. a --params-file ROS cannot parse: one line, not a traceback
        import sys

        print(f"{os.path.basename(sys.argv[0])}: cannot start: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    context = rclpy.get_default_context()
    # Made at once: an executor made after a signal has shut the context down fails
    # half-built, and its __del__ prints a traceback (spin(node) would make one late).
    executor = LeanExecutor(context=context)
    log = rclpy.logging.get_logger("emotion_perception")
    if cleaned:
        log.info(cleaned)
    node = None
    status = 0
    try:
        node = factory()
        limit_native_threads()
        spin(node, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as e:  # noqa: BLE001 - one clear line instead of a traceback
        if context.ok():
            what = "stopped" if node is not None else "cannot start"
            log.fatal(f"{what}: {type(e).__name__}: {e}")
            status = 1
        # else: a signal shut the context down while the node was starting or a
        # callback was publishing; that is a clean shutdown
    finally:
        # A stop that hangs gets every thread's stack on stderr and exit status 1 after
        # STOP_WATCHDOG_S instead of waiting for launch's SIGKILL: the dump says where.
        # faulthandler's C thread needs no GIL, and it writes to the real stderr, not
        # through quiet's filter thread, which does. Seen: Fast DDS 3.2's participant
        # deletion (rmw_destroy_node) spinning with the GIL held while a discovery
        # callback of another node's departure waits (docs/running.md).
        faulthandler.dump_traceback_later(STOP_WATCHDOG_S, exit=True, file=quiet.real_stderr_fd())
        executor.shutdown(timeout_sec=0)  # spin() did unless the node never started
        with yield_to_middleware_threads():
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()  # uninstalls rclpy's handler, restoring SIG_IGN
        ignore_signals()
    return status
