"""Sniffing by content, plain pickles of every protocol, the byteorder record, plain-pickle
exports whose storages are nested legacy containers, and real fastai exports opened in a
process that never imports torch or fastai."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import tarfile
from collections import OrderedDict

import numpy as np
import pytest

from converter.errors import UnreadableInputError
from converter.pickle import iter_tensors, open_model_file, sniff

from .conftest import FIXTURES, run_cli
from .hostile.builders import TensorSpec, make_zip_file, state_dict_pickle


@pytest.mark.parametrize("protocol", range(6))
def test_plain_pickles_of_every_protocol(tmp_path, protocol):
    value = {"a": [1, 2.5, "x", None, True], "b": (b"bytes", {"nested": OrderedDict(k=-7)}),
             "c": {3, 4}, "d": frozenset({"f"}), "e": 10**30, "f": "ünïcode"}
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    with open_model_file(path) as mf:
        assert mf.container == "pickle"
        assert mf.root == value


def test_sniff_by_content_not_extension(tmp_path):
    assert sniff(b"PK\x03\x04" + b"\0" * 40, 44) == "torch-zip"
    assert sniff(bytes.fromhex("80028a0a6cfc9c46f9206aa850192e"), 15) == "torch-legacy"
    assert sniff(b"\x80\x04\x95", 3) == "pickle"
    for junk in (b"\x89HDF\r\n\x1a\n", b"GIF89a", b"\x00\x01\x02", b"hello world", b"{\"json\": 1}"):
        with pytest.raises(UnreadableInputError, match="not a model file"):
            sniff(junk, len(junk))
    # A real HDF5 signature in a .h5 file is not mistaken for fastai 0.7's torch ".h5".
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    proc = run_cli("inspect", h5)
    assert proc.returncode == 3 and "not a model file" in proc.stderr and str(h5) in proc.stderr


def test_empty_file_and_tar_container_are_refused(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    proc = run_cli("scan", empty)
    assert proc.returncode == 3 and "empty" in proc.stderr
    tar_path = tmp_path / "old.pth"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("sys_info", "pickle", "tensors", "storages"):
            data = pickle.dumps({"protocol_version": 1000}, protocol=2)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    proc = run_cli("inspect", tar_path)
    assert proc.returncode == 3
    assert "tar container" in proc.stderr and "not supported" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_big_endian_byteorder_record(tmp_path):
    values = (np.arange(6) * 1.5).astype(">f4")
    spec = TensorSpec("w", "0", "FloatStorage", 6, 0, (2, 3), (3, 1))
    path = tmp_path / "be.pth"
    path.write_bytes(make_zip_file(state_dict_pickle([spec], legacy=False), {"0": values.tobytes()},
                                   byteorder=b"big"))
    with open_model_file(path) as mf:
        ((_, t),) = list(iter_tensors(mf.root))
        assert np.array_equal(t.to_numpy(), values.astype("<f4").reshape(2, 3))


def test_plain_pickle_export_with_nested_storages(tmp_path):
    """fastai 1.0.40–41 exported with pickle.dump: each storage is torch.storage._load_from_bytes
    of a nested legacy torch file, read with the same restricted reader."""
    torch = pytest.importorskip("torch")
    sd = OrderedDict(u=torch.randn(5, 3), b=torch.arange(4, dtype=torch.int64), h=torch.randn(2, 2).half())
    path = tmp_path / "export.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": sd, "cls": "x"}, f, protocol=2)
    assert b"_load_from_bytes" in path.read_bytes()
    with open_model_file(path) as mf:
        assert mf.container == "pickle"
        got = dict(iter_tensors(mf.root))
        for k, v in sd.items():
            assert np.array_equal(got[f"model.{k}"].to_numpy(), v.numpy())


EXPORTS = sorted(FIXTURES.glob("fastai*/*export.pkl"))


def test_real_fastai_exports_open_without_torch_or_fastai():
    """Exports written by fastai 1.0.61, 2.7.19 and 2.8.12 open, and afterwards neither torch,
    fastai nor pandas has been imported."""
    assert any("fastai1" in str(p) for p in EXPORTS) and any("fastai2" in str(p) for p in EXPORTS)
    code = (
        "import sys, converter\n"
        f"paths = {[str(p) for p in EXPORTS]!r}\n"
        "for p in paths:\n"
        "    m = converter.load(p)\n"
        "    for t in m.tables.values(): t.weight\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch','fastai','fastcore','pandas','cloudpickle'))\n"
        "print('ok' if not bad else bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_text_that_starts_like_a_protocol0_pickle_is_not_a_model(tmp_path):
    csv = tmp_path / "ratings.pth"
    csv.write_text("Name,rating\nx,1\n")
    proc = run_cli("inspect", csv)
    assert proc.returncode == 3 and "not a model file" in proc.stderr
