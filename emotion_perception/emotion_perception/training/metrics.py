"""Classification metrics shared by the training modules: accuracy, macro-F1,
expected calibration error and negative log-likelihood."""

from __future__ import annotations

import numpy as np

from ..types import EMOTIONS_7

#: Confidence bins of the expected calibration error.
ECE_BINS = 15


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: mean |accuracy - confidence| over equal-width confidence bins,
    weighted by the bin's share of samples."""
    conf = proba.max(1)
    correct = proba.argmax(1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def report(proba: np.ndarray, labels, classes=EMOTIONS_7) -> dict:
    """Accuracy, macro-F1 (over the classes present in ``labels``), ECE, NLL, n."""
    from sklearn.metrics import f1_score

    y = np.array([classes.index(str(c)) for c in labels])
    pred = proba.argmax(1)
    present = np.unique(y)
    p = np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0)
    return {"n": int(len(y)), "accuracy": round(float((pred == y).mean()), 4),
            "macro_f1": round(float(f1_score(y, pred, labels=present, average="macro")), 4),
            "ece": round(expected_calibration_error(proba, y), 4),
            "nll": round(float(-np.log(p).mean()), 4)}
