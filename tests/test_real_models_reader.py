"""Every real fastai file in ../shared/real-models opens, scans clean, and its tensors hash to
the truth computed by torch/fastai (tests skip cleanly when the folder is absent)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from converter.pickle import iter_tensors, open_model_file, scan_file

from .conftest import real_model_files, real_model_truths, run_cli

TRUTHS = real_model_truths()
FILES = real_model_files()


def _sha256_f32(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def _find(tensors: dict, key: str) -> str:
    """A truth key is a state-dict key; in exports the model sits under `model.`."""
    hits = [p for p in tensors if p == key or p == f"model.{key}"]
    assert hits, f"{key} not found among {list(tensors)[:10]}"
    return hits[0]


@pytest.mark.skipif(not TRUTHS, reason="../shared/real-models is absent")
@pytest.mark.parametrize("path,truth", TRUTHS, ids=[f"{p.parent.name}/{p.name}" for p, _ in TRUTHS])
def test_truth_tensors_hash_exactly(path, truth):
    with open_model_file(path) as mf:
        tensors = dict(iter_tensors(mf.root))
        for table in truth["tables"]:
            t = tensors[_find(tensors, table["source_key"])]
            assert list(t.shape) == table["shape"]
            assert _sha256_f32(t.to_numpy()) == table["sha256_f32"], table["source_key"]


@pytest.mark.skipif(not FILES, reason="../shared/real-models is absent")
@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_scan_finds_nothing_unsafe(path):
    report = scan_file(path)
    assert report.verdict == "clean", report.error
    assert report.globals, "a real model names at least its rebuild functions"
    assert all(u.verdict in ("reconstructed", "stubbed") for u in report.globals)
    proc = run_cli("scan", path, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "clean"


@pytest.mark.skipif(not FILES, reason="../shared/real-models is absent")
def test_real_files_open_without_torch_or_fastai():
    import subprocess
    import sys

    code = (
        "import sys, converter\n"
        "from converter.pickle import open_model_file, iter_tensors\n"
        f"for p in {[str(f) for f in FILES]!r}:\n"
        "    with open_model_file(p) as mf:\n"
        "        for _, t in iter_tensors(mf.root): t.to_numpy()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'fastai', 'fastcore', 'pandas')]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.skipif(not FILES, reason="../shared/real-models is absent")
def test_inspect_cli_lists_tensors():
    path = max(FILES, key=lambda p: p.stat().st_size)
    proc = run_cli("inspect", path, "--tensors", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["container"] in ("torch-zip", "torch-legacy", "pickle")
    with open_model_file(path) as mf:
        expected = [{"path": p, "shape": list(t.shape), "dtype": t.dtype.name} for p, t in mf.tensors()]
    assert expected and out["tensors"] == expected
