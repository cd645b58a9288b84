"""Fast DDS transport settings that carry camera-sized images between processes.

Fast DDS's default builtin transports lose most 640x480 images sent between two
processes (about 9 of 300 arrive at 30 Hz on this kind of machine; see
../shared/ros2-pip-env.md and benchmarks/transport.py): its shared-memory segments
(512 KiB) cannot hold one, so they go as UDP fragments. Every process of the package
therefore loads ``config/fastdds_shm.xml`` (shared memory with 16 MiB segments,
UDPv4 for discovery) before its first participant is created, unless the user chose
a transport (``FASTDDS_BUILTIN_TRANSPORTS``, or a Fast DDS XML profile through
``FASTDDS_DEFAULT_PROFILES_FILE`` / ``FASTRTPS_DEFAULT_PROFILES_FILE``). The variable
set is the one the installed Fast DDS reads (:func:`profile_variables`): Fast DDS 3
(Kilted) reads the first, Fast DDS 2.x (Jazzy, Humble) only the second.

The profile replaced ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` (TCP + shared memory),
which carried the images as well but left topics of the 7-process pipeline
unmatched for 30 s in 1 to 5 of every 10 starts (the profile: none of 32 starts;
benchmarks/startup.py, docs/transport.md). The camera driver's process should load
the same profile.
"""

from __future__ import annotations

import os

TRANSPORT_ENV = "FASTDDS_BUILTIN_TRANSPORTS"
#: The profile file variable of Fast DDS 3 (Kilted and later) ...
PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
#: ... and of Fast DDS 2.x (Jazzy: 2.14, Humble: 2.6), which ignores the other one.
LEGACY_PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
PROFILE_ENVS = (PROFILE_ENV, LEGACY_PROFILE_ENV)
#: Makes rmw_fastrtps take readers' and writers' settings from the profile (their
#: history memory policy: buffers freed after each sample instead of kept at the
#: largest size ever received; see config/fastdds_shm.xml). Set with the profile.
QOS_FROM_XML_ENV = "RMW_FASTRTPS_USE_QOS_FROM_XML"
#: The package's default profile, a file of ``config/``.
DEFAULT_PROFILE = "fastdds_shm.xml"


def default_profile_path() -> str:
    """Absolute path of the package's Fast DDS profile (source tree or installed)."""
    from .assets import config_path

    return str(config_path(DEFAULT_PROFILE))


#: rmw_fastrtps major version from which the middleware is Fast DDS 3 (Kilted: 9.x;
#: Jazzy's 8.x and Humble's 6.x use Fast DDS 2.x).
RMW_FASTRTPS_FOR_FAST_DDS_3 = 9


def profile_variables() -> tuple[str, ...]:
    """The profile variables that the installed Fast DDS reads.

    Fast DDS 3 (Kilted) reads ``FASTDDS_DEFAULT_PROFILES_FILE`` and logs a deprecation
    warning at every start when ``FASTRTPS_DEFAULT_PROFILES_FILE`` is set; Fast DDS 2.x
    (Jazzy, Humble) reads only ``FASTRTPS_DEFAULT_PROFILES_FILE``. Told apart by the
    version of ``rmw_fastrtps_shared_cpp`` in the ament index (9.x and later: Fast DDS
    3); when that cannot be read, both.
    """
    import re

    try:
        from ament_index_python.packages import get_package_share_directory

        xml = os.path.join(get_package_share_directory("rmw_fastrtps_shared_cpp"), "package.xml")
        with open(xml) as f:
            major = int(re.search(r"<version>\s*(\d+)\.", f.read()).group(1))
    except Exception:  # noqa: BLE001 - no ament index, package or version: cover both
        return PROFILE_ENVS
    return (PROFILE_ENV,) if major >= RMW_FASTRTPS_FOR_FAST_DDS_3 else (LEGACY_PROFILE_ENV,)


def configure_process(env: dict | None = None) -> str:
    """Load the package's Fast DDS profile in this process unless the user chose one.

    Must run before ``rclpy.init``. With the package's profile it also sets
    ``RMW_FASTRTPS_USE_QOS_FROM_XML=1`` (unless set), so that the profile's reader and
    writer settings apply. Returns what decides the transport: the value of
    ``FASTDDS_BUILTIN_TRANSPORTS`` or the path of the profile file in force.
    """
    env = os.environ if env is None else env
    if env.get(TRANSPORT_ENV):
        return env[TRANSPORT_ENV]
    for k in PROFILE_ENVS:
        if env.get(k):
            profile = env[k]
            break
    else:
        profile = default_profile_path()
    # The name the installed Fast DDS reads: with only FASTDDS_... set, Jazzy's Fast DDS
    # 2.14 silently kept its 512 KiB segments and camera-sized images fell back to UDP
    # fragments.
    for k in profile_variables():
        if not env.get(k):
            env[k] = profile
    if profile == default_profile_path():  # also where a camera's process names it itself
        env.setdefault(QOS_FROM_XML_ENV, "1")
    return profile


#: Where Fast DDS keeps its shared-memory segments on Linux.
SHM_DIR = "/dev/shm"
#: A segment's lock file younger than this is never judged stale (its owner may be
#: between creating the file and locking it), s.
STALE_MIN_AGE_S = 30.0


def clean_stale_segments(shm_dir: str = SHM_DIR, min_age_s: float = STALE_MIN_AGE_S) -> tuple[int, int]:
    """Remove Fast DDS shared-memory segments whose owner process is gone.

    Fast DDS names a participant's segment ``fastdds_<16 hex>`` (Fast DDS 2.x, Jazzy:
    ``fastrtps_<16 hex>``) and holds an exclusive ``flock`` on ``<segment>_el`` for as
    long as the owner lives. A
    process that is killed (or crashes) leaves both files behind: 9-17 MB each with
    the package's profile, in a ``/dev/shm`` that is 64 MB in a default Docker
    container, where a few crashed nodes make the next start fall back to UDP and lose
    camera-sized images. A segment is removed only when its lock file is older than
    ``min_age_s`` and can be locked (nobody holds it). Ports (``fastdds_port*``, a
    few hundred kB, ``fastrtps_port*`` in 2.x) are left to Fast DDS.

    Returns:
        (segments removed, bytes freed).
    """
    import fcntl
    import re
    import time

    pattern = re.compile(r"^fast(?:dds|rtps)_[0-9a-f]{16}_el$")
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
