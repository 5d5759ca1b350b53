"""Truncation sweep: every fixture and real model cut at 200 evenly spaced lengths.

What is allowed, precisely. Each file has a *structural end* E (computed independently of the
converter, tests/damage/structure.py):

* torch zip: the end of the end-of-central-directory record, E = EOCD + 22 + comment length;
* torch legacy: the end of the last storage blob (8-byte count + count × itemsize);
* plain pickle: one past its STOP opcode.

A file cut to a length L < E must be refused by ``open_model_file`` (+ materialising) and by
``converter.load`` with ``EmbconvError`` exit code 3 — not 1, not another exception, not a
partial success. A cut at L >= E only removes trailing bytes the formats ignore; it must load
exactly as the whole file does. (Every seed shipped today ends at E, so all 200 cuts of each are
refusals; the rule is still stated for files that carry trailing data.)

Also via the CLI for a sample of cuts: ``python -m converter inspect CUT`` exits 3 with exactly
one stderr line that names the file and no traceback."""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from .damage.harness import Tally, check_file
from .damage.mutate import Seed, file_seeds

HERE = Path(__file__).resolve().parent
CUTS = 200
SEEDS = file_seeds()
TALLY = Tally()


def structural_end(seed: Seed) -> int:
    lay = seed.layout
    if lay.container == "torch-zip":
        assert lay.eocd is not None, seed.name
        (comment,) = struct.unpack_from("<H", seed.data, lay.eocd + 20)
        return lay.eocd + 22 + comment
    if lay.container == "torch-legacy":
        assert lay.blobs, f"{seed.name}: no storage blobs found"
        return lay.blobs[-1][2]
    return lay.pickles[0].end


def cut_lengths(size: int, n: int = CUTS) -> list[int]:
    return sorted({(i * size) // n for i in range(n)})


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    TALLY.dump("test_truncation")


@pytest.mark.parametrize("seed", SEEDS, ids=[s.name for s in SEEDS])
def test_every_cut_is_refused(seed: Seed, tmp_path: Path) -> None:
    whole = check_file(_write(tmp_path, seed, seed.data))
    end = structural_end(seed)
    assert end <= len(seed.data)
    path = tmp_path / ("cut" + seed.suffix)
    failures = []
    for length in cut_lengths(len(seed.data)):
        path.write_bytes(seed.data[:length])
        out = check_file(path)
        TALLY.add(f"{seed.origin}", out)
        if length < end:
            if (out.open_code, out.load_code) != (3, 3):
                failures.append(f"cut at {length}/{len(seed.data)}: open {out.open_code} load {out.load_code} "
                                f"({out.open_message[:100]})")
        elif (out.open_code, out.load_code) != (whole.open_code, whole.load_code):
            failures.append(f"cut at {length} (>= structural end {end}) changed the outcome")
    assert not failures, f"{seed.name}:\n" + "\n".join(failures[:20])


def _write(directory: Path, seed: Seed, data: bytes) -> Path:
    path = directory / ("whole" + seed.suffix)
    path.write_bytes(data)
    return path


def test_trailing_bytes_rule_holds_for_a_file_with_trailing_data(tmp_path: Path) -> None:
    """The L >= E half of the rule, on a legacy seed given 64 bytes of trailing data: cuts inside
    the trailing bytes load (with the trailing-data warning while any remain)."""
    legacy = [s for s in SEEDS if s.layout.container == "torch-legacy" and s.origin == "fixture"]
    seed = legacy[0]
    data = seed.data + b"\x00" * 64
    path = tmp_path / "trailing.pth"
    for length in range(len(seed.data) - 1, len(data) + 1, 7):
        path.write_bytes(data[:length])
        out = check_file(path)
        if length < len(seed.data):
            assert out.code == 3
        else:
            assert out.code == 0, out.open_message or out.load_message
            has_warning = any("trailing data" in w for w in out.warnings)
            assert has_warning == (length > len(seed.data)), (length, out.warnings)


# ------------------------------------------------------------------------------------------
# the CLI on a sample of cuts

def _limit_memory() -> None:
    cap = 2 << 30
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _cli_sample() -> list[tuple[Seed, int]]:
    """One cut per real model (alternately in the middle and with only the last byte missing)
    and one per container kind among the fixtures."""
    out: list[tuple[Seed, int]] = []
    kinds_done: set[str] = set()
    for s in SEEDS:
        n = len(s.data)
        if s.origin == "real":
            out.append((s, n // 2 if len(out) % 2 else n - 1))
        elif s.layout.container not in kinds_done:
            kinds_done.add(s.layout.container)
            out.append((s, n // 3))
    return out


def test_cli_refuses_cuts_with_one_line(tmp_path: Path) -> None:
    env = dict(os.environ)
    root = str(HERE.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs = []
    for i, (seed, length) in enumerate(_cli_sample()):
        name = f"cut{i}-{seed.name.replace('/', '-')}"
        (tmp_path / name).write_bytes(seed.data[:length])
        p = subprocess.Popen([sys.executable, "-m", "converter", "inspect", name], cwd=tmp_path, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, errors="replace", preexec_fn=_limit_memory)
        procs.append((name, p))
    failures = []
    for name, p in procs:
        try:
            stdout, stderr = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            failures.append(f"{name}: timed out")
            continue
        lines = stderr.splitlines()
        if p.returncode != 3 or len(lines) != 1 or name not in lines[0] or "Traceback" in stderr + stdout:
            failures.append(f"{name}: exit {p.returncode}, stderr {stderr[-500:]!r}")
    assert not failures, "\n".join(failures)
