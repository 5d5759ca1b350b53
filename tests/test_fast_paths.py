"""The fast paths of a big conversion give exactly what the ordinary paths give: weights copied
file to file by the kernel (and the fallback when it cannot), the source hash patched into a
safetensors header after the fact, flushing to disk in the background, packed vocabularies."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st_
from safetensors import safe_open

import converter.ir as ir
from converter import api
from converter.errors import OutputError, UnreadableInputError, VerificationError
from converter.ir import EmbeddingModel, EmbeddingTable, Vocabulary
from converter.lazy import InMemory, PackedStrings, encoded
from converter.loaders.text_lines import TextLines
from converter.saving import save
from converter.verify import verify_output
from converter.writers import read_output
from converter.writers import safetensors as st
from tests._writer_models import TRICKY_TOKENS, source


def _torch_file(tmp_path, container: str, sd: dict) -> str:
    path = tmp_path / f"m-{container}.pth"
    torch.save({"model": OrderedDict(sd), "opt": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]}},
               path, _use_new_zipfile_serialization=(container == "zip"))
    return str(path)


def _collab_sd(dtype=torch.float32) -> dict:
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(300, 16, generator=g)  # the item table is a view at an offset into it
    return {"u_weight.weight": torch.randn(41, 16, generator=g).to(dtype),
            "i_weight.weight": shared[7:77].to(dtype),
            "u_bias.weight": torch.randn(41, 1, generator=g).to(dtype),
            "i_bias.weight": torch.randn(70, 1, generator=g).to(dtype)}


class _CopySpy:
    """Counts os.copy_file_range calls; optionally fails after copying some bytes."""

    def __init__(self, monkeypatch, fail_after: int | None = None) -> None:
        self.calls = 0
        self.real = os.copy_file_range
        self.fail_after = fail_after
        monkeypatch.setattr(os, "copy_file_range", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        count = args[2]
        if self.fail_after is not None:
            count = min(count, 64)  # copy in small pieces so a failure comes mid-table
        return self.real(args[0], args[1], count, *args[3:], **kwargs)


def _expected(sd: dict, name: str) -> np.ndarray:
    return sd[name].float().numpy() if sd[name].dtype == torch.bfloat16 else sd[name].numpy()


@pytest.mark.skipif(not hasattr(os, "copy_file_range"), reason="the platform has no copy_file_range")
@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_weights_are_copied_file_to_file_and_exact(tmp_path, monkeypatch, container):
    sd = _collab_sd()
    src = _torch_file(tmp_path, container, sd)
    spy = _CopySpy(monkeypatch)
    out = tmp_path / "o.safetensors"
    api.convert(src, out, allow_unlabelled=True)
    assert spy.calls >= 2  # one table at an offset inside a shared storage, one alone
    loaded = torch.load(src, weights_only=True)["model"]  # torch's own view of the source
    tables = read_output(out).tables.values()
    assert sorted(t.weight_key for t in tables) == ["i_weight.weight", "u_weight.weight"]
    with safe_open(str(out), "np") as f:  # read by the safetensors library
        for t in tables:
            assert np.array_equal(f.get_tensor(f"{t.name}.weight"), loaded[t.weight_key].numpy()), t.name


@pytest.mark.skipif(not hasattr(os, "copy_file_range"), reason="the platform has no copy_file_range")
@pytest.mark.parametrize("fail_after", [0, 1, 3])
def test_a_failing_kernel_copy_falls_back_to_streaming(tmp_path, monkeypatch, fail_after):
    sd = _collab_sd()
    src = _torch_file(tmp_path, "zip", sd)
    _CopySpy(monkeypatch, fail_after=fail_after)
    seen: list[tuple[int, int]] = []
    out = tmp_path / "o.safetensors"
    api.convert(src, out, progress=lambda done, total: seen.append((done, total)), allow_unlabelled=True)
    monkeypatch.undo()
    verify_output(out, api.load(src))
    assert seen[-1] == (111, 111) and all(0 <= d <= t for d, t in seen)


@pytest.mark.parametrize("dtype, out_dtype, copied", [(torch.float16, "float16", True),
                                                        (torch.float16, "float32", False),
                                                        (torch.bfloat16, "float32", False)])
def test_only_bytes_that_need_no_conversion_are_copied(tmp_path, monkeypatch, dtype, out_dtype, copied):
    sd = _collab_sd(dtype)
    src = _torch_file(tmp_path, "zip", sd)
    spy = _CopySpy(monkeypatch)
    out = tmp_path / "o.safetensors"
    api.convert(src, out, dtype=out_dtype, allow_unlabelled=True)
    assert (spy.calls > 0) == copied
    model = read_output(out)
    u = next(t for t in model.tables.values() if t.weight_key == "u_weight.weight")
    assert np.array_equal(u.weight, _expected(sd, "u_weight.weight").astype(out_dtype))


def test_a_transposed_weight_has_no_file_span(tmp_path):
    sd = {"u_weight.weight": torch.randn(16, 41).t(), "i_weight.weight": torch.randn(70, 16),
          "u_bias.weight": torch.randn(41, 1), "i_bias.weight": torch.randn(70, 1)}
    src = _torch_file(tmp_path, "zip", sd)
    model = api.load(src)
    spans = {t.weight_key: t.weight_file_span(np.dtype("<f4")) for t in model.tables.values()}
    assert spans["u_weight.weight"] is None and spans["i_weight.weight"] is not None
    path, offset, nbytes, _identity = spans["i_weight.weight"]
    with open(path, "rb") as f:
        f.seek(offset)
        assert f.read(nbytes) == sd["i_weight.weight"].numpy().tobytes()


@pytest.mark.skipif(not hasattr(os, "copy_file_range"), reason="the platform has no copy_file_range")
def test_a_source_replaced_after_loading_is_not_copied_from(tmp_path, monkeypatch):
    sd = _collab_sd()
    src = _torch_file(tmp_path, "zip", sd)
    model = api.load(src)
    os.rename(src, src + ".old")  # the loaded model keeps the old file mapped
    other = _collab_sd()
    other["u_weight.weight"] = other["u_weight.weight"] + 1
    _torch_file(tmp_path, "zip", other)  # a different file under the same name
    spy = _CopySpy(monkeypatch)
    out = tmp_path / "o.safetensors"
    save(model, out, allow_unlabelled=True)
    assert spy.calls == 0
    u = next(t for t in read_output(out).tables.values() if t.weight_key == "u_weight.weight")
    assert np.array_equal(u.weight, sd["u_weight.weight"].numpy())


def test_the_source_hash_is_patched_in_when_it_arrives_late(tmp_path, monkeypatch):
    sd = _collab_sd()
    src = _torch_file(tmp_path, "zip", sd)
    real = ir.file_sha256

    def slow(path, *a, **k):
        time.sleep(0.5)
        return real(path, *a, **k)

    monkeypatch.setattr(ir, "file_sha256", slow)
    for verify in (True, False):
        out = tmp_path / f"o-{verify}.safetensors"
        api.convert(src, out, verify=verify, allow_unlabelled=True)
        with safe_open(str(out), "np") as f:
            manifest = json.loads(f.metadata()["embconv.manifest"])
        assert manifest["source"]["sha256"] == hashlib.sha256(open(src, "rb").read()).hexdigest()


def test_a_failed_flush_to_disk_leaves_nothing(tmp_path, monkeypatch):
    sd = _collab_sd()
    src = _torch_file(tmp_path, "zip", sd)
    model = api.load(src)

    def broken_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    out = tmp_path / "o.safetensors"
    with pytest.raises(OutputError, match="flush the output to disk"):
        save(model, out, allow_unlabelled=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [os.path.basename(src)]


def _reference_lines(path) -> list[str]:
    """How a text sidecar was read before it was packed (the definition of its tokens)."""
    with open(path, encoding="utf-8", newline="") as f:
        tokens = f.read().split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return [t[:-1] if t.endswith("\r") else t for t in tokens]


@settings(max_examples=300, deadline=None)
@given(st_.lists(st_.sampled_from(["a", "\r", "\n", "\r\n", "é", "日", " ", "#na#", "\u2028", "\x85"]), max_size=14))
def test_text_sidecars_read_like_lines(tmp_path_factory, parts):
    path = tmp_path_factory.mktemp("lines") / "v.txt"
    path.write_bytes("".join(parts).encode("utf-8"))
    lines = TextLines(str(path))
    expected = _reference_lines(path)
    assert list(lines) == expected and len(lines) == len(expected)
    for lo, hi in [(0, len(expected)), (0, 1), (1, len(expected))]:
        got, got_offsets = lines.encoded(lo, min(hi, len(expected)))
        want, want_offsets = encoded(expected, lo, min(hi, len(expected)))
        assert got == want and np.array_equal(got_offsets, want_offsets)


def test_packed_strings_encode_like_lists():
    strings = [*TRICKY_TOKENS, *(f"tok{i}" for i in range(200))]
    data, offsets = encoded(strings, 0, len(strings))
    packed = PackedStrings(np.frombuffer(data, dtype=np.uint8), offsets)
    assert list(packed) == strings and packed[5] == strings[5] and packed[3:9] == strings[3:9]
    for lo, hi in [(0, 0), (0, 3), (10, 17), (100, 217)]:
        a, ao = encoded(packed, lo, hi)
        b, bo = encoded(strings, lo, hi)
        assert a == b and np.array_equal(ao, bo)


def test_verification_compares_packed_vocabularies_byte_for_byte(tmp_path):
    tokens = ["#na#", *(f"user{i}" for i in range(1, 5000))]
    data, offsets = encoded(tokens, 0, len(tokens))
    w = np.random.default_rng(0).standard_normal((len(tokens), 4)).astype(np.float32)
    packed = PackedStrings(np.frombuffer(data, dtype=np.uint8), offsets)
    t = EmbeddingTable(name="user", role="user", weight_source=InMemory(w),
                       vocab=Vocabulary(packed, unknown_index=0), weight_key="user.weight")
    m = EmbeddingModel(OrderedDict(user=t), source())
    out = tmp_path / "o.safetensors"
    save(m, out)
    verify_output(out, m)
    header, base = st.read_header(out)
    begin = header["user.vocab.utf8"]["data_offsets"][0]
    at = base + begin + int(offsets[4321]) + 4  # the digit after "user" in row 4321
    raw = bytearray(out.read_bytes())
    raw[at] = ord("9") if raw[at] != ord("9") else ord("8")
    out.write_bytes(bytes(raw))
    with pytest.raises(VerificationError, match="token of row 4321"):
        verify_output(out, m)


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_text_sidecars_read_back_block_by_block(tmp_path, monkeypatch, step):
    import converter.loaders.text_lines as text_lines

    monkeypatch.setattr(text_lines, "STEP", step)
    rng = np.random.default_rng(step)
    pieces = ["a", "\r", "\n", "\r\n", "é", "日", " ", "\n\n", "#na#"]
    for case in range(60):
        path = tmp_path / f"v{case}.txt"
        path.write_bytes("".join(rng.choice(pieces, size=rng.integers(0, 30))).encode("utf-8"))
        lines, expected = TextLines(str(path)), _reference_lines(path)
        assert list(lines) == expected
        for lo in range(len(expected) + 1):
            for hi in range(lo, len(expected) + 1):
                assert lines[lo:hi] == expected[lo:hi]
                got, got_offsets = lines.encoded(lo, hi)
                want, want_offsets = encoded(expected, lo, hi)
                assert got == want and np.array_equal(got_offsets, want_offsets), (case, lo, hi)


def test_a_text_sidecar_that_changes_or_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"#na#\nu1\nu2\n")
    lines = TextLines(str(path))
    path.write_bytes(b"#na#\nu1\nu2\nu3\n")
    with pytest.raises(UnreadableInputError, match="changed while it was read"):
        list(lines)
    path.write_bytes(b"#na#\nu\xff1\n")
    with pytest.raises(UnreadableInputError, match="not UTF-8 text"):
        TextLines(str(path))


def test_a_big_text_sidecar_stays_in_its_file(tmp_path):
    path = tmp_path / "users.txt"
    n = 300_000
    path.write_text("#na#\n" + "".join(f"user{i}\n" for i in range(1, n)), encoding="utf-8")
    lines = TextLines(str(path))
    assert len(lines) == n and lines[0] == "#na#" and lines[n - 1] == f"user{n - 1}"
    assert lines._starts.nbytes < 100  # an index entry per 65,536 lines, not a token per line


_POOL = ["a", "b", "a#2", "a#3", "", "%", " ", "b#2", "xxfake", "xxfake#2", "c d", "c%20d", "\ud800"]


@settings(max_examples=400, deadline=None)
@given(st_.lists(st_.sampled_from(_POOL), max_size=16), st_.sampled_from([1, 2, 3, 64]), st_.booleans())
def test_renamed_keys_streams_what_unique_keys_gives(strings, chunk, colliding):
    from converter.writers import tokens

    keys, renamed = tokens.unique_keys(list(strings))
    saved = tokens._hash
    tokens._hash = (lambda s: len(s) % 3) if colliding else hash  # collisions must cost looks, not keys
    try:
        got = tokens.renamed_keys(strings, chunk=chunk)
    finally:
        tokens._hash = saved
    assert sorted(got) == renamed
    assert all(keys[row] == key for row, key in got.items())


@pytest.mark.parametrize("row", [0, 1, 5, 16])
def test_a_vocabulary_without_one_row_is_a_view(row):
    from converter.lazy import WithoutRow as StringsWithoutRow

    strings = [*TRICKY_TOKENS]
    view = StringsWithoutRow(strings, row)
    expected = strings[:row] + strings[row + 1 :]
    assert list(view) == expected and len(view) == len(expected)
    for lo in range(len(expected) + 1):
        for hi in range(lo, len(expected) + 1):
            assert view[lo:hi] == expected[lo:hi]
            got, got_offsets = encoded(view, lo, hi)
            want, want_offsets = encoded(expected, lo, hi)
            assert got == want and np.array_equal(got_offsets, want_offsets)
