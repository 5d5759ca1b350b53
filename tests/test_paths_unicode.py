"""Paths that are not UTF-8 and tokens that are not valid Unicode (issue 13, items 6 and 8).

A file name with bytes that are not UTF-8 (``s\\xff.pkl`` on Linux) reaches Python as a str with
surrogates (surrogateescape). Every command handles it: error lines and human output print the
name with those bytes as ``\\xNN``, ``--json`` output and the manifests written into the outputs
hold that escaped form (valid UTF-8 text). A token that is a lone surrogate (an old pickle's) is
printed escaped and written to --json output as its ``\\udXXX`` escape, which JSON readers give back.

The commands run in-process under pytest's capture, whose streams are strict UTF-8, as stdout is in
most UTF-8 locales (a C.UTF-8 locale's surrogateescape would hide the crash)."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import sys
from pathlib import Path

import pytest

import converter
from converter.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
V2_COLLAB = FIXTURES / "fastai2" / "collab_dot_export.pkl"
V07_COLLAB = FIXTURES / "fastai07" / "collab.h5"
V07_LM = FIXTURES / "fastai07" / "lm.h5"
V07_ITOS = FIXTURES / "fastai07" / "itos.pkl"
RATINGS = FIXTURES / "fastai07" / "ratings.csv"
REBUILD = FIXTURES / "rebuild" / "fastai1" / "collab_insteval_seed42.pth"
INSTEVAL = FIXTURES / "rebuild" / "data" / "insteval.csv"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="names that are not UTF-8 are a POSIX matter")


def _name(raw: bytes, tmp_path: Path) -> Path:
    """A path in tmp_path whose name is ``raw`` (bytes, not UTF-8) as Python holds it."""
    return tmp_path / os.fsdecode(raw)


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("embconv: error: "), err
    assert "internal error" not in err, err
    return err


def test_printable_escapes_undecodable_bytes_as_fsencode_would():
    from converter.cli import printable

    p = os.fsdecode(b"dir/s\xff\xfe.pkl")
    assert printable(p) == os.fsencode(p).decode("utf-8", "backslashreplace") == "dir/s\\xff\\xfe.pkl"
    assert printable("caf\u00e9 \u6771\u4eac") == "caf\u00e9 \u6771\u4eac"  # valid Unicode unchanged
    assert printable("\ud800lone") == "\\ud800lone"


def test_error_lines_name_the_path_escaped(tmp_path, capsys):
    missing = _name(b"n\xff.pkl", tmp_path)
    for argv in (["inspect", missing], ["scan", missing], ["convert", missing, tmp_path / "o.safetensors"],
                 ["verify", _name(b"o\xfe.vec", tmp_path), "--against", missing],
                 ["similar", missing, "x"], ["inspect", V07_COLLAB, "--vocab", f"u.weight={missing}"],
                 ["inspect", REBUILD, "--data", missing]):
        code, out, err = _run(capsys, *argv)
        assert code in (2, 3), (argv, err)
        line = _one_error_line(err)
        assert "\\xff" in line or "\\xfe" in line, line


def test_inspect_and_scan_a_source_whose_name_is_not_utf8(tmp_path, capsys):
    src = _name(b"s\xff.pkl", tmp_path)
    shutil.copy(V2_COLLAB, src)
    code, out, _ = _run(capsys, "inspect", src)
    assert code == 0 and out.startswith(f"file:       {tmp_path}/s\\xff.pkl (")
    code, out, _ = _run(capsys, "inspect", src, "--json")
    assert code == 0 and json.loads(out)["source"]["path"] == f"{tmp_path}/s\\xff.pkl"
    code, out, _ = _run(capsys, "inspect", src, "--tensors", "--json")
    assert code == 0 and json.loads(out)["path"].endswith("s\\xff.pkl")
    code, out, _ = _run(capsys, "scan", src)
    assert code == 0 and "s\\xff.pkl" in out
    code, out, _ = _run(capsys, "scan", src, "--json")
    assert code == 0 and json.loads(out)["path"].endswith("s\\xff.pkl")


@pytest.mark.parametrize("ext", [".safetensors", ".onnx", ".vec", ".bin", ".parquet"])
def test_convert_and_verify_with_names_that_are_not_utf8(tmp_path, capsys, ext):
    src = _name(b"s\xff.pkl", tmp_path)
    shutil.copy(V2_COLLAB, src)
    dst = _name(b"o\xfe" + ext.encode(), tmp_path)
    code, out, err = _run(capsys, "convert", src, dst, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["source"] == f"{tmp_path}/s\\xff.pkl" and all("\\xfe" in f["path"] for f in doc["files"])
    code, out, err = _run(capsys, "verify", dst, "--against", src)
    assert code == 0, err
    assert "o\\xfe" in out and "s\\xff.pkl" in out
    written = [tmp_path / n for n in os.listdir(tmp_path) if n.startswith(os.fsdecode(b"o\xfe"))]
    assert len(written) == len(doc["files"])
    for path in written:  # the manifest in every file (or sidecar) names the source with its bytes escaped
        data = path.read_bytes()
        if converter.is_output(path) and not path.suffix == ".vec" and not path.suffix == ".bin":
            assert re.search(rb"s(\\\\)+xff\.pkl", data), path
            assert b"s\xff.pkl" not in data
        if path.name.endswith(".manifest.json"):
            assert json.loads(data)["embconv.manifest"]["source"]["path"] == f"{tmp_path}/s\\xff.pkl"


def test_onnx_external_data_with_a_name_that_is_not_utf8_is_refused(tmp_path, capsys):
    code, _, err = _run(capsys, "convert", V2_COLLAB, _name(b"x\xfe.onnx", tmp_path), "--external-data")
    assert code == 5 and "UTF-8" in _one_error_line(err)
    assert os.listdir(tmp_path) == []


def test_vocab_and_data_files_whose_names_are_not_utf8(tmp_path, capsys):
    ratings = _name(b"r\xff.csv", tmp_path)
    shutil.copy(RATINGS, ratings)
    dst = tmp_path / "v07.safetensors"
    code, _, err = _run(capsys, "convert", V07_COLLAB, dst, "--vocab", f"u.weight={ratings}:userId",
                        "--vocab", f"i.weight={ratings}:title", "--y-range", "1,5", "-q")
    assert code == 0, err
    sources = [t["vocab"]["source"] for t in converter.load(dst).manifest(include_tokens=False)["tables"]]
    assert all("r\\xff.csv" in s for s in sources), sources
    data = _name(b"d\xff.csv", tmp_path)
    shutil.copy(INSTEVAL, data)
    code, out, err = _run(capsys, "inspect", REBUILD, "--data", data, "--split", "seed=42", "--json")
    assert code == 0, err
    assert all("d\\xff.csv" in t["vocab"]["source"] for t in json.loads(out)["tables"])
    code, _, err = _run(capsys, "convert", REBUILD, tmp_path / "i.parquet", "--data", data, "--split", "seed=42", "-q")
    assert code == 0, err


@pytest.fixture
def lone_surrogate_vocab(tmp_path) -> tuple[Path, list[str]]:
    """fastai 0.7's itos.pkl with tokens that are not valid Unicode (pickles hold them)."""
    with open(V07_ITOS, "rb") as f:
        itos = pickle.load(f)  # noqa: S301 - the fixture's own list of strings
    itos[5], itos[6], itos[7] = "\ud800lone", "bad\udcffbyte", "new york"
    path = tmp_path / "itos_lone.pkl"
    path.write_bytes(pickle.dumps(itos))
    return path, itos


def test_inspect_json_with_lone_surrogate_tokens_is_valid_json(lone_surrogate_vocab, capsys):
    vocab, itos = lone_surrogate_vocab
    code, out, err = _run(capsys, "inspect", V07_LM, "--vocab", f"token={vocab}", "--json")
    assert code == 0, err
    out.encode("utf-8")  # valid UTF-8 text (strict)
    assert "\\ud800lone" in out and "bad\\udcffbyte" in out  # the JSON escapes of the lone surrogates
    assert json.loads(out)["tables"][0]["vocab"]["tokens"] == itos  # given back exactly


def test_human_output_with_lone_surrogate_tokens(lone_surrogate_vocab, capsys):
    vocab, _ = lone_surrogate_vocab
    code, out, err = _run(capsys, "inspect", V07_LM, "--vocab", f"token={vocab}", "--rows", "8")
    assert code == 0, err
    assert "5: '\\ud800lone'" in out and "6: 'bad\\udcffbyte'" in out
    code, out, err = _run(capsys, "similar", V07_LM, "\ud800lone", "--vocab", f"token={vocab}", "-k", "40", "--json")
    assert code == 0, err
    assert {r["token"] for r in json.loads(out)["similar"]} >= {"bad\udcffbyte", "new york"}
    code, out, err = _run(capsys, "similar", V07_LM, "\ud800lone", "--vocab", f"token={vocab}", "-k", "40")
    assert code == 0 and "'bad\\udcffbyte'" in out
