"""Real signals sent to real conversions (issue 13, items 2, 3, 11 and 16).

* SIGTERM, SIGHUP and a double Ctrl-C at many points of a large conversion: exit 128 + the
  signal's number, one line, no staging folder, the previous outputs untouched.
* A commit interrupted between its renames (a real signal sent from inside ``os.replace``, or an
  exception) puts the previous outputs back; one SIGKILLed there leaves a journal from which the
  next run restores them.
* The next run sweeps the staging folders of dead processes — and nothing else.
* Ctrl-C while the program is still importing: the same one line and exit 130.
* Progress: one labelled bar per table and phase.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import FIXTURES, ROOT
from .hostile.builders import TensorSpec
from .test_atomic_kill import _write_legacy_sparse

ROWS, DIM = 262144, 64  # two 64 MiB tables (a sparse file); a .bin conversion takes ~1.5 s
SMALL = FIXTURES / "fastai2" / "collab_dot_export.pkl"  # two tables: `o.vec` → 4 files
PREVIOUS = {"out.user.bin": b"previous user", "out.user.bin.manifest.json": b"{}",
            "out.item.bin": b"previous item", "out.item.bin.manifest.json": b"[]"}
STAGING = ".embconv-tmp"  # how every staging folder's name ends
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src") / "big.pth"
    n = ROWS * DIM
    _write_legacy_sparse(src, [TensorSpec("u_weight.weight", "0", "FloatStorage", n, 0, (ROWS, DIM), (DIM, 1)),
                               TensorSpec("i_weight.weight", "1", "FloatStorage", n, 0, (ROWS, DIM), (DIM, 1))])
    return src


def _convert(src: Path, dst: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "converter", "convert", "-q", "--allow-unlabelled", "--force",
                             *extra, str(src), str(dst)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=ENV, cwd=dst.parent)


def _lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("warning:")]


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _handlers_installed(pid: int) -> bool:
    """True once the process catches SIGTERM (embconv's handlers are in place)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _importing(pid: int) -> bool:
    """True once the process has mapped numpy's extension (it is importing embconv's modules)."""
    try:
        return "_multiarray_umath" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _wait_started(proc: subprocess.Popen, limit: float = 10) -> None:
    """Wait until embconv's own code runs (its handlers are installed; or, for a version without
    them, it is importing): a signal before that hits the bare interpreter starting up."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if _handlers_installed(proc.pid) or _importing(proc.pid):
            return
        time.sleep(0.002)


def _state(folder: Path) -> dict[str, bytes | None]:
    return {p.name: (p.read_bytes() if p.is_file() and p.stat().st_size < 1000 else None) for p in folder.iterdir()}


@pytest.fixture(scope="module")
def full_run(big, tmp_path_factory) -> float:
    """Seconds a whole conversion of ``big`` takes once started (the signals are spread over it)."""
    out = tmp_path_factory.mktemp("full")
    proc = _convert(big, out / "out.bin")
    _wait_started(proc)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return time.monotonic() - t0


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGINT-twice"])
def test_stop_signals_at_many_points_leave_nothing(big, full_run, tmp_path, how):
    signum = signal.SIGINT if how == "SIGINT-twice" else getattr(signal, how)
    expected_line = "embconv: interrupted" + ("" if signum == signal.SIGINT else f" ({how})")
    outcomes = []
    for i, frac in enumerate([0.0, 0.25, 0.5, 0.75, 0.95]):
        out = tmp_path / f"run{i}"
        out.mkdir()
        for name, data in PREVIOUS.items():
            (out / name).write_bytes(data)
        proc = _convert(big, out / "out.bin")
        _wait_started(proc)
        time.sleep(frac * full_run)
        proc.send_signal(signum)
        if how == "SIGINT-twice":
            time.sleep(0.03 + 0.02 * i)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        outcomes.append(proc.returncode)
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert not [p for p in out.iterdir() if p.name.endswith(STAGING)], f"staging left at {frac}: {err}"
        if proc.returncode == 0:  # finished before the signal: the new outputs, whole
            assert (out / "out.user.bin").stat().st_size > ROWS * DIM * 4
            continue
        assert proc.returncode == 128 + signum, err
        assert _lines(err) == [expected_line], err
        assert _state(out) == PREVIOUS, f"previous outputs changed by a signal at {frac}"
    assert sum(rc != 0 for rc in outcomes) >= 2, outcomes  # (a fast machine may finish before the late ones)


_COMMIT_PROBE = r"""
import os, signal, sys
k, what = int(sys.argv[1]), sys.argv[2]
real, count = os.replace, [0]
def replace(a, b, **kw):
    real(a, b, **kw)
    if ".embconv-tmp" in os.fsdecode(a) + os.fsdecode(b):
        count[0] += 1
        if count[0] == k:
            if what == "MemoryError":
                raise MemoryError
            os.kill(os.getpid(), getattr(signal, what))
os.replace = replace
from converter.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("what", ["SIGINT", "SIGTERM", "MemoryError", "SIGKILL"])
def test_interrupted_commit_keeps_the_previous_outputs(tmp_path, what):
    """4 files: renames 1–4 move the previous files aside, 5–8 place the new ones."""
    previous = {"o.userId.vec": b"old user", "o.userId.vec.manifest.json": b"{\"old\": 1}",
                "o.title.vec": b"old title", "o.title.vec.manifest.json": b"{\"old\": 2}"}
    for k in (1, 4, 5, 8):
        out = tmp_path / f"k{k}"
        out.mkdir()
        for name, data in previous.items():
            (out / name).write_bytes(data)
        r = subprocess.run([sys.executable, "-c", _COMMIT_PROBE, str(k), what, "convert", "-q", "--force",
                            str(SMALL), str(out / "o.vec")], capture_output=True, text=True, env=ENV, timeout=60)
        assert "Traceback" not in r.stderr, r.stderr
        if what == "SIGKILL":
            assert r.returncode == -signal.SIGKILL
            left = [p for p in out.iterdir() if p.name.endswith(STAGING)]
            assert len(left) == 1 and (left[0] / "journal").is_file()
            # The next run in that folder sweeps it and puts the previous outputs back.
            r2 = subprocess.run([sys.executable, "-m", "converter", "convert", "-q", str(SMALL),
                                 str(out / "other.safetensors")], capture_output=True, text=True, env=ENV, timeout=60)
            assert r2.returncode == 0, r2.stderr
            notes = r2.stderr.strip().splitlines()
            assert len(notes) == 1 and "removed" in notes[0] and "put back the previous" in notes[0], r2.stderr
            state = _state(out)
            state.pop("other.safetensors")
            assert state == previous, f"k={k}: {state}"
            continue
        expected = {"SIGINT": 130, "SIGTERM": 143, "MemoryError": 3}[what]
        assert r.returncode == expected, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert _state(out) == previous, f"k={k}: previous outputs lost"


_LIVE_STAGING = r"""
import sys, time
from pathlib import Path
from converter.atomic import Staging
s = Staging([Path(sys.argv[1])], False)
print(s.dir, flush=True)
time.sleep(120)
"""


def test_a_later_run_sweeps_only_what_dead_processes_left(big, tmp_path):
    out = tmp_path
    # 1. A live process's staging folder.
    live = subprocess.Popen([sys.executable, "-c", _LIVE_STAGING, str(out / "live.safetensors")],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert live.stdout is not None
        live_dir = Path(live.stdout.readline().strip())
        assert live_dir.is_dir()
        # 2. A conversion SIGKILLed mid-write.
        proc = _convert(big, out / "dead.bin")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.is_file() and p.stat().st_size > (8 << 20) for p in out.rglob("*")):
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed = [p for p in out.iterdir() if p.name.endswith(STAGING) and p != live_dir]
        assert len(killed) == 1
        # 3. Look-alikes that are not embconv's, or whose owner cannot be judged dead.
        user = out / ".notes.abc123.embconv-tmp"
        user.mkdir()
        (user / "mine.txt").write_text("keep me")
        (out / ".x.safetensors.embconv-tmp").write_text("a file, not a staging folder")
        other_host = out / ".o.zzzzzzzz.embconv-tmp"
        other_host.mkdir()
        (other_host / "owner").write_text(json.dumps({"embconv-staging": 1, "pid": 2 ** 22 + 12345,
                                                           "start": "1", "boot": None, "host": "elsewhere"}))
        bad_owner = out / ".p.yyyyyyyy.embconv-tmp"
        bad_owner.mkdir()
        (bad_owner / "owner").write_text("not json")
        # 4. A pid that lives but is another process now (start time differs): its owner is gone.
        reused = out / ".r.xxxxxxxx.embconv-tmp"
        reused.mkdir()
        (reused / "owner").write_text(json.dumps({"embconv-staging": 1, "pid": live.pid, "start": "1",
                                                       "boot": _boot_id(), "host": socket.gethostname()}))
        if _start_time(live.pid) is None:
            reused.rename(out / ".r.gone.embconv-tmp")
            reused = out / ".r.gone.embconv-tmp"
            (reused / "owner").write_text(json.dumps({"embconv-staging": 1, "pid": 2 ** 22 + 54321,
                                                           "host": socket.gethostname()}))
        r = subprocess.run([sys.executable, "-m", "converter", "convert", "-q", str(SMALL),
                            str(out / "new.safetensors")], capture_output=True, text=True, env=ENV, timeout=60)
        assert r.returncode == 0, r.stderr
        notes = r.stderr.strip().splitlines()
        assert len(notes) == 2 and all(n.startswith("embconv: removed ") for n in notes), r.stderr
        assert any(str(killed[0]) in n for n in notes) and any(str(reused) in n for n in notes)
        assert not killed[0].exists() and not reused.exists()
        assert live_dir.is_dir() and (user / "mine.txt").read_text() == "keep me"
        assert (out / ".x.safetensors.embconv-tmp").is_file() and other_host.is_dir() and bad_owner.is_dir()
        assert not (out / "dead.bin").exists() and (out / "new.safetensors").is_file()
    finally:
        live.kill()
        live.wait(timeout=10)


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3])
def test_ctrl_c_while_starting_is_one_line(big, tmp_path, delay):
    proc = _convert(big, tmp_path / "out.bin")
    _wait_started(proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert _lines(err) == ["embconv: interrupted"], err
    assert list(tmp_path.iterdir()) == []


class _Recorder:
    def __init__(self) -> None:
        self.phases: list[tuple[str, int | None]] = []
        self.calls: list[tuple[str, int, int]] = []

    def phase(self, label: str, total: int | None) -> None:
        self.phases.append((label, total))

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((self.phases[-1][0], done, total))


@pytest.mark.parametrize("suffix", [".safetensors", ".vec"])
def test_progress_reports_each_table_and_phase(tmp_path, suffix):
    import converter

    from ._writer_models import collab_model

    rec = _Recorder()
    converter.save(collab_model(), tmp_path / f"out{suffix}", progress=rec)
    labels = [label for label, _ in rec.phases]
    if suffix == ".safetensors":
        assert labels[:2] == ["writing title", "writing userId"]  # the file's order: sorted by name
        assert labels[2:5] == ["reading back out.safetensors", "verifying userId", "verifying title"]
    else:
        assert labels[:3] == ["writing userId", "reading back out.userId.vec", "verifying userId"]
        assert labels[3:6] == ["writing title", "reading back out.title.vec", "verifying title"]
    for label, total in rec.phases:
        if label.startswith(("writing", "verifying")):
            table = label.split()[1]
            done = [d for lab, d, _ in rec.calls if lab == label]
            assert done and done == sorted(done) and done[-1] == total == {"userId": 4, "title": 5}[table]
    # The plain two-argument callback still gets rows written over all tables.
    seen: list[tuple[int, int]] = []
    converter.save(collab_model(), tmp_path / f"again{suffix}", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (9, 9) and seen == sorted(seen)


def test_progress_bars_on_a_terminal(big, tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: embconv with stderr on the terminal
        os.environ.update(ENV)
        os.execv(sys.executable, [sys.executable, "-m", "converter", "convert", "--allow-unlabelled", str(big),
                                  str(tmp_path / "out.bin")])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a pty starts 0 columns wide
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    for label in ("writing user", "reading back out.user.bin", "verifying user", "writing item", "verifying item"):
        assert f"{label}:" in text, (label, text[-2000:])
