"""Loaders against the truth computed by real fastai (fixtures) and by fastai/torch (real models):
every truth table is found by its state-dict key, with the same shape, vocabulary and weights."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import converter
from converter.errors import UnreadableInputError

from .conftest import FIXTURES, REAL_MODELS, ROOT, real_model_truths, run_cli

SCHEMA = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())


def fixture_truths() -> list[tuple[Path, dict]]:
    out = []
    for truth_path in sorted(FIXTURES.glob("fastai*/truth.*.json")):
        truth = json.loads(truth_path.read_text())
        out.append((truth_path.parent / truth["file"], truth))
    return out


FIXTURE_TRUTHS = fixture_truths()
REAL_TRUTHS = real_model_truths()
ALL = FIXTURE_TRUTHS + REAL_TRUTHS
IDS = [f"{p.parent.name}/{p.name}" for p, _ in ALL]


def sha256_f32(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def _find(model: converter.EmbeddingModel, key: str):
    """(table, 'weight'|'bias') for a state-dict key; DataParallel/export prefixes tolerated."""
    for t in model.tables.values():
        if key in (t.weight_key, t.weight_key.removeprefix("module.")):
            return t, "weight"
        if t.bias_key and key in (t.bias_key, t.bias_key.removeprefix("module.")):
            return t, "bias"
    raise AssertionError(f"no table for {key}: {[t.weight_key for t in model.tables.values()]}")


def _sidecars(path: Path, truth: dict) -> dict[str, str]:
    return {k: str(path.parent / spec) for k, spec in (truth.get("sidecars") or {}).items()}


@pytest.mark.parametrize("path,truth", ALL, ids=IDS)
def test_tables_match_truth(path, truth):
    model = converter.load(path, vocab=_sidecars(path, truth))
    for table in truth["tables"]:
        t, part = _find(model, table["source_key"])
        array = t.weight if part == "weight" else t.bias
        assert int(np.prod(table["shape"])) == array.size
        if part == "weight":
            assert list(array.shape) == table["shape"]
            if "tied_keys" in table:
                assert sorted(t.tied_keys) == sorted(table["tied_keys"])
            if table.get("dtype"):
                assert t.source_dtype == table["dtype"]
        assert sha256_f32(array) == table["sha256_f32"], table["source_key"]
        if table.get("vocab") is not None:
            assert t.vocab is not None, f"{table['source_key']}: no vocabulary found"
            assert t.vocab.strings == table["vocab"]
            if table["vocab"][0] == "#na#":
                assert t.vocab.unknown_index == 0


@pytest.mark.parametrize("path,truth", FIXTURE_TRUTHS, ids=[f"{p.parent.name}/{p.name}" for p, _ in FIXTURE_TRUTHS])
def test_model_facts_match_truth(path, truth):
    model = converter.load(path, vocab=_sidecars(path, truth))
    # What the file itself proves: exports and {'model','opt'} saves name their generation; a
    # bare collab state dict in a zip cannot say v1 or v2, and then must say "unknown".
    if truth["artifact"] in ("export", "save") or model.source.generation != "unknown":
        assert model.source.generation == truth["generation"]
    assert model.source.artifact == truth["artifact"]
    assert model.source.container == truth["container"]
    if truth["artifact"] != "encoder":
        assert model.model.kind == truth["kind"]
    if truth["artifact"] == "export":
        assert model.source.model_class == truth["model_class"]
        expected = tuple(truth["y_range"]) if truth.get("y_range") else None
        assert model.model.y_range == (pytest.approx(expected) if expected else None)
        if truth.get("cat_names"):
            assert list(model.tables) == truth["cat_names"]


@pytest.mark.parametrize("path,truth", ALL, ids=IDS)
def test_manifest_validates(path, truth):
    model = converter.load(path, vocab=_sidecars(path, truth))
    manifest = model.manifest()
    jsonschema.validate(manifest, SCHEMA)
    assert json.loads(json.dumps(manifest)) == manifest
    assert manifest["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_seed_question_v1_v2_categorical():
    """For a v1/v2 categorical low<medium<high (declared order), row 0 is #na# and row 1 is low."""
    for gen in ("fastai1", "fastai2"):
        proc = run_cli("inspect", FIXTURES / gen / "tabular_export.pkl", "--json")
        assert proc.returncode == 0, proc.stderr
        size = next(t for t in json.loads(proc.stdout)["tables"] if t["name"] == "size")
        assert size["vocab"]["tokens"][:2] == ["#na#", "low"]
        assert size["vocab"]["unknown_index"] == 0
        human = run_cli("inspect", FIXTURES / gen / "tabular_export.pkl").stdout
        assert "row 0: '#na#'   ← unknown/missing" in human and "row 1: 'low'" in human


def test_fp16_weights_read_faithfully():
    for gen in ("fastai1", "fastai2"):
        model = converter.load(FIXTURES / gen / "collab_dot_fp16.pth")
        assert all(t.source_dtype == "float16" for t in model.tables.values())
        assert model.tables["user"].weight.dtype == np.float16
        assert any(w.code == "stored-dtype" and "float16" in w.message for w in model.warnings)


def test_vocab_from_matching_export():
    """A .pth save gets its vocabulary from the export of the same learner."""
    for gen in ("fastai1", "fastai2", "fastai27"):
        save = FIXTURES / gen / "collab_dot.pth"
        export = FIXTURES / gen / "collab_dot_export.pkl"
        truth = json.loads((FIXTURES / gen / "truth.collab_dot_export.pkl.json").read_text())
        model = converter.load(save, vocab={"user": str(export), "item": str(export)})
        expected = {t["source_key"]: t["vocab"] for t in truth["tables"]}
        assert model.tables["user"].vocab.strings == expected["u_weight.weight"]
        assert model.tables["item"].vocab.strings == expected["i_weight.weight"]


def test_vocab_text_and_json_sidecars(tmp_path):
    truth = json.loads((FIXTURES / "fastai2" / "truth.text_lm_export.pkl.json").read_text())
    itos = next(t["vocab"] for t in truth["tables"] if t["source_key"] == "0.encoder.weight")
    txt = tmp_path / "itos.txt"
    txt.write_text("\n".join(itos) + "\n", encoding="utf-8")
    js = tmp_path / "itos.json"
    js.write_text(json.dumps(itos), encoding="utf-8")
    for spec in (txt, js):
        model = converter.load(FIXTURES / "fastai2" / "text_lm.pth", vocab={"token": str(spec)})
        assert model.tables["token"].vocab.strings == itos
        assert model.tables["token"].vocab.unknown_index == itos.index("xxunk")
        assert not any(w.code == "no-vocabulary" for w in model.warnings)


def test_vocab_size_mismatch_is_an_error_naming_both_sizes(tmp_path):
    bad = tmp_path / "short.txt"
    bad.write_text("a\nb\nc\n")
    with pytest.raises(UnreadableInputError, match=r"3 entries.*40 rows"):
        converter.load(FIXTURES / "fastai2" / "text_lm.pth", vocab={"token": str(bad)})
    proc = run_cli("inspect", FIXTURES / "fastai2" / "text_lm.pth", "--vocab", f"token={bad}")
    assert proc.returncode == 3
    assert len(proc.stderr.strip().splitlines()) == 1 and "40 rows" in proc.stderr


@pytest.mark.skipif(not (REAL_MODELS / "v07-tabular-ziheng-rossmann").is_dir(), reason="real models absent")
def test_rossmann_v07_vocab_from_store_csv():
    """StoreType, Assortment and PromoInterval (embs.8–10) labelled from store.csv under the v0.7
    rule (pandas' sorted categories, codes + 1): compared with pandas itself."""
    pd = pytest.importorskip("pandas")
    case = REAL_MODELS / "v07-tabular-ziheng-rossmann"
    store = case / "store.csv"
    cols = {"embs.8": "StoreType", "embs.9": "Assortment", "embs.10": "PromoInterval"}
    model = converter.load(case / "val0.h5", vocab={k: f"{store}:{c}" for k, c in cols.items()})
    df = pd.read_csv(store)
    for key, col in cols.items():
        cats = df[col].astype("category").cat.as_ordered().cat.categories
        t = model.tables[col]
        assert t.weight_key == f"{key}.weight"
        assert t.vocab.strings == ["#na#", *[str(c) for c in cats]]
        assert t.vocab.unknown_index == 0 and t.rows == len(cats) + 1


def test_unknown_state_dict_guesses_with_a_warning(tmp_path):
    torch = pytest.importorskip("torch")
    sd = {"user_factors.weight": torch.randn(5, 3), "lin.weight": torch.randn(4, 3), "lin.bias": torch.randn(4)}
    path = tmp_path / "custom.pth"
    torch.save(sd, path)
    model = converter.load(path)
    assert model.model.kind == "unknown"
    assert [t.weight_key for t in model.tables.values()] == ["user_factors.weight"]
    assert any(w.code == "guessed-architecture" and "guessed" in w.message for w in model.warnings)
    assert np.array_equal(model.tables["user_factors"].weight, sd["user_factors.weight"].numpy())


def test_seed_question_v07_collab_first_appearance():
    """fastai 0.7 collab numbers users in order of first appearance, with no reserved row."""
    d = FIXTURES / "fastai07"
    proc = run_cli("inspect", d / "collab.h5", "--json", "--vocab", f"u.weight={d / 'ratings.csv'}:userId")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    user = next(t for t in manifest["tables"] if t["weight_key"] == "u.weight")
    assert user["name"] == "userId"
    pd = pytest.importorskip("pandas")
    first_seen = [str(v) for v in pd.read_csv(d / "ratings.csv")["userId"].unique()]
    assert user["vocab"]["tokens"] == first_seen
    assert user["vocab"]["unknown_index"] is None and user["rows"] == len(first_seen)
    assert manifest["source"]["generation"] == "fastai-0.7"
    human = run_cli("inspect", d / "collab.h5", "--vocab", f"u.weight={d / 'ratings.csv'}:userId").stdout
    assert re.search(rf"row +0: '{first_seen[0]}'", human) and "no row for unseen ids" in human


def test_custom_main_code_in_an_export_is_recorded_not_run():
    """fastai 2.8 pickles notebook functions and classes by value (cloudpickle): the load goes on,
    scan says the file carries code, and nothing of it is imported or called."""
    path = FIXTURES / "fastai2" / "collab_custom_export.pkl"
    report = converter.scan(path)
    assert report.verdict == "clean" and report.notes and "pickled code" in report.notes[0]
    model = converter.load(path)
    assert list(model.tables) == ["userId", "title"]


def test_bfloat16_weights_are_read_faithfully(tmp_path):
    torch = pytest.importorskip("torch")
    w = torch.randn(7, 3).to(torch.bfloat16)
    path = tmp_path / "bf16.pth"
    torch.save({"u_weight.weight": w, "i_weight.weight": w[:5].clone()}, path)
    model = converter.load(path)
    user = model.tables["user"]
    assert user.source_dtype == "bfloat16" and model.manifest()["tables"][0]["dtype"] == "bfloat16"
    assert np.array_equal(user.weight, w.float().numpy())
    out = tmp_path / "bf16.safetensors"
    converter.save(model, out, allow_unlabelled=True)
    from safetensors.numpy import load_file

    assert np.array_equal(load_file(out)["user.weight"], w.float().numpy())
