"""emotion_perception: facial emotion and attention of the people in front of a robot.

The package is a ROS-free core (landmarks, features, classifiers, attention, fusion)
with thin ROS 2 nodes on top (``emotion_perception.nodes``). Nothing imported from
here pulls in rclpy or TensorFlow.
"""

__version__ = "0.1.0"
