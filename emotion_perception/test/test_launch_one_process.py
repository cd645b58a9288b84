"""``pipeline.launch.py one_process:=true`` starts ``emotion-perception pipeline`` with
arguments that describe exactly the pipeline the same launch arguments describe as
separate processes (no ROS, no launch needed)."""

from __future__ import annotations

import argparse

import pytest

from emotion_perception.cli import pipeline as pipeline_cli
from emotion_perception.launch_description import (LAUNCH_ARGUMENTS, describe, description_from_launch_arguments,
                                                   pipeline_arguments)


def _described_by_cli(args: list[str]):
    parser = argparse.ArgumentParser()
    pipeline_cli.register(parser.add_subparsers())
    a = parser.parse_args(args)
    return describe(image_topic=a.image_topic, compressed=a.compressed, namespace=a.namespace,
                    params_file=a.params_file, enabled=pipeline_cli.enabled_from_args(a))


@pytest.mark.parametrize("values", [
    {},
    {"image_topic": "/camera/color/image_raw", "compressed": "true", "namespace": "robot1"},
    {"lstm": "false", "fusion": "false", "attention": "False", "params_file": "my.yaml"},
    {"transformer": "false", "frame": "false", "image_emotion": "false", "one_process": "true"},
])
def test_one_process_arguments_describe_the_same_pipeline(values, tmp_path):
    if "params_file" in values:  # a file the description checks: it must exist and be a parameter file
        params = tmp_path / values["params_file"]
        params.write_text("landmark_node:\n  ros__parameters:\n    max_faces: 1\n")
        values = {**values, "params_file": str(params)}
    assert pipeline_arguments(values)[0] == "pipeline"
    assert _described_by_cli(pipeline_arguments(values)) == description_from_launch_arguments(values)


def test_one_process_is_the_default_and_it_respawns():
    """One process is the launch default (one_process:=false gives one per node), and
    launch starts it again when it dies."""
    assert LAUNCH_ARGUMENTS["one_process"][0] == "true"
    pytest.importorskip("launch", reason="the launch wheels are not installed")
    pytest.importorskip("ament_index_python")
    from emotion_perception.launch_description import RESPAWN_DELAY_S, to_one_process_actions

    try:
        actions = to_one_process_actions(description_from_launch_arguments({}), {})
    except Exception as e:  # noqa: BLE001 - the package is not installed in an ament prefix here
        pytest.skip(f"no ament prefix for emotion_perception: {e}")
    (process,) = [a for a in actions if type(a).__name__ == "ExecuteProcess"]
    assert process._ExecuteLocal__respawn is True and process._ExecuteLocal__respawn_delay == RESPAWN_DELAY_S
