"""Damaged embconv outputs (bit flips, truncation, changed bytes, a broken word2vec sidecar)
give ``inspect`` and ``verify`` one error line naming the file and exit 3 or 4 — never an
"internal error" and never a traceback. Aimed damage (tests/damage/outputs.py: headers,
metadata and manifests that are well-formed containers but say something impossible) is
checked through every door: ``inspect``, ``verify`` and ``convert`` on the command line, and
``converter.load`` / ``converter.verify``, which raise an EmbconvError and nothing else."""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import converter
from converter.cli import main
from converter.errors import EmbconvError
from converter.ir import ManifestError, validate_manifest
from converter.saving import save
from tests._writer_models import collab_model
from tests.damage.harness import check_file
from tests.damage.outputs import CASES, st_parts


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs")
    model = collab_model()
    files = {}
    for ext in ("safetensors", "onnx", "vec", "bin"):
        sub = model.select(["userId"]) if ext in ("vec", "bin") else model
        files[ext] = folder / f"o.{ext}"
        save(sub, files[ext])
    save(model, folder / "ref.safetensors")
    return folder, files


def _damage(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.random()
    if kind < 0.5:
        for _ in range(rng.randint(1, 4)):
            j = rng.randrange(len(b))
            b[j] ^= 1 << rng.randrange(8)
    elif kind < 0.8:
        del b[rng.randrange(len(b)):]
    else:
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


@pytest.mark.parametrize("ext", ["safetensors", "onnx", "vec", "bin"])
def test_damaged_outputs_fail_in_one_clear_line(outputs, ext):
    folder, files = outputs
    rng = random.Random(ext)
    original = files[ext].read_bytes()
    sidecar = files[ext].with_name(files[ext].name + ".manifest.json")
    for case in range(120):
        damaged = folder / f"d.{ext}"
        damaged.write_bytes(_damage(original, rng))
        if sidecar.exists():
            damaged.with_name(damaged.name + ".manifest.json").write_bytes(sidecar.read_bytes())
        for argv in (["inspect", str(damaged)], ["verify", str(damaged), "--against", str(folder / "ref.safetensors")]):
            code, err = _run(argv)
            assert code in (0, 1, 3, 4), (case, argv, code, err)
            assert "internal error" not in err and "Traceback" not in err, (case, argv, err)
            if code:
                assert err.count("\n") == 1 and str(damaged) in err, (case, argv, err)


@pytest.mark.parametrize("change", [
    lambda side: side.pop("embconv.word2vec"),
    lambda side: side["embconv.manifest"].pop("tables"),
    lambda side: side["embconv.manifest"]["tables"][0].pop("name"),
    lambda side: side["embconv.manifest"]["source"].update(generation="fastai-9"),
    lambda side: side["embconv.word2vec"].update(renamed_rows="all"),
    lambda side: side.update({"embconv.manifest": [1, 2]}),
])
def test_a_broken_word2vec_sidecar_is_named(outputs, change):
    folder, files = outputs
    side = json.loads(files["vec"].with_name("o.vec.manifest.json").read_text(encoding="utf-8"))
    change(side)
    damaged = folder / "s.vec"
    damaged.write_bytes(files["vec"].read_bytes())
    damaged.with_name("s.vec.manifest.json").write_text(json.dumps(side), encoding="utf-8")
    code, err = _run(["inspect", str(damaged)])
    assert code == 3 and "internal error" not in err and str(damaged) in err, err


def test_offsets_that_split_a_character_are_refused(outputs):
    folder, files = outputs
    with safe_open(str(files["safetensors"]), "np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors["userId.vocab.utf8"] = np.frombuffer("#na#éu2u3".encode(), dtype=np.uint8).copy()
    tensors["userId.vocab.offsets"] = np.array([0, 4, 5, 8, 10], dtype=np.int64)  # 5 is inside 'é'
    damaged = folder / "split.safetensors"
    save_file(tensors, str(damaged), metadata=meta)
    code, err = _run(["inspect", str(damaged)])
    assert code == 3 and "splits a UTF-8 character" in err, err


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Path]:
    """Untouched outputs to damage (safetensors: both tables; the rest: ``userId``) and the
    reference ``verify`` compares with."""
    folder = tmp_path_factory.mktemp("seeds")
    model = collab_model()
    files = {}
    for ext in ("safetensors", "vec", "bin", "parquet"):
        if ext == "parquet" and not _has_pyarrow():
            continue
        files[ext] = folder / f"o.{ext}"
        save(model if ext == "safetensors" else model.select(["userId"]), files[ext])
    files["ref"] = folder / "ref.safetensors"
    save(model, files["ref"])
    return files


def _has_pyarrow() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _damaged(seeds: dict[str, Path], case: str, folder: Path) -> Path:
    ext, build = CASES[case]
    if ext not in seeds:
        pytest.skip("pyarrow is not installed")
    damaged = folder / f"d.{ext}"
    build(seeds[ext], damaged)
    return damaged


@pytest.mark.parametrize("case", list(CASES))
def test_aimed_damage_fails_in_one_line_through_every_door(seeds, case, tmp_path):
    damaged = _damaged(seeds, case, tmp_path)
    for argv, codes in ((["inspect", str(damaged)], (3,)),
                        (["verify", str(damaged), "--against", str(seeds["ref"])], (3, 4)),
                        (["convert", str(damaged), str(tmp_path / "other.vec")], (3,))):
        code, err = _run(argv)
        assert code in codes, (argv, code, err)
        assert err.count("\n") == 1 and str(damaged) in err, (argv, err)
        assert "internal error" not in err and "Traceback" not in err, (argv, err)
    assert not list(tmp_path.glob("other*")), "convert wrote something from a damaged output"
    # the library: EmbconvError (exit 3) from load() or from materialising what it returned …
    out = check_file(damaged, stages="load")
    assert out.load_code == 3, (case, out)
    # … and from verify()
    with pytest.raises(EmbconvError) as e:
        converter.verify(damaged, seeds["ref"])
    assert e.value.exit_code in (3, 4), e.value


# Manifests the schema allows that still do not describe the file they are in (rows, sizes).
_CONSISTENCY_ONLY = {"manifest-rows-wrong", "manifest-dim-wrong", "manifest-vocab-size-wrong",
                     "manifest-unknown-index-out-of-range"}
# Stricter than JSON Schema on purpose: there 4.0 is an "integer" (no fraction); embconv writes
# counts as integers only, and a float count read back would flow into shapes and messages.
_STRICTER = {"manifest-rows-a-float"}
# Damage no JSON parser gets past to a document (NaN, 1e999, 5000 digits, a key twice, depth).
_NOT_JSON = {"manifest-y-range-nan", "manifest-size-infinite", "manifest-size-5000-digits",
             "manifest-duplicate-key", "manifest-deeply-nested", "manifest-nested-a-list"}


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("manifest-") and c not in _NOT_JSON])
def test_the_manifest_check_agrees_with_the_json_schema(seeds, case, tmp_path):
    """``validate_manifest`` (by hand: jsonschema is no runtime dependency) refuses exactly what
    schemas/manifest.schema.json refuses, for every damaged manifest above and the intact one."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parents[1] / "schemas" / "manifest.schema.json").read_text())
    manifest = json.loads(st_parts(_damaged(seeds, case, tmp_path))[0]["__metadata__"]["embconv.manifest"])
    intact = json.loads(st_parts(seeds["safetensors"])[0]["__metadata__"]["embconv.manifest"])
    validate_manifest(intact)
    jsonschema.validate(intact, schema)
    schema_ok = jsonschema.Draft202012Validator(schema).is_valid(manifest)
    try:
        validate_manifest(manifest)
        ours_ok = True
    except ManifestError:
        ours_ok = False
    assert ours_ok == (schema_ok and case not in _STRICTER), (case, ours_ok, schema_ok)
    assert schema_ok == (case in _CONSISTENCY_ONLY | _STRICTER), case
