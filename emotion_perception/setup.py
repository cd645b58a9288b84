"""ament_python package of emotion_perception (colcon in a ROS 2 workspace, or pip)."""

import glob
import os
import re

from setuptools import find_packages, setup

PACKAGE = "emotion_perception"
HERE = os.path.dirname(os.path.abspath(__file__))


def version():
    # One version source: emotion_perception/__init__.py (package.xml is checked
    # against it by a test).
    with open(os.path.join(HERE, PACKAGE, "__init__.py")) as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


def files(pattern):
    return [f for f in glob.glob(os.path.join(HERE, pattern)) if os.path.isfile(f)]


def rel(paths):
    return [os.path.relpath(p, HERE) for p in paths]


NODES = [
    "landmark_node",
    "transformer_node",
    "lstm_node",
    "frame_node",
    "image_emotion_node",
    "emotion_fusion_node",
    "attention_node",
    "hri_node",
]

setup(
    name=PACKAGE,
    version=version(),
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", rel(files("launch/*.py"))),
        ("share/" + PACKAGE + "/config", rel(files("config/*"))),
        ("share/" + PACKAGE + "/models", rel(files("models/*"))),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="emotion_perception maintainers",
    maintainer_email="maintainers@emotion-perception.org",
    description="Facial emotion and attention perception for robots (ROS 2).",
    license="Apache-2.0",
    # pytest as an extra, not tests_require (deprecated: setuptools warned on every install)
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            f"{n} = {PACKAGE}.nodes.{n}:main" for n in NODES
        ] + [f"emotion-perception = {PACKAGE}.cli:main"],
    },
)
