# emotion_perception: the two commands a new user runs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.stamps/ready

.PHONY: setup demo test test-fast bench clean

# Creates .venv with the ROS 2 Kilted wheels, builds the messages, installs the
# package; a no-op (about a second) when nothing changed.
setup:
	@scripts/setup_env.sh

demo: setup
	$(PY) -m emotion_perception.cli demo

test: setup
	$(PY) -m pytest -p no:cacheprovider --timeout=600 -q emotion_perception/test

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf build $(VENV) .cache
