"""Labels of learn.save files rebuilt from their training data (issue 11, design.md §4 DATA
OPTIONS, spec fastai-formats §11), against what real fastai 1.0.61, 2.7.19 and 2.8.12 said
(tests/fixtures/rebuild: truth = ``data.train_ds.x.classes`` / ``dls.classes``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import converter
from converter import cli
from converter.loaders.splits import numpy_permutation, parse_split, torch_randperm

ROOT = Path(__file__).parent / "fixtures" / "rebuild"
CASES = json.loads((ROOT / "cases.json").read_text())["cases"]
REAL = Path(__file__).resolve().parents[2] / "shared" / "real-models"
LALOCEH = REAL / "v1-collab-laloceh-ncf-export"


def _truth(case: dict) -> dict:
    return json.loads((ROOT / case["truth"]).read_text())


def _column_args(truth: dict) -> list[str]:
    cols = truth["columns"]
    if "user" in cols:
        return ["--user", cols["user"], "--item", cols["item"], "--rating", cols["rating"]]
    return ["--cat", ",".join(cols["cat"]), "--cont", ",".join(cols["cont"])]


def _run(capsys: pytest.CaptureFixture, args: list[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _ids(case: dict) -> str:
    return case["file"]


def _embedding_truth(truth: dict) -> dict[str, dict]:
    return {t["source_key"]: t for t in truth["tables"] if not t["source_key"].endswith("bias.weight")}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_inspect_json_equals_fastai(case: dict, capsys: pytest.CaptureFixture) -> None:
    truth = _truth(case)
    code, out, err = _run(capsys, ["inspect", str(ROOT / case["file"]), "--json", "--data", str(ROOT / case["data"]),
                                   "--split", case["split"], *_column_args(truth)])
    assert code == 0, err
    manifest = json.loads(out)
    expected = _embedding_truth(truth)
    assert [t["weight_key"] for t in manifest["tables"]] == list(expected)
    for table in manifest["tables"]:
        want = expected[table["weight_key"]]
        assert table["name"] == want["name"]  # named after the data column, as fastai named it
        assert table["vocab"]["tokens"] == want["vocab"]
        assert table["rows"] == want["shape"][0]
        source = table["vocab"]["source"]  # where the labels came from, in the manifest
        assert f"data:{Path(case['data']).name} sha256:{truth['data_sha256']}" in source
        assert f"split {parse_split(case['split'])}" in source
    no_vocab = [w for w in manifest["warnings"] if w["code"] == "no-vocabulary"]
    assert not no_vocab


@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] != "tabular"], ids=_ids)
def test_ratings_check_separates_right_from_shuffled(case: dict) -> None:
    truth = _truth(case)
    cols = truth["columns"]
    model = converter.load(ROOT / case["file"], data=ROOT / case["data"], split=case["split"], user=cols["user"],
                           item=cols["item"], rating=cols["rating"])
    source = next(iter(model.tables.values())).vocab.source
    r = float(source.split("ratings check: r=")[1].split(" ")[0])
    shuffled_max = float(source.split(", max ")[1].split(" ")[0])
    assert r > 0.5 and r > shuffled_max + 0.1
    assert abs(r - truth["train_corr"]) < 0.1  # fastai's own scores (after y_range's sigmoid) correlate about as much
    if case["kind"] != "collab-dot":
        return
    # fastai's own predictions for the first training rows: the dot model's formula on our rows
    user, item = model.tables.values()
    import pandas as pd

    frame = pd.read_csv(ROOT / case["data"])
    rows = truth["predictions"]["rows"]
    lo, hi = truth["y_range"]
    got = []
    for k in rows:
        u = user.vocab.index(frame[cols["user"]].iloc[k])
        i = item.vocab.index(frame[cols["item"]].iloc[k])
        score = float(user.weight[u] @ item.weight[i] + user.bias[u] + item.bias[i])
        got.append(lo + (hi - lo) / (1 + np.exp(-score)))
    np.testing.assert_allclose(got, truth["predictions"]["values"], rtol=1e-4, atol=1e-4)


def _wrong_splits(case: dict) -> list[str]:
    split = parse_split(case["split"])
    if split.kind != "seed":
        return ["seed=0", "seed=1", "seed=2"]
    pct = f",valid_pct={split.valid_pct:g}" if split.valid_pct != 0.2 else ""
    return [f"seed={s}{pct}" for s in range(12) if s != split.seed]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_wrong_or_missing_split_never_labels_wrongly_untold(case: dict, capsys: pytest.CaptureFixture) -> None:
    """Every other seed, and no --split at all: the labels equal fastai's, or the command fails with
    exit 3 and one line — or, where nothing can check a split (tabular, collab NN), the output
    carries the labels-unchecked warning. Collab models (checked against their ratings): never a
    wrong label."""
    truth = _truth(case)
    expected = _embedding_truth(truth)
    refused = 0
    for split in [None, *_wrong_splits(case)]:
        args = ["inspect", str(ROOT / case["file"]), "--json", "--data", str(ROOT / case["data"]),
                *(["--split", split] if split else []), *_column_args(truth)]
        code, out, err = _run(capsys, args)
        if code != 0:
            assert code == 3, err
            assert err.count("\n") == 1 and err.startswith("embconv: error: ")
            if split is None:
                assert "--split seed=S" in err
            refused += 1
            continue
        manifest = json.loads(out)
        right = all(t["vocab"]["tokens"] == expected[t["weight_key"]]["vocab"] for t in manifest["tables"])
        if not right:
            assert case["kind"] == "tabular", f"{split}: wrong labels accepted"
            assert any(w["code"] == "labels-unchecked" for w in manifest["warnings"]), split
    if case["kind"] != "tabular" and "insteval" in case["file"]:
        assert refused == len(_wrong_splits(case)) + 1  # the vocabulary depends on the seed: all refused


def test_a_wrong_seed_is_one_line_exit_3(capsys: pytest.CaptureFixture) -> None:
    case = next(c for c in CASES if c["file"] == "fastai2/collab_insteval_seed42.pth")
    code, out, err = _run(capsys, ["inspect", str(ROOT / case["file"]), "--data", str(ROOT / case["data"]),
                                   "--split", "seed=43"])
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "--split seed=43" in err and "rows" in err


def test_missing_seed_names_the_way_out(capsys: pytest.CaptureFixture) -> None:
    case = next(c for c in CASES if c["file"] == "fastai1/collab_insteval_seed42.pth")
    code, _, err = _run(capsys, ["inspect", str(ROOT / case["file"]), "--data", str(ROOT / case["data"])])
    assert code == 3 and err.count("\n") == 1
    assert "training split" in err and "--split seed=S" in err and "without a seed cannot be rebuilt" in err


def test_columns_the_other_way_round_say_which_table_fits(capsys: pytest.CaptureFixture) -> None:
    case = next(c for c in CASES if c["file"] == "fastai1/collab_insteval_seed42.pth")
    code, _, err = _run(capsys, ["inspect", str(ROOT / case["file"]), "--data", str(ROOT / case["data"]),
                                 "--split", "seed=42", "--user", "d", "--item", "s"])
    assert code == 3 and "it fits table" in err and "--user/--item" in err


def test_tabular_needs_cat(capsys: pytest.CaptureFixture) -> None:
    case = next(c for c in CASES if c["file"] == "fastai2/tabular_movies_seed42.pth")
    code, _, err = _run(capsys, ["inspect", str(ROOT / case["file"]), "--data", str(ROOT / case["data"]),
                                 "--split", "seed=42"])
    assert code == 2 and "--cat" in err
    code, _, err = _run(capsys, ["inspect", str(ROOT / case["file"]), "--data", str(ROOT / case["data"]),
                                 "--split", "seed=42", "--cat", "year,mpaa,Comedy"])
    assert code == 3 and "--cont" in err  # budget_na is a table: FillMissing needs the cont columns


def test_data_options_need_data(capsys: pytest.CaptureFixture) -> None:
    code, _, err = _run(capsys, ["inspect", str(ROOT / CASES[0]["file"]), "--split", "seed=1"])
    assert code == 2 and "--data" in err
    code, _, err = _run(capsys, ["inspect", str(ROOT / CASES[0]["file"]), "--data", str(ROOT / CASES[0]["data"]),
                                 "--split", "seed"])
    assert code == 2 and "seed=S" in err


def test_text_models_are_refused_with_the_way_out() -> None:
    with pytest.raises(converter.UsageError, match="--vocab"):
        converter.load(Path(__file__).parent / "fixtures/fastai2/text_lm.pth", data=ROOT / "data/insteval.csv")


def test_dataframe_and_parquet_give_the_same_labels(tmp_path: Path) -> None:
    import pandas as pd

    case = next(c for c in CASES if c["file"] == "fastai2/tabular_penguins_validx.pth")
    truth = _truth(case)
    cols = truth["columns"]
    frame = pd.read_csv(ROOT / case["data"])
    parquet = tmp_path / "penguins.parquet"
    frame.to_parquet(parquet)
    expected = [t["vocab"] for t in _embedding_truth(truth).values()]
    for data in (frame, parquet):
        model = converter.load(ROOT / case["file"], data=data, split=case["split"], cat=cols["cat"], cont=cols["cont"])
        assert [list(t.vocab.strings) for t in model.tables.values()] == expected
    assert "data:the DataFrame" in next(iter(converter.load(
        ROOT / case["file"], data=frame, split=case["split"], cat=cols["cat"], cont=cols["cont"]).tables.values())).vocab.source


def test_placeholders_stay_aliases(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    case = next(c for c in CASES if c["file"] == "fastai2/collab_insteval_seed42_noopt.pth")
    model = converter.load(ROOT / case["file"], data=ROOT / case["data"], split="seed=42")
    assert list(model.tables) == ["s", "d"]
    assert model.tables["user"] is model.tables["s"] and model.tables["item"] is model.tables["d"]
    assert "user" in model.tables and model.tables.get("item") is model.tables["d"]
    out = tmp_path / "users.vec"
    code, _, err = _run(capsys, ["convert", str(ROOT / case["file"]), str(out), "--data", str(ROOT / case["data"]),
                                 "--split", "seed=42", "--table", "user", "-q"])
    assert code == 0, err
    assert converter.load(out).tables["s"].vocab.strings[1:4] == model.tables["s"].vocab.strings[1:4]


def test_convert_verify_with_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    case = next(c for c in CASES if c["file"] == "fastai1/collab_grunfeld_firm.pth")
    truth = _truth(case)
    data = ["--data", str(ROOT / case["data"]), "--split", case["split"], *_column_args(truth)]
    out = tmp_path / "grunfeld.safetensors"
    code, _, err = _run(capsys, ["convert", str(ROOT / case["file"]), str(out), *data, "-q"])
    assert code == 0, err
    code, _, err = _run(capsys, ["verify", str(out), "--against", str(ROOT / case["file"]), *data])
    assert code == 0, err
    back = converter.load(out)
    assert list(back.tables) == ["firm", "year"]
    assert list(back.tables["firm"].vocab.strings) == _embedding_truth(truth)["u_weight.weight"]["vocab"]


# ---- the split algorithms ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 42, 2020, 2**32 - 1, 2**32 + 7, 2**40 + 3])
@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 65_537])
def test_torch_randperm_bit_for_bit(seed: int, n: int) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    assert np.array_equal(torch.randperm(n).numpy(), torch_randperm(n, seed))


def test_training_rows_equal_fastai_s() -> None:
    from converter.loaders import fastai1, fastai2

    for case in CASES:
        split = parse_split(case["split"])
        if split.kind != "seed":
            continue
        truth = _truth(case)
        n = len(truth["train_idx"]) + len(truth["valid_idx"])
        rows = (fastai1 if case["generation_dir"] == "fastai1" else fastai2).random_train_rows(n, split.seed, split.valid_pct)
        assert list(rows) == truth["train_idx"], case["file"]
    assert list(numpy_permutation(5, 0)) == list(np.random.RandomState(0).permutation(5))


def test_parse_split() -> None:
    assert str(parse_split("seed=42")) == "seed=42"
    assert str(parse_split("seed=7,valid_pct=0.1")) == "seed=7,valid_pct=0.1"
    assert parse_split("valid_idx=0:20,68:84,5").ranges == ((0, 20), (68, 84), (5, 6))
    assert parse_split("none").kind == "none" and parse_split(None).kind == "unknown"
    for bad in ("seed=x", "valid_pct=0.1", "valid_idx=5:2", "random", "seed=1,valid_pct=1.5"):
        with pytest.raises(converter.UsageError):
            parse_split(bad)


# ---- real files ---------------------------------------------------------------------------------

needs_real = pytest.mark.skipif(not LALOCEH.is_dir(), reason="../shared/real-models is not here")


@needs_real
def test_real_learn_save_with_its_ratings_csv() -> None:
    """laloceh/NCF_fastai: tmp.pth (lr_find's leftover, untrained) + the ratings CSV of an
    unseeded split: every value of the CSV has a row, so the labels are proved, and they equal
    those of the notebook's own export (ncf.model) — which fastai 1.0.61 reported."""
    model = converter.load(LALOCEH / "tmp.pth", data=LALOCEH / "ratings.csv")
    truth = json.loads((LALOCEH / "truth.ncf.model.json").read_text())
    expected = _embedding_truth(truth)
    for t in model.tables.values():
        assert list(t.vocab.strings) == expected[t.weight_key]["vocab"]
    assert list(model.tables) == ["uid", "iid"]
    assert any(w.code == "labels" and "untrained" in w.message for w in model.warnings)
    export = converter.load(LALOCEH / "ncf.model", data=LALOCEH / "ratings.csv")  # confirms the file's own labels
    assert any("confirms the file's labels" in w.message for w in export.warnings)


@needs_real
def test_vocab_export_once_labels_every_table(capsys: pytest.CaptureFixture) -> None:
    code, out, err = _run(capsys, ["inspect", str(LALOCEH / "tmp.pth"), "--json", "--vocab", str(LALOCEH / "ncf.model")])
    assert code == 0, err
    manifest = json.loads(out)
    assert [t["name"] for t in manifest["tables"]] == ["uid", "iid"]
    assert all(t["vocab"]["size"] == t["rows"] for t in manifest["tables"])


def test_vocab_export_of_another_learner_is_refused(capsys: pytest.CaptureFixture) -> None:
    fx = Path(__file__).parent / "fixtures"
    code, _, err = _run(capsys, ["inspect", str(ROOT / "fastai2/collab_insteval_seed42.pth"), "--vocab",
                                 str(fx / "fastai2/collab_dot_export.pkl")])
    assert code == 3 and "another learner" in err
    code, _, err = _run(capsys, ["inspect", str(ROOT / "fastai2/collab_insteval_seed42.pth"), "--vocab",
                                 f"user={fx / 'fastai2/collab_dot_export.pkl'}"])
    assert code == 3 and "another learner" in err


@pytest.mark.parametrize("gen", ["fastai1", "fastai2"])
@pytest.mark.parametrize("kind", ["text_lm", "text_clas"])
def test_encoder_labelled_by_its_export(gen: str, kind: str) -> None:
    """save_encoder keys (encoder.weight) differ from the export's (0.encoder.weight): paired by role."""
    fx = Path(__file__).parent / "fixtures" / gen
    model = converter.load(fx / f"{kind}_encoder.pth", vocab=[os.fspath(fx / f"{kind}_export.pkl")])
    export = converter.load(fx / f"{kind}_export.pkl")
    token = next(t for t in export.tables.values() if t.role == "token")
    assert list(next(iter(model.tables.values())).vocab.strings) == list(token.vocab.strings)


def test_csv_sidecar_that_fits_another_table_says_so(capsys: pytest.CaptureFixture) -> None:
    """A merged frame whose first column is not the users: the column fits the other table."""
    case = next(c for c in CASES if c["file"] == "fastai1/collab_insteval_seed42.pth")
    code, _, err = _run(capsys, ["inspect", str(ROOT / case["file"]), "--vocab", f"item={ROOT / case['data']}:s"])
    assert code == 3 and "it fits table user (301 rows)" in err
    code, _, err = _run(capsys, ["inspect", str(ROOT / case["file"]), "--vocab", f"item={ROOT / case['data']}:d"])
    assert code == 3 and "training split" in err and "--data FILE --split seed=S" in err


def test_similar_and_encode_take_the_data_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    case = next(c for c in CASES if c["file"] == "fastai2/tabular_penguins_none.pth")
    truth = _truth(case)
    data = str(ROOT / case["data"])
    cols = _column_args(truth)
    code, out, err = _run(capsys, ["similar", str(ROOT / case["file"]), "Dream", "--data", data, "--split", "none",
                                   *cols, "--json"])
    assert code == 0, err
    assert json.loads(out)["table"] == "island"
    out_path = tmp_path / "encoded.csv"
    code, _, err = _run(capsys, ["encode", str(ROOT / case["file"]), data, str(out_path), "--train-data", data,
                                 "--split", "none", *cols, "--columns", "island", "-q"])
    assert code == 0, err
    import pandas as pd

    encoded = pd.read_csv(out_path)
    model = converter.load(ROOT / case["file"], data=data, split="none", cat=truth["columns"]["cat"],
                           cont=truth["columns"]["cont"])
    frame = pd.read_csv(data)
    row = model.tables["island"].vocab.index(frame["island"].iloc[0])
    np.testing.assert_array_equal(encoded.filter(like="island_").iloc[0].to_numpy(dtype=np.float32),
                                  model.tables["island"].weight[row])
