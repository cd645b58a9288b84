"""``ros2 launch emotion_perception pipeline.launch.py`` and ``ros2 run
emotion_perception <node>``, run as a user runs them: separate processes over Fast
DDS, the ``ros2`` command line to look at the graph, a real clip published on the
camera topic, and every way a user stops them (Ctrl-C in the terminal, SIGINT or
SIGTERM to the launch), idle and while the camera streams at 30 Hz.

``ros2`` comes from a ROS 2 install or from ../shared/ros2-launch-kit (``make
setup`` installs it when present); without either, this module skips.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import yaml

from conftest import own_ros_domain_fixture
from ros2_cli import (NO_LAUNCH, Camera, Ros2Process, launch_available, node_subscriptions, owned_segments,
                      param_get, ros2, stop_problems, topic_types, wait_for_nodes)

pytestmark = pytest.mark.skipif(not launch_available(), reason=NO_LAUNCH)
own_ros_domain = own_ros_domain_fixture(100, 20)

from emotion_perception.launch_description import CLASSIFIER_ARGS, LAUNCH_ARGUMENTS, module_name  # noqa: E402
from emotion_perception.nodes import NODES  # noqa: E402

ALL_NODES = [module_name(s) for s in NODES]
#: Wait for the nodes of a launch to be listed, s (model loading on a loaded 2-core machine).
START_TIMEOUT_S = 90.0
#: Wait for the first fused emotion and attention for the streamed clip, s.
OUTPUT_TIMEOUT_S = 60.0
#: A stop is given this long; ros2 launch itself escalates to SIGTERM after 5 s and
#: SIGKILL after 10 s, which the checks then report as "did not finish cleanly".
STOP_TIMEOUT_S = 30.0


@pytest.fixture(scope="module", autouse=True)
def stop_ros2_daemon(own_ros_domain):
    """Every ros2 call here passes --no-daemon; stop a daemon all the same, it would
    outlive the tests."""
    yield
    try:
        ros2("daemon", "stop", timeout=30)
    except Exception:  # noqa: BLE001 - nothing to stop
        pass


@pytest.fixture(scope="module")
def clip(video):
    """single_face.mp4 as RGB frames (640x360, 30 fps, one face)."""
    import cv2

    cap = cv2.VideoCapture(str(video("single_face.mp4")))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert len(frames) >= 60
    return frames


def launch(*arguments: str) -> Ros2Process:
    return Ros2Process(["launch", "emotion_perception", "pipeline.launch.py", *arguments])


def expected_nodes(namespace: str = "", off=()) -> list[str]:
    ns = "/" + namespace if namespace else ""
    return [f"{ns}/{module_name(s)}" for s in NODES if s not in off]


def stop_and_check(proc: Ros2Process, node_names: list[str], how: str, camera: Camera | None = None,
                   output_from: int = 0) -> float:
    """Stop ``proc`` the way a user does (``how``), with the camera still streaming if
    there is one; assert a clean stop (of the output from ``output_from`` on); the
    seconds it took."""
    nodes = proc.descendants()
    segments = owned_segments(p.pid for p in nodes)
    assert segments, "the nodes map no Fast DDS shared-memory segment: the check below would be empty"
    t0 = time.monotonic()
    proc.stop(how)
    rc = proc.wait(STOP_TIMEOUT_S)
    took = time.monotonic() - t0
    if camera is not None:
        camera.close()
    problems = stop_problems(proc, nodes, node_names, segments, rc, output_from)
    assert not problems, f"{how}: {problems}\n--- output ---\n{proc.output[-6000:]}"
    return took


@pytest.fixture
def processes():
    """Every ros2 process (and Camera) a test starts; killed (closed) at the end if the
    test left one: a live rclpy context at interpreter exit aborts it ("terminate
    called without an active exception")."""
    started: list = []
    yield started
    for c in [c for c in started if isinstance(c, Camera)]:
        c.close()
    started[:] = [p for p in started if isinstance(p, Ros2Process)]
    for p in started:
        if p.proc.poll() is None or any(q.is_running() and q.status() != "zombie" for q in p._seen.values()):
            p.kill()


# ---------------------------------------------------------------- ros2 launch

def test_show_args_lists_every_launch_argument():
    out = ros2("launch", "emotion_perception", "pipeline.launch.py", "--show-args")
    for name in LAUNCH_ARGUMENTS:
        assert f"'{name}':" in out, name


def test_separate_processes_answer_on_emotion_and_attention_and_stop_on_ctrl_c(processes, clip):
    """one_process:=false: all seven nodes in processes of their own, their topics with
    types, the package's YAML applied, real output for a real clip; then Ctrl-C in the
    terminal while the camera streams."""
    camera = Camera(clip, "/image")
    processes.append(camera)
    proc = launch("one_process:=false")
    processes.append(proc)
    seen = wait_for_nodes(set(expected_nodes()), START_TIMEOUT_S)
    assert set(expected_nodes()) <= seen, (seen, proc.output[-3000:])
    want = {"/image": "sensor_msgs/msg/Image", "/faces/mesh": "emotion_perception_msgs/msg/FaceMeshArray",
            "/faces/blendshapes": "emotion_perception_msgs/msg/BlendshapesArray",
            **{t: "emotion_perception_msgs/msg/EmotionArray"
               for t in ("/emotion", "/emotion/transformer", "/emotion/lstm", "/emotion/frame", "/emotion/image")},
            "/attention": "emotion_perception_msgs/msg/AttentionArray",
            "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"}
    types = topic_types(expected=want)
    assert {t: types.get(t) for t in want} == want

    from emotion_perception.launch_description import default_params_file

    params = yaml.safe_load(open(default_params_file()))
    for node, name in (("landmark_node", "max_faces"), ("emotion_fusion_node", "max_wait_s"),
                       ("attention_node", "looking_on")):
        want = params[node]["ros__parameters"][name]
        assert float(param_get(f"/{node}", name)) == pytest.approx(float(want)), (node, name)

    camera.start_streaming()
    assert camera.wait_outputs(OUTPUT_TIMEOUT_S), (camera.count, camera.sent, proc.output[-3000:])
    stop_and_check(proc, ALL_NODES, "ctrl-c", camera)


def test_image_topic_namespace_and_params_file_take_effect_and_sigterm_stops(processes, clip, tmp_path):
    """image_topic, namespace and params_file; SIGTERM to the launch while streaming."""
    from emotion_perception.launch_description import default_params_file

    params = yaml.safe_load(open(default_params_file()))
    params["landmark_node"]["ros__parameters"]["max_faces"] = 1
    params["attention_node"]["ros__parameters"]["max_blink_s"] = 0.5
    custom = tmp_path / "robot.yaml"
    custom.write_text(yaml.safe_dump(params))

    camera = Camera(clip, "/cam/front/image_raw", namespace="robot1")
    processes.append(camera)
    proc = launch("image_topic:=/cam/front/image_raw", "namespace:=robot1", f"params_file:={custom}",
                  "one_process:=false")
    processes.append(proc)
    want = set(expected_nodes("robot1"))
    seen = wait_for_nodes(want, START_TIMEOUT_S)
    assert want <= seen and not any(n.startswith("/landmark_node") for n in seen), (seen, proc.output[-3000:])
    want = {"/robot1/emotion": "emotion_perception_msgs/msg/EmotionArray",
            "/robot1/attention": "emotion_perception_msgs/msg/AttentionArray",
            "/robot1/faces/mesh": "emotion_perception_msgs/msg/FaceMeshArray"}
    types = topic_types(expected=want)
    assert {t: types.get(t) for t in want} == want
    # the camera reader subscribes to the given topic, not to image or /robot1/image; the
    # image model's node reads the landmark node's crops in the namespace
    subs = node_subscriptions("/robot1/landmark_node", expected={"/cam/front/image_raw": "sensor_msgs/msg/Image"})
    assert subs.get("/cam/front/image_raw") == "sensor_msgs/msg/Image", subs
    assert not {"/image", "/robot1/image"} & set(subs), subs
    subs = node_subscriptions("/robot1/image_emotion_node",
                              expected={"/robot1/faces/crops": "emotion_perception_msgs/msg/FaceCropArray"})
    # (it subscribes once the fusion node listens to emotion/image: nodes/lazy.py; its log says when)
    assert subs.get("/robot1/faces/crops") == "emotion_perception_msgs/msg/FaceCropArray", \
        (subs, proc.output[-4000:])
    assert not {"/cam/front/image_raw", "/image", "/robot1/image"} & set(subs), subs
    assert param_get("/robot1/landmark_node", "max_faces") == "1"
    assert float(param_get("/robot1/attention_node", "max_blink_s")) == pytest.approx(0.5)

    camera.start_streaming()
    assert camera.wait_outputs(OUTPUT_TIMEOUT_S), (camera.count, camera.sent, proc.output[-3000:])
    stop_and_check(proc, ALL_NODES, "sigterm", camera)


def test_compressed_and_node_switches_take_effect_and_sigint_to_launch_stops(processes, clip):
    """compressed:=true with three classifiers switched off: the image model alone
    feeds the fused emotion from JPEGs; SIGINT to the launch process while streaming."""
    off = ("transformer", "lstm", "frame")
    camera = Camera(clip, "/cam/c", compressed=True)
    processes.append(camera)
    proc = launch("image_topic:=/cam/c", "compressed:=true", *[f"{CLASSIFIER_ARGS[s]}:=false" for s in off],
                  "one_process:=false")
    processes.append(proc)
    want = set(expected_nodes(off=off))
    seen = wait_for_nodes(want, START_TIMEOUT_S)
    assert want <= seen, (seen, proc.output[-3000:])
    subs = node_subscriptions("/landmark_node", expected={"/cam/c/compressed": "sensor_msgs/msg/CompressedImage"})
    assert subs.get("/cam/c/compressed") == "sensor_msgs/msg/CompressedImage", subs
    assert "/cam/c" not in subs, subs
    assert param_get("/landmark_node", "use_compressed") == "True"

    camera.start_streaming()
    assert camera.wait_outputs(OUTPUT_TIMEOUT_S), (camera.count, camera.sent, proc.output[-3000:])
    time.sleep(2.0)  # let discovery settle: nodes that are off must not appear late
    seen = set(ros2("node", "list", "--no-daemon", "--spin-time", "1").split())
    assert not seen & {f"/{module_name(s)}" for s in off}, seen
    stop_and_check(proc, [module_name(s) for s in NODES if s not in off], "sigint", camera)


def test_default_launch_is_one_process_that_answers_is_respawned_and_stops_on_ctrl_c(processes, clip):
    """The default launch: every node in one emotion-perception pipeline process, the
    same topics; killed (a crash), launch starts it again and the outputs resume;
    then Ctrl-C while the camera streams."""
    import signal

    camera = Camera(clip, "/image")
    processes.append(camera)
    proc = launch()
    processes.append(proc)
    seen = wait_for_nodes(set(expected_nodes()), START_TIMEOUT_S)
    assert set(expected_nodes()) <= seen, (seen, proc.output[-3000:])

    def pipeline_processes():
        return [p for p in proc.descendants() if "emotion-perception" in " ".join(p.cmdline())]

    (first,) = pipeline_processes()
    camera.start_streaming()
    assert camera.wait_outputs(OUTPUT_TIMEOUT_S), (camera.count, camera.sent, proc.output[-3000:])

    first.send_signal(signal.SIGKILL)  # a crash: nothing of it runs on
    first.wait(STOP_TIMEOUT_S)
    assert proc.wait_for(r"process has died", 1, STOP_TIMEOUT_S), proc.output[-3000:]
    died_at = re.search(r"process has died[^\n]*", proc.output).end()
    before = dict(camera.count)
    deadline = time.monotonic() + START_TIMEOUT_S + OUTPUT_TIMEOUT_S
    while time.monotonic() < deadline and not (camera.count["emotion"] > before["emotion"] + 10
                                               and camera.count["attention"] > before["attention"] + 10):
        time.sleep(0.2)
    assert camera.count["emotion"] > before["emotion"] + 10, (before, camera.count, proc.output[-3000:])
    assert camera.count["attention"] > before["attention"] + 10, (before, camera.count)
    (second,) = pipeline_processes()
    assert second.pid != first.pid
    stop_and_check(proc, ["emotion_perception_pipeline"], "ctrl-c", camera, output_from=died_at)


@pytest.mark.parametrize("how", ["ctrl-c", "sigint", "sigterm"])
def test_idle_launch_stops_cleanly(processes, how):
    """Idle (no camera): each way of stopping; this launch also switches off the
    image model, the fusion and attention."""
    off = ("image_emotion", "emotion_fusion", "attention")
    proc = launch(*[f"{CLASSIFIER_ARGS[s]}:=false" for s in off], "one_process:=false")
    processes.append(proc)
    names = [module_name(s) for s in NODES if s not in off]
    assert proc.wait_for(r"listening on", 1, START_TIMEOUT_S), proc.output[-3000:]
    want = set(expected_nodes(off=off))
    seen = wait_for_nodes(want, START_TIMEOUT_S)
    assert want <= seen and not seen & {f"/{module_name(s)}" for s in off}, seen
    stop_and_check(proc, names, how)


# ---------------------------------------------------------------- ros2 run

def test_ros2_run_each_node_with_a_params_file_and_ctrl_c(processes, clip, tmp_path):
    """``ros2 run emotion_perception <node> --ros-args ...`` for each of the seven
    nodes, each in its own terminal (session): the parameter file applied, remapped
    camera topic, real output, then Ctrl-C in each terminal while the camera streams."""
    from emotion_perception.launch_description import default_params_file

    params = yaml.safe_load(open(default_params_file()))
    params["lstm_node"]["ros__parameters"]["min_frames"] = 5
    custom = tmp_path / "run.yaml"
    custom.write_text(yaml.safe_dump(params))

    camera = Camera(clip, "/cam/run")
    processes.append(camera)
    runs = {}
    for node in ALL_NODES:
        runs[node] = Ros2Process(["run", "emotion_perception", node, "--ros-args", "--params-file", str(custom),
                                  "-r", "image:=/cam/run"])
        processes.append(runs[node])
    seen = wait_for_nodes({f"/{n}" for n in ALL_NODES}, START_TIMEOUT_S)
    missing = [n for n in ALL_NODES if f"/{n}" not in seen]
    assert not missing, {n: runs[n].output[-2000:] for n in missing}
    assert param_get("/lstm_node", "min_frames") == "5"
    want = {"/cam/run": "sensor_msgs/msg/Image", "/emotion": "emotion_perception_msgs/msg/EmotionArray",
            "/attention": "emotion_perception_msgs/msg/AttentionArray"}
    types = topic_types(expected=want)
    assert {t: types.get(t) for t in want} == want
    camera.start_streaming()
    assert camera.wait_outputs(OUTPUT_TIMEOUT_S), (camera.count, camera.sent)
    nodes = {n: p.descendants() for n, p in runs.items()}
    segments = owned_segments(q.pid for ps in nodes.values() for q in ps)
    for p in runs.values():
        p.stop("ctrl-c")
    rcs = {n: p.wait(STOP_TIMEOUT_S) for n, p in runs.items()}
    camera.close()
    for n, p in runs.items():
        problems = stop_problems(p, nodes[n], [n], set(), rcs[n])
        assert not problems, f"{n}: {problems}\n{p.output[-3000:]}"
    left = sorted(s for s in segments if __import__("os").path.exists(f"/dev/shm/{s}"))
    assert not left, left


def test_ros2_run_node_stops_on_sigterm(processes):
    """SIGTERM to a node's process group (``kill -TERM -<pgid>``, a service manager):
    ``ros2 run`` itself dies of it, the node shuts down cleanly and leaves nothing."""
    proc = Ros2Process(["run", "emotion_perception", "landmark_node"])
    processes.append(proc)
    assert proc.wait_for(r"listening on", 1, START_TIMEOUT_S), proc.output[-3000:]
    nodes = proc.descendants()
    segments = owned_segments(p.pid for p in nodes)
    assert segments
    import os
    import signal

    os.killpg(proc.proc.pid, signal.SIGTERM)
    proc.wait(STOP_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(p.is_running() and p.status() != "zombie" for p in nodes) and time.monotonic() < deadline:
        time.sleep(0.1)
    problems = stop_problems(proc, nodes, ["landmark_node"], segments, 0)
    assert not problems, f"{problems}\n{proc.output[-3000:]}"


def test_camera_frames_are_real_images(clip):
    """The clip the tests stream is what they claim: 640x360 frames that differ."""
    assert clip[0].shape == (360, 640, 3)
    assert np.abs(clip[0].astype(int) - clip[-1].astype(int)).mean() > 1.0
