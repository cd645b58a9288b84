"""Fast DDS transport settings that carry camera-sized images between processes.

Fast DDS's default builtin transports lose most 640x480 images sent between two
processes (about 9 of 300 arrive at 30 Hz on this kind of machine; see
../shared/ros2-pip-env.md and benchmarks/transport.py): its shared-memory segments
(512 KiB) cannot hold one, so they go as UDP fragments. Every process of the package
therefore loads ``config/fastdds_shm.xml`` (shared memory with 16 MiB segments,
UDPv4 for discovery) before its first participant is created, unless the user chose
a transport (``FASTDDS_BUILTIN_TRANSPORTS``, or a Fast DDS XML profile through
``FASTDDS_DEFAULT_PROFILES_FILE`` / ``FASTRTPS_DEFAULT_PROFILES_FILE``).

The profile replaced ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` (TCP + shared memory),
which carried the images as well but left topics of the 7-process pipeline
unmatched for 30 s in 1 to 5 of every 10 starts (the profile: none of 32 starts;
benchmarks/startup.py, docs/transport.md). The camera driver's process should load
the same profile.
"""

from __future__ import annotations

import os

TRANSPORT_ENV = "FASTDDS_BUILTIN_TRANSPORTS"
PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_ENVS = (PROFILE_ENV, "FASTRTPS_DEFAULT_PROFILES_FILE")
#: The package's default profile, a file of ``config/``.
DEFAULT_PROFILE = "fastdds_shm.xml"


def default_profile_path() -> str:
    """Absolute path of the package's Fast DDS profile (source tree or installed)."""
    from .assets import config_path

    return str(config_path(DEFAULT_PROFILE))


def configure_process(env: dict | None = None) -> str:
    """Load the package's Fast DDS profile in this process unless the user chose one.

    Must run before ``rclpy.init``. Returns what decides the transport: the value of
    ``FASTDDS_BUILTIN_TRANSPORTS`` or the path of the profile file in force.
    """
    env = os.environ if env is None else env
    if env.get(TRANSPORT_ENV):
        return env[TRANSPORT_ENV]
    for k in PROFILE_ENVS:
        if env.get(k):
            return env[k]
    env[PROFILE_ENV] = default_profile_path()
    return env[PROFILE_ENV]
