"""Keeps MediaPipe's and TensorFlow Lite's C++ log lines off a user's terminal.

MediaPipe (absl logging, before any ``InitGoogle``) and TensorFlow Lite print
informational lines straight to file descriptor 2 from C++, dozens per clip
(``W0000 ... inference_feedback_manager.cc:121] Feedback manager requires ...``,
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``), and neither reads an
environment variable or exposes a call that silences them before their first line.
:func:`install` therefore puts a filter on the process's stderr: a pipe whose reader
thread forwards every line to the real stderr except those informational ones. absl
errors (``E...``) and fatal lines, Python tracebacks and ROS log lines pass.

Installed by the command line (``emotion-perception demo``, ``run``, ``predict``,
``evaluate``, ``bag``, ...) and by every node's ``main()``; never on import, so a
library user or a test keeps its own stderr. ``--verbose`` on the command line, or
``EMOTION_PERCEPTION_VERBOSE=1`` in the environment (nodes, ``ros2 launch``), shows
everything.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

#: Set to 1 (or anything but 0/empty) to see the native log lines.
VERBOSE_ENV = "EMOTION_PERCEPTION_VERBOSE"
#: Lines dropped: absl/glog INFO and WARNING lines (``W0000 00:00:<epoch>.us  tid file.cc:N] ``),
#: absl's "Logging before InitGoogle()" notice, TensorFlow Lite's INFO lines.
NOISE = re.compile(
    rb"^(?:[IW]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] "
    rb"|WARNING: Logging before InitGoogle\(\) is written to STDERR"
    rb"|INFO: (?:Created TensorFlow Lite|Initialized TensorFlow Lite|TfLiteXNNPackDelegate))")
#: Longest wait at exit for the reader to pass on what is still in the pipe, s.
FLUSH_TIMEOUT_S = 2.0

_installed: "_Filter | None" = None


def verbose_requested(env=None) -> bool:
    value = (os.environ if env is None else env).get(VERBOSE_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


class _Filter:
    def __init__(self):
        self.real = os.dup(2)  # the terminal (or whatever stderr was)
        read, write = os.pipe()
        self.read = read
        self.dropped = 0
        sys.stderr.flush()
        os.dup2(write, 2)
        os.close(write)
        self.thread = threading.Thread(target=self._forward, name="native-log-filter", daemon=True)
        self.thread.start()

    def _forward(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = [line for line in lines if not NOISE.match(line)]
            self.dropped += len(lines) - len(out)
            if out:
                self._write(b"\n".join(out) + b"\n")
        if pending and not NOISE.match(pending):
            self._write(pending)
        os.close(self.read)

    def _write(self, data: bytes) -> None:
        while data:
            try:
                data = data[os.write(self.real, data):]
            except OSError:
                return

    def close(self) -> None:
        """Give fd 2 back to the real stderr and pass on what is still in the pipe."""
        try:
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - closed at exit
            pass
        os.dup2(self.real, 2)  # the pipe's last writer is gone: the reader sees EOF
        self.thread.join(FLUSH_TIMEOUT_S)


def real_stderr_fd() -> int:
    """The file descriptor of the process's real stderr: the filter's copy of it while
    the filter is in place (writes to fd 2 then go through the reader thread, which needs
    the GIL), else 2. For writers that must not depend on Python, as faulthandler."""
    return _installed.real if _installed is not None else 2


def install(verbose: bool = False) -> bool:
    """Filter MediaPipe's and TensorFlow Lite's informational lines out of stderr for
    the rest of this process (see the module docstring). Also asks TensorFlow, where a
    command imports it, to log warnings and errors only.

    Args:
        verbose: do nothing (the ``--verbose`` option); so does ``EMOTION_PERCEPTION_VERBOSE=1``.

    Returns:
        True if the filter is in place.
    """
    global _installed
    if verbose or verbose_requested():
        return False
    if _installed is not None:
        return True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        _installed = _Filter()
    except OSError:
        return False
    atexit.register(_installed.close)
    return True
