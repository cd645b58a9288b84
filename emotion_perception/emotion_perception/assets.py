"""Finding and verifying the package's model files.

Every shipped model file is listed with its sha256 in ``models/SHA256SUMS`` (the
``sha256sum`` format). :func:`verified_path` refuses a file that is missing, unlisted,
truncated or tampered with, naming the file and the expected digest, so a node fails
at start with a message a user can act on instead of producing garbage.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib

MODELS_ENV = "EMOTION_PERCEPTION_MODELS"
SUMS_NAME = "SHA256SUMS"


class ModelFileError(RuntimeError):
    """A model file is missing, unreadable or does not match its recorded sha256."""


#: The package's source tree (the directory holding the Python package, ``models/``
#: and ``config/``), used by editable installs and tests.
SOURCE_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _installed(sub: str) -> pathlib.Path | None:
    """``share/emotion_perception/<sub>`` of an installed package, None if not installed."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return pathlib.Path(get_package_share_directory("emotion_perception")) / sub
    except Exception:  # noqa: BLE001 - ament_index missing or package not installed
        return None


def models_dir() -> pathlib.Path:
    """The directory holding the shipped models.

    Order: ``$EMOTION_PERCEPTION_MODELS``; the source tree (``<pkg>/models`` next to
    the Python package, used by editable installs and tests); the ament share
    directory of an installed package (``share/emotion_perception/models``).
    """
    env = os.environ.get(MODELS_ENV)
    if env:
        return pathlib.Path(env)
    here = SOURCE_ROOT / "models"
    if (here / SUMS_NAME).is_file():
        return here
    return _installed("models") or here


def config_path(name: str) -> pathlib.Path:
    """A file of the package's ``config/``: the source tree's (editable installs,
    tests), else the installed share directory's."""
    here = SOURCE_ROOT / "config" / name
    if here.is_file():
        return here
    installed = _installed("config")
    return installed / name if installed else here


def sha256_of(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def recorded_sums(directory: pathlib.Path) -> dict[str, str]:
    """Map file name -> sha256 from ``directory/SHA256SUMS`` (empty if absent)."""
    sums: dict[str, str] = {}
    f = directory / SUMS_NAME
    if f.is_file():
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                sums[parts[1].lstrip("*")] = parts[0]
    return sums


def record_sums(paths: list[pathlib.Path]) -> None:
    """Record the sha256 of ``paths`` (files of one folder) in that folder's
    ``SHA256SUMS``, replacing their old lines and keeping the others; what training
    writes beside a model it exports."""
    paths = [pathlib.Path(p) for p in paths]
    folder = paths[0].parent
    if any(p.parent != folder for p in paths):
        raise ValueError(f"{[str(p) for p in paths]}: files of one folder only")
    sums = folder / SUMS_NAME
    lines = sums.read_text().splitlines() if sums.is_file() else []
    names = {p.name for p in paths}
    lines = [ln for ln in lines if len(ln.split()) != 2 or ln.split()[1].lstrip("*") not in names]
    lines += [f"{sha256_of(p)}  {p.name}" for p in paths]
    sums.write_text("\n".join(lines) + "\n")
    recorded_sums.cache_clear()


def verified_path(name_or_path: str | os.PathLike, expected_sha256: str | None = None) -> pathlib.Path:
    """Resolve a model file and check its sha256 before anyone loads it.

    Args:
        name_or_path: a file name in :func:`models_dir` or a path to a file.
        expected_sha256: the digest to require; by default the one recorded in the
            ``SHA256SUMS`` beside the file (or in :func:`models_dir`).

    Returns:
        The absolute path of the verified file.

    Raises:
        ModelFileError: the file is missing, has no recorded digest, or its digest
            differs (truncated, corrupt or a different model).
    """
    p = pathlib.Path(name_or_path)
    if not p.is_absolute() and not p.exists():
        p = models_dir() / p
    p = p.resolve()
    if expected_sha256 is None:
        expected_sha256 = recorded_sums(p.parent).get(p.name) or recorded_sums(models_dir()).get(p.name)
    if not p.is_file():
        raise ModelFileError(
            f"model file {p} is missing"
            + (f" (expected sha256 {expected_sha256})" if expected_sha256 else "")
            + "; check the path, reinstall the package or run `make setup`")
    if expected_sha256 is None:
        raise ModelFileError(
            f"model file {p} has no recorded sha256 in {p.parent / SUMS_NAME}; refusing to load "
            "an unverified model")
    got = sha256_of(p)
    if got != expected_sha256:
        raise ModelFileError(
            f"model file {p} has sha256 {got} but {expected_sha256} is expected "
            f"({p.stat().st_size} bytes): the file is truncated, corrupt or not the shipped model")
    return p
