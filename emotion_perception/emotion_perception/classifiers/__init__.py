"""Emotion classifiers, all with the interface of :class:`base.EmotionModel`.

``MODELS`` maps the public model names (``--model NAME`` of the CLI, the ``model``
field of ``Emotion``) to ``module:factory``; ``load(name)`` returns a ready model.
Inference uses LiteRT, scikit-learn (skops) or numpy only: never TensorFlow.
"""

from __future__ import annotations

import importlib

MODELS = {
    "transformer": "emotion_perception.classifiers.transformer:load",
    "lstm": "emotion_perception.classifiers.lstm:load",
    "lstm-3class": "emotion_perception.classifiers.lstm:load_3class",
    "svm-landmarks": "emotion_perception.classifiers.frame:load_svm_landmarks",
    "gnn-landmarks": "emotion_perception.classifiers.gnn:load",
    "svm-blendshapes": "emotion_perception.classifiers.frame:load_svm_blendshapes",
    "image-cnn": "emotion_perception.classifiers.image_cnn:load",
    "fused": "emotion_perception.fusion:load",
}


def load(name: str, **kwargs):
    """Load the shipped model ``name`` (its files sha256-verified).

    Raises:
        ValueError: unknown name.
        emotion_perception.assets.ModelFileError: missing or tampered model files.
    """
    try:
        target = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None
    module, factory = target.split(":")
    return getattr(importlib.import_module(module), factory)(**kwargs)
