"""Outputs that would destroy an input, names that do not fit, and errors that name what the
user knows (issue 13, items 1, 7 and 12a)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import converter
from converter import atomic
from converter.errors import OutputError, VerificationError

from ._writer_models import collab_model
from .conftest import FIXTURES, run_cli

SRC = FIXTURES / "fastai2" / "collab_dot_export.pkl"


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("how", ["hard-link", "symlink", "same-path-other-spelling"])
def test_output_that_is_the_source_is_refused_exit_5(tmp_path, how):
    src = tmp_path / "s.pkl"
    shutil.copy(SRC, src)
    before = src.read_bytes()
    if how == "hard-link":
        dst = tmp_path / "s.safetensors"
        os.link(src, dst)
    elif how == "symlink":
        dst = tmp_path / "s.safetensors"
        dst.symlink_to(src.name)
    else:  # the source itself, named with the output's suffix, reached through another path
        src = src.rename(tmp_path / "s.safetensors")
        (tmp_path / "sub").mkdir()
        dst = tmp_path / "sub" / ".." / "s.safetensors"
    listing = _entries(tmp_path)
    r = run_cli("convert", src, dst, "--force", "--allow-unlabelled")
    assert r.returncode == 5, r.stderr
    line = _one_line(r.stderr)
    assert "the same file" in line and "s.safetensors" in line
    assert src.read_bytes() == before
    assert _entries(tmp_path) == listing  # nothing written, not even a staging folder


def test_one_file_of_a_multi_file_output_being_the_source_is_refused(tmp_path):
    src = tmp_path / "s.pkl"
    shutil.copy(SRC, src)
    os.link(src, tmp_path / "o.title.vec")  # the second table's file of `convert s.pkl o.vec`
    listing = _entries(tmp_path)
    r = run_cli("convert", src, tmp_path / "o.vec", "--force")
    assert r.returncode == 5, r.stderr
    assert "o.title.vec" in _one_line(r.stderr)
    assert src.read_bytes() == SRC.read_bytes()
    assert _entries(tmp_path) == listing


def test_vocabulary_file_as_output_is_refused(tmp_path):
    src = tmp_path / "s.pkl"
    shutil.copy(SRC, src)
    r = run_cli("convert", src, tmp_path / "first.safetensors")
    assert r.returncode == 0, r.stderr
    # A file given to --vocab (here an embconv output holding the tokens) is an input too.
    link = tmp_path / "v.safetensors"
    os.link(tmp_path / "first.safetensors", link)
    with pytest.raises(OutputError, match="the same file"):
        converter.convert(src, link, force=True, vocab={"userId": str(tmp_path / "first.safetensors")})


def test_library_convert_and_save_refuse_the_source(tmp_path):
    src = tmp_path / "s.safetensors"
    converter.save(collab_model(), src)
    before = src.read_bytes()
    with pytest.raises(OutputError, match="the same file") as e:
        converter.convert(src, src, force=True)
    assert e.value.exit_code == 5
    model = converter.load(src)
    with pytest.raises(OutputError, match="the same file"):
        converter.save(model, tmp_path / "x" / ".." / "s.safetensors", force=True)  # its own source
    assert src.read_bytes() == before
    assert _entries(tmp_path) == {"s.safetensors"}


@pytest.mark.parametrize("length", [234, 245, 255])
def test_long_legal_destination_names_work(tmp_path, length):
    name = "a" * (length - len(".safetensors")) + ".safetensors"
    assert len(name.encode()) == length
    r = run_cli("convert", SRC, tmp_path / name)
    assert r.returncode == 0, r.stderr
    assert _entries(tmp_path) == {name}


def test_long_onnx_with_external_data_keeps_its_reference(tmp_path):
    name = "o" * (250 - len(".onnx")) + ".onnx"  # its .data sibling: 255 bytes
    r = run_cli("convert", SRC, tmp_path / name, "--external-data")
    assert r.returncode == 0, r.stderr
    assert _entries(tmp_path) == {name, name + ".data"}
    r = run_cli("verify", tmp_path / name, "--against", SRC)
    assert r.returncode == 0, r.stderr


def test_names_over_the_limit_are_one_clear_error(tmp_path):
    limit = atomic.name_max(tmp_path)
    stem = "w" * (limit - len(".vec") - 3)  # STEM.vec fits; STEM.userId.vec does not
    r = run_cli("convert", SRC, tmp_path / f"{stem}.vec")
    assert r.returncode == 5, r.stderr
    line = _one_line(r.stderr)
    assert f"{stem}.userId.vec" in line and str(limit) in line and "internal error" not in line
    r = run_cli("convert", SRC, tmp_path / ("x" * (limit + 1) + ".safetensors"))
    assert r.returncode == 5, r.stderr
    assert f"at most {limit}" in _one_line(r.stderr)
    assert _entries(tmp_path) == set()


def test_verification_errors_name_the_destination_not_the_staged_file(tmp_path, monkeypatch):
    import converter.saving as saving

    def broken(expected, actual, **kw):
        raise VerificationError("table 'userId': weights differ first at row 3", path=actual.source.path)

    monkeypatch.setattr(saving, "verify_models", broken)
    dst = tmp_path / "out.safetensors"
    with pytest.raises(VerificationError) as e:
        converter.convert(SRC, dst)
    assert e.value.path == str(dst)
    assert str(e.value) == f"{dst}: table 'userId': weights differ first at row 3"
    assert "embconv-tmp" not in str(e.value)
    assert _entries(tmp_path) == set()
