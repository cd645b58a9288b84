"""launch_ros actions of pipeline.launch.py, without starting anything (the real
``ros2 launch`` is in test_launch_ros2.py)."""

import pytest

from ros2_cli import NO_LAUNCH, launch_available

pytestmark = pytest.mark.skipif(not launch_available(), reason=NO_LAUNCH)
if launch_available():
    from launch import LaunchContext
    from launch.actions import SetEnvironmentVariable
    from launch_ros.actions import Node

from emotion_perception import transport
from emotion_perception.launch_description import describe, to_launch_actions


def test_actions_mirror_the_description():
    d = describe(image_topic="/cam/image_raw", namespace="robot", enabled={"lstm": False}, env={})
    actions = to_launch_actions(d)
    envs = [a for a in actions if isinstance(a, SetEnvironmentVariable)]
    nodes = [a for a in actions if isinstance(a, Node)]
    # the profile variable this distribution's Fast DDS reads (FASTRTPS_... on Jazzy), and any others
    assert len(envs) == len(d.environment) and set(transport.profile_variables()) <= set(d.environment)
    assert len(nodes) == len(d.nodes)
    ctx = LaunchContext()
    for action, spec in zip(nodes, d.nodes):
        action._perform_substitutions(ctx)
        assert action.node_name.endswith(spec.name)
        assert action.node_executable == spec.executable
        assert action.expanded_remapping_rules == [("image", "/cam/image_raw")]
