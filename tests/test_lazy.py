"""Opening a file reads its pickle, not its tensor bytes: storages are memory-mapped and only
touched when a tensor is materialised. Shown on sparse multi-GiB files (the bytes are not even
on disk) (4 GiB legacy, 1 GiB zip), measuring peak RSS and time in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .hostile.builders import TensorSpec, make_legacy_file, state_dict_pickle

ROWS, DIM = 8 * 1024 * 1024, 128  # 8 Mi rows × 128 float32 = 4 GiB
NUMEL = ROWS * DIM


def _legacy_sparse(path: Path) -> None:
    spec = TensorSpec("u_weight.weight", "0", "FloatStorage", NUMEL, 0, (ROWS, DIM), (DIM, 1))
    head = make_legacy_file(state_dict_pickle([spec], legacy=True), {"0": (NUMEL, b"")})
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + NUMEL * 4)  # a hole: the 4 GiB of weights occupy no disk


ZIP_ROWS = ROWS // 4  # 1 GiB: zipfile writes the zeros for real


def _zip_big(path: Path) -> None:
    """A STORED ZIP64 torch zip with a 1 GiB data/0 entry."""
    numel = ZIP_ROWS * DIM
    spec = TensorSpec("u_weight.weight", "0", "FloatStorage", numel, 0, (ZIP_ROWS, DIM), (DIM, 1))
    pkl = state_dict_pickle([spec], legacy=False)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", b"3\n")
        with z.open("archive/data/0", "w", force_zip64=True) as w:
            chunk = b"\0" * (1 << 24)
            for _ in range(numel * 4 // len(chunk)):
                w.write(chunk)


_PROBE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from converter.pickle import open_model_file
from converter import load
mf = open_model_file(sys.argv[1])
shapes = [list(t.shape) for _, t in mf.tensors()]
model = load(sys.argv[1])
rows = next(iter(model.tables.values())).rows
elapsed = time.perf_counter() - t0
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"shapes": shapes, "rows": rows, "seconds": elapsed, "rss_growth_kib": rss1 - rss0}))
"""


def _probe(path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("container", ["legacy", "zip"])
def test_open_is_lazy_on_a_huge_table(tmp_path, container):
    path = tmp_path / f"big_{container}.pth"
    if container == "legacy":
        _legacy_sparse(path)
    else:
        if os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize < 3 << 30:
            pytest.skip("needs 3 GiB of free disk for the zip case")
        _zip_big(path)
    rows = ROWS if container == "legacy" else ZIP_ROWS
    assert path.stat().st_size > rows * DIM * 4
    out = _probe(path)
    assert out["shapes"] == [[rows, DIM]] and out["rows"] == rows
    # Reading 1–4 GiB of weights would grow RSS by GiBs; the pickle is a few hundred bytes.
    # (Timings belong to bench/, not to tests.)
    assert out["rss_growth_kib"] < 64 * 1024, out
