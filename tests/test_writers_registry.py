"""The format registry: each format module registers itself; sniffing asks each format; the
rooms stay apart (writers never import verification or saving; verify.py uses only the
registry's public names); importing embconv never imports the onnx library."""

from __future__ import annotations

import subprocess
import sys

import pytest

from converter.errors import UsageError
from converter.saving import save
from converter.writers import FORMATS, Format, format_for, format_names, register, sniff
from tests._imports import PACKAGE, imports_of
from tests._writer_models import collab_model


def test_every_format_is_registered_by_its_module_in_order():
    assert format_names() == ["safetensors", "onnx", "word2vec-text", "word2vec-binary", "parquet"]
    for name, fmt in FORMATS.items():
        assert fmt.name == name
        for suffix in fmt.suffixes:
            assert format_for(f"out{suffix}") is fmt
            assert format_for(f"OUT{suffix.upper()}") is fmt
        assert format_for("out.anything", name) is fmt
    with pytest.raises(UsageError, match="choose one of safetensors, onnx, word2vec-text, word2vec-binary, parquet"):
        format_for("x.vec", "csv")


def test_a_name_or_suffix_is_registered_once():
    safetensors = FORMATS["safetensors"]
    with pytest.raises(ValueError, match="twice"):
        register(safetensors)
    with pytest.raises(ValueError, match="'.vec'"):
        register(Format(name="other", suffixes=(".vec",), sniff=lambda head: False, write=safetensors.write,
                        read=safetensors.read))
    assert "other" not in FORMATS


@pytest.mark.parametrize("ext", ["safetensors", "onnx", "vec", "bin", "parquet"])
def test_sniffing_tells_each_format_by_content(tmp_path, ext):
    m = collab_model().select(["userId"])
    out = tmp_path / f"m.{ext}"
    save(m, out)
    renamed = out.rename(tmp_path / "m.unknown")  # the extension plays no part
    assert sniff(renamed) is format_for(out)


def test_writers_never_import_verification_or_saving():
    for path in sorted((PACKAGE / "writers").glob("*.py")):
        for module, names in imports_of(path):
            targets = [module] + [f"{module}.{n}" for n in names]
            assert not any(t in ("converter.verify", "converter.saving") for t in targets), (path.name, module)


def test_verify_uses_only_public_names_of_writers():
    for module, names in imports_of(PACKAGE / "verify.py"):
        if module.startswith("converter.writers"):
            assert module == "converter.writers" and not any(n.startswith("_") for n in names), (module, names)


def test_importing_embconv_does_not_import_onnx():
    code = ("import sys, converter, converter.cli, converter.writers\n"
            "converter.writers.format_for('x.onnx')\n"
            "print(sorted(m for m in sys.modules if m == 'onnx' or m.startswith('onnx.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("dst", ["out.csv", "out.npy", "out"])
def test_a_suffix_no_format_has_is_refused_naming_the_formats(dst):
    with pytest.raises(UsageError, match=r"writes no .* files; .*safetensors: \.safetensors; .*parquet: \.parquet"):
        format_for(dst)
