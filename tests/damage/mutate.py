"""Seeds and aimed mutations for the fuzz tests (hypothesis strategies).

A damaged file is a seed plus a plan: up to three *point* mutations (bit flip, byte overwrite,
a length/count field set to an interesting value), then at most one *structural* mutation (zip
central-directory surgery, an opcode range duplicated or deleted, a legacy blob duplicated or
dropped, a zip appended or prepended), then at most one truncation at a structural boundary
(± 2 bytes). Plans are plain tuples, so hypothesis shrinks them and prints them readably."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from .structure import Layout, layout, legacy_itemsizes

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
REAL_MODELS = Path(os.environ.get("EMBCONV_REAL_MODELS", ROOT.parent / "shared" / "real-models"))
MODEL_SUFFIXES = (".pth", ".pkl", ".h5")
MAX_HOSTILE_SEED = 64 << 10  # hostile-corpus files larger than this are limit tests, not seeds


@dataclass(frozen=True)
class Seed:
    name: str
    origin: str  # "fixture" | "real" | "hostile"
    data: bytes
    layout: Layout
    suffix: str = ".pth"


def fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("fastai*/*") if p.suffix in MODEL_SUFFIXES)


def real_model_files() -> list[Path]:
    if not REAL_MODELS.is_dir():
        return []
    return sorted(p for p in REAL_MODELS.glob("*/*") if p.is_file() and p.suffix in MODEL_SUFFIXES)


def _seed_from_file(path: Path, origin: str) -> Seed:
    data = path.read_bytes()
    sizes = legacy_itemsizes(str(path)) if data[:2] == b"\x80\x02" else None
    name = f"{path.parent.name}/{path.name}"
    return Seed(name, origin, data, layout(data, sizes), path.suffix)


@functools.cache
def file_seeds(include_real: bool = True) -> tuple[Seed, ...]:
    """Fixtures and (when present) the real models, read from where they are."""
    seeds = [_seed_from_file(p, "fixture") for p in fixture_files()]
    if include_real:
        seeds += [_seed_from_file(p, "real") for p in real_model_files()]
    return tuple(seeds)


CANARY_DIR = Path(tempfile.mkdtemp(prefix="embconv-fuzz-canary-"))
CANARY = CANARY_DIR / "CANARY"  # tests assert it never exists; the directory goes at exit
atexit.register(shutil.rmtree, CANARY_DIR, True)


@functools.cache
def hostile_seeds() -> tuple[Seed, ...]:
    """The hand-made hostile corpus (tests/hostile), built against ``CANARY``: every payload in
    it would create that file if anything ran it."""
    from ..hostile.corpus import CASES

    out = []
    for case in CASES:
        if case.extra_files is not None:
            continue
        data = case.build(str(CANARY))
        if len(data) <= MAX_HOSTILE_SEED:
            out.append(Seed(f"hostile/{case.name}", "hostile", data, layout(data), case.suffix))
    return tuple(out)


# ------------------------------------------------------------------------------------------
# plans

def interesting_values(f_value: int, width: int, signed: bool) -> list[int]:
    bits = 8 * width
    vals = [0, 1, f_value - 1, f_value + 1, 2 * f_value, f_value + 4096, (1 << bits) - 1,
            (1 << (bits - 1)) - 1, 1 << (bits - 1)]
    if bits >= 32:
        vals += [0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
    if bits >= 64:
        vals += [1 << 62, (1 << 63) - 1, -1]
    return vals


@st.composite
def point_op(draw, seed: Seed):
    lay, n = seed.layout, len(seed.data)
    kind = draw(st.sampled_from(["flip", "flip_hot", "write", "field", "field"] if lay.fields
                                else ["flip", "write"]))
    if kind in ("flip", "flip_hot"):
        off = (draw(st.sampled_from(lay.hot_offsets())) if kind == "flip_hot"
               else draw(st.integers(0, n - 1)))
        return ("flip", min(off, n - 1), draw(st.integers(0, 7)))
    if kind == "write":
        hot = draw(st.booleans())
        off = draw(st.sampled_from(lay.hot_offsets())) if hot else draw(st.integers(0, n - 1))
        payload = draw(st.one_of(
            st.binary(min_size=1, max_size=8),
            st.sampled_from([b"\x00", b"\xff", b"\xff\xff\xff\xff", b"PK\x03\x04", b"PK\x01\x02",
                             b"PK\x05\x06", b"\n", b"(", b".", b"\x80\x05", b"\x95"]),
        ))
        return ("write", min(off, n - 1), payload)
    i = draw(st.integers(0, len(lay.fields) - 1))
    f = lay.fields[i]
    value = draw(st.one_of(st.sampled_from(interesting_values(f.read(seed.data), f.width, f.signed)),
                           st.integers(0, (1 << (8 * f.width)) - 1)))
    return ("field", i, value)


@st.composite
def structural_op(draw, seed: Seed):
    lay = seed.layout
    kinds = []
    if lay.cd_entries:
        kinds += ["cd_dup", "cd_drop", "cd_swap", "cd_zero", "cd_offset", "zip_prepend"]
    if lay.blobs:
        kinds += ["blob_dup", "blob_drop"]
    if any(len(p.ops) > 2 for p in lay.pickles):
        kinds += ["ops_dup", "ops_del"]
    if seed.layout.container in ("torch-legacy", "pickle"):
        kinds += ["zip_append"]
    if not kinds:
        return None
    kind = draw(st.sampled_from(kinds))
    if kind.startswith("cd_"):
        i = draw(st.integers(0, len(lay.cd_entries) - 1))
        j = draw(st.integers(0, len(lay.cd_entries) - 1))
        return (kind, i, j, draw(st.integers(-64, 64)))
    if kind.startswith("blob_"):
        return (kind, draw(st.integers(0, len(lay.blobs) - 1)))
    if kind.startswith("ops_"):
        spans = [p for p in lay.pickles if len(p.ops) > 2]
        span = spans[draw(st.integers(0, len(spans) - 1))]
        a = draw(st.integers(0, len(span.ops) - 2))
        b = draw(st.integers(a + 1, min(len(span.ops) - 1, a + 8)))
        return (kind, span.ops[a], span.ops[b])
    return (kind,)


@st.composite
def plans(draw, seeds: tuple[Seed, ...]):
    """(seed index, point ops, structural op or None, truncation length or None)."""
    k = draw(st.integers(0, len(seeds) - 1))
    seed = seeds[k]
    points = tuple(draw(st.lists(point_op(seed), min_size=0, max_size=3)))
    structural = draw(st.one_of(st.none(), structural_op(seed))) if draw(st.booleans()) else None
    cut = None
    if draw(st.integers(0, 3)) == 0 and seed.layout.cuts:
        cut = max(0, draw(st.sampled_from(seed.layout.cuts)) + draw(st.integers(-2, 2)))
    if not points and structural is None and cut is None:
        points = (draw(point_op(seed)),)
    return (k, points, structural, cut)


# ------------------------------------------------------------------------------------------
# applying a plan

def apply(seed: Seed, points, structural, cut) -> bytes:
    data = bytearray(seed.data)
    lay = seed.layout
    for op in points:
        if op[0] == "flip":
            data[op[1]] ^= 1 << op[2]
        elif op[0] == "write":
            off, payload = op[1], op[2]
            data[off : off + len(payload)] = payload[: max(0, len(data) - off)]
        elif op[0] == "field":
            lay.fields[op[1]].write(data, op[2])
    if structural is not None:
        data = _structural(data, lay, structural)
    if cut is not None:
        del data[cut:]
    return bytes(data)


def _eocd_fix(data: bytearray, eocd: int, d_entries: int, d_size: int) -> None:
    n_here, n_total, cd_size = struct.unpack_from("<HHI", data, eocd + 8)
    struct.pack_into("<HHI", data, eocd + 8, (n_here + d_entries) & 0xFFFF, (n_total + d_entries) & 0xFFFF,
                     (cd_size + d_size) & 0xFFFFFFFF)


def _structural(data: bytearray, lay: Layout, op: tuple) -> bytearray:
    kind = op[0]
    if kind in ("cd_dup", "cd_drop", "cd_swap", "cd_zero", "cd_offset") and lay.eocd is not None:
        i, j, delta = op[1], op[2], op[3]
        off, ln = lay.cd_entries[i]
        if kind == "cd_dup":  # a second entry of the same name, right after the first
            entry = bytes(data[off : off + ln])
            data[off + ln : off + ln] = entry
            _eocd_fix(data, lay.eocd + ln, 1, ln)
        elif kind == "cd_drop":
            del data[off : off + ln]
            _eocd_fix(data, lay.eocd - ln, -1, -ln)
        elif kind == "cd_swap" and i != j:
            (a_off, a_ln), (b_off, b_ln) = sorted([lay.cd_entries[i], lay.cd_entries[j]])
            a, b = bytes(data[a_off : a_off + a_ln]), bytes(data[b_off : b_off + b_ln])
            middle = bytes(data[a_off + a_ln : b_off])
            data[a_off : b_off + b_ln] = b + middle + a
        elif kind == "cd_zero":
            start = lay.cd_offset or 0
            data[start : lay.eocd] = bytes(lay.eocd - start)
        elif kind == "cd_offset":
            (cd_offset,) = struct.unpack_from("<I", data, lay.eocd + 16)
            struct.pack_into("<I", data, lay.eocd + 16, max(0, cd_offset + delta))
    elif kind in ("blob_dup", "blob_drop"):
        count_off, _start, end = lay.blobs[op[1]]
        blob = bytes(data[count_off:end])
        if kind == "blob_dup":
            data[end:end] = blob
        else:
            del data[count_off:end]
    elif kind in ("ops_dup", "ops_del"):
        a, b = op[1], op[2]
        if kind == "ops_dup":
            data[b:b] = data[a:b]
        else:
            del data[a:b]
    elif kind == "zip_append":
        data += _tiny_zip()
    elif kind == "zip_prepend":
        data[0:0] = b"\x80\x02]q\x00."  # a complete pickle in front of the zip
    return data


@functools.lru_cache(maxsize=1)
def _tiny_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("archive/version", b"3\n")
    return buf.getvalue()
