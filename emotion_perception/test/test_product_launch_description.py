"""The launch description as plain data (no launch_ros needed): nodes, remappings,
parameters, classifier switches, the Fast DDS transport, and the CLI using it.

The launch_ros conversion is tested in test_product_launch_ros.py, and the real
``ros2 launch`` in test_launch_ros2.py (both skip where launch_ros is not installed).
"""

import argparse
import pathlib

import pytest
import yaml

from emotion_perception import transport
from emotion_perception.launch_description import (CLASSIFIER_ARGS, COMPRESSED_PARAMETERS, LAUNCH_ARGUMENTS,
                                                   NO_HRI_NOTE, check_params_file, describe,
                                                   description_from_launch_arguments, namespaced_params_file,
                                                   node_available, parse_bool)
from emotion_perception.nodes import NODES

PKG = pathlib.Path(__file__).resolve().parents[1]
#: The REP-155 producer starts where hri_msgs is installed (`make setup` with the ROS4HRI kit).
HRI = ("hri",) if node_available("hri") else ()


def test_default_description_starts_every_node_from_the_package_params():
    d = describe(env={})
    assert d.short_names == tuple(n for n in NODES if n != "hri" or HRI)  # landmark first, then every classifier
    assert [n.executable for n in d.nodes] == [n.name for n in d.nodes]
    assert [n.name for n in d.nodes] == ["landmark_node", "transformer_node", "lstm_node", "frame_node",
                                         "image_emotion_node", "emotion_fusion_node", "attention_node",
                                         *(["hri_node"] if HRI else [])]
    assert pathlib.Path(d.params_file) == PKG / "config" / "params.yaml"
    assert d.remap_args() == []  # the nodes' own `image` topic
    profile = str(PKG / "config" / "fastdds_shm.xml")
    assert d.environment == {**{k: profile for k in transport.profile_variables()},
                             "RMW_FASTRTPS_USE_QOS_FROM_XML": "1"}
    # every executable is a console script of setup.py
    setup_py = (PKG / "setup.py").read_text()
    for n in d.nodes:
        assert f'"{n.executable}"' in setup_py


def test_raw_camera_topic_is_remapped_and_nodes_read_raw():
    d = describe(image_topic="/camera/color/image_raw", namespace="/robot/", env={})
    assert d.remap_args() == ["image:=/camera/color/image_raw"]
    assert all(n.remappings == (("image", "/camera/color/image_raw"),) for n in d.nodes)
    assert d.namespace == "robot"
    by = {n.short: n for n in d.nodes}
    assert by["landmark"].overrides == {"use_compressed": False}
    assert by["image_emotion"].overrides == {}  # it reads faces/crops, not the camera
    assert all(r == ("image", "/camera/color/image_raw") for n in d.nodes for r in n.remappings)
    assert by["attention"].overrides == {}


def test_compressed_reads_the_image_transport_sibling_topic():
    d = describe(image_topic="/camera/image_raw", compressed=True, env={})
    assert d.remap_args() == ["image/compressed:=/camera/image_raw/compressed"]
    assert d.parameter_overrides() == {"landmark": {"use_compressed": True},
                                       **({"hri": {"use_compressed": True}} if HRI else {})}


def test_classifier_switches_and_outputs():
    d = describe(enabled={"lstm": False, "image_emotion": False, "emotion_fusion": False}, env={})
    assert d.short_names == ("landmark", "transformer", "frame", "attention", *HRI)
    assert set(d.output_topics()) == {"faces/mesh", "faces/blendshapes", "faces/crops", "emotion/transformer",
                                      "emotion/frame", "attention"}
    with pytest.raises(ValueError, match="unknown classifier"):
        describe(enabled={"landmark": False})
    with pytest.raises(ValueError, match="empty"):
        describe(image_topic="")


def test_user_transport_choice_is_kept():
    assert describe(env={"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}).environment == {}
    # a profile given under the other name is passed on under the one this Fast DDS reads
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        assert describe(env={name: "/x.xml"}).environment == {
            k: "/x.xml" for k in transport.profile_variables() if k != name}


def test_launch_arguments_map_to_the_description(tmp_path):
    assert set(LAUNCH_ARGUMENTS) == {"image_topic", "compressed", "namespace", "params_file", "transformer",
                                     "lstm", "frame", "image_emotion", "fusion", "attention", "ros4hri",
                                     "one_process"}
    params = tmp_path / "p.yaml"
    params.write_text("landmark_node:\n  ros__parameters:\n    max_faces: 1\n")
    d = description_from_launch_arguments({"image_topic": "/cam", "compressed": "true", "fusion": "false",
                                           "attention": "0", "params_file": str(params)}, env={})
    assert d.params_file == str(params)
    assert "emotion_fusion" not in d.short_names and "attention" not in d.short_names
    assert d.compressed and d.remap_args() == ["image/compressed:=/cam/compressed"]
    assert parse_bool("On") and not parse_bool("no")
    with pytest.raises(ValueError):
        parse_bool("maybe")


def test_compressed_parameters_are_declared_by_the_image_nodes():
    import importlib.util

    # the source is read, not imported: hri_node's module refuses to import without hri_msgs
    for short, param in COMPRESSED_PARAMETERS.items():
        source = pathlib.Path(importlib.util.find_spec(NODES[short].split(":")[0]).origin)
        assert f'Param("{param}", False' in source.read_text(), (short, param)


def test_params_file_has_a_section_per_running_node_or_none_yet():
    # the parameter file is keyed by the node names the description uses
    data = yaml.safe_load((PKG / "config" / "params.yaml").read_text()) or {}
    desc = describe(env={})
    names = {n.name for n in desc.nodes}
    if NO_HRI_NOTE in desc.notes:  # left out only because hri_msgs is not installed here
        names.add("hri_node")
    assert set(data) <= names


def test_launch_file_uses_the_package_builder():
    text = (PKG / "launch" / "pipeline.launch.py").read_text()
    assert "from emotion_perception.launch_description import generate_launch_description" in text


def test_pipeline_cli_prints_the_same_description(capsys):
    from emotion_perception.cli import pipeline

    p = argparse.ArgumentParser()
    pipeline.register(p.add_subparsers())
    args = p.parse_args(["pipeline", "--print", "--image-topic", "/cam/image_raw", "--compressed",
                         "--no-lstm", "--no-fusion", "--namespace", "robot"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    d = describe(image_topic="/cam/image_raw", compressed=True, namespace="robot",
                 enabled={"lstm": False, "emotion_fusion": False})
    lines = [line for line in out.splitlines() if line.endswith("}") and "_node:" in line]
    assert [line.split(":")[0] for line in lines] == [n.name for n in d.nodes]
    assert all("/cam/image_raw/compressed" in line for line in lines)
    assert "namespace: robot" in out
    assert set(CLASSIFIER_ARGS.values()) >= {"fusion", "lstm"}


def test_a_params_file_keyed_by_node_name_follows_the_namespace(tmp_path):
    """ROS applies ``landmark_node:`` to /landmark_node only: under a namespace the
    launch and the one-process runner hand over a copy keyed /<ns>/<node>."""
    src = tmp_path / "p.yaml"
    src.write_text(yaml.safe_dump({"landmark_node": {"ros__parameters": {"max_faces": 1}},
                                   "/other/attention_node": {"ros__parameters": {"hfov_deg": 70.0}},
                                   "/**": {"ros__parameters": {"use_sim_time": False}}}))
    assert namespaced_params_file(src, "") == str(src)
    copy = namespaced_params_file(src, "/robot1/")
    assert copy != str(src) and namespaced_params_file(src, "robot1") == copy  # written once
    assert yaml.safe_load(open(copy)) == {"/robot1/landmark_node": {"ros__parameters": {"max_faces": 1}},
                                          "/other/attention_node": {"ros__parameters": {"hfov_deg": 70.0}},
                                          "/**": {"ros__parameters": {"use_sim_time": False}}}
    assert yaml.safe_load(open(namespaced_params_file(src, "a/b")))["/a/b/landmark_node"]


def test_one_process_pipeline_in_a_namespace_applies_the_params_file(tmp_path):
    from emotion_perception.runner import Pipeline

    params = yaml.safe_load(open(PKG / "config" / "params.yaml"))
    params["lstm_node"]["ros__parameters"]["min_frames"] = 5
    src = tmp_path / "p.yaml"
    src.write_text(yaml.safe_dump(params))
    with Pipeline(["lstm"], params_file=src, namespace="robot1") as p:
        node = p.nodes["lstm"]
        assert node.get_fully_qualified_name() == "/robot1/lstm_node"
        assert node.get_parameter("min_frames").value == 5


def test_without_hri_msgs_the_pipeline_leaves_the_producer_out(monkeypatch):
    """Where hri_msgs is not installed the launch, the CLI and the runner leave hri_node out
    and carry one line saying so (runs everywhere: it fakes the missing module)."""
    from emotion_perception import launch_description as ld

    monkeypatch.setattr(ld, "HRI_MESSAGES", ("hri_msgs_not_installed_here",))
    desc = ld.describe()
    assert "hri" not in desc.short_names and "landmark" in desc.short_names
    assert desc.notes == (ld.NO_HRI_NOTE,) and "hri_msgs" in ld.NO_HRI_NOTE
    assert ld.describe(enabled={"hri": False}).notes == ()
    # the one-process runner the same way (it says the note once when it starts)
    from emotion_perception.runner import DEFAULT_NODES, Pipeline

    pipeline = Pipeline(DEFAULT_NODES)
    assert "hri" not in pipeline.node_names and pipeline.notes == (ld.NO_HRI_NOTE,)


def test_a_bad_params_file_is_named_once_before_anything_starts(tmp_path, capsys):
    """ROS reports a bad parameter file as a traceback from rclpy.init in every process;
    the description and the command line say what is wrong with it first."""
    from emotion_perception.cli import main

    nested = tmp_path / "nested.yaml"
    nested.write_text("robot1:\n  landmark_node:\n    ros__parameters:\n      max_faces: 1\n")
    assert check_params_file(PKG / "config" / "params.yaml") and check_params_file(nested) == str(nested)
    cases = {
        "missing.yaml": (None, "No such file"),
        "broken.yaml": ("landmark_node: [\n", "not valid YAML \\(line 2"),
        "flat.yaml": ("landmark_node:\n  max_faces: 2\n", "landmark_node/max_faces is not under a 'ros__parameters'"),
        "empty.yaml": ("", "expected node names"),
        "scalar_params.yaml": ("landmark_node:\n  ros__parameters: 3\n", "ros__parameters must be a mapping"),
    }
    for name, (text, reason) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(ValueError, match=reason):
            check_params_file(path)
        with pytest.raises(ValueError, match=reason):
            describe(params_file=path, env={})
        for command in (["pipeline"], ["run", str(tmp_path), "-o", str(tmp_path / "o")]):
            with pytest.raises(SystemExit) as e:
                main([*command, "--params-file", str(path)])
            assert e.value.code == 2
            err = capsys.readouterr().err
            assert "argument --params-file" in err and name in err and "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (["run", "x.mp4", "-o", "o", "--fps", "-5"], "argument --fps: -5 is not a positive number"),
    (["run", "x.mp4", "-o", "o", "--max-frames", "0"], "argument --max-frames: 0 is not a positive integer"),
    (["run", "x.mp4", "-o", "o", "--frame-timeout", "abc"], "argument --frame-timeout: 'abc' is not a number"),
    (["pipeline", "--duration", "inf"], "argument --duration: inf is not a positive number"),
    (["bag", "from-video", "a.mp4", "b", "--loops", "0"], "argument --loops: 0 is not a positive integer"),
    (["calibrate-gaze", "--hfov-deg", "200"], "argument --hfov-deg: 200 is not a field of view"),
])
def test_a_number_out_of_range_is_a_usage_error_naming_the_option(args, message, capsys):
    from emotion_perception.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err
