"""A small wrapper around LiteRT's interpreter for the package's ``.tflite`` models.

Every ``.tflite`` file is opened through :func:`assets.verified_path` (sha256
checked), runs with a fixed batch of 1 (the models are exported that way; LSTMs
convert to TFLite only with a fixed batch) and on a fixed number of CPU threads.
Inference code imports this module, never TensorFlow.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ..assets import verified_path
from ..os_threads import threads_named

#: CPU threads of one interpreter; the sequence and frame models are small and one thread is
#: fastest for them (image-cnn, the largest, loads with two: classifiers/image_cnn.THREADS).
DEFAULT_THREADS = 1
#: Operating-system name of LiteRT's pool threads (``top -H``; the benchmarks count them
#: apart from MediaPipe's threads).
THREAD_NAME = "litert"


class LiteRTModel:
    """One ``.tflite`` model, ready to run.

    Args:
        name_or_path: model file name in the models directory, or a path.
        num_threads: CPU threads LiteRT may use.
        expected_sha256: digest to require instead of the recorded one.

    Attributes:
        path: the verified file.
        input_shapes: shape of each input tensor (batch dimension 1).
        output_shapes: shape of each output tensor.

    Raises:
        emotion_perception.assets.ModelFileError: missing, unlisted or tampered file.
        ValueError: the file is not a model LiteRT can run, or an input's batch
            dimension is not 1.
    """

    def __init__(self, name_or_path: str | os.PathLike, num_threads: int = DEFAULT_THREADS,
                 expected_sha256: str | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = verified_path(name_or_path, expected_sha256)
        try:
            with threads_named(THREAD_NAME):  # its thread pool starts here: name it
                self._interp = Interpreter(model_path=str(self.path), num_threads=num_threads)
                self._interp.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"{self.path.name} is not a model LiteRT can run: {e}") from None
        self._inputs = self._interp.get_input_details()
        self._outputs = self._interp.get_output_details()
        for d in self._inputs:
            if len(d["shape"]) == 0 or d["shape"][0] != 1:
                raise ValueError(f"{self.path.name}: input {d['name']} has shape {d['shape'].tolist()}, "
                                 "expected a fixed batch of 1")
        self.input_shapes = [tuple(int(v) for v in d["shape"]) for d in self._inputs]
        self.output_shapes = [tuple(int(v) for v in d["shape"]) for d in self._outputs]
        self._lock = threading.Lock()

    def run(self, *inputs: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """Run the model once.

        Args:
            inputs: one array per input tensor, with or without the batch axis of 1.

        Returns:
            The output tensor with its batch axis removed (a list when the model has
            several outputs).

        Raises:
            ValueError: wrong number of inputs or wrong shape.
        """
        if len(inputs) != len(self._inputs):
            raise ValueError(f"{self.path.name} takes {len(self._inputs)} inputs, got {len(inputs)}")
        with self._lock:
            for d, shape, x in zip(self._inputs, self.input_shapes, inputs):
                a = np.asarray(x, dtype=d["dtype"])
                if a.shape == shape[1:]:
                    a = a[None]
                if a.shape != shape:
                    raise ValueError(f"{self.path.name}: input {d['name']} must have shape {shape[1:]}, "
                                     f"got {np.shape(x)}")
                self._interp.set_tensor(d["index"], a)
            self._interp.invoke()
            outs = [self._interp.get_tensor(d["index"])[0].copy() for d in self._outputs]
        return outs[0] if len(outs) == 1 else outs
