"""The CLI for programs (issue 13, items 12b and 15): `convert --json` and `verify --json` print one
JSON document that follows schemas/convert-result.schema.json / verify-result.schema.json, also on
error; `--debug` is accepted before or after the command; bare `embconv` prints its usage; and
`verify` names a missing output once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import converter
from converter.cli import main

ROOT = Path(__file__).parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
V2_COLLAB = FIXTURES / "fastai2" / "collab_dot_export.pkl"
V07_COLLAB = FIXTURES / "fastai07" / "collab.h5"
RATINGS = FIXTURES / "fastai07" / "ratings.csv"
V07_VOCAB = ["--vocab", f"u.weight={RATINGS}:userId", "--vocab", f"i.weight={RATINGS}:title"]


def _schema(name: str) -> dict:
    return json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8"))


def _validate(doc: dict, name: str) -> None:
    """Against the JSON schema (jsonschema, a test dependency), and the essentials by hand."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - the test extra installs it
        jsonschema = None
    if jsonschema is not None:
        jsonschema.Draft202012Validator(_schema(name)).validate(doc)
    assert doc["schema"] == f"embconv.{name}" and doc["version"] == 1 and isinstance(doc["ok"], bool)
    if not doc["ok"]:
        assert set(doc["error"]) == {"exit_code", "type", "message"}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_json_lists_files_tables_and_warnings(tmp_path, capsys):
    dst = tmp_path / "v07.vec"
    code, out, err = _run(capsys, "convert", V07_COLLAB, dst, *V07_VOCAB, "--json")
    assert code == 0, err
    doc = json.loads(out)
    _validate(doc, "convert-result")
    assert doc["ok"] and doc["verified"] and doc["format"] == "word2vec-text"
    written = [Path(f["path"]) for f in doc["files"]]
    assert written == [tmp_path / "v07.userId.vec", tmp_path / "v07.userId.vec.manifest.json",
                       tmp_path / "v07.title.vec", tmp_path / "v07.title.vec.manifest.json"] or \
        sorted(written) == sorted(tmp_path.iterdir())
    for f in doc["files"]:
        assert f["bytes"] == Path(f["path"]).stat().st_size
        assert f["kind"] == ("sidecar" if f["path"].endswith(".manifest.json") else "output")
    source = converter.load(V07_COLLAB, vocab={"u.weight": f"{RATINGS}:userId", "i.weight": f"{RATINGS}:title"})
    assert [(t["name"], t["rows"], t["dim"]) for t in doc["tables"]] == \
        [(t.name, t.rows, t.dim) for t in source.tables.values()]
    assert all(not t["bias"] and t["labelled"] for t in doc["tables"])  # word2vec has no place for biases
    codes = [w["code"] for w in doc["warnings"]]
    assert "no-y-range" in codes and codes == [w.code for w in source.warnings]
    assert "warning: " in err  # the warnings still go to stderr for the person watching


def test_convert_json_one_file_with_bias(tmp_path, capsys):
    code, out, _ = _run(capsys, "convert", V2_COLLAB, tmp_path / "o.safetensors", "--json", "-q")
    assert code == 0
    doc = json.loads(out)
    _validate(doc, "convert-result")
    (f,) = doc["files"]
    assert f["kind"] == "output" and f["format"] == "safetensors" and f["tables"] == ["userId", "title"]
    assert all(t["bias"] for t in doc["tables"]) and doc["warnings"] == []


def test_convert_json_error_is_a_json_document_and_one_stderr_line(tmp_path, capsys):
    dst = tmp_path / "o.safetensors"
    dst.write_bytes(b"old")
    code, out, err = _run(capsys, "convert", V2_COLLAB, dst, "--json")
    assert code == 5  # exists without --force
    doc = json.loads(out)
    _validate(doc, "convert-result")
    assert doc["ok"] is False and doc["error"]["exit_code"] == 5 and doc["error"]["type"] == "OutputError"
    assert err.count("\n") == 1 and err.startswith("embconv: error: ")
    assert doc["error"]["message"] == err[len("embconv: error: "):].rstrip("\n")
    code, out, err = _run(capsys, "convert", tmp_path / "missing.pkl", tmp_path / "x.onnx", "--json")
    assert code == 3 and json.loads(out)["error"]["exit_code"] == 3 and err.count("\n") == 1


def test_verify_json_says_what_was_proved(tmp_path, capsys):
    dst = tmp_path / "o.parquet"
    assert _run(capsys, "convert", V2_COLLAB, dst, "-q")[0] == 0
    code, out, err = _run(capsys, "verify", dst, "--against", V2_COLLAB, "--json")
    assert code == 0, err
    doc = json.loads(out)
    _validate(doc, "verify-result")
    assert doc["ok"] and doc["table_count"] == 2 and doc["format"] == "parquet"
    assert [Path(f["path"]).name for f in doc["files"]] == ["o.userId.parquet", "o.title.parquet"]
    assert doc["rows"] == sum(t["rows"] for t in doc["tables"])
    assert {"weights", "tokens", "biases"} <= set(doc["proved"])
    # a mismatch: exit 4, still one JSON document
    other = tmp_path / "other.vec"
    assert _run(capsys, "convert", V07_COLLAB, other, *V07_VOCAB, "-q")[0] == 0
    code, out, err = _run(capsys, "verify", tmp_path / "other.userId.vec", "--against", V2_COLLAB, "--json")
    assert code == 4, err
    doc = json.loads(out)
    _validate(doc, "verify-result")
    assert doc["error"]["exit_code"] == 4 and doc["error"]["type"] == "VerificationError"


def test_verify_names_a_missing_output_once(tmp_path, capsys):
    code, _, err = _run(capsys, "verify", tmp_path / "o.vec", "--against", V2_COLLAB)
    assert code == 2 and err.count("\n") == 1
    assert err.count("o.vec") == 1 and "o.userId.vec" in err and "o.title.vec" in err  # DST once, then what was looked for


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_anywhere_on_the_line(tmp_path, capsys, where):
    args = ["convert", str(V2_COLLAB), str(tmp_path / "o.safetensors"), "-q"]
    argv = ["--debug", *args] if where == "before" else [*args, "--debug"]
    assert _run(capsys, *argv)[0] == 0
    bad = ["inspect", str(tmp_path / "nope.pkl")]
    code, _, err = _run(capsys, *(["--debug", *bad] if where == "before" else [*bad, "--debug"]))
    assert code == 3 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("embconv: error: ")


def test_bare_embconv_prints_usage(capsys):
    code, out, err = _run(capsys)
    assert code == 2 and out == ""
    assert err.startswith("usage: embconv") and "convert" in err and "verify" in err and "inspect" in err


def test_bare_embconv_as_a_program():
    exe = shutil.which("embconv", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "converter"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith("usage: embconv")
