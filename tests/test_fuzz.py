"""Fuzzing the sniffer, both torch containers, the restricted unpickler and the loaders.

Seeds: the generated fixtures (tests/fixtures/fastai*/*.pth|*.pkl|*.h5), the real models in
../shared/real-models (read in place; skipped when absent) and the hand-made hostile corpus
(tests/hostile, built against a canary file). Mutations (tests/damage/mutate.py): bit flips and
byte overwrites (anywhere, or aimed at field and opcode bytes), length/count fields set to
interesting values (zip sizes/offsets/counts, legacy int64 element counts, BINUNICODE & co.
lengths, integer opcodes that carry numels, sizes, strides and offsets, memo indices),
central-directory surgery (duplicated, dropped, swapped or zeroed entries, a moved directory),
opcode ranges duplicated or deleted, legacy blobs duplicated or dropped, zips appended or
prepended, and truncation at every structural boundary (± 2 bytes).

Property (tests/damage/harness.py): ``open_model_file`` + ``to_numpy()`` of every tensor, and
``converter.load`` + every table's arrays, each succeed or raise ``EmbconvError`` with exit code
1 or 3 — never another exception, never more than 10 s, never more than 2 GiB of extra address
space (RLIMIT_AS) — and no payload ever runs (canary file, no forbidden module imported).

Default run: ~750 derandomized examples in a few seconds. ``EMBCONV_FUZZ_LONG=1`` (``make
fuzz-long``) runs many thousands of random ones; ``EMBCONV_FUZZ_EXAMPLES=N`` overrides the count
of the file-level tests. ``EMBCONV_FUZZ_STATS=out.json`` writes the outcome counts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converter.errors import EmbconvError, UnreadableInputError

from .damage.harness import Tally, Violation, check_file, deadline, forbidden_imports, memory_cap
from .damage.mutate import CANARY, Seed, apply, file_seeds, hostile_seeds, plans
from .damage.structure import layout

LONG = os.environ.get("EMBCONV_FUZZ_LONG") == "1"
_override = int(os.environ.get("EMBCONV_FUZZ_EXAMPLES", "0") or 0)


def _settings(short: int, long: int) -> settings:
    n = _override or (long if LONG else short)
    return settings(
        max_examples=n,
        derandomize=not LONG,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
    )


FILE_SEEDS = file_seeds()
HOSTILE_SEEDS = hostile_seeds()
TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    TALLY.dump("test_fuzz")
    if LONG:
        print("\nfuzz outcome counts:", dict(sorted(TALLY.counts.items())), file=sys.stderr)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(workdir: Path, seed: Seed, data: bytes) -> Path:
    path = workdir / ("damaged" + seed.suffix)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------------
# whole files through open_model_file and converter.load

@pytest.mark.skipif(not FILE_SEEDS, reason="no fixtures")
@_settings(short=300, long=50_000)
@given(plan=plans(FILE_SEEDS))
def test_damaged_files_refused_cleanly(plan, workdir: Path) -> None:
    k, points, structural, cut = plan
    seed = FILE_SEEDS[k]
    path = _write(workdir, seed, apply(seed, points, structural, cut))
    try:
        out = check_file(path)
    except Violation as e:
        raise AssertionError(f"{seed.name} damaged by {points} {structural} cut={cut}: {e}") from None
    TALLY.add(f"files.{seed.origin}", out)


@pytest.mark.skipif(not HOSTILE_SEEDS, reason="no hostile corpus")
@_settings(short=100, long=10_000)
@given(plan=plans(HOSTILE_SEEDS))
def test_damaged_hostile_files_never_run_anything(plan, workdir: Path) -> None:
    k, points, structural, cut = plan
    seed = HOSTILE_SEEDS[k]
    path = _write(workdir, seed, apply(seed, points, structural, cut))
    before = set(sys.modules)
    try:
        out = check_file(path)
    except Violation as e:
        raise AssertionError(f"{seed.name} damaged by {points} {structural} cut={cut}: {e}") from None
    finally:
        assert not CANARY.exists(), f"CANARY CREATED by {seed.name} damaged by {points} {structural} cut={cut}"
    assert not forbidden_imports(before), f"{seed.name}: imported {forbidden_imports(before)}"
    TALLY.add("hostile", out)


# ------------------------------------------------------------------------------------------
# the pieces on their own: sniffer, zip directory reader, unpickler

@_settings(short=100, long=20_000)
@given(head=st.one_of(st.binary(max_size=600),
                      st.sampled_from([s.data[:600] for s in FILE_SEEDS] or [b""]).flatmap(
                          lambda h: st.tuples(st.just(h), st.integers(0, 599), st.integers(0, 255)).map(
                              lambda t: t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1 :]))),
       size=st.integers(0, 1 << 40))
def test_sniffer(head: bytes, size: int) -> None:
    from converter.pickle import sniff

    try:
        kind = sniff(head, size)
    except UnreadableInputError as e:
        TALLY.counts["sniff.exit3"] += 1
        assert e.exit_code == 3
        return
    TALLY.counts[f"sniff.{kind}"] += 1
    assert kind in ("torch-zip", "torch-legacy", "torch-tar", "pickle")


ZIP_SEEDS = tuple(s for s in FILE_SEEDS if s.layout.container == "torch-zip")


@pytest.mark.skipif(not ZIP_SEEDS, reason="no zip fixtures")
@_settings(short=100, long=20_000)
@given(plan=plans(ZIP_SEEDS))
def test_zip_directory_reader(plan) -> None:
    from converter.pickle.zipreader import read_entries

    k, points, structural, cut = plan
    data = apply(ZIP_SEEDS[k], points, structural, cut)
    try:
        with memory_cap(), deadline(10):
            entries = read_entries(data)
    except EmbconvError as e:
        assert e.exit_code == 3
        TALLY.counts["zipreader.exit3"] += 1
        return
    TALLY.counts["zipreader.ok"] += 1
    for e in entries.values():  # every entry it returns lies inside the file
        assert 0 <= e.header_offset < e.data_offset <= e.data_offset + e.compressed_size <= len(data)


def _pickle_seeds() -> tuple[Seed, ...]:
    """The pickles inside the seeds (zip data.pkl, the legacy main pickle, plain pickles)."""
    out = []
    for s in FILE_SEEDS + HOSTILE_SEEDS:
        spans = s.layout.pickles
        span = spans[3] if s.layout.container == "torch-legacy" and len(spans) >= 4 else (spans[0] if spans else None)
        if span is None or span.end - span.start < 4 or span.end - span.start > (256 << 10):
            continue
        data = s.data[span.start : span.end]
        out.append(Seed(s.name + ":pickle", s.origin, data, layout(data)))
    return tuple(out)


PICKLE_SEEDS = _pickle_seeds()


@pytest.mark.skipif(not PICKLE_SEEDS, reason="no pickles")
@_settings(short=150, long=30_000)
@given(plan=plans(PICKLE_SEEDS))
def test_unpickler(plan) -> None:
    """The restricted VM alone, with a persistent-id handler that accepts any well-formed storage
    id without data: everything it builds, and the walk over it, stays inside the property."""
    from converter.pickle import describe, iter_tensors
    from converter.pickle.containers import _Reader
    from converter.pickle.globals import Resolver
    from converter.pickle.vm import Unpickler

    k, points, structural, cut = plan
    seed = PICKLE_SEEDS[k]
    data = apply(seed, points, structural, cut)

    def nested(b: bytes):
        raise UnreadableInputError("nested torch file (not followed in this test)")

    resolver = Resolver(nested)
    reader = _Reader("fuzz.pkl", data, resolver)

    def persistent(pid, offset):
        fields = len(pid) if isinstance(pid, tuple) and len(pid) in (5, 6) else 5
        return reader._storage_pid(pid, offset, fields)

    before = set(sys.modules)
    try:
        with memory_cap(), deadline(10):
            root, _end = Unpickler(data, 0, resolver, persistent).load()
            describe(root)
            for _ in iter_tensors(root):
                pass
    except EmbconvError as e:
        assert e.exit_code in (1, 3), e
        assert "needs more memory than allowed" not in str(e), e
        TALLY.counts[f"unpickler.exit{e.exit_code}"] += 1
    else:
        TALLY.counts["unpickler.ok"] += 1
    finally:
        assert not CANARY.exists(), f"CANARY CREATED by {seed.name} damaged by {points} {structural}"
    assert not forbidden_imports(before)


# ------------------------------------------------------------------------------------------

def test_undamaged_seeds_pass_the_property(workdir: Path) -> None:
    """Controls: every seed file as it is satisfies the property, and fixtures and real models
    load (so the damaged runs start from files that really work)."""
    for seed in FILE_SEEDS:
        out = check_file(_write(workdir, seed, seed.data))
        if seed.name != "fastai07/itos.pkl":  # a vocabulary pickle: no tensors, refused by load
            assert out.code == 0, f"{seed.name}: {out.open_message or out.load_message}"
