"""``ros2 launch emotion_perception pipeline.launch.py``: the whole pipeline on a camera.

Arguments (``ros2 launch emotion_perception pipeline.launch.py --show-args``):
image_topic, compressed, namespace, params_file, and transformer, lstm, frame,
image_emotion, fusion, attention (each true/false); one_process (default true: every
node in one ``emotion-perception pipeline`` process, respawned if it dies; false: one
process per node).
The node list, remappings and parameters come from
:mod:`emotion_perception.launch_description`, which ``emotion-perception pipeline``
uses too.
"""

from emotion_perception.launch_description import generate_launch_description  # noqa: F401
