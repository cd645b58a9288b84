"""Safety of shipped artefacts: nothing in the package can unpickle, every model file
is recorded in ``models/SHA256SUMS`` and matches it, and nothing is fetched from the
network at run time.

The source checks parse the code (AST) rather than grep text, so a docstring saying
"never pickle" does not count and an ``import pickle`` hidden in a function does.
"""

from __future__ import annotations

import ast
import hashlib
import pathlib

import pytest

PKG_ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = PKG_ROOT / "emotion_perception"
MODELS = PKG_ROOT / "models"
#: Modules that deserialise arbitrary Python objects.
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "joblib", "cloudpickle", "dill", "shelve", "marshal"}
#: Keyword arguments that switch a safe loader into an unsafe one.
UNSAFE_KEYWORDS = {"allow_pickle", "trust", "trusted"}
#: Modules that fetch from the network.
NETWORK_MODULES = {"urllib.request", "requests", "httpx", "http.client", "urllib3", "aiohttp", "wget"}
#: Files in models/ that are documentation or licences, not loaded by code.
DOC_SUFFIXES = {".md", ".txt", ".LICENSE", ".NOTICE", ".license", ".notice"}
DOC_NAMES = {"SHA256SUMS", "LICENSE", "NOTICE", "README", "README.md"}


def _sources():
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 10, f"package source not found under {SOURCE}"
    return files


def _violations(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(PKG_ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    out.append(f"{where}: import {alias.name}")
                if alias.name in NETWORK_MODULES or alias.name.split(".")[0] in NETWORK_MODULES:
                    out.append(f"{where}: network import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNSAFE_MODULES:
                out.append(f"{where}: from {node.module} import ...")
            if node.module in NETWORK_MODULES or node.module.split(".")[0] in NETWORK_MODULES:
                out.append(f"{where}: network import from {node.module}")
        elif isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg in UNSAFE_KEYWORDS and isinstance(kw.value, ast.Constant) and kw.value.value is True:
                    out.append(f"{where}: {kw.arg}=True")
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"urlopen", "urlretrieve"}:
                out.append(f"{where}: {name}()")
    return out


def test_checker_catches_what_it_looks_for(tmp_path):
    """The AST check itself flags each unsafe pattern (so the real check can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nfrom joblib import load\nimport numpy as np\n"
                   "def f(p):\n    import cloudpickle\n    np.load(p, allow_pickle=True)\n"
                   "    sio.load(p, trusted=True)\n    urlopen('http://x')\n\"\"\"never pickle\"\"\"\n")
    found = _violations_at(bad)
    assert len(found) == 6, found


def _violations_at(path):
    global PKG_ROOT
    saved = PKG_ROOT
    PKG_ROOT = path.parent
    try:
        return _violations(path)
    finally:
        PKG_ROOT = saved


def test_no_unpickling_or_network_in_package_source():
    found = [v for f in _sources() for v in _violations(f)]
    assert not found, "unsafe loading or network access in the package:\n" + "\n".join(found)


def _model_files():
    files = [p for p in sorted(MODELS.iterdir()) if p.is_file()
             and p.name not in DOC_NAMES and p.suffix not in DOC_SUFFIXES]
    assert any(p.name == "face_landmarker.task" for p in files), "models/ holds no face_landmarker.task"
    return files


def _recorded() -> dict[str, str]:
    sums = {}
    for line in (MODELS / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    return sums


def test_every_model_file_is_recorded():
    recorded = _recorded()
    missing = [p.name for p in _model_files() if p.name not in recorded]
    assert not missing, f"model files not listed in models/SHA256SUMS: {missing}"


@pytest.mark.parametrize("name", sorted(_recorded()))
def test_recorded_file_exists_and_matches(name):
    p = MODELS / name
    assert p.is_file(), f"SHA256SUMS lists {name}, which is not in models/"
    got = hashlib.sha256(p.read_bytes()).hexdigest()
    assert got == _recorded()[name], f"{name}: sha256 {got} differs from SHA256SUMS"


def test_no_pickle_files_shipped():
    bad = [p.name for p in MODELS.iterdir() if p.suffix in {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".h5",
                                                              ".keras", ".sav"}]
    assert not bad, f"pickle-based or TensorFlow training artefacts in models/: {bad}"
