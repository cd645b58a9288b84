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
- **speech** (optional, ``speech_motion``): people talk while they show an emotion,
  and talking opens and closes the jaw several times a second (on the labelled MEAD
  and CREMA-D clips MediaPipe's ``jawOpen`` averages 0.10-0.39 against 0.02 on
  RAF-DB's neutral photos). A syllable-rate jaw movement can be added on top of a
  clip's expression. Measured for the LSTM and not adopted (``lstm.P_TALK`` is 0;
  ``models/lstm.md``, "Talking clips: tried").
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


#: Syllable rate of the simulated speech, Hz (conversational speech: about 3-6 syllables/s).
SYLLABLE_HZ = (3.0, 6.0)
#: Peak jaw opening of a syllable (MediaPipe ``jawOpen`` score units).
SPEECH_JAW = (0.05, 0.45)
#: Frame rates the clips are simulated at, frames per second.
SPEECH_FPS = (24.0, 30.0)


def speech_motion(n: int, length: int, names, rng: np.random.Generator) -> np.ndarray:
    """(n, length, len(names)) blendshape offsets of talking: a jaw that opens and
    closes at a random syllable rate, each syllable with its own peak height, the
    lower lip following it (``mouthLowerDown*``, a random fraction per clip) and some
    lip rounding (``mouthFunnel``, ``mouthPucker``). Only those blendshapes move; the
    expression's own blendshapes are left as they are.

    ``names`` are the blendshape names of the feature columns; columns it does not
    hold are skipped.
    """
    names = list(names)
    out = np.zeros((n, length, len(names)), np.float32)
    fps = rng.uniform(*SPEECH_FPS, size=(n, 1))
    rate = rng.uniform(*SYLLABLE_HZ, size=(n, 1))
    phase = rng.uniform(0.0, 1.0, size=(n, 1))
    t = np.arange(length)[None, :]
    cycles = t * rate / fps + phase                       # syllables since the clip's origin
    syllable = np.floor(cycles).astype(np.int64)
    within = cycles - syllable
    n_syll = int(syllable.max()) + 1
    peak = rng.uniform(*SPEECH_JAW, size=(n, 1)) * rng.uniform(0.3, 1.0, size=(n, n_syll))
    jaw = np.take_along_axis(peak, syllable, axis=1) * np.sin(np.pi * within) ** 2
    couple = {"jawOpen": np.ones((n, 1)),
              "mouthLowerDownLeft": (lip := rng.uniform(0.0, 0.5, size=(n, 1))),
              "mouthLowerDownRight": lip,
              "mouthFunnel": rng.uniform(0.0, 0.3, size=(n, 1)),
              "mouthPucker": rng.uniform(0.0, 0.2, size=(n, 1))}
    for name, k in couple.items():
        if name in names:
            out[:, :, names.index(name)] = jaw * k
    return out


def measure_jitter(features: np.ndarray) -> np.ndarray:
    """Per-feature tracker jitter of a (T, F) video feature track with NaN gaps:
    a robust std of frame-to-frame differences (1.4826 MAD) divided by sqrt(2)."""
    d = np.diff(features, axis=0)
    d = d[np.all(np.isfinite(d), axis=1)]
    mad = np.median(np.abs(d - np.median(d, axis=0)), axis=0)
    return (1.4826 * mad / np.sqrt(2)).astype(np.float32)
