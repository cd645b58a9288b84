"""Synthetic training sequences built from labelled still images.

No labelled emotion video exists in the shared data, so the sequence models learn
from clips synthesised from single labelled faces (one feature vector each):

- **onset-apex-offset**: a clip starts at a *neutral* face and moves to the labelled
  expression (the apex) along a smooth ramp of random length (``ONSET_FRAMES``),
  holds it, and sometimes relaxes part of the way back (offset) before the clip ends.
  The neutral face is a random neutral-labelled face of the same data set (for the
  landmark transformer: the most similar neutral face among a random handful, as a
  stand-in for "the same subject").
- **steady**: with probability ``p_steady`` the whole clip is the apex (a person
  holding the expression), so a model fed a constant clip — what the LiteRT wrappers
  do with the first frames of a face, padding the buffer by repetition — is in
  distribution.
- **tracker jitter**: every frame gets independent Gaussian noise with a per-feature
  standard deviation measured on the shared videos (frame-to-frame differences of
  MediaPipe's output in VIDEO mode on a still-ish face, divided by sqrt(2)); the
  model cards give the numbers.

Every clip carries the label of its apex. numpy only.
"""

from __future__ import annotations

import numpy as np

#: Range of onset (neutral -> apex) durations, frames.
ONSET_FRAMES = (4, 15)
#: Fraction of the apex an offset may relax to, at least.
OFFSET_FLOOR = 0.6


def intensity_profiles(n: int, length: int, rng: np.random.Generator, p_steady: float = 0.3) -> np.ndarray:
    """(n, length) expression intensity in [0, 1] per frame, ending at the apex or
    a partial offset (>= OFFSET_FLOOR) so the clip's label is still visible."""
    t = np.arange(length, dtype=np.float32)[None, :]
    onset = rng.integers(ONSET_FRAMES[0], ONSET_FRAMES[1] + 1, size=(n, 1)).astype(np.float32)
    # onset start anywhere from "long before the clip" to "so the apex is reached 2 frames before the end"
    latest = np.maximum(length - onset - 2, 0)
    start = rng.uniform(-length, 1.0, size=(n, 1)).astype(np.float32) * latest
    start = np.where(rng.random((n, 1)) < 0.5, start, latest * rng.random((n, 1)))
    u = np.clip((t - start) / onset, 0.0, 1.0)
    a = u * u * (3 - 2 * u)  # smoothstep
    # partial offset in the last frames of some clips
    off = rng.random(n) < 0.2
    if off.any():
        off_len = rng.integers(3, max(4, length // 3), size=n)
        floor = rng.uniform(OFFSET_FLOOR, 1.0, size=n)
        for i in np.flatnonzero(off):
            k = min(int(off_len[i]), length)
            a[i, length - k:] *= np.linspace(1.0, floor[i], k)
    steady = rng.random(n) < p_steady
    a[steady] = 1.0
    return a.astype(np.float32)


def synthesize(apex: np.ndarray, neutral: np.ndarray, length: int, jitter_std, rng: np.random.Generator,
               p_steady: float = 0.3, clip_range: tuple[float, float] | None = None) -> np.ndarray:
    """Clips from apex and neutral feature vectors.

    Args:
        apex: (N, F) labelled expression features.
        neutral: (N, F) the neutral face each clip starts from.
        length: frames per clip.
        jitter_std: scalar or (F,) per-frame noise standard deviation.
        rng: random generator.
        p_steady: fraction of clips that hold the apex throughout.
        clip_range: clip the result to this range (blendshape scores: (0, 1)).

    Returns:
        (N, length, F) float32.
    """
    a = intensity_profiles(len(apex), length, rng, p_steady)[:, :, None]
    x = neutral[:, None, :] + a * (apex - neutral)[:, None, :]
    x = x + rng.standard_normal(x.shape).astype(np.float32) * np.asarray(jitter_std, np.float32)
    if clip_range is not None:
        x = np.clip(x, *clip_range)
    return x.astype(np.float32)


def measure_jitter(features: np.ndarray) -> np.ndarray:
    """Per-feature tracker jitter of a (T, F) video feature track with NaN gaps:
    a robust std of frame-to-frame differences (1.4826 MAD) divided by sqrt(2)."""
    d = np.diff(features, axis=0)
    d = d[np.all(np.isfinite(d), axis=1)]
    mad = np.median(np.abs(d - np.median(d, axis=0)), axis=0)
    return (1.4826 * mad / np.sqrt(2)).astype(np.float32)
