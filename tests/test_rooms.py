"""The package's rooms hold: the CLI talks only to the library's front door, each fastai
generation's knowledge stays in its module, warnings are data with stable codes, and outputs
written with manifest schema 1 (plain-string warnings) are still read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from safetensors.numpy import load_file, save_file

import converter
from converter import api
from converter.cli import format_model
from converter.ir import GENERATIONS, ModelWarning
from converter.loaders import generations
from tests._imports import PACKAGE, imports_of

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "manifest.schema.json").read_text())
V07_COLLAB = FIXTURES / "fastai07" / "collab.h5"
RATINGS = FIXTURES / "fastai07" / "ratings.csv"


def test_the_cli_imports_nothing_but_the_front_door():
    for module, names in imports_of(PACKAGE / "cli.py"):
        targets = [module] + [f"{module}.{n}" for n in names]
        for layer in ("converter.loaders", "converter.writers", "converter.pickle", "converter.saving",
                      "converter.verify"):
            assert not any(t == layer or t.startswith(layer + ".") for t in targets), (module, names)


def test_fastai07_knowledge_lives_only_in_its_module():
    """The manifest's enum names the generation; everything else about it is in fastai07.py."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "fastai07.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"fastai-0\.7|0\.7|_unk_", line):
                assert path.name == "ir.py" and line.startswith("GENERATIONS = "), f"{path}:{n}: {line}"


def test_every_generation_is_registered_with_a_label():
    names = [g.name for g in generations.registered()]
    assert names == [g for g in GENERATIONS if g != "unknown"]  # oldest first, as the manifest lists them
    labels = {api.generation_label(n) for n in GENERATIONS}
    assert len(labels) == len(GENERATIONS)
    assert api.generation_label("fastai-9") == "fastai-9"  # a name embconv does not know yet: shown, not a crash


def test_inspect_text_survives_values_it_has_no_words_for():
    model = converter.load(V07_COLLAB)
    model.source.generation, model.source.artifact, model.model.kind = "fastai-9", "checkpoint", "diffusion"
    text = format_model(model)
    assert "written by: fastai-9; checkpoint" in text and "kind:       diffusion" in text


def test_warnings_have_codes_and_tables_and_labelling_removes_them():
    model = converter.load(V07_COLLAB)
    codes = {(w.code, w.table) for w in model.warnings}
    assert codes == {("no-vocabulary", "user"), ("no-vocabulary", "item"), ("no-y-range", None)}
    labelled = converter.load(V07_COLLAB, vocab={"u.weight": f"{RATINGS}:userId"})
    # the table took the column's name; the warning about it is gone, the other stays
    assert list(labelled.tables) == ["userId", "item"]
    assert {(w.code, w.table) for w in labelled.warnings} == {("no-vocabulary", "item"), ("no-y-range", None)}
    api.set_y_range(labelled, (1.0, 5.0))
    assert [w.code for w in labelled.warnings] == ["no-vocabulary"]
    manifest = labelled.manifest()
    jsonschema.validate(manifest, SCHEMA)
    assert manifest["schema_version"] == 2
    assert manifest["warnings"] == [{"code": "no-vocabulary", "table": "item",
                                     "message": labelled.warnings[0].message}]


def test_a_renamed_table_keeps_its_warnings():
    model = converter.load(V07_COLLAB)
    model.rename_table("item", "title")
    assert list(model.tables) == ["user", "title"] and model.tables["title"].name == "title"
    assert ("no-vocabulary", "title") in {(w.code, w.table) for w in model.warnings}


def _as_schema_1(manifest: dict) -> dict:
    old = dict(manifest, schema_version=1, warnings=[w["message"] for w in manifest["warnings"]])
    jsonschema.validate(old, SCHEMA)
    return old


@pytest.mark.parametrize("suffix", [".safetensors", ".vec"])
def test_outputs_with_schema_1_manifests_are_still_read_and_verified(tmp_path, suffix):
    src = FIXTURES / "fastai2" / "collab_dot_export.pkl"
    model = converter.load(src)
    model.warn("no-vocabulary", "an old warning", "userId")
    out = tmp_path / f"out{suffix}"
    files = converter.save(model, out)
    if suffix == ".safetensors":
        tensors = load_file(out)
        from safetensors import safe_open

        with safe_open(str(out), framework="np") as f:
            meta = dict(f.metadata())
        meta["embconv.manifest"] = json.dumps(_as_schema_1(json.loads(meta["embconv.manifest"])))
        save_file(tensors, out, metadata=meta)
    else:
        for sidecar in (f for f in files if f.name.endswith(".manifest.json")):
            doc = json.loads(sidecar.read_text())
            doc["embconv.manifest"] = _as_schema_1(doc["embconv.manifest"])
            sidecar.write_text(json.dumps(doc))
    back = converter.load(files[0])
    assert back.warnings == [ModelWarning("note", "an old warning")]
    assert converter.verify(out, src).tables == 2


def test_a_warning_that_is_neither_shape_is_refused(tmp_path):
    out = tmp_path / "out.vec"
    files = converter.save(converter.load(FIXTURES / "fastai2" / "collab_dot_export.pkl").select(["userId"]), out)
    sidecar = next(f for f in files if f.name.endswith(".manifest.json"))
    doc = json.loads(sidecar.read_text())
    doc["embconv.manifest"]["warnings"] = [{"code": "x"}]
    sidecar.write_text(json.dumps(doc))
    with pytest.raises(converter.UnreadableInputError, match="warning"):
        converter.load(out)
