"""A source that changes while it is converted — truncated (``truncate``) or overwritten in place —
is exit 3 "the source changed while being read", one line naming it, nothing at the destination:
never a SIGBUS (a memory map read past the file's new end), never "cannot write: Bad address",
and never a manifest naming the hash of another version of the file than the one written.
And ``verify`` refuses an output whose manifest names another file's sha256 (exit 4)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from converter import api
from converter.errors import UnreadableInputError, VerificationError
from converter.verify import verify_output

from .hostile.builders import TensorSpec
from .test_atomic_kill import _write_legacy_sparse

ROWS, DIM = 1024 * 1024, 128  # two 512 MiB tables (+ biases), as a sparse file: nothing on disk to read
ROOT = Path(__file__).resolve().parents[1]


def _big_source(path: Path) -> None:
    n = ROWS * DIM
    _write_legacy_sparse(path, [
        TensorSpec("u_weight.weight", "0", "FloatStorage", n, 0, (ROWS, DIM), (DIM, 1)),
        TensorSpec("i_weight.weight", "1", "FloatStorage", n, 0, (ROWS, DIM), (DIM, 1)),
        TensorSpec("u_bias.weight", "2", "FloatStorage", ROWS, 0, (ROWS, 1), (1, 1)),  # after the weights
        TensorSpec("i_bias.weight", "3", "FloatStorage", ROWS, 0, (ROWS, 1), (1, 1)),
    ])


def _truncate(src: Path) -> None:
    os.truncate(src, src.stat().st_size // 3)  # inside the first table: everything after it is gone


def _overwrite(src: Path) -> None:
    with open(src, "r+b") as f:  # four bytes of the second table, in place (size unchanged)
        f.seek(src.stat().st_size * 3 // 4)
        f.write(b"\x01\x02\x03\x04")


def _convert_and_change(tmp_path: Path, suffix: str, change, *extra: str) -> tuple[int, str, Path]:
    """Start ``embconv convert`` on a 1 GiB source; ``change`` the source once the first staged
    file has 8 MiB in it (mid-write); return (exit code, stderr, destination folder)."""
    src = tmp_path / "big.pth"
    _big_source(src)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "converter", "convert", "-q", "--allow-unlabelled",
                             str(src), str(out / f"emb{suffix}"), *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.is_file() and p.stat().st_size > (8 << 20) for p in out.rglob("*")):
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"the conversion ended before the source changed: {proc.returncode}"
        change(src)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err.decode("utf-8", "replace"), out


def _assert_refused(code: int, err: str, out: Path, src: Path) -> None:
    assert code >= 0, f"killed by {signal.Signals(-code).name}: {err}"
    errors = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert code == 3, err
    assert len(errors) == 1 and str(src) in errors[0] and "changed while being read" in errors[0], err
    assert "Traceback" not in err and "Bad address" not in err
    assert sorted(p.name for p in out.iterdir()) == [], "the staging folder or an output was left"


@pytest.mark.parametrize("suffix, extra", [(".bin", ()), (".vec", ()), (".safetensors", ()),
                                           (".safetensors", ("--dtype", "float16")), (".onnx", ()),
                                           (".parquet", ())],
                         ids=["bin", "vec", "safetensors", "float16", "onnx", "parquet"])
def test_a_source_truncated_mid_conversion_is_exit_3(tmp_path, suffix, extra):
    code, err, out = _convert_and_change(tmp_path, suffix, _truncate, *extra)
    _assert_refused(code, err, out, tmp_path / "big.pth")


@pytest.mark.parametrize("suffix, extra", [(".safetensors", ()), (".safetensors", ("--no-verify",)),
                                           (".bin", ("--no-verify",)), (".onnx", ("--external-data", "--no-verify"))],
                         ids=["safetensors", "safetensors-no-verify", "bin-no-verify", "onnx-external-no-verify"])
def test_a_source_overwritten_mid_conversion_is_exit_3(tmp_path, suffix, extra):
    code, err, out = _convert_and_change(tmp_path, suffix, _overwrite, *extra)
    _assert_refused(code, err, out, tmp_path / "big.pth")


def test_the_background_hash_of_a_file_changed_while_hashed_fails(tmp_path):
    from converter.hashing import hash_in_background

    src = tmp_path / "s.bin"
    src.write_bytes(b"x" * 4096)
    pending = hash_in_background(src)
    assert pending is not None
    assert pending.result() == hashlib.sha256(b"x" * 4096).hexdigest()
    pending = hash_in_background(src)
    assert pending is not None
    pending.result()
    with open(src, "r+b") as f:  # changed after the hash was taken: the SourceInfo says so
        f.write(b"y")
    from converter.ir import SourceInfo

    info = SourceInfo(path=str(src), size=4096)
    info.expect_sha256(pending)
    with pytest.raises(UnreadableInputError, match="changed while being read") as e:
        _ = info.sha256
    assert e.value.exit_code == 3 and str(src) in str(e.value)


def _small_source(tmp_path: Path, name: str, seed: int) -> Path:
    from .hostile.builders import LEGACY_MAGIC, LEGACY_PROTOCOL, pickle_of, state_dict_pickle, sys_info_pickle

    rows, dim = 50, 8
    specs = [TensorSpec("u_weight.weight", "0", "FloatStorage", rows * dim, 0, (rows, dim), (dim, 1)),
             TensorSpec("i_weight.weight", "1", "FloatStorage", rows * dim, 0, (rows, dim), (dim, 1))]
    rng = np.random.default_rng(seed)
    path = tmp_path / name
    with open(path, "wb") as f:
        f.write(LEGACY_MAGIC + LEGACY_PROTOCOL + sys_info_pickle() + state_dict_pickle(specs, legacy=True))
        f.write(pickle_of(sorted(s.key for s in specs)))
        for s in sorted(specs, key=lambda s: s.key):
            f.write(s.numel.to_bytes(8, "little", signed=True))
            f.write(rng.standard_normal(s.numel).astype("<f4").tobytes())
    return path


def test_a_truncated_source_is_an_error_from_the_library_too(tmp_path):
    src = _small_source(tmp_path, "s.pth", 0)
    model = api.load(src)
    table = next(iter(model.tables.values()))
    assert table.weight_rows(0, 5).shape == (5, 8)
    os.truncate(src, src.stat().st_size - 1000)
    with pytest.raises(UnreadableInputError, match="changed while being read") as e:
        table.weight_rows(40, 50)
    assert str(src) in str(e.value)
    with pytest.raises(UnreadableInputError, match="changed while being read"):
        _ = table.weight  # a view of the map is never handed out past the file's end


def test_verify_refuses_an_output_of_another_source(tmp_path):
    """``verify DST --against SRC``: the manifest's source sha256 must be SRC's; a file with the
    same tables but other bytes (here: one more trailing byte, ignored by the reader) is not it."""
    src = _small_source(tmp_path, "s.pth", 0)
    out = tmp_path / "o.safetensors"
    api.convert(src, out, allow_unlabelled=True)
    assert api.verify(out, src).tables == 2
    twin = tmp_path / "twin.pth"
    twin.write_bytes(src.read_bytes() + b"\0")  # same tables, another file
    with pytest.raises(VerificationError, match="converted from another file") as e:
        api.verify(out, twin)
    assert e.value.exit_code == 4
    message = str(e.value)
    assert hashlib.sha256(src.read_bytes()).hexdigest()[:12] in message
    assert hashlib.sha256(twin.read_bytes()).hexdigest()[:12] in message and str(twin) in message
    r = subprocess.run([sys.executable, "-m", "converter", "verify", str(out), "--against", str(twin)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 4 and r.stderr.count("\n") == 1 and "another file" in r.stderr, r.stderr
    # A sibling (converted from the same source) verifies against the other sibling, not against
    # the twin; an output converted on from an output names no model file's hash, so it verifies
    # by its tables against the output and the original alike.
    sibling = tmp_path / "sibling.onnx"
    api.convert(src, sibling, allow_unlabelled=True)
    assert api.verify(sibling, out).tables == 2
    with pytest.raises(VerificationError, match="another file"):
        api.verify(sibling, twin)
    files = api.convert(out, tmp_path / "again.parquet", allow_unlabelled=True)
    for f in files:
        verify_output(f, api.load(out))
        verify_output(f, api.load(src))
