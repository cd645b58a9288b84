"""The example behaviour tree (examples/greet_tree.py) against the real pipeline on
real clips: nobody in no_face.mp4, someone (never "idle") in single_face.mp4."""

import importlib.util
import pathlib

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "greet_tree.py"


@pytest.fixture(scope="module")
def greet_tree():
    spec = importlib.util.spec_from_file_location("greet_tree", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_nobody_there_idles(greet_tree, video, capsys):
    ticks = greet_tree.run(video("no_face.mp4"), max_frames=12)
    assert len(ticks) == 12
    assert {t["branch"] for t in ticks} == {"idle"} and all(t["faces"] == [] for t in ticks)
    assert "branch=idle" in capsys.readouterr().out  # the branch is printed every tick


def test_someone_there_is_never_idle(greet_tree, video):
    ticks = greet_tree.run(video("single_face.mp4"), max_frames=30, verbose=False)
    assert len(ticks) == 30
    assert all(t["branch"] in ("observe", "greet", "back off") for t in ticks)
    assert {tuple(t["faces"]) for t in ticks} == {("face_1",)}
