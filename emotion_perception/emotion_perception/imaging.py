"""Raw and compressed camera images -> RGB arrays, validated (no rclpy here).

A camera driver, a bag or a test can hand the landmark node anything: an encoding we
do not read, a ``step`` that disagrees with the width, an empty or truncated buffer,
a JPEG cut in half. Everything that turns bytes into pixels lives here, so the node's
callback stays "convert, call the core, convert, publish" and every bad input is
refused with an :class:`ImageError` whose message says what to fix. ``conversions.py``
wraps these functions for ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage``.
"""

from __future__ import annotations

import os
import re
import struct
import threading
from typing import Callable

import cv2
import numpy as np

#: Encodings :func:`raw_to_rgb` reads, and their channel counts (8 bits per channel).
CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
SUPPORTED_ENCODINGS = tuple(CHANNELS)

#: Largest image accepted, pixels (width * height): 8K UHD is 33 Mpx. Larger frames are
#: refused before any allocation (a corrupt header must not exhaust memory).
MAX_IMAGE_PIXELS = 40_000_000

#: Compressed formats :func:`decode_compressed` reads, by their magic bytes.
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: libjpeg's warnings that mean pixels are missing (filled with grey): such an image
#: is refused. Other warnings (e.g. "N extraneous bytes before marker", common with
#: USB webcams) leave a whole picture: it is decoded and the warning passed on.
_JPEG_DATA_MISSING = re.compile(r"premature end", re.I)


class ImageError(ValueError):
    """Image bytes cannot be turned into pixels.

    Attributes:
        reason: a short machine-readable kind, one of ``encoding``, ``empty``,
            ``size``, ``too_large``, ``decode``; nodes log each kind once.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _check_size(width: int, height: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{what} has zero size ({width}x{height})", "empty")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(f"{what} is {width}x{height} = {width * height} pixels, more than the "
                         f"{MAX_IMAGE_PIXELS} accepted (MAX_IMAGE_PIXELS)", "too_large")


def raw_to_rgb(encoding: str, width: int, height: int, step: int, data) -> np.ndarray:
    """Pixels of an uncompressed image (the fields of ``sensor_msgs/Image``) as RGB.

    Args:
        encoding: one of :data:`SUPPORTED_ENCODINGS` (case-insensitive).
        width, height: pixels.
        step: bytes per row, at least ``width * channels`` (longer rows are padding).
        data: ``step * height`` bytes (bytes, bytearray, array.array or a uint8 array).

    Returns:
        (height, width, 3) uint8 C-contiguous RGB array. It is a copy for every
        encoding but unpadded rgb8, where it may share memory with ``data``.

    Raises:
        ImageError: unsupported encoding (``encoding``), zero width or height or no
            data (``empty``), more than :data:`MAX_IMAGE_PIXELS` (``too_large``), a
            ``step`` shorter than a row or a data length other than
            ``step * height`` (``size``).
    """
    enc = (encoding or "").strip().lower()
    if enc not in CHANNELS:
        raise ImageError(f"unsupported image encoding {encoding!r}; use one of "
                         f"{', '.join(SUPPORTED_ENCODINGS)}", "encoding")
    width, height, step = int(width), int(height), int(step)
    _check_size(width, height, f"{enc} image")
    ch = CHANNELS[enc]
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    if buf.size == 0:
        raise ImageError(f"{enc} image of {width}x{height} has no data", "empty")
    if step < width * ch:
        raise ImageError(f"{enc} image step {step} is shorter than a row of {width} pixels "
                         f"({width * ch} bytes)", "size")
    if buf.size != step * height:
        raise ImageError(f"{enc} image of {width}x{height} with step {step} needs {step * height} "
                         f"bytes but has {buf.size}", "size")
    pixels = buf.reshape(height, step)[:, :width * ch].reshape(height, width, ch)
    if enc == "rgb8":
        return np.ascontiguousarray(pixels)
    if enc == "bgr8":
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if enc == "rgba8":
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)
    if enc == "bgra8":
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(pixels[:, :, 0], cv2.COLOR_GRAY2RGB)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF marker, None if none is found."""
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def compressed_size(data: bytes) -> tuple[str, int, int]:
    """Format and pixel size of JPEG or PNG bytes, read from the header only.

    Returns:
        (``"jpeg"`` or ``"png"``, width, height).

    Raises:
        ImageError: empty data (``empty``), neither JPEG nor PNG, or a header too short
            to hold the size (``decode``).
    """
    if len(data) == 0:
        raise ImageError("compressed image has no data", "empty")
    if data.startswith(_PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError(f"PNG data of {len(data)} bytes has no IHDR header (truncated?)", "decode")
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    if data.startswith(_JPEG_MAGIC):
        size = _jpeg_size(data)
        if size is None:
            raise ImageError(f"JPEG data of {len(data)} bytes has no frame header (truncated or corrupt)",
                             "decode")
        return "jpeg", size[0], size[1]
    raise ImageError(f"compressed image of {len(data)} bytes is neither JPEG nor PNG "
                     f"(starts with {bytes(data[:4]).hex()})", "decode")


def decode_compressed(data, fmt: str = "", on_warning: Callable[[str], None] | None = None) -> np.ndarray:
    """Decode JPEG or PNG bytes (``sensor_msgs/CompressedImage``) to RGB.

    The kind is read from the magic bytes; ``fmt`` (the message's ``format`` field,
    e.g. ``"jpeg"`` or ``"bgr8; jpeg compressed bgr8"``) is only used to refuse depth
    images (``compressedDepth``). Colour PNG/JPEG become RGB, grey ones are
    replicated to three channels, an alpha channel is dropped.

    A JPEG's end marker may be followed by padding. What the decoder would print
    (libjpeg's warnings) is captured (:func:`native_stderr`): a warning that pixels
    are missing refuses the image, any other is handed to ``on_warning`` and the
    image is decoded.

    Args:
        data: the compressed bytes.
        fmt: the message's format string.
        on_warning: called with the decoder's warning text, if any.

    Returns:
        (height, width, 3) uint8 C-contiguous RGB array.

    Raises:
        ImageError: empty data (``empty``); a depth format (``encoding``); more than
            :data:`MAX_IMAGE_PIXELS` by the header (``too_large``, checked before
            decoding); not JPEG/PNG, truncated or corrupt data, a JPEG with missing
            pixels (``decode``).
    """
    if "compresseddepth" in (fmt or "").replace(" ", "").lower():
        raise ImageError(f"compressed format {fmt!r} is a depth image; send colour JPEG or PNG",
                         "encoding")
    raw = bytes(data) if not isinstance(data, bytes) else data
    kind, w, h = compressed_size(raw)
    _check_size(w, h, f"{kind.upper()} image")
    if kind == "jpeg" and raw.rfind(b"\xff\xd9") < _jpeg_scan_start(raw):
        # libjpeg fills a truncated image with grey and only warns: refuse it here.
        # The end marker may be followed by padding (some cameras send fixed-size
        # buffers); byte stuffing keeps FF D9 out of the entropy-coded data after the
        # scan header, and a thumbnail's own end marker lies before it.
        raise ImageError(f"JPEG data of {len(raw)} bytes has no end marker after its scan (truncated)", "decode")
    if kind == "png" and b"IEND" not in raw[-16:]:
        raise ImageError(f"PNG data of {len(raw)} bytes has no IEND chunk (truncated)", "decode")
    bgr, said = native_stderr(cv2.imdecode, np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ImageError(f"{kind.upper()} data of {len(raw)} bytes ({w}x{h} by its header) could not be "
                         f"decoded (corrupt){': ' + said if said else ''}", "decode")
    if said and kind == "jpeg" and _JPEG_DATA_MISSING.search(said):
        raise ImageError(f"JPEG data of {len(raw)} bytes is corrupt, part of the picture is missing "
                         f"(libjpeg: {said})", "decode")
    if said and on_warning is not None:
        on_warning(f"{kind.upper()} decoder: {said}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _jpeg_scan_start(data: bytes) -> int:
    """Offset of the first start-of-scan (SOS) marker, walking the header segments; 2
    when none is found (then any end marker counts)."""
    i, n = 2, len(data)
    while i + 4 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0xDA:
            return i
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return 2


_STDERR_LOCK = threading.Lock()
_stderr_sink: int | None = None


def native_stderr(fn: Callable, *args):
    """``fn(*args)`` with what native code writes to stderr (fd 2) during the call
    captured instead of printed.

    libjpeg and libpng, inside OpenCV, print their warnings ("Corrupt JPEG data:
    premature end of data segment") straight to fd 2, once per image: a camera that
    sends such frames floods the node's log at its frame rate, and nothing tells the
    node which image it was. Calls are serialised (fd 2 belongs to the process); a
    line that another thread logged meanwhile (ROS log lines start with ``[``) is
    written back to stderr.

    Returns:
        (``fn``'s result, the captured text stripped, "" when none).
    """
    global _stderr_sink
    with _STDERR_LOCK:
        if _stderr_sink is None:
            _stderr_sink = (os.memfd_create("emotion_perception_stderr") if hasattr(os, "memfd_create")
                            else _temp_fd())
        saved = os.dup(2)
        os.dup2(_stderr_sink, 2)
        try:
            result = fn(*args)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        size = os.fstat(_stderr_sink).st_size
        if not size:
            return result, ""
        text = os.pread(_stderr_sink, size, 0).decode("utf-8", "replace")
        os.ftruncate(_stderr_sink, 0)
        os.lseek(_stderr_sink, 0, os.SEEK_SET)
    ours, theirs = [], []
    for line in text.splitlines():
        (theirs if line.startswith("[") else ours).append(line)
    if theirs:
        os.write(2, ("\n".join(theirs) + "\n").encode())
    return result, "; ".join(ln.strip() for ln in ours if ln.strip())


def _temp_fd() -> int:
    import tempfile

    fd, path = tempfile.mkstemp(prefix="emotion_perception_stderr")
    os.unlink(path)
    return fd


def rgb_to_raw(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[int, int, int, bytes]:
    """Encode an RGB array as the fields of ``sensor_msgs/Image``.

    Args:
        rgb: (height, width, 3) uint8 RGB.
        encoding: one of :data:`SUPPORTED_ENCODINGS`.

    Returns:
        (width, height, step, data bytes), rows unpadded.

    Raises:
        ValueError: ``rgb`` is not (h, w, 3) uint8 or the encoding is unsupported.
    """
    rgb = check_rgb(rgb)
    enc = encoding.lower()
    if enc == "rgb8":
        out = rgb
    elif enc == "bgr8":
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif enc == "rgba8":
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    elif enc == "bgra8":
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    elif enc == "mono8":
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    else:
        raise ImageError(f"unsupported image encoding {encoding!r}; use one of "
                         f"{', '.join(SUPPORTED_ENCODINGS)}", "encoding")
    h, w = rgb.shape[:2]
    return w, h, w * CHANNELS[enc], np.ascontiguousarray(out).tobytes()


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", jpeg_quality: int = 90) -> bytes:
    """JPEG or PNG bytes of an RGB array.

    Raises:
        ValueError: ``rgb`` is not (h, w, 3) uint8, or ``fmt`` is not jpeg/png.
    """
    rgb = check_rgb(rgb)
    fmt = fmt.lower()
    if fmt in ("jpeg", "jpg"):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    else:
        raise ValueError(f"compressed format {fmt!r} is not jpeg or png")
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    return buf.tobytes()


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as a C-contiguous (h, w, 3) uint8 array, or ValueError saying why not."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) uint8 RGB image, got {a.dtype} {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"RGB image has zero size {a.shape}", "empty")
    return np.ascontiguousarray(a)


def drawn_face(width: int = 640, height: int = 480) -> np.ndarray:
    """A cartoon face drawn with OpenCV (skin ellipse, hair, eyes, brows, nose, mouth)
    on grey, as (height, width, 3) uint8 RGB; MediaPipe's face detector finds it.

    For warming MediaPipe up without shipping a photo of a person
    (:meth:`emotion_perception.landmarks.FaceLandmarker.warm_up`).
    """
    _check_size(width, height, "drawn face")
    img = np.full((height, width, 3), 200, np.uint8)
    s = min(width / 640, height / 480)
    cx, cy = width // 2, height // 2

    def p(dx, dy):
        return cx + int(round(dx * s)), cy + int(round(dy * s))

    def r(a, b):
        return max(1, int(round(a * s))), max(1, int(round(b * s)))

    cv2.ellipse(img, p(0, 0), r(90, 120), 0, 0, 360, (224, 172, 140), -1)  # skin (RGB)
    cv2.ellipse(img, p(0, -125), r(95, 45), 0, 180, 360, (60, 40, 30), -1)  # hair
    for dx in (-38, 38):
        cv2.ellipse(img, p(dx, -25), r(18, 9), 0, 0, 360, (255, 255, 255), -1)  # eye white
        cv2.circle(img, p(dx, -25), r(7, 7)[0], (60, 40, 30), -1)  # iris
        cv2.line(img, p(dx - 20, -48), p(dx + 20, -50), (70, 50, 40), r(5, 5)[0])  # brow
    cv2.line(img, p(0, -15), p(-8, 25), (180, 120, 100), r(4, 4)[0])  # nose
    cv2.ellipse(img, p(0, 55), r(35, 12), 0, 0, 180, (150, 60, 60), -1)  # mouth
    return cv2.GaussianBlur(img, (5, 5), 0)
