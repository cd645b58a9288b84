# emotion_perception: the two commands a new user runs are `make demo` and `make test`.
SHELL := /bin/bash
# ROS 2 distribution of the venv: kilted (default, .venv) or jazzy (.venv-jazzy).
ROS_DISTRO ?= kilted
VENV ?= $(if $(filter kilted,$(ROS_DISTRO)),.venv,.venv-$(ROS_DISTRO))
# launch, launch_ros and the ros2 command line (wheels); installed when present.
LAUNCH_KIT ?= ../shared/ros2-launch-kit
# hri_msgs and tf2_msgs sources (ROS4HRI, REP-155; no wheels); built when present.
HRI_KIT ?= ../shared/ros2-hri-kit
PY := $(VENV)/bin/python
export ROS_DISTRO VENV LAUNCH_KIT HRI_KIT

.PHONY: setup demo test test-fast bench clean check-robot

# Creates the venv with the ROS 2 wheels, builds the messages, installs the
# package (and ros2 launch where the kit is); a no-op (about a second) when nothing changed.
setup:
	@scripts/setup_env.sh

demo: setup
	$(PY) -m emotion_perception.cli demo

test: setup
	$(PY) -m pytest -p no:cacheprovider --timeout=600 -q emotion_perception/test

# The README's robot install ("Installing on a robot") on a stand-in for Ubuntu 24.04's
# apt ROS 2 (Python 3.12, numpy 1.26.4, PEP 668), compared with this venv; CI runs it.
check-robot: setup
	MAIN_VENV=$(abspath $(VENV)) scripts/check_robot_install.sh

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf build $(VENV) .cache
