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


#: Where Fast DDS keeps its shared-memory segments on Linux.
SHM_DIR = "/dev/shm"
#: A segment's lock file younger than this is never judged stale (its owner may be
#: between creating the file and locking it), s.
STALE_MIN_AGE_S = 30.0


def clean_stale_segments(shm_dir: str = SHM_DIR, min_age_s: float = STALE_MIN_AGE_S) -> tuple[int, int]:
    """Remove Fast DDS shared-memory segments whose owner process is gone.

    Fast DDS names a participant's segment ``fastdds_<16 hex>`` and holds an
    exclusive ``flock`` on ``fastdds_<16 hex>_el`` for as long as the owner lives. A
    process that is killed (or crashes) leaves both files behind: 9-17 MB each with
    the package's profile, in a ``/dev/shm`` that is 64 MB in a default Docker
    container, where a few crashed nodes make the next start fall back to UDP and lose
    camera-sized images. A segment is removed only when its lock file is older than
    ``min_age_s`` and can be locked (nobody holds it). Ports (``fastdds_port*``, a
    few hundred kB) are left to Fast DDS.

    Returns:
        (segments removed, bytes freed).
    """
    import fcntl
    import re
    import time

    pattern = re.compile(r"^fastdds_[0-9a-f]{16}_el$")
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return 0, 0
    removed = freed = 0
    now = time.time()
    for name in names:
        if not pattern.match(name):
            continue
        lock = os.path.join(shm_dir, name)
        segment = lock[:-3]
        try:
            if now - os.stat(lock).st_mtime < min_age_s:
                continue
            with open(lock, "ab") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # held: its owner is alive
                try:
                    size = os.stat(segment).st_size
                    os.remove(segment)
                except FileNotFoundError:
                    size = 0
                os.remove(lock)
        except OSError:
            continue  # vanished meanwhile, or not ours to remove
        removed += 1
        freed += size
    return removed, freed


def prepare_process() -> str | None:
    """:func:`configure_process` for this process, then, where the package's
    shared-memory profile is in force, :func:`clean_stale_segments`.

    Returns:
        A line to log when stale segments were removed, else None.
    """
    chosen = configure_process()
    if chosen != default_profile_path():
        return None
    removed, freed = clean_stale_segments()
    if not removed:
        return None
    return (f"removed {removed} stale Fast DDS shared-memory segment(s) ({freed / 1e6:.0f} MB) in {SHM_DIR} "
            f"left by processes that died")
