"""A table without a vocabulary (rows only numbered, which look like ids) is written only with the
user's consent: ``--allow-unlabelled`` / ``allow_unlabelled=True``. Without it ``convert`` and
``save`` refuse with a usage error (exit 2, one line naming the tables and the ways to label them)
and write nothing; with it the file is written and the model's warnings are printed on stderr.
Real fixtures: fastai 2 and fastai 1 ``learn.save`` files, fastai 0.7 ``.h5`` files, a fastai 2 export."""

from __future__ import annotations

from pathlib import Path

import pytest

import converter

from .conftest import FIXTURES, run_cli

COLLAB_PTH = FIXTURES / "fastai2" / "collab_dot.pth"  # tables user (31 rows), item (21 rows), no vocabulary
TEXT_ENCODER = FIXTURES / "fastai1" / "text_lm_encoder.pth"  # table token, no vocabulary
V07_COLLAB = FIXTURES / "fastai07" / "collab.h5"  # tables user, item: fastai 0.7 never saved a vocabulary
V07_TABULAR = FIXTURES / "fastai07" / "tabular.h5"  # tables cat_0, cat_1, cat_2
EXPORT = FIXTURES / "fastai2" / "collab_dot_export.pkl"  # userId, title: labelled by the export

FORMATS = [".safetensors", ".onnx", ".vec", ".bin", ".parquet"]
NEEDS = {".parquet": "pyarrow"}


def _needs(suffix: str) -> None:
    if suffix in NEEDS:
        pytest.importorskip(NEEDS[suffix])


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _assert_refusal_line(stderr: str, tables: list[str], *, data: bool) -> None:
    """One error line (no traceback, no warnings before it) naming every bare table and the ways out."""
    assert stderr.count("\n") == 1 and stderr.startswith("embconv: error: "), stderr
    assert "Traceback" not in stderr and "warning:" not in stderr, stderr
    assert f"table(s) {', '.join(tables)} have no labels" in stderr, stderr
    assert "--allow-unlabelled" in stderr and f"--vocab {tables[0]}=SPEC" in stderr and "--vocab EXPORT.pkl" in stderr
    assert ("--data FILE --split" in stderr) == data, stderr


# --- the CLI: refused without consent, in every format -----------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_cli_refuses_an_unlabelled_file_and_writes_nothing(tmp_path, suffix):
    _needs(suffix)
    dst = tmp_path / f"out{suffix}"
    r = run_cli("convert", COLLAB_PTH, dst)
    assert r.returncode == 2, r.stderr
    _assert_refusal_line(r.stderr, ["user", "item"], data=True)
    assert str(COLLAB_PTH) in r.stderr
    assert r.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing at DST, no per-table files, no staging folder left


@pytest.mark.parametrize("suffix", FORMATS)
def test_cli_refusal_leaves_an_existing_destination_untouched(tmp_path, suffix):
    """Even with --force: the refusal comes before anything is staged or replaced."""
    _needs(suffix)
    dst = tmp_path / f"out{suffix}"
    dst.write_bytes(b"keep me")
    per_table = [tmp_path / f"out.user{suffix}", tmp_path / f"out.item{suffix}"]
    for p in per_table:  # where the formats that write one file per table would write
        p.write_bytes(b"mine too")
    before = _listing(tmp_path)
    for extra in ([], ["--force"]):
        r = run_cli("convert", COLLAB_PTH, dst, *extra)
        assert r.returncode == 2, r.stderr
        _assert_refusal_line(r.stderr, ["user", "item"], data=True)
        assert _listing(tmp_path) == before


@pytest.mark.parametrize("src,tables,data", [
    (TEXT_ENCODER, ["token"], False),  # a text vocabulary is not rebuilt from a DataFrame: no --data hint
    (V07_COLLAB, ["user", "item"], True),
    (V07_TABULAR, ["cat_0", "cat_1", "cat_2"], True),
], ids=["fastai1-text-encoder", "fastai07-collab", "fastai07-tabular"])
def test_cli_refusal_names_the_tables_of_other_generations(tmp_path, src, tables, data):
    r = run_cli("convert", src, tmp_path / "out.safetensors")
    assert r.returncode == 2, r.stderr
    _assert_refusal_line(r.stderr, tables, data=data)
    assert list(tmp_path.iterdir()) == []


# --- the CLI: written with consent, warnings on stderr -------------------------------------------------


def _expected_files(tmp_path: Path, suffix: str, tables: list[str]) -> list[Path]:
    if suffix in (".safetensors", ".onnx"):
        return [tmp_path / f"out{suffix}"]
    return [tmp_path / f"out.{t}{suffix}" for t in tables]


@pytest.mark.parametrize("suffix", FORMATS)
def test_cli_writes_with_allow_unlabelled_and_prints_the_warnings(tmp_path, suffix):
    _needs(suffix)
    dst = tmp_path / f"out{suffix}"
    r = run_cli("convert", COLLAB_PTH, dst, "--allow-unlabelled")
    assert r.returncode == 0, r.stderr
    assert "written and verified" in r.stdout
    for f in _expected_files(tmp_path, suffix, ["user", "item"]):
        assert f.is_file() and str(f) in r.stdout, (f, r.stdout)
    lines = r.stderr.splitlines()
    assert lines and all(line.startswith("warning: ") for line in lines), r.stderr
    for name in ("user", "item"):
        assert f"warning: table {name} has no vocabulary in the file: rows are numbered; supply one with " \
               f"--vocab {name}=SPEC" in lines, r.stderr
    assert any(line.startswith("warning: no y_range in this file") for line in lines), r.stderr
    # What was written holds the numbered tables, and proves itself against the source.
    primary = _expected_files(tmp_path, suffix, ["user", "item"])[0]
    back = converter.read_output(primary)
    assert all(t.vocab is None for t in back.tables.values())
    v = run_cli("verify", dst, "--against", COLLAB_PTH)
    assert v.returncode == 0, v.stderr


def test_cli_quiet_still_prints_the_warnings(tmp_path):
    r = run_cli("convert", "-q", "--allow-unlabelled", V07_COLLAB, tmp_path / "out.safetensors")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert "warning: table user has no vocabulary in the file (fastai 0.7 never saved one)" in r.stderr
    assert all(line.startswith("warning: ") for line in r.stderr.splitlines()), r.stderr


def test_cli_text_encoder_with_allow_unlabelled(tmp_path):
    r = run_cli("convert", TEXT_ENCODER, tmp_path / "out.vec", "--allow-unlabelled", "-q")
    assert r.returncode == 0, r.stderr
    assert "warning: table token has no vocabulary in the file" in r.stderr
    assert (tmp_path / "out.vec").is_file()  # one table: the file is DST itself


# --- labelled inputs need no consent -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_labelled_export_converts_without_the_flag(tmp_path, suffix):
    _needs(suffix)
    r = run_cli("convert", EXPORT, tmp_path / f"out{suffix}", "-q")
    assert r.returncode == 0, r.stderr
    assert "have no labels" not in r.stderr and "no vocabulary" not in r.stderr
    assert _expected_files(tmp_path, suffix, ["userId", "title"])[0].is_file()


def test_vocab_for_every_table_needs_no_flag(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("".join(f"u{i}\n" for i in range(31)), encoding="utf-8")
    items = tmp_path / "items.txt"
    items.write_text("".join(f"i{i}\n" for i in range(21)), encoding="utf-8")
    r = run_cli("convert", COLLAB_PTH, tmp_path / "out.safetensors", "-q",
                "--vocab", f"user={users}", "--vocab", f"item={items}")
    assert r.returncode == 0, r.stderr
    assert "no vocabulary" not in r.stderr
    back = converter.read_output(tmp_path / "out.safetensors")
    assert back.tables["user"].vocab.strings[30] == "u30" and back.tables["item"].vocab.strings[0] == "i0"


def test_v07_labelled_from_its_ratings_csv_needs_no_flag(tmp_path):
    csv = FIXTURES / "fastai07" / "ratings.csv"
    r = run_cli("convert", V07_COLLAB, tmp_path / "out.onnx", "-q",
                "--vocab", f"u.weight={csv}:userId", "--vocab", f"i.weight={csv}:title", "--y-range", "1,5")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.onnx").is_file()


def test_table_selects_the_labelled_tables_of_a_partly_labelled_model(tmp_path):
    """--vocab labels user only: converting everything is refused naming item alone; --table user
    writes without the flag; --table item still needs it."""
    users = tmp_path / "tokens.txt"
    users.write_text("".join(f"user-{i}\n" for i in range(31)), encoding="utf-8")
    vocab = ["--vocab", f"user={users}"]
    out = tmp_path / "out"
    out.mkdir()
    r = run_cli("convert", COLLAB_PTH, out / "all.safetensors", *vocab)
    assert r.returncode == 2, r.stderr
    _assert_refusal_line(r.stderr, ["item"], data=True)
    assert "user" not in r.stderr.split("have no labels")[0].split("table(s)")[1]
    assert list(out.iterdir()) == []

    r = run_cli("convert", COLLAB_PTH, out / "user.vec", *vocab, "--table", "user", "-q")
    assert r.returncode == 0, r.stderr
    assert "has no vocabulary" not in r.stderr  # no warning about the table left out (item)
    assert (out / "user.vec").read_text(encoding="utf-8").splitlines()[1].startswith("user-0 ")

    r = run_cli("convert", COLLAB_PTH, out / "item.vec", *vocab, "--table", "item")
    assert r.returncode == 2, r.stderr
    _assert_refusal_line(r.stderr, ["item"], data=True)
    assert not (out / "item.vec").exists()
    r = run_cli("convert", COLLAB_PTH, out / "item.vec", *vocab, "--table", "item", "--allow-unlabelled", "-q")
    assert r.returncode == 0, r.stderr
    assert "warning: table item has no vocabulary" in r.stderr and "table user" not in r.stderr


def test_an_unlabelled_output_converted_onwards_needs_the_flag_again(tmp_path):
    """An embconv output written with numbered rows has no vocabulary either: writing it to another
    format is the same decision. Reading it (inspect, verify) needs no consent."""
    first = tmp_path / "first.safetensors"
    assert run_cli("convert", "-q", "--allow-unlabelled", COLLAB_PTH, first).returncode == 0
    r = run_cli("convert", first, tmp_path / "second.onnx")
    assert r.returncode == 2, r.stderr
    _assert_refusal_line(r.stderr, ["user", "item"], data=True)
    assert not (tmp_path / "second.onnx").exists()
    assert run_cli("convert", "-q", "--allow-unlabelled", first, tmp_path / "second.onnx").returncode == 0
    assert run_cli("inspect", first).returncode == 0
    assert run_cli("verify", tmp_path / "second.onnx", "--against", COLLAB_PTH).returncode == 0


# --- the library API ----------------------------------------------------------------------------------


def test_api_convert_refuses_without_allow_unlabelled(tmp_path):
    seen: list[converter.ModelWarning] = []
    dst = tmp_path / "out.safetensors"
    with pytest.raises(converter.UsageError) as e:
        converter.convert(COLLAB_PTH, dst, on_warning=seen.append)
    assert e.value.exit_code == 2
    assert "table(s) user, item have no labels" in str(e.value) and "allow-unlabelled" in str(e.value)
    assert seen == []  # refused before the warnings: the error already says what they would
    assert list(tmp_path.iterdir()) == []

    files = converter.convert(COLLAB_PTH, dst, on_warning=seen.append, allow_unlabelled=True)
    assert files == [dst]
    assert [w.table for w in seen if w.code == "no-vocabulary"] == ["user", "item"]
    assert all(isinstance(w, converter.ModelWarning) for w in seen)


@pytest.mark.parametrize("suffix", FORMATS)
def test_api_save_refuses_without_allow_unlabelled(tmp_path, suffix):
    _needs(suffix)
    model = converter.load(V07_TABULAR)
    dst = tmp_path / f"out{suffix}"
    with pytest.raises(converter.UsageError, match=r"table\(s\) cat_0, cat_1, cat_2 have no labels") as e:
        converter.save(model, dst)
    assert e.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []
    files = converter.save(model, dst, allow_unlabelled=True)
    assert files and all(f.is_file() for f in files)


def _tokens(path: Path, prefix: str, n: int) -> str:
    path.write_text("".join(f"{prefix}{i}\n" for i in range(n)), encoding="utf-8")
    return str(path)


def test_api_save_of_labelled_or_selected_tables_needs_no_consent(tmp_path):
    side = tmp_path / "side"
    side.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    converter.save(converter.load(EXPORT), out / "export.safetensors")
    rows = converter.load(TEXT_ENCODER).tables["token"].rows
    converter.save(converter.load(TEXT_ENCODER, vocab={"token": _tokens(side / "itos.txt", "w", rows)}),
                   out / "text.safetensors")
    items = {"item": _tokens(side / "items.txt", "i", 21)}
    partly = converter.load(COLLAB_PTH, vocab=items)
    with pytest.raises(converter.UsageError, match=r"table\(s\) user have no labels"):
        converter.save(partly, out / "partly.safetensors")
    converter.save(partly.select(["item"]), out / "item.safetensors")
    with pytest.raises(converter.UsageError, match=r"table\(s\) user have no labels"):
        converter.convert(COLLAB_PTH, out / "user.safetensors", tables=["user"], vocab=items)
    converter.convert(COLLAB_PTH, out / "item2.safetensors", tables=["item"], vocab=items)
    assert sorted(p.name for p in out.iterdir()) == ["export.safetensors", "item.safetensors", "item2.safetensors",
                                                     "text.safetensors"]
