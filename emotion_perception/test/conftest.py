"""Shared fixtures: where the shared data lives, real face photos and videos."""

from __future__ import annotations

import csv
import os
import pathlib
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

# Every test process talks on its own DDS domain, so two test runs on one machine (or
# a robot's nodes on the default domain 0) never feed each other's nodes. Modules
# that need a domain of their own still set one.
os.environ.setdefault("ROS_DOMAIN_ID", str(200 + os.getpid() % 30))
#: The data the tests read: samples of ../shared/data kept in the repository
#: (fixtures/README.md), so that a plain clone runs every test. Training and
#: evaluation commands keep reading ../shared/data or a path argument.
DATA = pathlib.Path(__file__).resolve().parent / "fixtures" / "data"


def wait_until(cond, timeout_s: float = 10.0, step_s: float = 0.01) -> bool:
    """Poll ``cond`` every ``step_s`` until it holds or ``timeout_s`` (seconds) passed;
    returns its last value. Tests wait on what the design guarantees, with timeouts
    generous enough for a busy machine."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step_s)
    return cond()


def own_ros_domain_fixture(base: int, span: int = 40):
    """An autouse, module-scoped fixture giving the module a DDS domain of its own
    (``base + pid % span``): other tests on the same host publish on the same topic
    names, and their stamps would mix into ours. Use: ``own_ros_domain =
    own_ros_domain_fixture(160)`` at module level, with a base no other module uses."""

    @pytest.fixture(autouse=True, scope="module")
    def own_ros_domain():
        mp = pytest.MonkeyPatch()
        mp.setenv("ROS_DOMAIN_ID", str(base + os.getpid() % span))
        yield
        mp.undo()

    return own_ros_domain


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The fixtures' data folder, laid out like ../shared/data."""
    assert DATA.is_dir(), f"test data not found at {DATA}"
    return DATA


@pytest.fixture(scope="session")
def muxspace_images(data_dir) -> list[tuple[pathlib.Path, str]]:
    """The 42 labelled face photos: (path, label)."""
    folder = data_dir / "muxspace" / "images"
    with open(folder / "labels.csv") as f:
        return [(folder / row["image"], row["label"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    """scikit-image's astronaut photo (Eileen Collins), RGB uint8 512x512."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def video(data_dir):
    """video('single_face.mp4') -> path of a clip of the fixtures (fixtures/data/video/README.md)."""

    def _path(name: str) -> pathlib.Path:
        p = data_dir / "video" / name
        assert p.is_file(), p
        return p

    return _path


def read_rgb(path) -> np.ndarray:
    """An image file as RGB uint8."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read {path}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def clip_frames(name: str, step: int = 1) -> tuple[float, list[tuple[int, np.ndarray]]]:
    """(fps, [(frame index, RGB uint8)]) of every ``step``-th frame of a fixture clip."""
    import cv2

    cap = cv2.VideoCapture(str(DATA / "video" / name))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out = []
    i = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            out.append((i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        i += 1
    cap.release()
    assert out, name
    return fps, out
