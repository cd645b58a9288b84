"""The QoS profiles of the package's topics: camera input, results, metadata."""

from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)


#: Camera input: best effort, keep last 1-5; matches best-effort and reliable publishers.
SENSOR_QOS = qos_profile_sensor_data
#: Results: reliable, a short queue.
RESULT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
#: Metadata published once: late joiners still get it.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
