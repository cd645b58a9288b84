#!/usr/bin/env bash
# Stands in for a robot with ROS 2 from apt on Ubuntu 24.04 (Python 3.12, numpy 1.26.4,
# Python modules compiled against numpy 1.x, PEP 668) and checks the README's robot
# install ("Installing on a robot") on it. Fails if any step or assertion fails.
#   1. "system" Python: a copy of Python 3.12 with numpy 1.26.4, an OpenCV built for
#      numpy 1.x (standing in for apt's python3-opencv) and colcon, then marked
#      externally managed (PEP 668) as Ubuntu's is;
#   2. the README's block, as written, in a fresh workspace, except the lines that need
#      apt's ROS 2 (apt, source /opt/ros, rosdep, ros2) and the message package
#      (ament_cmake, rosidl); `git clone` copies this checkout's tracked files;
#   3. asserts: the system's numpy is still 1.26.x and `import numpy, cv2` works there;
#      the venv uses the system's numpy; the nodes' executables start the venv's Python;
#      every model loads from the installed package; `emotion-perception predict` on the
#      42 photos gives the same labels as the main venv (.venv, run here too, so a
#      retrained model needs no new expected file) with every model; the test suite
#      passes on 3.12, less the tests that need ROS 2 or the training stack (reported)
#      and the four listed below with their reasons;
#   4. every requirement resolves to wheels for linux aarch64, CPython 3.12.
# Environment (defaults: Ubuntu 24.04, Jazzy): ROBOT_PY (3.12) and ROBOT_PYTHON (that
# Python; default: found on PATH or in pyenv), ROBOT_NUMPY (1.26.4), ROBOT_OPENCV
# (4.6.0.66: Ubuntu 24.04's python3-opencv is 4.6.0), ROBOT_SETUPTOOLS (68.1.2),
# ROBOT_ROS_DISTRO (jazzy), ROBOT_CHECK_DIR (work folder, default build/robot-check,
# recreated; removed after a pass unless ROBOT_CHECK_KEEP=1), ROBOT_VENV_NUMPY (the
# numpy the venv must use; default the system's).
# Humble on Ubuntu 22.04: ROBOT_PY=3.10 ROBOT_NUMPY=1.21.5 ROBOT_VENV_NUMPY=1.26.4
# ROBOT_OPENCV=4.5.4.60 ROBOT_SETUPTOOLS=59.6.0 ROBOT_ROS_DISTRO=humble.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROBOT_PY=${ROBOT_PY:-3.12}
ROBOT_PYTHON=${ROBOT_PYTHON:-}
ROBOT_NUMPY=${ROBOT_NUMPY:-1.26.4}
ROBOT_OPENCV=${ROBOT_OPENCV:-4.6.0.66}
ROBOT_SETUPTOOLS=${ROBOT_SETUPTOOLS:-68.1.2}
# the numpy the venv must use: the system's on Ubuntu 24.04
ROBOT_VENV_NUMPY=${ROBOT_VENV_NUMPY:-$ROBOT_NUMPY}
ROBOT_ROS_DISTRO=${ROBOT_ROS_DISTRO:-jazzy}
CP=cp${ROBOT_PY/./}
WORK=${ROBOT_CHECK_DIR:-$ROOT/build/robot-check}
MAIN_VENV=${MAIN_VENV:-$ROOT/.venv}
PHOTOS=$ROOT/emotion_perception/test/fixtures/data/muxspace/images
# manylinux tags a glibc 2.39 aarch64 machine (Ubuntu 24.04) accepts and the robot
# requirements' wheels carry; pip does not expand one manylinux_2_x tag to older ones.
AARCH64_PLATFORMS="manylinux2014_aarch64 manylinux_2_26_aarch64 manylinux_2_27_aarch64 manylinux_2_28_aarch64"

say() { printf '\033[1m[robot-check]\033[0m %s\n' "$*"; }
fail() { printf '\033[1m[robot-check] FAIL:\033[0m %s\n' "$*" >&2; exit 1; }

# A Python $ROBOT_PY: $ROBOT_PYTHON, else python$ROBOT_PY on PATH if it runs (a pyenv
# shim runs only where that version is selected), else pyenv's newest such install.
find_python() {
    local c
    for c in ${ROBOT_PYTHON:+"$ROBOT_PYTHON"} "python$ROBOT_PY" \
        $(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/$ROBOT_PY".*/bin/python"$ROBOT_PY" 2>/dev/null | sort -V -r); do
        if "$c" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$ROBOT_PY'.split('.'))))" > /dev/null 2>&1; then
            echo "$c"; return 0
        fi
    done
    return 1
}
# 1. the stand-in system Python
ROBOT_PYTHON=$(find_python) || fail "need a Python $ROBOT_PY (set ROBOT_PYTHON=/path/to/python$ROBOT_PY)"
base=$("$ROBOT_PYTHON" -c 'import sys; print(sys.base_prefix)')
say "system stand-in: a copy of $base with numpy $ROBOT_NUMPY, opencv-python $ROBOT_OPENCV, colcon"
rm -rf "$WORK"
mkdir -p "$WORK/system" "$WORK/home"
tar -C "$base" --exclude="./lib/python$ROBOT_PY/test" --exclude="./lib/python$ROBOT_PY/site-packages/*" \
    --exclude='__pycache__' -cf - . | tar -C "$WORK/system" -xf -
SYS=$WORK/system/bin/python$ROBOT_PY
[ "$("$SYS" -c 'import sys; print(sys.prefix)')" = "$WORK/system" ] || fail "the copied Python does not run from its copy"
"$SYS" -m ensurepip > /dev/null
pip_sys() { "$SYS" -m pip install --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
# What apt puts there: numpy, OpenCV (built against numpy 1.x), colcon, setuptools
# (Ubuntu 24.04's 68.1.2) and ament_index_python (Jazzy's 1.8.1, pure Python).
pip_sys "numpy==$ROBOT_NUMPY" "opencv-python==$ROBOT_OPENCV" \
    colcon-common-extensions "setuptools==$ROBOT_SETUPTOOLS" "ros-ament-index-python==1.8.1"
# The stand-in OpenCV must be one that numpy 2 breaks, or the cv2 assertion proves nothing.
"$SYS" -m venv --system-site-packages "$WORK/np2"
"$WORK/np2/bin/pip" install --disable-pip-version-check -q "numpy>=2" 2> /dev/null
if "$WORK/np2/bin/python" -c "import cv2" > /dev/null 2>&1; then
    fail "the stand-in OpenCV $ROBOT_OPENCV imports under numpy 2: it does not stand in for apt's"
fi
rm -rf "$WORK/np2"
# PEP 668, as on Ubuntu 24.04
printf '[externally-managed]\nError=This is the stand-in system Python of check_robot_install.sh: use a venv.\n' \
    > "$("$SYS" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED"
if "$SYS" -m pip install -q six > "$WORK/pep668.log" 2>&1 || ! grep -q externally-managed "$WORK/pep668.log"; then
    fail "the stand-in system Python accepts pip install (it should refuse, PEP 668)"
fi

# 2. the README's block
clone_this_checkout() {  # git clone <this repository> DEST, without the message package:
    # it needs ament_cmake and rosidl from apt's ROS 2, and colcon would wait for it
    mkdir -p "$1"
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | grep -zv '^emotion_perception_msgs/' \
        | xargs -0 tar -cf - 2> /dev/null) | tar -C "$1" -xf -
}
export -f clone_this_checkout
export ROOT
script=$WORK/readme_robot_install.sh
"$SYS" - "$ROOT/README.md" "$script" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
marker = "<!-- robot install: scripts/check_robot_install.sh runs this block (CI) -->"
block = re.search(re.escape(marker) + r"\n```bash\n(.*?)\n```", text, re.S)
if not block:
    sys.exit("README: no bash block after the robot install marker")
out = ["set -exo pipefail"]  # not -u: ROS and colcon setup scripts read unset variables
skipped = []
for line in block.group(1).splitlines():
    cmd = line.split("#")[0].strip()
    if re.match(r"(sudo apt|source /opt/ros/|rosdep |ros2 )", cmd):
        skipped.append(cmd)  # needs apt's ROS 2
        continue
    line = line.replace("git clone <this repository>", "clone_this_checkout")
    # the message package needs ament_cmake and rosidl (apt's ROS 2)
    line = line.replace("--packages-select emotion_perception_msgs emotion_perception",
                        "--packages-select emotion_perception")
    out.append(line)
for cmd in skipped:
    print(f"  not run here (needs apt's ROS 2): {cmd}")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
say "running the README's robot install (HOME=$WORK/home, python3 = the stand-in)"
(
    export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/pip}  # the user's, before HOME changes
    export HOME=$WORK/home PATH=$WORK/system/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1
    unset VIRTUAL_ENV PYTHONPATH AMENT_PREFIX_PATH
    bash "$script" > "$WORK/readme_robot_install.log" 2>&1
) || { tail -40 "$WORK/readme_robot_install.log"; fail "the README's robot install failed (log: $WORK/readme_robot_install.log)"; }
WS=$WORK/home/ros2_ws
VPY=$WS/venv/bin/python

# 3. assertions
check_numpy() {  # the system's numpy and cv2 untouched; the venv uses the system's numpy
    PATH=$WORK/system/bin:$PATH python3 -c "import numpy, cv2" || fail "python3 -c 'import numpy, cv2' fails on the system"
    "$SYS" - "$ROBOT_NUMPY" <<'PY' || fail "the system's numpy changed"
import sys, numpy, cv2
assert numpy.__version__ == sys.argv[1], numpy.__version__
print(f"  system: numpy {numpy.__version__}, cv2 {cv2.__version__} ({cv2.__file__})")
PY
    "$VPY" - "$WORK/system" "$ROBOT_VENV_NUMPY" <<'PY' || fail "the venv's numpy is not $ROBOT_VENV_NUMPY"
import sys, numpy, cv2
assert numpy.__version__ == sys.argv[2], f"the venv imports numpy {numpy.__version__} from {numpy.__file__}"
whose = "the system's" if numpy.__file__.startswith(sys.argv[1]) else "the venv's own"
print(f"  venv: numpy {numpy.__version__} ({whose}), cv2 {cv2.__version__} ({cv2.__file__})")
PY
}
say "numpy and cv2 after the install"
check_numpy
exe=$WS/install/emotion_perception/lib/emotion_perception
for node in landmark_node emotion_fusion_node emotion-perception; do
    [ "$(head -1 "$exe/$node")" = "#!$VPY" ] || fail "$exe/$node starts with $(head -1 "$exe/$node"), not #!$VPY"
done
say "  the nodes' executables start with #!$VPY"

# The installed package, as `source install/setup.bash` gives it (no /opt/ros here).
run_ws() { (set +u; export HOME=$WORK/home; source "$WS/install/setup.bash"; cd "$WORK"; "$@"); }
say "every model loads from the installed package; predict on the 42 photos, robot venv against the main venv"
models=$(run_ws "$VPY" -c "
from emotion_perception import assets, classifiers
assert '/share/emotion_perception/' in str(assets.models_dir()), assets.models_dir()
for name in classifiers.MODELS:
    classifiers.load(name)
    print(name)
") || fail "a model does not load in the robot venv"
[ -x "$MAIN_VENV/bin/python" ] || fail "no main venv at $MAIN_VENV (make setup)"
for m in $models; do
    run_ws "$exe/emotion-perception" predict --model "$m" --input "$PHOTOS" --output "$WORK/robot-$m.csv" > /dev/null \
        || fail "predict --model $m fails in the robot venv"
    "$MAIN_VENV/bin/python" -m emotion_perception.cli predict --model "$m" --input "$PHOTOS" \
        --output "$WORK/main-$m.csv" > /dev/null || fail "predict --model $m fails in the main venv"
done
"$SYS" - "$WORK" $models <<'PY' || fail "the robot venv's labels differ from the main venv's"
import csv, sys
work, models = sys.argv[1], sys.argv[2:]
bad = 0
for m in models:
    rows = {k: list(csv.DictReader(open(f"{work}/{k}-{m}.csv"))) for k in ("robot", "main")}
    assert len(rows["robot"]) == len(rows["main"]) == 42, {k: len(v) for k, v in rows.items()}
    diff = [i for i, (a, b) in enumerate(zip(rows["robot"], rows["main"])) if a["label"] != b["label"]]
    dp = max(abs(float(a[c]) - float(b[c])) for a, b in zip(rows["robot"], rows["main"])
             for c in a if c not in ("index", "label") and a[c] and b[c])
    print(f"  {m:16s} 42 photos: {42 - len(diff)} same labels; largest probability difference {dp:.4f}")
    bad += len(diff)
sys.exit(1 if bad else 0)
PY

say "core tests on Python $ROBOT_PY"
# Test tools (requirements.txt's), resolved together with the robot's requirements so that
# numpy stays the system's.
"$WS/venv/bin/pip" install -q pytest==9.2.0 pytest-timeout==2.4.0 scikit-image \
    -r "$WS/src/emotion_perception/requirements-robot.txt" 2> >(grep -v "is ignored: it is neither" >&2)
check_numpy
# Run from the source checkout, as `make test` does. A test that needs ROS 2 (rclpy, the
# messages, launch: apt's, absent here) or the training stack (keras, tensorflow:
# requirements.txt, not a robot's) is reported as skipped, naming the module it needs;
# any other failure fails the check.
cat > "$WORK/ros_absent.py" <<'PY'
"""pytest plugin of check_robot_install.sh: a failure whose cause is a missing ROS 2 or
training module becomes a skip that names the module; everything else is untouched."""
import collections
import re

import pytest

NOT_HERE = {"rclpy", "launch", "launch_ros", "emotion_perception_msgs", "sensor_msgs", "std_msgs",
            "geometry_msgs", "diagnostic_msgs", "builtin_interfaces", "rosidl_runtime_py",
            "rosbag2_py", "keras", "tensorflow", "rcl_interfaces", "hri_msgs", "tf2_msgs"}
MISSING = re.compile(r"No module named '([\w.]+)'")
needs = collections.Counter()


def _not_here(report):
    text = str(report.longrepr) + "".join(content for _, content in report.sections)
    for name in MISSING.findall(text):
        if name.split(".")[0] in NOT_HERE:
            return name.split(".")[0]
    return None


def _skip(report, where):
    name = _not_here(report) if report.failed else None
    if name:
        needs[name] += 1
        report.outcome = "skipped"
        report.longrepr = (str(where), 0, f"needs {name}, which the robot check does not have")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _skip(outcome.get_result(), item.path)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _skip(outcome.get_result(), collector.path)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line("not run here, needing: " + ", ".join(f"{k} ({v})" for k, v in sorted(needs.items())))
PY
src=$WS/src/emotion_perception
# As `make setup` leaves a checkout: the demo clips and the CLI on the venv's PATH.
[ -d "$ROOT/.cache/cremad" ] && mkdir -p "$src/.cache" && cp -r "$ROOT/.cache/cremad" "$src/.cache/"
ln -sf "$exe/emotion-perception" "$WS/venv/bin/emotion-perception"
# Tests left out, each with its reason (node ids relative to emotion_perception/, pytest's rootdir):
deselect=(
    # read the ROS 2 install's rmw_fastrtps_shared_cpp version / the PyPI wheel ros-rclpy's (absent here)
    --deselect test/test_foundation.py::test_transport_default_respects_user_choice
    --deselect test/test_foundation.py::test_profile_variable_is_the_one_this_distributions_fast_dds_reads
    # OpenCV 4.11 (the last for numpy 1.x) rounds warpAffine differently from 5.0: a
    # mirrored matrix is not an exact mirror (training augmentation only), and the FER+
    # sample's 48x48 crops differ by up to 4 grey levels, so 3 of its 120 recorded
    # image-cnn predictions change (same accuracy, 86/120; README). Covered instead by
    # predict above: the same labels on the 42 photos with every model.
    --deselect test/test_face_crop.py::test_flip_mirrors_the_crop
    --deselect test/test_image_model.py::test_shipped_model_gives_its_recorded_predictions_on_the_fer_plus_sample
)
# The source first; the install's metadata behind it (the console scripts look it up).
(cd "$src" && ROS_DISTRO=$ROBOT_ROS_DISTRO PYTHONPATH=$src/emotion_perception:$WORK:$WS/install/emotion_perception/lib/python$ROBOT_PY/site-packages \
    "$VPY" -m pytest -p no:cacheprovider \
    -p ros_absent --timeout=600 -q "${deselect[@]}" emotion_perception/test) || fail "core tests fail on Python $ROBOT_PY"

# 4. aarch64 wheels
say "every robot requirement as a wheel for linux aarch64, CPython $ROBOT_PY"
# pip evaluates environment markers on the machine it runs on: evaluate them for the
# robot (aarch64, Python 3.12) here, then resolve those lines for that platform.
"$SYS" - "$ROOT/requirements-robot.txt" "$WORK/aarch64-requirements.txt" "$ROBOT_PY" <<'PY'
import sys
from pip._vendor.packaging.requirements import Requirement
env = {"platform_machine": "aarch64", "python_version": sys.argv[3], "python_full_version": sys.argv[3] + ".0",
       "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}
lines = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        r = Requirement(line)
        if r.marker is None or r.marker.evaluate(env):
            r.marker = None
            lines.append(str(r))
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("  " + ", ".join(lines))
PY
plat=()
for p in $AARCH64_PLATFORMS; do plat+=(--platform "$p"); done
echo "numpy==$ROBOT_VENV_NUMPY" > "$WORK/aarch64-system.txt"  # the numpy the venv uses
"$SYS" -m pip download --disable-pip-version-check -q --only-binary :all: "${plat[@]}" \
    --python-version "$ROBOT_PY" --implementation cp --abi "$CP" --abi abi3 --abi none \
    -r "$WORK/aarch64-requirements.txt" -c "$WORK/aarch64-system.txt" -d "$WORK/aarch64-wheels" \
    2> >(grep -v "is ignored: it is neither" >&2) || fail "a robot requirement has no linux aarch64 $CP wheel"
n=$(ls "$WORK/aarch64-wheels" | wc -l)
x86=$(ls "$WORK/aarch64-wheels" | grep -c x86_64 || true)
[ "$x86" = 0 ] || fail "an x86_64 wheel among the aarch64 downloads"
say "  $n wheels, none x86_64: $(ls "$WORK/aarch64-wheels" | grep -E '^(mediapipe|ai_edge_litert|opencv|numpy|scikit_learn)' | tr '\n' ' ')"
say "OK"
# 1.5 GB; kept where asked (ROBOT_CHECK_KEEP=1) and after a failure, to look into
[ -n "${ROBOT_CHECK_KEEP:-}" ] || rm -rf "$WORK"
