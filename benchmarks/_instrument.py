"""Run a node module (or the one-process pipeline) with the CPU time of its parts
measured: each part's function is wrapped and charged the calling thread's CPU time
(``time.thread_time_ns``), exclusive of the wrapped parts it calls, per node.

Used by ``profile_nodes.py``; not a tool on its own. Sampling profilers (py-spy) count
a thread as busy while it is runnable, including the time it waits for a core, which on
a loaded 2-core machine charges most samples to whatever runs right after a wake-up
(``publish``, the wait call); thread CPU time does not.

    python benchmarks/_instrument.py emotion_perception.nodes.lstm_node --ros-args ...
    python benchmarks/_instrument.py emotion_perception.cli pipeline ...

SIGUSR1 starts the measured window, SIGUSR2 ends it and writes JSON to
``$INSTRUMENT_OUT/<pid>.json``: ``{"parts": {node: {part: [calls, cpu_ns]}}, "threads": {group:
cpu_s}, "seconds": ...}``.
"""

from __future__ import annotations

import collections
import json
import os
import runpy
import signal
import sys
import threading
import time

#: part name -> (module, qualified names of the functions charged to it)
PARTS = {
    "executor (wait set, wake-up)": ("emotion_perception.nodes.executor", ["LeanExecutor._wait_and_run"]),
    "take (deserialise)": ("rclpy.executors", ["Executor._take_subscription"]),
    "timers (take, fallback timers)": ("rclpy.executors", ["Executor._take_timer"]),
    "message -> arrays": ("emotion_perception.conversions", [
        "mesh_msg_to_frame_input", "blendshapes_msg_to_frame_input", "emotion_msg_to_estimate", "mesh_msg_to_face",
        "blendshapes_msg_scores", "image_msg_to_rgb", "compressed_msg_to_rgb", "mesh_msg_landmarks"]),
    "arrays -> messages": ("emotion_perception.conversions", [
        "estimates_to_emotion_array", "faces_to_msgs", "attention_estimates_to_array"]),
    "publish (serialise, write)": ("rclpy.publisher", ["Publisher.publish"]),
    "diagnostics": ("emotion_perception.nodes.diagnostics", [
        "Diagnostics.tick", "Diagnostics.publish", "Diagnostics.dropped", "Diagnostics.error"]),
    "logging": ("emotion_perception.nodes.bad_input", ["OnceLog._emit"]),
    "pairing by stamp": ("emotion_perception.nodes.stamps", ["StampSync.add"]),
    "MediaPipe (calling thread)": ("emotion_perception.landmarks", ["FaceLandmarker.detect"]),
    "face ids (tracking)": ("emotion_perception.landmarks", ["FaceIdentifier.faces"]),
    "model": ("emotion_perception.fusion", ["EmotionFusion.add", "EmotionFusion.fuse"]),
    "model ": ("emotion_perception.attention", ["AttentionEstimator.update_arrays"]),
    "timers (take, fallback timers) ": ("emotion_perception.nodes.emotion_fusion_node",
                                        ["EmotionFusionNode._publish_overdue"]),
}
#: charged with what a callback does besides the parts above (pairing, bookkeeping)
CALLBACK = "callback's own Python (pairing, bookkeeping)"
#: every classifier's update() is charged to "model"
CLASSIFIER_MODULES = ("sequence", "lstm", "transformer", "frame", "gnn", "image_cnn")

_tls = threading.local()
_parts: dict = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0]))
_entity_node: dict[int, str] = {}
_window: dict = {}
#: Python thread names of the landmark node's threads: its workers, and (set by
#: _patch_all from runner.FRONT_THREAD) its executor thread in the one-process pipeline.
_LANDMARK_THREADS: tuple[str, ...] = ("landmark_node-worker",)


def _node() -> str:
    if getattr(_tls, "node", None):
        return _tls.node
    return "landmark" if threading.current_thread().name.startswith(_LANDMARK_THREADS) else "(unattributed)"


def _wrap(part: str, f):
    def wrapper(*a, **k):
        stack = _tls.__dict__.setdefault("stack", [])
        t0 = time.thread_time_ns()
        stack.append(0)
        try:
            return f(*a, **k)
        finally:
            elapsed = time.thread_time_ns() - t0
            children = stack.pop()
            cell = _parts[_node()][part.strip()]
            cell[0] += 1
            cell[1] += elapsed - children
            if stack:
                stack[-1] += elapsed
    wrapper.__wrapped__ = f
    return wrapper


def _short(node) -> str:
    """The name a node's parts are charged to: its name without ``_node``."""
    return node.get_name().removesuffix("_node")


def _as_node(node: str, f):
    def wrapper(*a, **k):
        _tls.node = node
        try:
            return f(*a, **k)
        finally:
            _tls.node = None
    return wrapper


def _resolve(module: str, qualname: str):
    import importlib

    obj = importlib.import_module(module)
    parts = qualname.split(".")
    for p in parts[:-1]:
        obj = getattr(obj, p)
    return obj, parts[-1]


def _patch_all() -> None:
    global _LANDMARK_THREADS
    import importlib

    from emotion_perception.runner import FRONT_THREAD

    _LANDMARK_THREADS += (f"pipeline-{FRONT_THREAD}",)

    for part, (module, names) in PARTS.items():
        for q in names:
            owner, attr = _resolve(module, q)
            setattr(owner, attr, _wrap(part, getattr(owner, attr)))
    # conversions are imported by name into node modules: patch those names too
    import emotion_perception.conversions as conv

    for m in ("landmark_node", "attention_node"):
        mod = importlib.import_module(f"emotion_perception.nodes.{m}")
        for name in dir(mod):
            wrapped = getattr(conv, name, None)
            if getattr(wrapped, "__wrapped__", None) is getattr(mod, name):
                setattr(mod, name, wrapped)
    from emotion_perception.classifiers.base import EmotionModel

    for m in CLASSIFIER_MODULES:
        try:
            mod = importlib.import_module(f"emotion_perception.classifiers.{m}")
        except ImportError:
            continue
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, EmotionModel) and "update" in vars(obj):
                obj.update = _wrap("model", obj.update)
    # the node an entity belongs to, so the one-process pipeline splits per node
    from emotion_perception.nodes.executor import LeanExecutor

    gather = LeanExecutor._gather

    def _gather(self):
        for node in self.get_nodes():
            name = _short(node)
            for e in (*node.subscriptions, *node.timers, *node.services):
                _entity_node[id(e)] = name
        return gather(self)
    LeanExecutor._gather = _gather
    for attr in ("_take_subscription", "_take_timer", "_take_service"):
        take = getattr(LeanExecutor, attr)

        def make(take):
            def f(self, entity):
                node = _entity_node.get(id(entity), "(unattributed)")
                _tls.node = node
                try:
                    made = take(self, entity)
                finally:
                    _tls.node = None
                if made is None:
                    return None

                def run_as_node():  # the callback runs later, in _run: charge it to the same node
                    _tls.node = node
                    return made()
                return run_as_node
            return f
        setattr(LeanExecutor, attr, make(take))
    # in-process deliveries (one-process pipeline): each callback charged to its node
    import emotion_perception.nodes.in_process as in_process

    # every in-process route wraps each subscriber's callback in contained(node, callback)
    contained = in_process.contained

    def _contained(node, callback):
        return _as_node(_short(node), _wrap(CALLBACK, contained(node, callback)))
    in_process.contained = _contained
    run = _wrap(CALLBACK, LeanExecutor._run)

    def _run(self, make_coro, node=None):
        try:
            return run(self, make_coro, node)
        finally:
            _tls.node = None
    LeanExecutor._run = _run


def _thread_groups() -> dict[str, float]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import thread_cpu_s

    return thread_cpu_s(os.getpid())


def _start(*_):
    _window["t0"] = time.monotonic()
    _window["threads0"] = _thread_groups()
    _window["parts0"] = {n: {p: list(v) for p, v in d.items()} for n, d in _parts.items()}


def _stop(*_):
    t1 = time.monotonic()
    threads1 = _thread_groups()
    p0 = _window.get("parts0", {})
    parts = {n: {p: [v[0] - p0.get(n, {}).get(p, [0, 0])[0], v[1] - p0.get(n, {}).get(p, [0, 0])[1]]
                 for p, v in d.items()} for n, d in _parts.items()}
    out = {"parts": parts, "seconds": t1 - _window.get("t0", t1),
           "threads": {g: s - _window.get("threads0", {}).get(g, 0.0) for g, s in threads1.items()}}
    with open(os.path.join(os.environ["INSTRUMENT_OUT"], f"{os.getpid()}.json"), "w") as f:
        json.dump(out, f)


def main() -> None:
    _patch_all()
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    module = sys.argv[1]
    sys.argv = [module] + sys.argv[2:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
