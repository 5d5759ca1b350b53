"""Damaged embconv outputs (bit flips, truncation, changed bytes, a broken word2vec sidecar)
give ``inspect`` and ``verify`` one error line naming the file and exit 3 or 4 — never an
"internal error" and never a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import random

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from converter.cli import main
from converter.saving import save
from tests._writer_models import collab_model


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
