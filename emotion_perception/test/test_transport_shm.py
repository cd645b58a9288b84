"""Stale Fast DDS shared-memory segments: removed when their owner died, never
while it lives (``transport.clean_stale_segments``)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time

from conftest import own_ros_domain_fixture

from emotion_perception import transport

own_ros_domain = own_ros_domain_fixture(200, 30)


#: Segment size of config/fastdds_shm.xml.
PROFILE_SEGMENT_BYTES = 16 * 1024 * 1024


def _segment(d, name: str, size: int = 1000, age_s: float | None = 3600.0) -> tuple:
    seg, lock = d / name, d / f"{name}_el"
    seg.write_bytes(b"\0" * size)
    lock.write_bytes(b"")
    if age_s is not None:
        t = time.time() - age_s
        os.utime(lock, (t, t))
    return seg, lock


def test_only_unlocked_old_segments_are_removed(tmp_path):
    stale = _segment(tmp_path, "fastdds_0123456789abcdef", size=5000)
    young = _segment(tmp_path, "fastdds_1111111111111111", age_s=None)
    held = _segment(tmp_path, "fastdds_2222222222222222")
    port = _segment(tmp_path, "fastdds_port7411")
    stale_2x = _segment(tmp_path, "fastrtps_89abcdef01234567", size=700)  # Fast DDS 2.x (Jazzy) names
    port_2x = _segment(tmp_path, "fastrtps_port7413")
    other = tmp_path / "something_else_el"
    other.write_bytes(b"")
    with open(held[1], "ab") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live owner holds its lock
        removed, freed = transport.clean_stale_segments(str(tmp_path))
    assert (removed, freed) == (2, 5700)
    assert not any(p.exists() for p in (*stale, *stale_2x))
    assert all(p.exists() for p in (*young, *held, *port, *port_2x, other))


def test_a_missing_directory_is_nothing_to_clean(tmp_path):
    assert transport.clean_stale_segments(str(tmp_path / "absent")) == (0, 0)


def _segments() -> set[str]:
    return {n for n in os.listdir(transport.SHM_DIR) if n.startswith(("fastdds_", "fastrtps_")) and n.endswith("_el")
            and "port" not in n}


def test_a_live_participant_keeps_its_segment_and_a_killed_one_loses_it():
    """Real Fast DDS with the package's profile: the segment of a running process
    survives a cleaning; once the process is killed (SIGKILL: no clean-up of its
    own) the next cleaning removes it."""
    from ros2_cli import owned_segments

    code = textwrap.dedent("""
        import time, rclpy
        from emotion_perception import transport
        transport.configure_process()
        rclpy.init()
        node = rclpy.create_node("shm_owner")
        print("up", flush=True)
        time.sleep(60)
    """)
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "up"
        deadline = time.monotonic() + 10
        while not owned_segments([owner.pid]) and time.monotonic() < deadline:
            time.sleep(0.1)
        # the owner's own, by its lock (other processes on this host come and go meanwhile)
        mine = {f"{n}_el" for n in owned_segments([owner.pid])}
        assert mine, "the participant created no shared-memory segment (is the SHM profile loaded?)"
        # the package's profile is in force (16 MiB segments), not Fast DDS's builtin 512 KiB
        # (Jazzy's Fast DDS 2.14 reads only FASTRTPS_DEFAULT_PROFILES_FILE)
        sizes = [os.path.getsize(os.path.join(transport.SHM_DIR, n[:-3])) for n in mine]
        assert min(sizes) >= PROFILE_SEGMENT_BYTES, sizes
        transport.clean_stale_segments(min_age_s=0)
        assert mine <= _segments(), "a live participant's segment was removed"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    assert mine <= _segments(), "Fast DDS removed it itself: nothing stale to test"
    removed, freed = transport.clean_stale_segments(min_age_s=0)
    assert removed >= len(mine) and freed > 0
    assert not (mine & _segments())
