"""Keras plumbing shared by the sequence models: TF set-up, on-the-fly clip batches,
class weights, progress, and export of a fixed-batch-1 ``.tflite``.

Imports TensorFlow; only the ``train`` command imports this module.
"""

from __future__ import annotations

import hashlib
import math
import pathlib
from typing import Callable

import numpy as np

#: TF threads: the machine is shared, two cores at most.
TF_THREADS = 2


def setup_tf(seed: int):
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(TF_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised by an earlier call in this process
        pass
    keras.utils.set_random_seed(seed)
    return tf, keras


def class_weights(y: np.ndarray, n_classes: int, power: float = 0.5) -> np.ndarray:
    """Per-class weights (count ** -power), mean 1 over samples: power 0.5 balances
    accuracy against macro-F1 (1.0 would fully balance)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, np.maximum(counts, 1) ** -power, 0.0)
    w /= (w[y]).mean()
    return w.astype(np.float32)


def make_dataset(keras, make_batch: Callable[[np.ndarray, np.random.Generator], tuple], n: int,
                 batch_size: int, seed: int, shuffle: bool = True):
    """A PyDataset that synthesises each batch of clips when asked (fresh every epoch)."""

    class ClipBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0
            self.order = np.arange(n)
            self.on_epoch_end()

        def __len__(self):
            return math.ceil(n / batch_size)

        def __getitem__(self, i):
            idx = self.order[i * batch_size:(i + 1) * batch_size]
            rng = np.random.default_rng([seed, self.epoch, i])
            return make_batch(idx, rng)

        def on_epoch_end(self):
            self.epoch += 1
            if shuffle:
                np.random.default_rng([seed, self.epoch]).shuffle(self.order)

    return ClipBatches()


def time_limit(keras, seconds: float):
    """A callback that stops training after ``seconds`` of wall time."""
    import time

    class TimeLimit(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t0 = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            if time.monotonic() - self.t0 > seconds:
                print(f"time limit of {seconds:.0f} s reached after epoch {epoch + 1}")
                self.model.stop_training = True

    return TimeLimit()


def fit_best(keras, model, optimizer, dataset, validation_data: tuple, epochs: int, patience: int,
             max_train_s: float):
    """Compile with categorical cross-entropy, fit with a best-val-loss checkpoint,
    early stopping, learning rate halved on a 2-epoch plateau and a wall-time limit,
    then restore the best weights. Returns the Keras history."""
    import tempfile

    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = pathlib.Path(tmp) / "best.weights.h5"
        callbacks = [keras.callbacks.ModelCheckpoint(str(ckpt), monitor="val_loss", save_best_only=True,
                                                     save_weights_only=True),
                     keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience),
                     keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2),
                     time_limit(keras, max_train_s)]
        hist = model.fit(dataset, validation_data=validation_data, epochs=epochs, callbacks=callbacks,
                         verbose=verbose())
        model.load_weights(str(ckpt))
    return hist


def verbose() -> int:
    """Keras progress bar on a terminal, one line per epoch otherwise."""
    import sys

    return 1 if sys.stdout.isatty() else 2


def export_tflite(tf, model, input_shape: tuple[int, ...], path: pathlib.Path) -> str:
    """Write ``model`` (built with batch 1) as ``.tflite``; returns its sha256.

    The concrete function fixes the batch to 1 (LSTMs convert only that way)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        # a SavedModel with a batch-1 signature converts with its variables frozen
        model.export(tmp, format="tf_saved_model", verbose=False,
                     input_signature=[tf.TensorSpec((1, *input_shape), tf.float32, name="clip")])
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        data = conv.convert()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def one_frame_metrics(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray,
                      class_names) -> dict:
    """Accuracy and macro-F1 of ``predict`` (clips -> probabilities) on rows fed as
    constant one-frame clips."""
    from sklearn.metrics import accuracy_score, f1_score

    p = predict(x).argmax(1)
    present = sorted(set(y.tolist()))
    return {"accuracy": round(float(accuracy_score(y, p)), 4),
            "macro_f1": round(float(f1_score(y, p, labels=present, average="macro")), 4)}
