"""A conversion killed with SIGKILL in the middle of writing leaves nothing at the destination:
only embconv's hidden staging folder ``.NAME.*.embconv-tmp`` remains (no cleanup runs after
SIGKILL), and the next conversion into that folder sweeps it, saying so in one line
(tests/test_signals.py covers the other signals and what a sweep leaves alone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .hostile.builders import TensorSpec, state_dict_pickle

ROWS, DIM = 1024 * 1024, 128  # two 512 MiB tables, as a sparse file (nothing on disk to read)


def _write_legacy_sparse(path: Path, specs: list[TensorSpec]) -> None:
    """Legacy container with every storage blob a hole: count, then numel*4 unwritten bytes."""
    from .hostile.builders import LEGACY_MAGIC, LEGACY_PROTOCOL, pickle_of, sys_info_pickle

    with open(path, "wb") as f:
        f.write(LEGACY_MAGIC + LEGACY_PROTOCOL + sys_info_pickle() + state_dict_pickle(specs, legacy=True))
        f.write(pickle_of(sorted(s.key for s in specs)))
        for s in sorted(specs, key=lambda s: s.key):
            f.write(s.numel.to_bytes(8, "little", signed=True))
            f.seek(s.numel * 4, os.SEEK_CUR)
        f.truncate(f.tell())


@pytest.mark.parametrize("suffix", [".safetensors", ".vec"])
def test_sigkill_mid_write_leaves_nothing_at_destination(tmp_path, suffix):
    src = tmp_path / "big.pth"
    n = ROWS * DIM
    _write_legacy_sparse(src, [TensorSpec("u_weight.weight", "0", "FloatStorage", n, 0, (ROWS, DIM), (DIM, 1)),
                               TensorSpec("i_weight.weight", "1", "FloatStorage", n, 0, (ROWS, DIM), (DIM, 1))])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dst = out_dir / f"emb{suffix}"
    proc = subprocess.Popen([sys.executable, "-m", "converter", "convert", "-q", "--allow-unlabelled",
                             str(src), str(dst)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        staged = None
        while time.monotonic() < deadline and proc.poll() is None:
            staged = [p for p in out_dir.rglob("*") if p.is_file() and p.stat().st_size > (8 << 20)]
            if staged:
                break
            time.sleep(0.02)
        assert staged, f"the conversion never got going: {proc.poll()} {proc.stderr.read() if proc.stderr else ''}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    visible = [p.name for p in out_dir.iterdir() if not p.name.startswith(".")]
    assert visible == [], f"half-written output at the destination: {visible}"
    assert not dst.exists()
    # What SIGKILL leaves is the hidden staging folder (no cleanup can run after SIGKILL).
    leftovers = [p for p in out_dir.iterdir() if p.name.endswith(".embconv-tmp")]
    assert leftovers
    # The next run in that folder removes what the dead process left.
    again = subprocess.run([sys.executable, "-m", "converter", "convert", "-q",
                            str(Path(__file__).parent / "fixtures" / "fastai2" / "collab_dot_export.pkl"),
                            str(out_dir / "next.safetensors")], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert [line.split(",")[0] for line in again.stderr.splitlines()] == [f"embconv: removed {leftovers[0]}"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["next.safetensors"]
