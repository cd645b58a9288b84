"""Fast DDS transport settings that carry camera-sized images between processes.

With Fast DDS's default builtin transports, 640x480 images at 30 Hz between two
processes arrive about 9 times in 300 on this kind of machine; with the LARGE_DATA
builtin transports (TCP + shared memory for data, UDP for discovery) nearly all do
(see ../shared/ros2-pip-env.md and benchmarks/transport.py). Every process of the
package therefore sets ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` before its first
participant is created, unless the user chose something else (the variable already
set, or a Fast DDS XML profile through ``FASTRTPS_DEFAULT_PROFILES_FILE`` /
``FASTDDS_DEFAULT_PROFILES_FILE``). The camera driver's process needs the same
setting (or publish ``image/compressed``).
"""

from __future__ import annotations

import os

TRANSPORT_ENV = "FASTDDS_BUILTIN_TRANSPORTS"
DEFAULT_TRANSPORT = "LARGE_DATA"
PROFILE_ENVS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def configure_process(env: dict | None = None) -> str | None:
    """Set the LARGE_DATA transport for this process unless the user set one.

    Must run before ``rclpy.init``. Returns the transport in force (None when an XML
    profile decides).
    """
    env = os.environ if env is None else env
    if any(env.get(k) for k in PROFILE_ENVS):
        return None
    env.setdefault(TRANSPORT_ENV, DEFAULT_TRANSPORT)
    return env[TRANSPORT_ENV]
